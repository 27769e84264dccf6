package cmux

import (
	"io"
	"strings"
	"sync"

	"github.com/cmux-go/cmux/internal/tlshello"
)

// The wire format is internal/tlshello's; this file holds the matchers.
//
// The TLS ClientHello matchers below (see "TLS" in the package
// documentation) read the client's ClientHello, the first message of a
// TLS handshake, without terminating TLS: the connection is delivered with
// every byte intact, and the server behind the child listener (crypto/tls,
// a gRPC server with TLS credentials, http.Server.ServeTLS, a TLS proxy)
// performs the handshake itself, with its own certificates and settings.
// Request.TLS, client certificates and ALPN negotiation work as they do on a
// bare listener.
//
// Through the mux, the ClientHello is parsed once per connection, however
// many TLS matchers run. A ClientHello may span several TLS records and
// arrive in any number of reads; it must arrive whole within the mux's sniff
// limit (MaxSniffBytes) and match timeout. A connection that does not start
// with a well-formed ClientHello matches none of these matchers.

// ClientHelloInfo is what TLSClientHello tells its function about a
// connection's ClientHello. The field names follow crypto/tls's
// ClientHelloInfo.
type ClientHelloInfo struct {
	// ServerName is the host name of the server_name extension (SNI), as
	// the client sent it; empty if it sent none.
	ServerName string
	// SupportedProtos are the protocols of the ALPN extension, in the
	// client's order of preference; nil if it sent none.
	SupportedProtos []string
	// SupportedVersions are the TLS versions the client supports: those of
	// the supported_versions extension (sent by TLS 1.3 clients), without
	// GREASE values, or, without that extension, the highest version the
	// client supports alone: the version field of the ClientHello, at most
	// TLS 1.2 (RFC 8446 §4.2.1).
	SupportedVersions []uint16
}

// TLSClientHello matches a connection that starts with a well-formed TLS
// ClientHello for which fn returns true. fn must not modify the
// ClientHelloInfo or keep it after it returns.
func TLSClientHello(fn func(*ClientHelloInfo) bool) Matcher {
	return func(r io.Reader) bool {
		return matchHello(r, func(hp *helloParse) bool { return fn(hp.info()) })
	}
}

// TLSServerName matches a connection whose TLS ClientHello asks for a
// server name (SNI) that matches one of patterns. Names compare without
// regard to case and to one trailing dot. A pattern "*.example.com"
// matches a name with exactly one more label, such as "www.example.com",
// but neither "example.com" nor "a.b.example.com" (as a certificate's
// wildcard name does). The empty pattern matches a ClientHello without a
// server name.
//
// On a connection the mux terminated (TerminateTLS), TLSServerName reads
// nothing: it matches the server name of the completed handshake. The
// other ClientHello matchers read the decrypted stream there, and say no.
//
//go:noinline
func TLSServerName(patterns ...string) Matcher {
	ps := make([]string, len(patterns))
	for i, p := range patterns {
		ps[i] = strings.TrimSuffix(lowerASCII(p), ".")
	}
	return func(r io.Reader) bool {
		if name, ok := termServerName(r); ok {
			return matchServerNames(ps, []byte(name))
		}
		return matchHello(r, func(hp *helloParse) bool { return matchServerNames(ps, hp.ServerName) })
	}
}

// matchServerNames reports whether name, less one trailing dot, matches
// one of the lower-case patterns ps.
func matchServerNames(ps []string, name []byte) bool {
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	for _, p := range ps {
		if matchServerName(name, p) {
			return true
		}
	}
	return false
}

// matchServerName reports whether name matches the lower-case pattern p.
func matchServerName(name []byte, p string) bool {
	if suffix, ok := strings.CutPrefix(p, "*"); ok && strings.HasPrefix(suffix, ".") {
		n := len(name) - len(suffix)
		if n <= 0 || !equalFoldASCII(name[n:], suffix) {
			return false
		}
		for _, c := range name[:n] {
			if c == '.' {
				return false
			}
		}
		return true
	}
	return equalFoldASCII(name, p)
}

// TLSALPN matches a connection whose TLS ClientHello offers, in its ALPN
// extension, one of protos ("h2", "http/1.1", "acme-tls/1", ...), compared
// exactly. It looks at what the client offers, not at what the server will
// choose: a client that offers both "h2" and "http/1.1" matches
// TLSALPN("http/1.1") too, so put the listener that should win first.
//
//go:noinline
func TLSALPN(protos ...string) Matcher {
	return func(r io.Reader) bool {
		return matchHello(r, func(hp *helloParse) bool {
			found := false
			hp.EachProto(func(proto []byte) bool {
				for _, p := range protos {
					if string(proto) == p {
						found = true
					}
				}
				return !found
			})
			return found
		})
	}
}

// TLSVersion matches a connection whose TLS ClientHello's highest
// supported version is one of versions (tls.VersionTLS12, tls.VersionTLS13
// and the like). Unlike TLS, it reads the supported_versions extension, so
// TLSVersion(tls.VersionTLS13) matches the clients that can speak TLS 1.3
// and TLSVersion(tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12) the
// others. For other questions about versions, see
// ClientHelloInfo.SupportedVersions.
//
//go:noinline
func TLSVersion(versions ...uint16) Matcher {
	return func(r io.Reader) bool {
		return matchHello(r, func(hp *helloParse) bool {
			v := hp.MaxVersion()
			for _, w := range versions {
				if v == w {
					return true
				}
			}
			return false
		})
	}
}

// matchHello parses the ClientHello read through r, once per connection
// when r is the mux's, and reports whether it is well-formed and f says yes.
func matchHello(r io.Reader, f func(*helloParse) bool) bool {
	if s, ok := r.(*sniffer); ok && s.conn != nil {
		s.builtin = true
		if s.hello == nil {
			s.hello = getHelloParse()
			s.hello.Run(s)
		}
		return s.hello.OK && f(s.hello)
	}
	hp := getHelloParse()
	defer putHelloParse(hp)
	hp.Run(asPeeker(r))
	return hp.OK && f(hp)
}

// helloParse is a connection's ClientHello, as the TLS matchers share it.
type helloParse struct {
	tlshello.Hello
	pub *ClientHelloInfo // built on demand by info
}

var helloParsePool = sync.Pool{New: func() any { return new(helloParse) }}

func getHelloParse() *helloParse { return helloParsePool.Get().(*helloParse) }

func putHelloParse(hp *helloParse) {
	hp.Reset()
	hp.pub = nil
	helloParsePool.Put(hp)
}

// info returns the ClientHelloInfo of the parse, built on first use.
func (hp *helloParse) info() *ClientHelloInfo {
	if hp.pub != nil {
		return hp.pub
	}
	ci := &ClientHelloInfo{ServerName: string(hp.ServerName)}
	hp.EachProto(func(proto []byte) bool {
		ci.SupportedProtos = append(ci.SupportedProtos, string(proto))
		return true
	})
	hp.EachVersion(func(v uint16) { ci.SupportedVersions = append(ci.SupportedVersions, v) })
	hp.pub = ci
	return ci
}

// lowerASCII returns s with ASCII upper-case letters in lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// equalFoldASCII reports whether b and s are equal without regard to ASCII
// case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
