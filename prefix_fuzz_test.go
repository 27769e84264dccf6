package cmux

import (
	"bytes"
	"github.com/cmux-go/cmux/internal/h2"
	"io"
	"strings"
	"testing"
)

// This file fuzzes the matchers built on the prefix tree
// (internal/patricia): TLS, HTTP1Fast and HTTP2.

// FuzzTLSMatcher: TLS(versions...) matches exactly the inputs that start
// with a handshake record of one of the versions, reading one byte past the
// first that rules every version out, or the three it needs; through the
// mux's sniffer it decides the same.
func FuzzTLSMatcher(f *testing.F) {
	f.Add([]byte{}, []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
	f.Add([]byte{3, 4, 3, 3}, []byte("\x16\x03\x04"))
	f.Add([]byte{3, 0}, []byte("\x16\x03\x01"))
	f.Add([]byte{}, []byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{}, []byte("\x16\x03"))
	f.Fuzz(func(t *testing.T, vs, in []byte) {
		var versions []int
		for i := 0; i+1 < len(vs) && len(versions) < 8; i += 2 {
			versions = append(versions, int(vs[i])<<8|int(vs[i+1]))
		}
		set := versions
		if len(set) == 0 {
			set = []int{0x0300, 0x0301, 0x0302, 0x0303}
		}
		prefixes := make([]string, len(set))
		for i, v := range set {
			prefixes[i] = string([]byte{0x16, byte(v >> 8), byte(v)})
		}
		hoCheckPrefix(t, TLS(versions...), prefixes, in)
	})
}

// FuzzHTTP1Fast: HTTP1Fast(ext...) is a prefix match on the default
// methods and ext, decided as early as the bytes allow.
func FuzzHTTP1Fast(f *testing.F) {
	f.Add("", []byte("PATCH /x HTTP/1.1\r\n"))
	f.Add("PROPFIND\nMKCOL", []byte("PROPFIND / HTTP/1.1\r\n"))
	f.Add("", []byte("\x05\x01\x00"))
	f.Add("G", []byte("GE"))
	f.Fuzz(func(t *testing.T, ext string, in []byte) {
		var exts []string
		if ext != "" {
			exts = strings.Split(ext, "\n")
		}
		hoCheckPrefix(t, HTTP1Fast(exts...), append(hoMethods(), exts...), in)
	})
}

// hoMethods returns the methods HTTP1Fast matches by default.
func hoMethods() []string {
	return []string{"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT", "PATCH"}
}

// FuzzHTTP2Preface: HTTP2() matches exactly the inputs that start with the
// client preface, deciding on the first byte that differs.
func FuzzHTTP2Preface(f *testing.F) {
	f.Add([]byte(h2.Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	f.Add([]byte("PRI * HTTP/1.1\r\n"))
	f.Add([]byte("PRI"))
	f.Fuzz(func(t *testing.T, in []byte) {
		hoCheckPrefix(t, HTTP2(), []string{h2.Preface}, in)
	})
}

// hoCheckPrefix checks m, a prefix matcher of prefixes, on in: the result,
// the bytes it reads one at a time, and the result through a sniffer over
// a connection that gives in in pieces.
func hoCheckPrefix(t *testing.T, m Matcher, prefixes []string, in []byte) {
	want := false
	for _, p := range prefixes {
		want = want || bytes.HasPrefix(in, []byte(p))
	}
	// It needs the bytes up to the first one that rules out every
	// prefix, or up to the end of the shortest prefix that matches.
	need := len(in)
	for i := 0; i <= len(in); i++ {
		alive, done := false, false
		for _, p := range prefixes {
			if len(p) <= i && bytes.HasPrefix(in, []byte(p)) {
				done = true
			}
			if len(p) > i && i < len(in) && bytes.HasPrefix([]byte(p), in[:i+1]) {
				alive = true
			}
		}
		if done {
			need = i
			break
		}
		if !alive {
			need = min(i+1, len(in))
			break
		}
	}
	cr := &countReader{r: bytes.NewReader(in)}
	if got := m(hoOneByte{cr}); got != want {
		t.Fatalf("on %q one byte per Read: %v, want %v (prefixes %q)", in, got, want, prefixes)
	}
	if cr.n != need {
		t.Fatalf("on %q: read %d bytes, needs %d (prefixes %q)", in, cr.n, need, prefixes)
	}
	if got := m(bytes.NewReader(in)); got != want {
		t.Fatalf("on %q: %v, want %v", in, got, want)
	}
	c := &MuxConn{Conn: &btConn{src: in, sizes: []byte{3, 1, 200}, stallAt: -1}}
	c.sniff = newBufferPools(1024).newSniffer(c, 1024)
	if got := m(c.sniff); got != want {
		t.Fatalf("on %q through the sniffer: %v, want %v", in, got, want)
	}
	c.endMatching(false)
}

// hoOneByte reads one byte at a time.
type hoOneByte struct{ r io.Reader }

func (o hoOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
