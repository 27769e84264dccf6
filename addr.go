package cmux

import (
	"io"
	"net"
	"net/netip"
)

// This file holds the matchers on a connection's addresses. They read no
// bytes: combine them with the matchers on bytes with All or AllWriters,
// address matchers first.

// RemoteAddrIn matches a connection whose remote address is in one of
// prefixes. With the PROXY protocol (see ProxyProtocol), that is the
// original client's address the header carried; without a header, or
// for a header that carries no address, the address of the connection's
// peer. IPv4-mapped IPv6 addresses and prefixes count as IPv4; zones are
// ignored. A connection whose address is not an IP address (a Unix
// socket's) matches none.
//
// RemoteAddrIn reads nothing from the connection. It matches only the
// connections of a mux: called on another io.Reader it returns false.
func RemoteAddrIn(prefixes ...netip.Prefix) Matcher { return addrMatcher(prefixes, false) }

// LocalAddrIn matches a connection whose local address is in one of
// prefixes: with the PROXY protocol, the destination address the header
// carried (the address the client connected to on the proxy), otherwise
// the address of the connection's local end. It is otherwise RemoteAddrIn.
func LocalAddrIn(prefixes ...netip.Prefix) Matcher { return addrMatcher(prefixes, true) }

// addrMatcher is RemoteAddrIn, or with local LocalAddrIn. It is not
// inlined, so that builtinCode knows its closure.
//
//go:noinline
func addrMatcher(prefixes []netip.Prefix, local bool) Matcher {
	ps := normPrefixes(prefixes)
	return func(r io.Reader) bool {
		s, ok := r.(*sniffer)
		if !ok || s.conn == nil {
			return false
		}
		s.builtin = true
		if local {
			return addrIn(s.conn.LocalAddr(), ps)
		}
		return addrIn(s.conn.RemoteAddr(), ps)
	}
}

// normPrefixes returns the valid prefixes of ps, masked, with IPv4-mapped
// prefixes as IPv4 ones.
func normPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// addrIn reports whether a is an IP address in one of ps.
func addrIn(a net.Addr, ps []netip.Prefix) bool {
	ip, ok := ipOf(a)
	if !ok {
		return false
	}
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ipOf returns the IP address of a, unmapped and without zone.
func ipOf(a net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	var ok bool
	switch a := a.(type) {
	case *net.TCPAddr:
		if a != nil {
			ip, ok = netip.AddrFromSlice(a.IP)
		}
	case *net.UDPAddr:
		if a != nil {
			ip, ok = netip.AddrFromSlice(a.IP)
		}
	case *net.IPAddr:
		if a != nil {
			ip, ok = netip.AddrFromSlice(a.IP)
		}
	case nil:
	default:
		var ap netip.AddrPort
		if ap, ok = parseAddrPort(a.String()); ok {
			ip = ap.Addr()
		}
	}
	if !ok {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

func parseAddrPort(s string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s)
	return ap, err == nil
}
