package http1

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cmux-go/cmux/internal/peek"
)

func whole(s string) peek.Peeker { return peek.Bytes(s) }

func oneByte(s string) peek.Peeker {
	return peek.NewReader(iotest.OneByteReader(strings.NewReader(s)), 64<<10)
}

func TestIsRequestLine(t *testing.T) {
	cases := map[string]bool{
		"GET / HTTP/1.1\r\n":                  true,
		"GET / HTTP/1.0\n":                    true,
		"GET / HTTP/1.1":                      true, // cut short: judged as it is
		"ANY thing HTTP/1.9\r\n":              true,
		"GET / HTTP/2.0\r\n":                  false,
		"GET /\r\n":                           false,
		"GET / HTTP/1.x\r\n":                  false,
		"\x16\x03\x01":                        false,
		"GET " + strings.Repeat("a", 5000):    false,
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n":    false,
		"GET / HTTP/1.1\rX":                   false,
		"GET\x00/ HTTP/1.1\r\n":               false,
		"GET / x HTTP/1.1\r\n":                false,
		"GET  HTTP/1.1\r\n":                   true,
		"GET / HTTP/1.1\r\nHost: example\r\n": true,
	}
	for in, want := range cases {
		for _, p := range []peek.Peeker{whole(in), oneByte(in)} {
			if got := IsRequestLine(p); got != want {
				t.Errorf("IsRequestLine(%q) = %v, want %v", in, got, want)
			}
		}
	}
}

func TestHeaderField(t *testing.T) {
	req := "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type:  application/grpc \r\nX-F: a\r\n b\r\n\r\n"
	cases := []struct {
		in, name, want string
		ok             bool
	}{
		{req, "content-type", "application/grpc", true},
		{req, "X-F", "a b", true},
		{req, "missing", "", true},
		{"GET / HTTP/2.0\r\n\r\n", "x", "", true},
		{"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "x", "", false},
		{"GET / HTTP/1.1\r\nHost: a\r\n", "x", "", false}, // cut short
		{"GET / HTTP/1.12\r\n\r\n", "x", "", false},
		{"GET / HTTP/1.1\r\nA: 1\r\n\r\n", "a", "1", true},
	}
	for _, tc := range cases {
		for _, p := range []peek.Peeker{whole(tc.in), oneByte(tc.in)} {
			got, _, ok := HeaderField(p, tc.name)
			if ok != tc.ok || string(got) != tc.want {
				t.Errorf("HeaderField(%q, %q) = %q, %v; want %q, %v", tc.in, tc.name, got, ok, tc.want, tc.ok)
			}
		}
	}
}

// FuzzScanner checks that the scanner reads the same whether the bytes
// arrive at once or one at a time.
func FuzzScanner(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"), "x-a")
	f.Add([]byte("GET / HTTP/1.1\nX-A: a\n b\n\n"), "X-A")
	f.Fuzz(func(t *testing.T, in []byte, name string) {
		s := string(in)
		if a, b := IsRequestLine(whole(s)), IsRequestLine(oneByte(s)); a != b {
			t.Fatalf("IsRequestLine(%q): %v whole, %v one byte per Read", in, a, b)
		}
		v1, _, ok1 := HeaderField(whole(s), name)
		v2, _, ok2 := HeaderField(oneByte(s), name)
		if ok1 != ok2 || !bytes.Equal(v1, v2) {
			t.Fatalf("HeaderField(%q, %q): %q %v whole, %q %v one byte per Read", in, name, v1, ok1, v2, ok2)
		}
	})
}
