package cmux

import (
	"io"
	"strings"

	"github.com/cmux-go/cmux/internal/h2"
	"github.com/cmux-go/cmux/internal/http1"
	"github.com/cmux-go/cmux/internal/httproute"
	"github.com/cmux-go/cmux/internal/peek"
)

// This file holds the HTTP host and path matchers. They read the first
// request of a connection, HTTP/1.x or HTTP/2 with prior knowledge (h2c, or
// h2 inside a TLS stream the mux sees decrypted), and compare what the
// request is addressed to: for HTTP/1 the request target and the Host
// field, for HTTP/2 the :authority (else host) and :path fields. Through the
// mux the request is parsed once per connection, however many of these
// matchers run: HTTP/2 requests share the parse of the HTTP/2 header
// matchers.

// HTTPHost matches a connection whose first request is addressed to a
// host that matches one of patterns: the host of an absolute-form target
// or else of the Host field (HTTP/1), of :authority or else of host
// (HTTP/2), without port, userinfo and one trailing dot. Hosts compare
// without regard to ASCII case. A pattern "*.example.com" matches a host
// with exactly one more label, such as "www.example.com", but neither
// "example.com" nor "a.b.example.com". An IPv6 literal is compared
// without brackets ("::1"). The empty pattern matches a request without a
// host (HTTP/1.0 without Host).
//
// For HTTP/1 it reads the request line and the header up to the Host
// field (to the end of the header without one); the first Host field
// counts. For HTTP/2 it reads as HTTP2HeaderField does, and, through the
// mux, it lets a client that waits for the server's SETTINGS go on.
//
// The host is what the client says: route on it, do not authorize on it
// (RemoteAddrIn tells where a connection comes from). The first request
// decides for the whole connection, on which an HTTP/1.1 or HTTP/2 client
// may then send requests for other hosts it reaches at the same address.
//
//go:noinline
func HTTPHost(patterns ...string) Matcher {
	ps := make([]string, len(patterns))
	for i, p := range patterns {
		ps[i] = strings.TrimSuffix(lowerASCII(p), ".")
	}
	return func(r io.Reader) bool {
		return matchRoute(r, func(rt *routeParse) bool {
			for _, p := range ps {
				if matchServerName(rt.host, p) {
					return true
				}
			}
			return false
		})
	}
}

// HTTPPathPrefix matches a connection whose first request's path (of the
// request target for HTTP/1, of :path for HTTP/2; without the query)
// starts with one of prefixes. Paths compare byte for byte as the client
// sent them: no percent-decoding, no removal of dot segments, so do not
// use it as an access control. "/api" matches "/api", "/api/v1" and
// "/apix"; pass "/api/" for a directory. The asterisk-form target of
// OPTIONS has the path "*", the authority-form of CONNECT none. It reads
// as HTTPHost does.
//
//go:noinline
func HTTPPathPrefix(prefixes ...string) Matcher {
	return func(r io.Reader) bool {
		return matchRoute(r, func(rt *routeParse) bool {
			for _, p := range prefixes {
				if len(rt.path) >= len(p) && string(rt.path[:len(p)]) == p {
					return true
				}
			}
			return false
		})
	}
}

// routeParse is what the host and path matchers read of a connection's
// first request. Its slices point into the sniffer's buffers or the
// HTTP/2 parse, which live until matching ends.
type routeParse struct {
	done       bool // the parse was made
	ok         bool // the connection starts with a well-formed request
	host, path []byte
}

// matchRoute parses the first request read through r, once per
// connection when r is the mux's, and reports whether it is well-formed
// and f says yes.
func matchRoute(r io.Reader, f func(*routeParse) bool) bool {
	if s, ok := r.(*sniffer); ok && s.conn != nil {
		s.builtin = true
		if !s.route.done {
			s.route = routeParse{done: true}
			parseRoute(s, &s.route)
		}
		return s.route.ok && f(&s.route)
	}
	var rt routeParse
	p := asPeeker(r)
	if !h2.MatchPreface(p) {
		parseRoute1(p, &rt)
		return rt.ok && f(&rt)
	}
	st := getH2State()
	defer putH2State(st)
	st.flight.Run(p, nil)
	routeOf2(&st.flight, &rt)
	return rt.ok && f(&rt)
}

// parseRoute parses the first request of the mux's connection.
func parseRoute(s *sniffer, rt *routeParse) {
	if !h2.MatchPreface(s) {
		parseRoute1(s, rt)
		return
	}
	st := s.conn.h2State()
	if !st.parsed {
		st.parsed = true
		st.flight.Run(s, h2SettingsWriter{s.conn})
	}
	routeOf2(&st.flight, rt)
}

// parseRoute1 parses an HTTP/1 request head.
func parseRoute1(p peek.Peeker, rt *routeParse) {
	host, line, ok := http1.HeaderField(p, "host")
	if !ok {
		return
	}
	auth, path, has := httproute.Target(line.Method, line.Target)
	if has {
		host = auth
	}
	rt.ok, rt.host, rt.path = true, httproute.Host(host), path
}

// routeOf2 takes the host and path of a parsed HTTP/2 first flight.
func routeOf2(f *h2.Flight, rt *routeParse) {
	if f.Err != nil {
		return
	}
	var authority, host []byte
	var hasAuthority bool
	for i := range f.Fields.NumFields() {
		n, v := f.Fields.FieldAt(i)
		switch string(n) {
		case ":authority":
			if !hasAuthority {
				authority, hasAuthority = v, true
			}
		case ":path":
			if rt.path == nil {
				rt.path = httproute.Path(v)
			}
		case "host":
			if host == nil {
				host = v
			}
		}
	}
	if hasAuthority {
		host = authority
	}
	rt.ok, rt.host = true, httproute.Host(host)
}
