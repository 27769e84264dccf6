package cmux

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzHTTPHostPath: HTTPHost and HTTPPathPrefix decide the same on a
// plain reader, one byte per Read, and through the mux's sniffer with any
// read sizes; inside All, after a matcher that read, too. On the HTTP/1
// requests net/http reads, the host matches the one net/http finds.
func FuzzHTTPHostPath(f *testing.F) {
	for _, tc := range hpCases {
		_, arg, _ := strings.Cut(tc.m, ":")
		f.Add([]byte(tc.in), arg, []byte{1, 3, 200})
	}
	f.Fuzz(func(t *testing.T, in []byte, arg string, sizes []byte) {
		for _, m := range []Matcher{HTTPHost(arg), HTTPPathPrefix(arg), All(HTTP1Fast(), HTTPHost(arg))} {
			want := m(bytes.NewReader(in))
			if got := m(iotest.OneByteReader(bytes.NewReader(in))); got != want {
				t.Fatalf("%q %q: one byte per Read %v, whole %v", in, arg, got, want)
			}
			c := &MuxConn{Conn: &btConn{src: in, sizes: sizes, stallAt: -1}}
			c.sniff = newBufferPools(DefaultMaxSniffBytes).newSniffer(c, DefaultMaxSniffBytes)
			got := m(c.sniff)
			c.endMatching(false)
			if got != want {
				t.Fatalf("%q %q: sniffer %v, reader %v", in, arg, got, want)
			}
		}
		if bytes.HasPrefix(in, []byte("PRI ")) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if err != nil || len(req.Header.Values("Host")) > 1 || strings.ContainsAny(req.Host, "@%") {
			return
		}
		host := req.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else if strings.Contains(host, ":") {
			return // not an authority: "::", "a:b:c"
		}
		if host == "" || strings.HasSuffix(host, ".") {
			return
		}
		if !HTTPHost(host)(bytes.NewReader(in)) {
			t.Fatalf("%q: net/http reads host %q (%q), HTTPHost does not match it", in, req.Host, host)
		}
	})
}
