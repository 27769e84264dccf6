package cmux

import (
	"net"
	"net/netip"
	"sort"
)

// ProxyHeaderPolicy says what the mux does with the PROXY protocol header
// of the connections from a source network; see ProxySourcePolicy.
type ProxyHeaderPolicy int

const (
	// ProxyRefused treats the sources as untrusted: the mux does not
	// believe their headers, and closes a connection that starts with one
	// (or, with ProxyConfig.PassUntrusted, leaves the header in the
	// stream). It is the zero value.
	ProxyRefused ProxyHeaderPolicy = iota
	// ProxyOptional trusts the sources: the mux consumes a header if a
	// connection starts with one, and takes a connection without one as
	// it is (a load balancer's health check, for one).
	ProxyOptional
	// ProxyRequired trusts the sources and requires the header: the mux
	// closes a connection that does not start with one, and reports an
	// error matching ErrProxyHeader.
	ProxyRequired
)

// ProxySourcePolicy applies Header to the connections whose remote
// address (the proxy's or the client's, not one a PROXY header carries) is
// in Source.
//
// The policy with the longest Source that contains a connection's remote
// address decides for it (of equal ones, the first in
// ProxyConfig.Policies); a connection from an address in no policy's
// Source follows ProxyConfig.Trusted and Required. For instance, a load
// balancer in 10.0.0.0/16 that sends a header on every connection but its
// health checks, which come from 10.0.9.0/24:
//
//	cmux.ProxyConfig{
//		Trusted:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
//		Required: true,
//		Policies: []cmux.ProxySourcePolicy{{
//			Source: netip.MustParsePrefix("10.0.9.0/24"),
//			Header: cmux.ProxyOptional,
//		}},
//	}
//
// A policy whose Source is not valid is ignored.
type ProxySourcePolicy struct {
	Source netip.Prefix
	Header ProxyHeaderPolicy
}

// newPolicies returns the valid policies of ps, masked, longest prefix
// first (in their order among equal lengths).
func newPolicies(ps []ProxySourcePolicy) []ProxySourcePolicy {
	var out []ProxySourcePolicy
	for _, p := range ps {
		if norm := normPrefixes([]netip.Prefix{p.Source}); len(norm) == 1 {
			out = append(out, ProxySourcePolicy{Source: norm[0], Header: p.Header})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Source.Bits() > out[j].Source.Bits() })
	return out
}

// rule says whether the mux trusts the PROXY headers of connections from
// the remote address a, and whether it requires one.
func (pc *proxyConfig) rule(a net.Addr) (trusted, required bool) {
	if len(pc.policies) > 0 {
		if ip, ok := ipOf(a); ok {
			for _, p := range pc.policies {
				if !p.Source.Contains(ip) {
					continue
				}
				switch p.Header {
				case ProxyOptional:
					return true, false
				case ProxyRequired:
					return true, true
				default:
					return false, false
				}
			}
		}
	}
	trusted = pc.trusts(a)
	return trusted, trusted && pc.required
}
