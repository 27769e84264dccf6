package cmux

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest/h2frame"
	"golang.org/x/net/http2/hpack"

	"github.com/cmux-go/cmux/internal/h2"
	"github.com/cmux-go/cmux/internal/http1"
	"github.com/cmux-go/cmux/internal/patricia"
	"github.com/cmux-go/cmux/internal/peek"
)

// Every matcher case runs three ways: on a bytes.Reader, on a reader that
// returns one byte per Read, and through a mux's sniffer on one end of a
// net.Pipe whose other end writes one byte per Write. The helpers of this
// file start with mt so as not to clash with other test files.

// mtCase is a table case: matcher m on input in says want.
type mtCase struct {
	name string
	m    MatchWriter
	in   []byte
	want bool
	// strs, if not nil, is the prefix set behind m: fed one byte at a time,
	// m must read exactly the bytes that set needs to decide (mtNeed).
	strs []string
}

// mtNeed is the number of bytes a prefix matcher of strs must read from in
// to decide: up to the shortest string that matches, or up to the first
// byte that rules every string out.
func mtNeed(strs []string, in []byte) int {
	if len(strs) == 0 {
		return 0
	}
	shortest, longest := -1, 0
	for _, s := range strs {
		if strings.HasPrefix(string(in), s) && (shortest < 0 || len(s) < shortest) {
			shortest = len(s)
		}
		n := 0
		for n < len(s) && n < len(in) && s[n] == in[n] {
			n++
		}
		longest = max(longest, n)
	}
	if shortest >= 0 {
		return shortest
	}
	return min(len(in), longest+1)
}

// mtSettingsOnly checks that what a matcher wrote is nothing or one mux
// SETTINGS frame.
func mtSettingsOnly(t *testing.T, wrote []byte, how string) {
	t.Helper()
	if len(wrote) > 0 {
		assert.Equal(t, h2.MuxSettings, wrote, "%s: a matcher may write one mux SETTINGS frame and nothing else", how)
	}
}

func mtRunCases(t *testing.T, cases []mtCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w bytes.Buffer
			assert.Equal(t, tc.want, tc.m(&w, bytes.NewReader(tc.in)), "bytes.Reader")
			mtSettingsOnly(t, w.Bytes(), "bytes.Reader")

			w.Reset()
			assert.Equal(t, tc.want, tc.m(&w, iotest.OneByteReader(bytes.NewReader(tc.in))), "one byte per Read")
			mtSettingsOnly(t, w.Bytes(), "one byte per Read")

			r := mtSniff(t, mtPeer{in: tc.in, chunk: 1, hangUp: true}, func(s *sniffer) bool { return tc.m(s, s) })
			assert.Equal(t, tc.want, r.ok, "sniffer, one byte per Write")
			assert.True(t, bytes.HasPrefix(tc.in, r.buffered), "sniffer holds %q, not a prefix of the input", r.buffered)
			mtSettingsOnly(t, r.wrote, "sniffer")
			if tc.strs != nil {
				assert.Equal(t, mtNeed(tc.strs, tc.in), len(r.buffered), "bytes read to decide")
			}
		})
	}
}

// mtPeer is the client side of mtSniff.
type mtPeer struct {
	in      []byte
	chunk   int           // bytes per Write; 0: all in one Write
	hangUp  bool          // close after writing; otherwise stay silent
	timeout time.Duration // read deadline of the mux's end; 0: none
}

type mtSniffResult struct {
	ok       bool
	buffered []byte // what the sniffer had read when the matchers returned
	wrote    []byte // what the mux wrote to the peer
	err      error  // the sniffer's read error; nil if it never saw one
	settings bool   // MuxConn.wroteSettings
}

// mtSniff runs match on the sniffer of a MuxConn made as the mux makes
// them, around one end of a net.Pipe; peer writes to the other end and
// collects what the mux writes. A matcher still running after 5s fails t.
func mtSniff(t *testing.T, peer mtPeer, match func(*sniffer) bool) mtSniffResult {
	t.Helper()
	srv, cli := net.Pipe()
	mc := New(nil).(*cMux).newConn(srv)
	if peer.timeout > 0 {
		require.NoError(t, srv.SetReadDeadline(time.Now().Add(peer.timeout)))
	}
	var wg sync.WaitGroup
	var wrote bytes.Buffer
	wg.Add(2)
	go func() {
		defer wg.Done()
		chunk := peer.chunk
		if chunk <= 0 {
			chunk = max(len(peer.in), 1)
		}
		for in := peer.in; len(in) > 0; {
			n := min(chunk, len(in))
			if _, err := cli.Write(in[:n]); err != nil {
				return
			}
			in = in[n:]
		}
		if peer.hangUp {
			cli.Close()
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(&wrote, cli)
	}()

	done := make(chan bool, 1)
	go func() { done <- match(mc.sniff) }()
	var res mtSniffResult
	select {
	case res.ok = <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("matcher still running after 5s")
		srv.Close()
		res.ok = <-done
	}
	res.buffered = bytes.Clone(mc.sniff.Buffered())
	res.err = mc.sniff.err
	res.settings = mc.wroteSettings()
	srv.Close()
	cli.Close()
	wg.Wait()
	mc.endMatching(false)
	res.wrote = wrote.Bytes()
	return res
}

func TestMatchAny(t *testing.T) {
	checkLeaks(t)
	var cases []mtCase
	for _, in := range []string{"", "x", "GET / HTTP/1.1\r\n\r\n", h2.Preface, "\x05\x01\x00"} {
		cases = append(cases, mtCase{name: in, m: readOnly(Any()), in: []byte(in), want: true, strs: []string{""}})
	}
	mtRunCases(t, cases)
}

func TestMatchPrefixMatcher(t *testing.T) {
	checkLeaks(t)
	c := func(name string, strs []string, in string, want bool) mtCase {
		return mtCase{name: name, m: readOnly(PrefixMatcher(strs...)), in: []byte(in), want: want, strs: append([]string{}, strs...)}
	}
	mtRunCases(t, []mtCase{
		// As in v0.1.5, no strings match everything.
		c("no strings, empty input", nil, "", true),
		c("no strings", nil, "abc", true),
		c("empty string, empty input", []string{""}, "", true),
		c("empty string", []string{""}, "abc", true),
		c("empty string among others", []string{"xyz", ""}, "abc", true),
		c("exact", []string{"abc"}, "abc", true),
		c("longer input", []string{"abc"}, "abcdef", true),
		c("short input", []string{"abc"}, "ab", false),
		c("empty input", []string{"abc"}, "", false),
		c("first byte differs", []string{"abc"}, "xbc", false),
		c("last byte differs", []string{"abc"}, "abd", false),
		c("GET GETX on GET", []string{"GET", "GETX"}, "GET", true),
		c("GET GETX on GETX", []string{"GET", "GETX"}, "GETX", true),
		c("GET GETX on GETY", []string{"GET", "GETX"}, "GETY", true),
		c("GET GETX on GE", []string{"GET", "GETX"}, "GE", false),
		c("GETX GET on GET", []string{"GETX", "GET"}, "GET / HTTP/1.1", true),
		c("a prefix of another, short one matches", []string{"ab", "abcd"}, "abx", true),
		c("a prefix of another, long one only", []string{"abcd", "abce"}, "abcf", false),
		c("a prefix of another, neither", []string{"ab", "abcd"}, "ax", false),
		c("duplicates", []string{"ab", "ab", "ab"}, "ab", true),
		c("duplicates, no match", []string{"ab", "ab"}, "ac", false),
		c("shared prefix, second branch", []string{"abc", "abd", "x"}, "abd", true),
		c("shared prefix, third branch", []string{"abc", "abd", "x"}, "x", true),
		c("shared prefix, ruled out in the middle", []string{"abcde", "abcdf"}, "abcdg", false),
		c("binary", []string{"\x00\xff", "\xff\x00"}, "\xff\x00\x01", true),
		c("NUL prefix on empty-ish input", []string{"\x00"}, "\x01", false),
		c("case matters", []string{"GET"}, "get", false),
	})
}

// mtMethods are the methods HTTP1Fast matches without being told.
var mtMethods = []string{"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT", "PATCH"}

func TestMatchHTTP1Fast(t *testing.T) {
	checkLeaks(t)
	c := func(name string, ext []string, in string, want bool) mtCase {
		return mtCase{name: name, m: readOnly(HTTP1Fast(ext...)), in: []byte(in), want: want, strs: append(append([]string{}, mtMethods...), ext...)}
	}
	var cases []mtCase
	for _, m := range mtMethods {
		cases = append(cases,
			c(m+" request", nil, m+" / HTTP/1.1\r\nHost: x\r\n\r\n", true),
			c(m+" alone", nil, m, true),
			c(m+" lower case", nil, strings.ToLower(m)+" / HTTP/1.1\r\n", false),
			c(m+" truncated", nil, m[:len(m)-1], false),
		)
	}
	cases = append(cases,
		c("empty", nil, "", false),
		c("PROPFIND without ext", nil, "PROPFIND / HTTP/1.1\r\n", false),
		c("PROPFIND ext", []string{"PROPFIND", "MKCOL"}, "PROPFIND / HTTP/1.1\r\n", true),
		c("MKCOL ext", []string{"PROPFIND", "MKCOL"}, "MKCOL /x HTTP/1.1\r\n", true),
		c("ext does not drop defaults", []string{"PROPFIND"}, "PATCH / HTTP/1.1\r\n", true),
		c("ext truncated", []string{"PROPFIND"}, "PROPF", false),
		c("ext sharing a default's prefix", []string{"PUTX"}, "PUTX", true),
		c("non-method", nil, "FOO / HTTP/1.1\r\n", false),
		c("response line", nil, "HTTP/1.1 200 OK\r\n", false),
		c("GEX", nil, "GEX / HTTP/1.1\r\n", false),
		c("POX", nil, "POX", false),
		c("SOCKS5 greeting", nil, "\x05\x01\x00", false),
		c("SOCKS4", nil, "\x04\x01\x00\x50", false),
		c("TLS hello", nil, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false),
		c("SSH banner", nil, "SSH-2.0-OpenSSH_9.2\r\n", false),
		c("HTTP/2 preface: PRI is not a default method", nil, h2.Preface, false),
		c("HTTP/2 preface with PRI ext", []string{"PRI"}, h2.Preface, true),
	)
	mtRunCases(t, cases)
}

func TestMatchHTTP1(t *testing.T) {
	checkLeaks(t)
	c := func(name, in string, want bool) mtCase {
		return mtCase{name: name, m: readOnly(HTTP1()), in: []byte(in), want: want}
	}
	// A request line of n bytes, CRLF included.
	line := func(n int) string {
		const head, tail = "GET /", " HTTP/1.1\r\n"
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	// As in v0.1.5, only the version is checked, after the second space;
	// a line cut short by the end of the bytes is judged as it is.
	mtRunCases(t, []mtCase{
		c("HTTP/1.1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
		c("HTTP/1.0", "GET /index.html HTTP/1.0\r\n\r\n", true),
		c("request line only", "POST /a?b=c HTTP/1.1\r\n", true),
		c("LF line end", "GET / HTTP/1.1\nHost: x\n\n", true),
		c("other method", "PROPFIND /dav HTTP/1.1\r\n", true),
		c("OPTIONS *", "OPTIONS * HTTP/1.1\r\n", true),
		c("CONNECT authority", "CONNECT example.com:443 HTTP/1.1\r\n", true),
		c("absolute URI", "GET http://example.com/x HTTP/1.1\r\n", true),
		c("HTTP/1.9", "GET / HTTP/1.9\r\n", true),
		c("HTTP/2.0", "GET / HTTP/2.0\r\n", false),
		c("HTTP/2 preface", h2.Preface, false),
		c("HTTP/1", "GET / HTTP/1\r\n", false),
		c("HTTP/1.", "GET / HTTP/1.\r\n", false),
		c("HTTP/1.1x", "GET / HTTP/1.1x\r\n", false),
		c("HTTP/1.10", "GET / HTTP/1.10\r\n", false),
		c("HTTP/1.1 trailing space", "GET / HTTP/1.1 \r\n", false),
		c("lower-case version", "GET / http/1.1\r\n", false),
		c("HTTP/0.9 style", "GET /\r\n", false),
		c("method only", "GET\r\n", false),
		c("no method", " / HTTP/1.1\r\n", true),
		c("no target", "GET  HTTP/1.1\r\n", true),
		c("no line end", "GET / HTTP/1.1", true),
		c("CR then end", "GET / HTTP/1.1\r", false),
		c("bare CR", "GET / HTTP/1.1\rHost: x\r\n", false),
		c("empty", "", false),
		c("empty line", "\r\n", false),
		c("NUL in method", "GE\x00T / HTTP/1.1\r\n", false),
		c("control char in target", "GET /\x01 HTTP/1.1\r\n", false),
		c("DEL in target", "GET /\x7f HTTP/1.1\r\n", false),
		c("tab separator", "GET\t/ HTTP/1.1\r\n", false),
		c("response line", "HTTP/1.1 200 OK\r\n", false),
		c("SOCKS5 greeting", "\x05\x01\x00", false),
		c("TLS hello", "\x16\x03\x01\x02\x00", false),
		c("line of 4096 bytes", line(4096), true),
		c("line of 4097 bytes", line(4097), false),
		c("line of 10000 bytes", line(10000), false),
	})
}

func TestMatchHTTP2(t *testing.T) {
	checkLeaks(t)
	c := func(name, in string, want bool) mtCase {
		return mtCase{name: name, m: readOnly(HTTP2()), in: []byte(in), want: want, strs: []string{h2.Preface}}
	}
	cases := []mtCase{
		c("preface", h2.Preface, true),
		c("preface and a frame", h2.Preface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00", true),
		c("truncated", h2.Preface[:len(h2.Preface)-1], false),
		c("P", "P", false),
		c("empty", "", false),
		c("HTTP/1 PRI", "PRI * HTTP/1.1\r\n\r\n", false),
		c("GET", "GET / HTTP/1.1\r\n\r\n", false),
	}
	for i := range len(h2.Preface) {
		b := []byte(h2.Preface)
		b[i] ^= 0x20
		cases = append(cases, c("wrong byte "+strconv.Itoa(i), string(b), false))
	}
	mtRunCases(t, cases)
}

// mtClientHello returns the first TLS record crypto/tls sends as a client.
func mtClientHello(t *testing.T) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(c1, &tls.Config{ServerName: "example.com"}).Handshake()
	}()
	defer func() {
		c2.Close()
		<-done
		c1.Close()
	}()
	require.NoError(t, c2.SetReadDeadline(time.Now().Add(5*time.Second)))
	rec := make([]byte, 5)
	_, err := io.ReadFull(c2, rec)
	require.NoError(t, err)
	rec = append(rec, make([]byte, int(rec[3])<<8|int(rec[4]))...)
	_, err = io.ReadFull(c2, rec[5:])
	require.NoError(t, err)
	return rec
}

func TestMatchTLS(t *testing.T) {
	checkLeaks(t)
	hello := string(mtClientHello(t))
	c := func(name string, versions []int, in string, want bool) mtCase {
		vs := versions
		if len(vs) == 0 {
			vs = []int{0x0300, 0x0301, 0x0302, 0x0303}
		}
		strs := []string{}
		for _, v := range vs {
			strs = append(strs, string([]byte{0x16, byte(v >> 8), byte(v)}))
		}
		return mtCase{name: name, m: readOnly(TLS(versions...)), in: []byte(in), want: want, strs: strs}
	}
	rec := func(typ byte, v int) string {
		return string([]byte{typ, byte(v >> 8), byte(v), 0x00, 0x05, 1, 0, 0, 1, 3})
	}
	mtRunCases(t, []mtCase{
		c("crypto/tls ClientHello", nil, hello, true),
		c("SSL 3.0", nil, rec(0x16, 0x0300), true),
		c("TLS 1.0", nil, rec(0x16, tls.VersionTLS10), true),
		c("TLS 1.1", nil, rec(0x16, tls.VersionTLS11), true),
		c("TLS 1.2", nil, rec(0x16, tls.VersionTLS12), true),
		c("TLS 1.3 record version", nil, rec(0x16, tls.VersionTLS13), false),
		c("SSL 2.0 record version", nil, rec(0x16, 0x0200), false),
		c("header only", nil, "\x16\x03\x01", true),
		c("truncated", nil, "\x16\x03", false),
		c("empty", nil, "", false),
		c("change cipher spec", nil, rec(0x14, tls.VersionTLS12), false),
		c("alert", nil, rec(0x15, tls.VersionTLS12), false),
		c("application data", nil, rec(0x17, tls.VersionTLS12), false),
		c("heartbeat", nil, rec(0x18, tls.VersionTLS12), false),
		c("HTTP", nil, "GET / HTTP/1.1\r\n", false),
		c("SOCKS5", nil, "\x05\x01\x00", false),
		c("only 1.3: 1.3", []int{tls.VersionTLS13}, rec(0x16, tls.VersionTLS13), true),
		c("only 1.3: ClientHello", []int{tls.VersionTLS13}, hello, false),
		c("only 1.2: 1.2", []int{tls.VersionTLS12}, rec(0x16, tls.VersionTLS12), true),
		c("only 1.2: 1.0", []int{tls.VersionTLS12}, rec(0x16, tls.VersionTLS10), false),
		c("1.0 and 1.2: 1.1", []int{tls.VersionTLS10, tls.VersionTLS12}, rec(0x16, tls.VersionTLS11), false),
		c("1.0 and 1.2: 1.0", []int{tls.VersionTLS10, tls.VersionTLS12}, rec(0x16, tls.VersionTLS10), true),
		c("each version: 1.1", []int{0x0301, 0x0302, 0x0303, 0x0304}, rec(0x16, 0x0302), true),
		c("each version: 1.3", []int{0x0301, 0x0302, 0x0303, 0x0304}, rec(0x16, 0x0304), true),
		c("each version: alert", []int{0x0301, 0x0302, 0x0303, 0x0304}, rec(0x15, 0x0303), false),
	})
}

func TestMatchHTTP1HeaderField(t *testing.T) {
	checkLeaks(t)
	f := func(name, field, value, in string, want bool) mtCase {
		return mtCase{name: name, m: readOnly(HTTP1HeaderField(field, value)), in: []byte(in), want: want}
	}
	p := func(name, field, prefix, in string, want bool) mtCase {
		return mtCase{name: "prefix " + name, m: readOnly(HTTP1HeaderFieldPrefix(field, prefix)), in: []byte(in), want: want}
	}
	const req = "GET / HTTP/1.1\r\n"
	long := strings.Repeat("a", DefaultMaxSniffBytes)
	mtRunCases(t, []mtCase{
		f("field", "X-Tenant", "example.com", req+"X-Tenant: example.com\r\n\r\n", true),
		f("other value", "X-Tenant", "example.com", req+"X-Tenant: example.org\r\n\r\n", false),
		f("value prefix is not enough", "X-Tenant", "example.com", req+"X-Tenant: example.com.evil\r\n\r\n", false),
		f("second field", "Upgrade", "h2c", req+"X-Tenant: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", true),
		f("name case in request", "Content-Type", "text/plain", req+"content-TYPE: text/plain\r\n\r\n", true),
		f("name case in matcher", "content-type", "text/plain", req+"Content-Type: text/plain\r\n\r\n", true),
		f("value case matters", "Content-Type", "text/plain", req+"Content-Type: Text/Plain\r\n\r\n", false),
		f("OWS trimmed", "X-A", "v w", req+"X-A: \t v w \t\r\n\r\n", true),
		f("no OWS", "X-A", "v", req+"X-A:v\r\n\r\n", true),
		f("empty value", "X-A", "", req+"X-A:\r\n\r\n", true),
		f("first occurrence wins", "X-A", "1", req+"X-A: 1\r\nX-A: 2\r\n\r\n", true),
		f("second occurrence ignored", "X-A", "2", req+"X-A: 1\r\nX-A: 2\r\n\r\n", false),
		f("missing counts as empty", "X-Missing", "", req+"X-Tenant: x\r\n\r\n", true),
		f("missing is not a value", "X-Missing", "x", req+"X-Tenant: x\r\n\r\n", false),
		f("no header fields", "X-Missing", "", req+"\r\n", true),
		f("obs-fold", "X-A", "a b", req+"X-A: a\r\n b\r\nX-B: c\r\n\r\n", true),
		f("obs-fold with tab", "X-A", "a b c", req+"X-A: a\r\n\tb\r\n  c\r\n\r\n", true),
		f("obs-fold, unfolded value", "X-A", "a", req+"X-A: a\r\n b\r\n\r\n", false),
		f("obs-fold of an earlier field", "X-B", "c", req+"X-A: a\r\n b\r\nX-B: c\r\n\r\n", true),
		f("LF line ends", "X-Tenant", "x", "GET / HTTP/1.1\nX-Tenant: x\n\n", true),
		f("LF line ends, missing", "X-M", "", "GET / HTTP/1.1\nX-Tenant: x\n\n", true),
		f("mixed line ends", "X-B", "2", "GET / HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\n", true),
		f("HTTP/1.0", "X-Tenant", "x", "GET / HTTP/1.0\r\nX-Tenant: x\r\n\r\n", true),
		f("HTTP/2.0 request line, as http.ReadRequest takes it", "X-Tenant", "x", "GET / HTTP/2.0\r\nX-Tenant: x\r\n\r\n", true),
		f("bad request line", "X-Tenant", "x", "GET / HTTPS/1.1\r\nX-Tenant: x\r\n\r\n", false),
		f("target http.ReadRequest refuses", "X-Tenant", "x", "GET %zz HTTP/1.1\r\nX-Tenant: x\r\n\r\n", false),
		f("CONNECT authority", "X-Tenant", "x", "CONNECT example.com:443 HTTP/1.1\r\nX-Tenant: x\r\n\r\n", true),
		f("not HTTP", "X-Tenant", "", "\x05\x01\x00", false),
		f("HTTP/2 preface: a missing field is empty, as http.ReadRequest takes it", "X-Tenant", "", h2.Preface, true),
		f("no colon", "X-Tenant", "x", req+"X-Tenant x\r\n\r\n", false),
		f("space before colon", "X-Tenant", "x", req+"X-Tenant : x\r\n\r\n", false),
		f("space in name", "X-Tenant", "x", req+"X-Ten ant: x\r\n\r\n", false),
		f("empty name", "X-Tenant", "", req+": x\r\n\r\n", false),
		f("malformed line before the field", "X-Tenant", "x", req+"Bad\r\nX-Tenant: x\r\n\r\n", false),
		f("malformed line after the field", "X-Tenant", "x", req+"X-Tenant: x\r\nBad\r\n\r\n", true),
		f("Host counts as missing, as in v0.1.5", "Host", "example.com", req+"Host: example.com\r\n\r\n", false),
		f("Host matches the empty value", "host", "", req+"Host: example.com\r\n\r\n", true),
		f("Transfer-Encoding counts as missing", "Transfer-Encoding", "chunked", req+"Transfer-Encoding: chunked\r\n\r\n", false),
		p("Host prefix", "HOST", "ex", req+"Host: example.com\r\n\r\n", false),
		f("NUL in value", "X-A", "a", req+"X-A: a\x00\r\n\r\n", false),
		f("bare CR in value", "X-A", "a", req+"X-A: a\rb\r\n\r\n", false),
		f("header never ends, field missing", "X-B", "", req+"X-A: 1\r\n", false),
		f("header never ends, field last", "X-A", "1", req+"X-A: 1\r\n", false),
		f("header never ends, field then more", "X-A", "1", req+"X-A: 1\r\nX-B: 2\r\n", true),
		f("header cut in the value", "X-A", "1", req+"X-A: 1", false),
		f("header cut after CR", "X-A", "", req+"X-B: 1\r\n\r", false),
		f("header longer than the sniff limit", "X-B", "", req+"X-A: "+long+"\r\n\r\n", false),
		p("match", "Content-Type", "application/grpc", req+"Content-Type: application/grpc+proto\r\n\r\n", true),
		p("whole value", "Content-Type", "application/grpc", req+"Content-Type: application/grpc\r\n\r\n", true),
		p("shorter value", "Content-Type", "application/grpc", req+"Content-Type: application\r\n\r\n", false),
		p("other value", "Content-Type", "application/grpc", req+"Content-Type: application/json\r\n\r\n", false),
		p("empty prefix, missing field", "X-Missing", "", req+"\r\n", true),
		p("prefix of missing field", "X-Missing", "a", req+"\r\n", false),
		p("first occurrence wins", "X-A", "1", req+"X-A: 2\r\nX-A: 1\r\n\r\n", false),
		p("obs-fold", "X-A", "a b", req+"X-A: a\r\n b c\r\n\r\n", true),
	})
}

// mtH2 builds what an HTTP/2 client sends first, with an h2frame.Framer.
type mtH2 struct {
	t   testing.TB
	buf bytes.Buffer
	fr  *h2frame.Framer
}

// newMtH2 starts with the connection preface if preface is set.
func newMtH2(t testing.TB, preface bool) *mtH2 {
	b := &mtH2{t: t}
	if preface {
		b.buf.WriteString(h2.Preface)
	}
	b.fr = h2frame.NewFramer(&b.buf, nil)
	b.fr.AllowIllegalWrites = true
	return b
}

func (b *mtH2) check(err error) *mtH2 {
	b.t.Helper()
	require.NoError(b.t, err)
	return b
}

func (b *mtH2) settings(s ...h2frame.Setting) *mtH2 { return b.check(b.fr.WriteSettings(s...)) }
func (b *mtH2) settingsAck() *mtH2                  { return b.check(b.fr.WriteSettingsAck()) }
func (b *mtH2) windowUpdate(stream, inc uint32) *mtH2 {
	return b.check(b.fr.WriteWindowUpdate(stream, inc))
}
func (b *mtH2) priority(stream uint32) *mtH2 {
	return b.check(b.fr.WritePriority(stream, h2frame.PriorityParam{StreamDep: 0, Weight: 15}))
}
func (b *mtH2) ping() *mtH2 { return b.check(b.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})) }
func (b *mtH2) headers(p h2frame.HeadersFrameParam) *mtH2 {
	return b.check(b.fr.WriteHeaders(p))
}

// hdrs writes a HEADERS frame with END_HEADERS.
func (b *mtH2) hdrs(stream uint32, block []byte) *mtH2 {
	return b.headers(h2frame.HeadersFrameParam{StreamID: stream, BlockFragment: block, EndHeaders: true})
}
func (b *mtH2) continuation(stream uint32, end bool, frag []byte) *mtH2 {
	return b.check(b.fr.WriteContinuation(stream, end, frag))
}
func (b *mtH2) data(stream uint32) *mtH2 { return b.check(b.fr.WriteData(stream, false, []byte("x"))) }
func (b *mtH2) raw(typ h2frame.FrameType, flags h2frame.Flags, stream uint32, payload []byte) *mtH2 {
	return b.check(b.fr.WriteRawFrame(typ, flags, stream, payload))
}

// rawHeader writes a frame header that announces length bytes, and no
// payload.
func (b *mtH2) rawHeader(length int, typ h2frame.FrameType, flags h2frame.Flags, stream uint32) *mtH2 {
	b.buf.Write([]byte{byte(length >> 16), byte(length >> 8), byte(length), byte(typ), byte(flags),
		byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)})
	return b
}
func (b *mtH2) write(p []byte) *mtH2 { b.buf.Write(p); return b }
func (b *mtH2) bytes() []byte        { return bytes.Clone(b.buf.Bytes()) }

// mtBlock HPACK-encodes fields (name, value, name, value, ...).
func mtBlock(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// mtPseudo are the pseudo-header fields of a gRPC request.
var mtPseudo = []string{":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/Method", ":authority", "localhost"}

// mtReq is the header block of a request with mtPseudo and extra fields.
func mtReq(extra ...string) []byte {
	return mtBlock(append(append([]string{}, mtPseudo...), extra...)...)
}

// mtH2Cases are inputs for matchers of content-type: application/grpc
// (and of the prefix application/gr).
func mtH2Cases(t *testing.T) []mtCase {
	grpc := mtReq("content-type", "application/grpc", "te", "trailers")
	none := mtReq("te", "trailers") // a prefix of grpc's encoding
	text := mtReq("content-type", "text/plain")
	cut := len(mtReq()) // grpc[cut:] holds content-type and te
	h := func() *mtH2 { return newMtH2(t, true) }
	hs := func() *mtH2 { return h().settings() }
	full := hs().hdrs(1, grpc).bytes()
	big := make([]byte, h2.MaxFrameSize)
	c := func(name string, in []byte, want bool) mtCase { return mtCase{name: name, in: in, want: want} }
	return []mtCase{
		c("SETTINGS HEADERS", full, true),
		c("SETTINGS with values", h().settings(h2frame.Setting{ID: h2frame.SettingInitialWindowSize, Val: 1 << 20},
			h2frame.Setting{ID: h2frame.SettingMaxFrameSize, Val: 1 << 20}).hdrs(1, grpc).bytes(), true),
		c("every frame kind before HEADERS", hs().windowUpdate(0, 1<<20).priority(3).ping().
			raw(h2frame.FrameRSTStream, 0, 5, []byte{0, 0, 0, 8}).hdrs(1, grpc).bytes(), true),
		c("SETTINGS ACK before HEADERS", hs().settingsAck().hdrs(1, grpc).bytes(), true),
		c("two SETTINGS", hs().settings(h2frame.Setting{ID: h2frame.SettingEnablePush, Val: 0}).hdrs(1, grpc).bytes(), true),
		c("unknown frame type", hs().raw(0xfa, 0xff, 7, []byte("hello")).hdrs(1, grpc).bytes(), true),
		c("unknown frame of the largest size", hs().raw(0xfa, 0, 0, big).hdrs(1, grpc).bytes(), true),
		c("stream 3", hs().hdrs(3, grpc).bytes(), true),
		c("HEADERS with END_STREAM", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc, EndHeaders: true, EndStream: true}).bytes(), true),
		c("padded HEADERS", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc, EndHeaders: true, PadLength: 17}).bytes(), true),
		c("HEADERS with priority", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc, EndHeaders: true,
			Priority: h2frame.PriorityParam{StreamDep: 0, Exclusive: true, Weight: 200}}).bytes(), true),
		c("padded HEADERS with priority", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc, EndHeaders: true, PadLength: 255,
			Priority: h2frame.PriorityParam{StreamDep: 0, Weight: 1}}).bytes(), true),
		c("HEADERS and 2 CONTINUATIONs, field in the last", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:5]}).
			continuation(1, false, grpc[5:cut]).continuation(1, true, grpc[cut:]).bytes(), true),
		c("field split across CONTINUATIONs", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:cut+3]}).
			continuation(1, false, grpc[cut+3:cut+6]).continuation(1, true, grpc[cut+6:]).bytes(), true),
		c("empty HEADERS fragment, block in CONTINUATION", hs().headers(h2frame.HeadersFrameParam{StreamID: 1}).
			continuation(1, true, grpc).bytes(), true),
		c("field absent", hs().hdrs(1, none).bytes(), false),
		c("other value", hs().hdrs(1, text).bytes(), false),
		c("shorter value", hs().hdrs(1, mtReq("content-type", "application/g")).bytes(), false),
		c("duplicate field, first counts", hs().hdrs(1, mtReq("content-type", "application/grpc", "content-type", "text/plain")).bytes(), true),
		c("duplicate field, second matches", hs().hdrs(1, mtReq("content-type", "text/plain", "content-type", "application/grpc")).bytes(), true),
		c("field name in upper case on the wire", hs().hdrs(1, mtReq("Content-Type", "application/grpc")).bytes(), false),
		c("first header block only: second has the field", hs().hdrs(1, none).hdrs(3, grpc).bytes(), false),
		c("first header block only: first has the field", hs().hdrs(1, grpc).hdrs(3, []byte{0xff, 0xff}).write([]byte("garbage")).bytes(), true),
		c("HTTP/1 request", []byte("POST / HTTP/1.1\r\nContent-Type: application/grpc\r\n\r\n"), false),
		c("no preface", newMtH2(t, false).settings().hdrs(1, grpc).bytes(), false),
		c("one wrong preface byte", append([]byte("PRI * HTTP/2.0\r\n\r\nSN\r\n\r\n"), full[len(h2.Preface):]...), false),
		c("empty", nil, false),
		c("preface only", []byte(h2.Preface), false),
		c("preface and SETTINGS only", hs().bytes(), false),
		c("first frame HEADERS", h().hdrs(1, grpc).bytes(), true),
		c("first frame SETTINGS ACK", h().settingsAck().settings().hdrs(1, grpc).bytes(), false),
		c("first frame PING", h().ping().settings().hdrs(1, grpc).bytes(), true),
		c("first frame unknown", h().raw(0xfa, 0, 0, nil).settings().hdrs(1, grpc).bytes(), true),
		c("DATA before HEADERS", hs().data(1).hdrs(1, grpc).bytes(), false),
		c("PUSH_PROMISE before HEADERS", hs().raw(h2frame.FramePushPromise, h2frame.FlagPushPromiseEndHeaders, 1, append([]byte{0, 0, 0, 2}, grpc...)).hdrs(1, grpc).bytes(), false),
		c("GOAWAY before HEADERS", hs().raw(h2frame.FrameGoAway, 0, 0, make([]byte, 8)).hdrs(1, grpc).bytes(), true),
		c("frame longer than 16384", hs().rawHeader(h2.MaxFrameSize+1, 0xfa, 0, 0).write(make([]byte, h2.MaxFrameSize+1)).hdrs(1, grpc).bytes(), false),
		c("HEADERS longer than 16384", hs().rawHeader(h2.MaxFrameSize+1, h2frame.FrameHeaders, h2frame.FlagHeadersEndHeaders, 1).
			write(append(grpc, make([]byte, h2.MaxFrameSize+1-len(grpc))...)).bytes(), false),
		c("CONTINUATION on another stream", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:cut]}).
			continuation(3, true, grpc[cut:]).bytes(), false),
		c("CONTINUATION without HEADERS", hs().continuation(1, true, grpc).bytes(), false),
		c("PING inside a header block", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:cut]}).
			ping().continuation(1, true, grpc[cut:]).bytes(), false),
		c("header block never ends", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:cut]}).
			continuation(1, false, grpc[cut:]).bytes(), false),
		c("HEADERS on stream 0", hs().hdrs(0, grpc).bytes(), false),
		c("HEADERS on stream 2", hs().hdrs(2, grpc).bytes(), false),
		c("truncated in a frame header", full[:len(full)-len(grpc)-4], false),
		c("truncated in HEADERS", full[:len(full)-1], false),
		c("truncated in CONTINUATION", hs().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:cut]}).
			continuation(1, true, grpc[cut:len(grpc)-1]).bytes()[:len(full)+h2.FrameHeaderLen-2], false),
		c("garbage HPACK", hs().hdrs(1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}).bytes(), false),
		c("HPACK index out of range", hs().hdrs(1, append(append([]byte{}, grpc...), 0xfe)).bytes(), false),
		c("HPACK table size update after a field", hs().hdrs(1, append(append([]byte{}, grpc...), 0x3f, 0xe1, 0x1f)).bytes(), false),
		c("HPACK string cut short", hs().hdrs(1, grpc[:len(grpc)-1]).bytes(), false),
		c("SETTINGS of 5 bytes", h().raw(h2frame.FrameSettings, 0, 0, make([]byte, 5)).hdrs(1, grpc).bytes(), false),
		c("SETTINGS on stream 1", h().raw(h2frame.FrameSettings, 0, 1, nil).hdrs(1, grpc).bytes(), false),
		c("SETTINGS ACK with payload", hs().raw(h2frame.FrameSettings, h2frame.FlagSettingsAck, 0, make([]byte, 6)).hdrs(1, grpc).bytes(), false),
		c("PING of 7 bytes", hs().raw(h2frame.FramePing, 0, 0, make([]byte, 7)).hdrs(1, grpc).bytes(), false),
		c("PING on stream 1", hs().raw(h2frame.FramePing, 0, 1, make([]byte, 8)).hdrs(1, grpc).bytes(), false),
		c("WINDOW_UPDATE of 3 bytes", hs().raw(h2frame.FrameWindowUpdate, 0, 0, make([]byte, 3)).hdrs(1, grpc).bytes(), false),
		c("PRIORITY on stream 0", hs().raw(h2frame.FramePriority, 0, 0, make([]byte, 5)).hdrs(1, grpc).bytes(), false),
		c("PRIORITY of 4 bytes", hs().raw(h2frame.FramePriority, 0, 1, make([]byte, 4)).hdrs(1, grpc).bytes(), false),
		c("padding longer than the payload", hs().raw(h2frame.FrameHeaders, h2frame.FlagHeadersEndHeaders|h2frame.FlagHeadersPadded, 1,
			append([]byte{200}, grpc...)).bytes(), false),
		c("PADDED without a pad length", hs().raw(h2frame.FrameHeaders, h2frame.FlagHeadersEndHeaders|h2frame.FlagHeadersPadded, 1, nil).bytes(), false),
		c("PRIORITY flag without its fields", hs().raw(h2frame.FrameHeaders, h2frame.FlagHeadersEndHeaders|h2frame.FlagHeadersPriority, 1,
			[]byte{0, 0, 0}).bytes(), false),
	}
}

func TestMatchHTTP2HeaderField(t *testing.T) {
	checkLeaks(t)
	matchers := []struct {
		name string
		m    MatchWriter
	}{
		{"HTTP2HeaderField", readOnly(HTTP2HeaderField("content-type", "application/grpc"))},
		{"HTTP2HeaderFieldPrefix", readOnly(HTTP2HeaderFieldPrefix("content-type", "application/gr"))},
		{"HTTP2MatchHeaderFieldSendSettings", HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")},
		{"HTTP2MatchHeaderFieldPrefixSendSettings", HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/gr")},
	}
	for _, m := range matchers {
		t.Run(m.name, func(t *testing.T) {
			cases := mtH2Cases(t)
			for i := range cases {
				cases[i].m = m.m
			}
			mtRunCases(t, cases)
		})
	}

	hs := func(block []byte) []byte { return newMtH2(t, true).settings().hdrs(1, block).bytes() }
	proto := hs(mtReq("content-type", "application/grpc+proto"))
	c := func(name string, m MatchWriter, in []byte, want bool) mtCase {
		return mtCase{name: name, m: m, in: in, want: want}
	}
	mtRunCases(t, []mtCase{
		c("exact on a longer value", readOnly(HTTP2HeaderField("content-type", "application/grpc")), proto, false),
		c("prefix on a longer value", readOnly(HTTP2HeaderFieldPrefix("content-type", "application/grpc")), proto, true),
		c("writer prefix on a longer value", HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"), proto, true),
		c("empty prefix, present", readOnly(HTTP2HeaderFieldPrefix("content-type", "")), proto, true),
		c("empty prefix, absent", readOnly(HTTP2HeaderFieldPrefix("x-missing", "")), proto, false),
		c("empty value, absent", HTTP2MatchHeaderFieldSendSettings("x-missing", ""), proto, false),
		c("empty value, present and empty", readOnly(HTTP2HeaderField("x-e", "")), hs(mtReq("x-e", "")), true),
		c("pseudo-header", readOnly(HTTP2HeaderField(":path", "/pkg.Svc/Method")), proto, true),
		// Names compare byte for byte, as in v0.1.5.
		c("upper-case name", readOnly(HTTP2HeaderField("Content-Type", "application/grpc+proto")), proto, false),
		c("upper-case name, upper-case on the wire", readOnly(HTTP2HeaderField("Content-Type", "application/grpc")),
			hs(mtReq("Content-Type", "application/grpc")), true),
		c("pseudo-header prefix", readOnly(HTTP2HeaderFieldPrefix(":path", "/pkg.Svc/")), proto, true),
		c("sensitive (never indexed) field", readOnly(HTTP2HeaderField("authorization", "secret")), hs(func() []byte {
			var buf bytes.Buffer
			enc := hpack.NewEncoder(&buf)
			for i := 0; i < len(mtPseudo); i += 2 {
				_ = enc.WriteField(hpack.HeaderField{Name: mtPseudo[i], Value: mtPseudo[i+1]})
			}
			_ = enc.WriteField(hpack.HeaderField{Name: "authorization", Value: "secret", Sensitive: true})
			return buf.Bytes()
		}()), true),
	})
}

// TestMatchHTTP2SendSettingsWrites checks what the writer matchers write
// when they are called on a reader that is not the mux's.
func TestMatchHTTP2SendSettingsWrites(t *testing.T) {
	checkLeaks(t)
	grpc := mtReq("content-type", "application/grpc")
	head := newMtH2(t, true).settings().bytes()
	rest := newMtH2(t, false).windowUpdate(0, 1000).hdrs(1, grpc).bytes()
	all := append(append([]byte{}, head...), rest...)
	one := func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }
	paused := func() io.Reader { return io.MultiReader(bytes.NewReader(head), bytes.NewReader(rest)) }
	cases := []struct {
		name  string
		r     func() io.Reader
		want  bool
		wrote bool // one mux SETTINGS frame, else nothing
	}{
		{"pause after SETTINGS", paused, true, true},
		{"one byte per Read", func() io.Reader { return one(all) }, true, true},
		{"pause after SETTINGS, then end", func() io.Reader { return bytes.NewReader(head) }, false, true},
		{"all in one Read", func() io.Reader { return bytes.NewReader(all) }, true, false},
		{"no preface", func() io.Reader { return one([]byte("POST / HTTP/1.1\r\nContent-Type: application/grpc\r\n\r\n")) }, false, false},
		{"wrong preface", func() io.Reader { return one(append([]byte("PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"), all[24:]...)) }, false, false},
		{"preface then end", func() io.Reader { return one([]byte(h2.Preface)) }, false, false},
		{"SETTINGS cut short", func() io.Reader { return one(head[:len(head)-1]) }, false, false},
		{"first frame SETTINGS ACK", func() io.Reader { return one(newMtH2(t, true).settingsAck().settings().hdrs(1, grpc).bytes()) }, false, false},
		{"first frame HEADERS", func() io.Reader { return one(newMtH2(t, true).hdrs(1, grpc).bytes()) }, true, false},
		{"SETTINGS of 12 bytes on stream 1", func() io.Reader {
			return one(newMtH2(t, true).raw(h2frame.FrameSettings, 0, 1, make([]byte, 12)).hdrs(1, grpc).bytes())
		}, false, false},
	}
	writers := []struct {
		name string
		m    MatchWriter
	}{
		{"exact", HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")},
		{"prefix", HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/")},
	}
	for _, w := range writers {
		for _, tc := range cases {
			t.Run(w.name+"/"+tc.name, func(t *testing.T) {
				var out bytes.Buffer
				assert.Equal(t, tc.want, w.m(&out, tc.r()))
				if tc.wrote {
					assert.Equal(t, h2.MuxSettings, out.Bytes())
				} else {
					assert.Empty(t, out.Bytes())
				}
			})
		}
	}

	// The frame is a well-formed SETTINGS frame: NO_RFC7540_PRIORITIES = 1.
	require.Len(t, h2.MuxSettings, 15)
	f, err := h2frame.NewFramer(nil, bytes.NewReader(h2.MuxSettings)).ReadFrame()
	require.NoError(t, err)
	sf, ok := f.(*h2frame.SettingsFrame)
	require.True(t, ok, "%T", f)
	require.False(t, sf.IsAck())
	require.Equal(t, 1, sf.NumSettings())
	assert.Equal(t, h2frame.Setting{ID: h2frame.SettingID(h2.SettingNoRFC7540Priorities), Val: 1}, sf.Setting(0))
}

// TestMatchHTTP2SettingsThroughSniffer checks what the mux writes while
// its HTTP/2 matchers run.
func TestMatchHTTP2SettingsThroughSniffer(t *testing.T) {
	checkLeaks(t)
	grpc := mtReq("content-type", "application/grpc")
	head := newMtH2(t, true).settings().bytes()
	all := newMtH2(t, true).settings().hdrs(1, grpc).bytes()
	matchers := []MatchWriter{
		HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"),
		readOnly(HTTP2HeaderField("content-type", "application/grpc")),
		HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/"),
	}
	// runAll runs every matcher on s, as the mux does, and reports what
	// each said.
	runAll := func(got *[]bool) func(s *sniffer) bool {
		return func(s *sniffer) bool {
			for _, m := range matchers {
				s.rewind()
				*got = append(*got, m(s, s))
			}
			return false
		}
	}

	t.Run("pause after SETTINGS", func(t *testing.T) {
		var got []bool
		r := mtSniff(t, mtPeer{in: head, timeout: 200 * time.Millisecond}, runAll(&got))
		assert.Equal(t, []bool{false, false, false}, got)
		assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded, "the matchers waited for HEADERS")
		assert.True(t, r.settings)
		assert.Equal(t, h2.MuxSettings, r.wrote, "exactly one SETTINGS frame")
	})
	t.Run("SETTINGS and HEADERS in one flight", func(t *testing.T) {
		var got []bool
		r := mtSniff(t, mtPeer{in: all}, runAll(&got))
		assert.Equal(t, []bool{true, true, true}, got)
		assert.NoError(t, r.err)
		assert.False(t, r.settings)
		assert.Empty(t, r.wrote, "the mux writes nothing when HEADERS came with SETTINGS")
	})
	t.Run("one byte per Write", func(t *testing.T) {
		var got []bool
		r := mtSniff(t, mtPeer{in: all, chunk: 1}, runAll(&got))
		assert.Equal(t, []bool{true, true, true}, got)
		assert.True(t, r.settings)
		assert.Equal(t, h2.MuxSettings, r.wrote, "exactly one SETTINGS frame")
	})
	t.Run("first frame SETTINGS ACK", func(t *testing.T) {
		var got []bool
		in := newMtH2(t, true).settingsAck().bytes()
		r := mtSniff(t, mtPeer{in: in, chunk: 1, timeout: 200 * time.Millisecond}, runAll(&got))
		assert.Equal(t, []bool{false, false, false}, got)
		assert.NoError(t, r.err, "decided on the ACK, without waiting")
		assert.False(t, r.settings)
		assert.Empty(t, r.wrote)
	})
	t.Run("no preface", func(t *testing.T) {
		var got []bool
		r := mtSniff(t, mtPeer{in: []byte("PRI * HTTP/1.1\r\n\r\n"), chunk: 1, hangUp: true}, runAll(&got))
		assert.Equal(t, []bool{false, false, false}, got)
		assert.False(t, r.settings)
		assert.Empty(t, r.wrote)
	})

	// A client that, like grpc-go, sends HEADERS only once it has the
	// server's SETTINGS.
	t.Run("client waits for SETTINGS", func(t *testing.T) {
		srv, cli := net.Pipe()
		defer srv.Close()
		defer cli.Close()
		mc := New(nil).(*cMux).newConn(srv)
		defer mc.endMatching(false)
		clientErr := make(chan error, 1)
		go func() {
			clientErr <- func() error {
				if _, err := cli.Write(head); err != nil {
					return err
				}
				if err := cli.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					return err
				}
				got := make([]byte, len(h2.MuxSettings))
				if _, err := io.ReadFull(cli, got); err != nil {
					return err
				}
				if !bytes.Equal(got, h2.MuxSettings) {
					return errors.New("not the mux's SETTINGS frame")
				}
				_, err := cli.Write(all[len(head):])
				return err
			}()
		}()
		require.NoError(t, srv.SetReadDeadline(time.Now().Add(5*time.Second)))
		var got []bool
		runAll(&got)(mc.sniff)
		assert.Equal(t, []bool{true, true, true}, got)
		require.NoError(t, <-clientErr)
		assert.True(t, mc.wroteSettings())
		assert.Equal(t, all, mc.sniff.Buffered())
	})
}

// TestMatchShortFlightWithoutBlocking feeds matchers a short flight from a
// peer that then stays silent: a matcher must decide on the bytes it has
// when they decide, and wait only for bytes that can change its answer.
func TestMatchShortFlightWithoutBlocking(t *testing.T) {
	checkLeaks(t)
	settings := newMtH2(t, true).settings().bytes()
	cases := []struct {
		name  string
		m     MatchWriter
		in    string
		want  bool
		waits bool // needs another byte: says no at the read deadline
		wrote bool // the mux wrote its SETTINGS
	}{
		{name: "HTTP1Fast on a SOCKS5 greeting", m: readOnly(HTTP1Fast()), in: "\x05\x01\x00"},
		{name: "HTTP1Fast on GET", m: readOnly(HTTP1Fast()), in: "GET", want: true},
		{name: "HTTP1Fast on GE", m: readOnly(HTTP1Fast()), in: "GE", waits: true},
		{name: "HTTP1Fast on PO", m: readOnly(HTTP1Fast()), in: "PO", waits: true},
		{name: "HTTP1Fast on POX", m: readOnly(HTTP1Fast()), in: "POX"},
		{name: "HTTP2 on X", m: readOnly(HTTP2()), in: "X"},
		{name: "HTTP2 on P", m: readOnly(HTTP2()), in: "P", waits: true},
		{name: "HTTP2 on PRI * HTTP/1", m: readOnly(HTTP2()), in: "PRI * HTTP/1"},
		{name: "HTTP2 on the preface", m: readOnly(HTTP2()), in: h2.Preface, want: true},
		{name: "PrefixMatcher abc on ab", m: readOnly(PrefixMatcher("abc")), in: "ab", waits: true},
		{name: "PrefixMatcher ab abcd on ab", m: readOnly(PrefixMatcher("ab", "abcd")), in: "ab", want: true},
		{name: "PrefixMatcher abcd ab on ab", m: readOnly(PrefixMatcher("abcd", "ab")), in: "ab", want: true},
		{name: "PrefixMatcher empty string on nothing", m: readOnly(PrefixMatcher("")), want: true},
		{name: "PrefixMatcher of nothing on nothing", m: readOnly(PrefixMatcher()), want: true},
		{name: "Any on nothing", m: readOnly(Any()), want: true},
		{name: "TLS on a record header", m: readOnly(TLS()), in: "\x16\x03\x01", want: true},
		{name: "TLS on a TLS 1.3 record header", m: readOnly(TLS()), in: "\x16\x03\x04"},
		{name: "TLS on 16", m: readOnly(TLS()), in: "\x16", waits: true},
		{name: "HTTP1 on a SOCKS5 greeting", m: readOnly(HTTP1()), in: "\x05\x01\x00"},
		{name: "HTTP1 on a request line", m: readOnly(HTTP1()), in: "GET / HTTP/1.1\r\n", want: true},
		{name: "HTTP1 on HTTP/2", m: readOnly(HTTP1()), in: "GET / HTTP/2"},
		{name: "HTTP1 without line end", m: readOnly(HTTP1()), in: "GET / HTTP/1.1", waits: true, want: true},
		{name: "HTTP1HeaderField on a SOCKS5 greeting", m: readOnly(HTTP1HeaderField("X-Tenant", "x")), in: "\x05\x01\x00"},
		{name: "HTTP1HeaderField, field then silence", m: readOnly(HTTP1HeaderField("X-Tenant", "x")), in: "GET / HTTP/1.1\r\nX-Tenant: x\r\n", waits: true},
		{name: "HTTP1HeaderField, field then next line", m: readOnly(HTTP1HeaderField("X-Tenant", "x")), in: "GET / HTTP/1.1\r\nX-Tenant: x\r\nA", want: true},
		{name: "HTTP1HeaderField, other value then next line", m: readOnly(HTTP1HeaderField("X-Tenant", "x")), in: "GET / HTTP/1.1\r\nX-Tenant: y\r\nA"},
		{name: "HTTP1HeaderField, end of header", m: readOnly(HTTP1HeaderField("X-Missing", "")), in: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", want: true},
		{name: "HTTP1HeaderField, malformed line", m: readOnly(HTTP1HeaderField("X-Tenant", "x")), in: "GET / HTTP/1.1\r\nX-Ten ant"},
		{name: "HTTP2HeaderField on X", m: readOnly(HTTP2HeaderField("content-type", "application/grpc")), in: "X"},
		{name: "HTTP2HeaderField on preface and SETTINGS", m: readOnly(HTTP2HeaderField("content-type", "application/grpc")),
			in: string(settings), waits: true, wrote: true},
		{name: "HTTP2HeaderField on a frame over 16384", m: HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"),
			in: string(newMtH2(t, true).settings().rawHeader(h2.MaxFrameSize+1, h2frame.FrameHeaders, 0, 1).bytes()), wrote: true},
		{name: "HTTP2HeaderField on a SETTINGS ACK first", m: HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"),
			in: string(newMtH2(t, true).rawHeader(0, h2frame.FrameSettings, h2frame.FlagSettingsAck, 0).bytes())},
		{name: "HTTP2HeaderField on DATA", m: HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"),
			in: string(newMtH2(t, true).settings().rawHeader(100, h2frame.FrameData, 0, 1).bytes()), wrote: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peer := mtPeer{in: []byte(tc.in), chunk: 1}
			if tc.waits {
				peer.timeout = 200 * time.Millisecond
			}
			r := mtSniff(t, peer, func(s *sniffer) bool { return tc.m(s, s) })
			assert.Equal(t, tc.want, r.ok)
			if tc.waits {
				assert.Equal(t, tc.in, string(r.buffered), "read the whole flight")
				assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded, "waited for the next byte")
			} else {
				assert.NoError(t, r.err, "decided without waiting")
				assert.True(t, strings.HasPrefix(tc.in, string(r.buffered)), "read %q", r.buffered)
			}
			assert.Equal(t, tc.wrote, r.settings)
			if tc.wrote {
				assert.Equal(t, h2.MuxSettings, r.wrote)
			} else {
				assert.Empty(t, r.wrote)
			}
		})
	}
}

// TestMatchShortFlightEndToEnd serves a 3-byte SOCKS5 greeting behind
// HTTP1Fast on a real mux: it reaches the next listener long before the
// match timeout, which it could not if HTTP1Fast waited for more bytes.
func TestMatchShortFlightEndToEnd(t *testing.T) {
	checkLeaks(t)
	l := listenLoopback(t)
	m := NewWithOptions(l, MatchTimeout(10*time.Second))
	m.Match(HTTP1Fast())
	socks := m.Match(PrefixMatcher("\x05"))
	m.Match(Any())
	serveMux(t, m, l)

	c := dialTCP(t, l.Addr().String())
	greeting := []byte{0x05, 0x01, 0x00}
	_, err := c.Write(greeting)
	require.NoError(t, err)

	type result struct {
		got []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		sc, err := socks.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer sc.Close()
		got := make([]byte, len(greeting))
		if err = sc.SetReadDeadline(time.Now().Add(5 * time.Second)); err == nil {
			_, err = io.ReadFull(sc, got)
		}
		res <- result{got, err}
	}()
	select {
	case r := <-res:
		require.NoError(t, r.err)
		assert.Equal(t, greeting, r.got)
	case <-time.After(5 * time.Second):
		t.Fatal("the SOCKS5 greeting was not delivered within 5s: a matcher waited for bytes it did not need")
	}
	// The mux wrote nothing to the client (which then sees the close or
	// the deadline).
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err)
}

func FuzzPrefixMatcher(f *testing.F) {
	f.Add("GET\nGETX", []byte("GETX / HTTP/1.1"))
	f.Add("ab\nabcd", []byte("ab"))
	f.Add("", []byte("x"))
	f.Fuzz(func(t *testing.T, set string, in []byte) {
		strs := strings.Split(set, "\n")
		want := false
		for _, s := range strs {
			want = want || strings.HasPrefix(string(in), s)
		}
		m := PrefixMatcher(strs...)
		if got := m(bytes.NewReader(in)); got != want {
			t.Fatalf("PrefixMatcher(%q) on %q = %v, want %v", strs, in, got, want)
		}
		cr := &countReader{r: bytes.NewReader(in)}
		if got := m(iotest.OneByteReader(cr)); got != want {
			t.Fatalf("PrefixMatcher(%q) on %q one byte per Read = %v, want %v", strs, in, got, want)
		}
		if need := mtNeed(strs, in); cr.n != need {
			t.Fatalf("PrefixMatcher(%q) on %q read %d bytes, needs %d", strs, in, cr.n, need)
		}
		if got := patricia.New(strs...).Match(peek.Bytes(in)); got != want {
			t.Fatalf("matchBytes: PrefixMatcher(%q) on %q = %v, want %v", strs, in, got, want)
		}
	})
}

// mtRequestLineOK reports whether in starts with a request line that
// net/http would take for HTTP/1.x: method SP target SP version, the
// version parsed by http.ParseHTTPVersion.
func mtRequestLineOK(in []byte) bool {
	line, _, ok := bytes.Cut(in, []byte("\n"))
	if !ok {
		return false
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	f := strings.Split(string(line), " ")
	if len(f) != 3 || f[0] == "" || f[1] == "" {
		return false
	}
	major, _, ok := http.ParseHTTPVersion(f[2])
	return ok && major == 1
}

func FuzzHTTP1(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got := HTTP1()(bytes.NewReader(in))
		if one := HTTP1()(iotest.OneByteReader(bytes.NewReader(in))); one != got {
			t.Fatalf("HTTP1 on %q: %v whole, %v one byte per Read", in, got, one)
		}
		if got && !mtRequestLineOK(in) {
			t.Fatalf("HTTP1 matched %q, which has no HTTP/1.x request line", in)
		}
		// What net/http reads as an HTTP/1.x request, with a request line
		// within 4096 bytes, HTTP1 matches.
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if err == nil && req.ProtoMajor == 1 && bytes.IndexByte(in, '\n') < http1.MaxLine && !got {
			t.Fatalf("HTTP1 did not match %q, which net/http reads as %s %q %s", in, req.Method, req.RequestURI, req.Proto)
		}
	})
}

func FuzzHTTP1HeaderField(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"), "x-a", "1", false)
	f.Add([]byte("GET / HTTP/1.1\nX-A: a\n b\n\n"), "X-A", "a", true)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), "X-Missing", "", false)
	f.Fuzz(func(t *testing.T, in []byte, name, value string, prefix bool) {
		m := HTTP1HeaderField(name, value)
		if prefix {
			m = HTTP1HeaderFieldPrefix(name, value)
		}
		got := m(bytes.NewReader(in))
		if one := m(iotest.OneByteReader(bytes.NewReader(in))); one != got {
			t.Fatalf("on %q: %v whole, %v one byte per Read", in, got, one)
		}
		// The mux's own reader, which decides on the first two bytes
		// whether to parse at all, sent whole and a byte at a time.
		for _, chunk := range []int{0, 1} {
			if r := mtSniff(t, mtPeer{in: in, chunk: chunk, hangUp: true}, func(s *sniffer) bool { return m(s) }); r.ok != got {
				t.Fatalf("on %q: %v through the mux's reader (%d bytes per write), %v through a bytes.Reader", in, r.ok, chunk, got)
			}
		}
		if got && !mtRequestLineOK(in) {
			t.Fatalf("matched %q, which has no HTTP/1.x request line", in)
		}
	})
}

// mtH2FirstBlock decodes the first header block of an HTTP/2 connection's
// first bytes with the h2frame.Framer of internal/wiretest, which has
// ReadMetaHeaders. A SETTINGS, WINDOW_UPDATE, RST_STREAM or PRIORITY_UPDATE
// frame that the Framer rejects is skipped, as in the copy of this function
// in the e2e module, whose FuzzHTTP2HeaderFieldXNet runs this target's
// checks, on the same corpus, against golang.org/x/net/http2's Framer,
// which validates much more.
func mtH2FirstBlock(in []byte) ([]hpack.HeaderField, error) {
	return mtH2Block(in, true)
}

func mtH2Block(in []byte, meta bool) ([]hpack.HeaderField, error) {
	if !bytes.HasPrefix(in, []byte(h2.Preface)) {
		return nil, errors.New("no preface")
	}
	frames := in[len(h2.Preface):]
	cr := &countReader{r: bytes.NewReader(frames)}
	fr := h2frame.NewFramer(io.Discard, cr)
	if meta {
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	}
	var block []byte
	for range len(in) {
		start := cr.n
		f, err := fr.ReadFrame()
		if err != nil {
			if start+h2.FrameHeaderLen <= len(frames) && cr.n > start+h2.FrameHeaderLen-1 {
				switch frames[start+3] {
				case h2.FrameSettings, h2.FrameWindowUpdate, h2.FrameRSTStream, 0x10:
					continue
				}
			}
			return nil, err
		}
		switch f := f.(type) {
		case *h2frame.MetaHeadersFrame:
			return f.Fields, nil
		case *h2frame.HeadersFrame:
			block = append(block, f.HeaderBlockFragment()...)
			if !f.HeadersEnded() {
				continue
			}
		case *h2frame.ContinuationFrame:
			block = append(block, f.HeaderBlockFragment()...)
			if !f.HeadersEnded() {
				continue
			}
		default:
			continue
		}
		return hpack.NewDecoder(4096, nil).DecodeFull(block)
	}
	return nil, errors.New("no header block")
}

func FuzzHTTP2HeaderField(f *testing.F) {
	grpc := mtReq("content-type", "application/grpc")
	f.Add(newMtH2(f, true).settings().hdrs(1, grpc).bytes(), "content-type", "application/grpc", false)
	f.Add(newMtH2(f, true).settings().ping().headers(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:3], PadLength: 2}).
		continuation(1, true, grpc[3:]).bytes(), "content-type", "application/", true)
	// First bytes the mux's reader decides on without parsing, or not.
	f.Add([]byte("P"), "content-type", "application/grpc", false)
	f.Add([]byte("PRI"), "content-type", "application/grpc", false)
	f.Add([]byte("POST / HTTP/1.1\r\n\r\n"), "content-type", "application/grpc", false)
	f.Fuzz(func(t *testing.T, in []byte, name, value string, prefix bool) {
		m := HTTP2HeaderField(name, value)
		w := HTTP2MatchHeaderFieldSendSettings(name, value)
		if prefix {
			m = HTTP2HeaderFieldPrefix(name, value)
			w = HTTP2MatchHeaderFieldPrefixSendSettings(name, value)
		}
		got := m(bytes.NewReader(in))
		if one := m(iotest.OneByteReader(bytes.NewReader(in))); one != got {
			t.Fatalf("on %q: %v whole, %v one byte per Read", in, got, one)
		}
		// The mux's own reader, which decides on the first two bytes
		// whether to parse at all, sent whole and a byte at a time.
		for _, chunk := range []int{0, 1} {
			if r := mtSniff(t, mtPeer{in: in, chunk: chunk, hangUp: true}, func(s *sniffer) bool { return m(s) }); r.ok != got {
				t.Fatalf("on %q: %v through the mux's reader (%d bytes per write), %v through a bytes.Reader", in, r.ok, chunk, got)
			}
		}
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			var out bytes.Buffer
			if wgot := w(&out, r); wgot != got {
				t.Fatalf("on %q: writer matcher says %v, matcher %v", in, wgot, got)
			}
			if out.Len() > 0 && !bytes.Equal(out.Bytes(), h2.MuxSettings) {
				t.Fatalf("on %q: wrote %q", in, out.Bytes())
			}
		}
		if !got {
			return
		}
		fields, err := mtH2FirstBlock(in)
		if err != nil {
			t.Fatalf("matched %q, which h2frame.Framer rejects: %v", in, err)
		}
		lname := strings.ToLower(name)
		for _, hf := range fields {
			if hf.Name == lname {
				if hf.Value != value && !(prefix && strings.HasPrefix(hf.Value, value)) {
					t.Fatalf("matched %q, whose %s is %q", in, lname, hf.Value)
				}
				return
			}
		}
		t.Fatalf("matched %q, which has no %s: %v", in, lname, fields)
	})
}
