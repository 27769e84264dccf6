package cmux

import (
	"crypto/tls"
	"io"
	"strings"

	"github.com/cmux-go/cmux/internal/http1"
	"github.com/cmux-go/cmux/internal/patricia"
)

// Any matches every connection without reading from it.
//
//go:noinline
func Any() Matcher {
	return func(r io.Reader) bool {
		if s, ok := r.(*sniffer); ok {
			s.builtin = true
		}
		return true
	}
}

// PrefixMatcher matches a connection that starts with any of strs. It says
// no on the first byte that rules every string out and yes as soon as one
// string has arrived whole, so it never waits for bytes it does not need.
//
// PrefixMatcher() with no strings matches every connection, as in
// github.com/soheilhy/cmux v0.1.5.
//
//go:noinline
func PrefixMatcher(strs ...string) Matcher {
	if len(strs) == 0 {
		return Any()
	}
	t := patricia.New(strs...)
	return func(r io.Reader) bool { return t.Match(asPeeker(r)) }
}

// defaultHTTPMethods are the methods HTTP1Fast matches.
var defaultHTTPMethods = []string{
	"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT",
	"PATCH",
}

// HTTP1Fast matches a connection that starts with an HTTP method: OPTIONS,
// GET, HEAD, POST, PUT, DELETE, TRACE, CONNECT, PATCH or one of extMethods.
// It compares only those bytes, so it is fast, but it also matches other
// protocols that start with such a word. Unlike soheilhy/cmux v0.1.5 it
// matches PATCH without being told.
//
//go:noinline
func HTTP1Fast(extMethods ...string) Matcher {
	methods := make([]string, 0, len(defaultHTTPMethods)+len(extMethods))
	methods = append(methods, defaultHTTPMethods...)
	methods = append(methods, extMethods...)
	p := PrefixMatcher(methods...)
	return func(r io.Reader) bool { return !isH2(r) && p(r) }
}

// HTTP1 matches a connection whose first line, within its first 4096
// bytes, has two spaces and ends, after the second one, with the version
// HTTP/1.x (x a digit), as in github.com/soheilhy/cmux v0.1.5: the method
// and target are not checked, but for control bytes, which no request line
// has and binary protocols start with. A line cut short by the end of the
// connection or the matching deadline is judged as it is. HTTP1 says no on
// the first byte that rules such a line out.
//
//go:noinline
func HTTP1() Matcher {
	return func(r io.Reader) bool { return !isH2(r) && http1.IsRequestLine(asPeeker(r)) }
}

// TLS matches a connection that starts with a TLS handshake record whose
// record-layer version is one of versions (tls.VersionTLS10 and the like).
// Without versions it matches SSL 3.0 and TLS 1.0 to 1.2; TLS 1.3
// ClientHellos carry 1.0 or 1.2 in the record layer, so they match too.
func TLS(versions ...int) Matcher {
	if len(versions) == 0 {
		versions = []int{0x0300, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12}
	}
	prefixes := make([]string, len(versions))
	for i, v := range versions {
		prefixes[i] = string([]byte{0x16, byte(v >> 8), byte(v)})
	}
	return PrefixMatcher(prefixes...)
}

// HTTP1HeaderField matches an HTTP/1.x request that has the header field
// name (compared without regard to case, as http.CanonicalHeaderKey does)
// with exactly value. If the field appears more than once, the first one
// counts; a missing field counts as the empty value, as with
// http.Header.Get. It reads the request line and the header up to that
// field, or up to the end of the header if the field is missing.
//
// Host and Transfer-Encoding always count as missing, as in soheilhy/cmux,
// whose parser (http.ReadRequest) takes them out of the header: to route
// by host, use HTTPHost.
//
//go:noinline
func HTTP1HeaderField(name, value string) Matcher {
	name = h1FieldName(name)
	return func(r io.Reader) bool { return matchH1Field(r, name, value, false) }
}

// noField is a field name no well-formed header has.
const noField = "\x00"

// h1FieldName returns the name HTTP1HeaderField looks for: name, or
// noField for the fields http.ReadRequest takes out of the header.
func h1FieldName(name string) string {
	if strings.EqualFold(name, "Host") || strings.EqualFold(name, "Transfer-Encoding") {
		return noField
	}
	return name
}

// HTTP1HeaderFieldPrefix is HTTP1HeaderField for a field whose value starts
// with valuePrefix.
//
//go:noinline
func HTTP1HeaderFieldPrefix(name, valuePrefix string) Matcher {
	name = h1FieldName(name)
	return func(r io.Reader) bool { return matchH1Field(r, name, valuePrefix, true) }
}

func matchH1Field(r io.Reader, name, want string, prefix bool) bool {
	if isH2(r) {
		return false
	}
	got, line, ok := http1.HeaderField(asPeeker(r), name)
	if !ok {
		return false
	}
	if prefix {
		ok = len(got) >= len(want) && string(got[:len(want)]) == want
	} else {
		ok = string(got) == want
	}
	// The target check runs only on a match, as it allocates.
	return ok && line.TargetOK()
}
