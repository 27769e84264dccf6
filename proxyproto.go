package cmux

// The wire format is internal/proxyhdr's; this file holds the option, the
// trust decision and what a delivered connection tells of the header.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cmux-go/cmux/internal/proxyhdr"
)

// ProxyConfig configures the PROXY protocol; see ProxyProtocol.
type ProxyConfig struct {
	// Trusted lists the networks of the proxies whose PROXY headers the mux
	// believes. A connection whose remote address is not an IP address (a
	// Unix socket's, for one) is not trusted.
	Trusted []netip.Prefix
	// Required makes the header mandatory for trusted sources: the mux
	// closes a connection from a trusted source that does not start with
	// one, and reports it. By default the header is optional.
	Required bool
	// PassUntrusted leaves a PROXY header from an untrusted source in the
	// stream: the mux does not look for one, and matchers and the delivered
	// connection see the bytes as the client sent them. By default the mux
	// closes a connection from an untrusted source that starts with a PROXY
	// header, and reports it.
	PassUntrusted bool
	// Policies set, for networks of sources, whether their connections
	// must, may or must not start with a header (see ProxySourcePolicy).
	// They take precedence over Trusted and Required.
	Policies []ProxySourcePolicy
}

// ProxyProtocol makes the mux read the PROXY protocol header (version 1,
// text, or 2, binary, as sent by HAProxy, AWS and GCP load balancers and
// others) that a proxy in front of it puts at the start of each
// connection, to pass on the client's address.
//
// From a trusted source (cfg.Trusted), the mux consumes the header before
// any matcher runs: matchers, and reads of the delivered connection, start
// with the bytes after it. The delivered connection's RemoteAddr and
// LocalAddr return the original source and destination the header carries,
// and ProxyHeader returns the header itself, with its TLVs. A header that
// carries no addresses (version 2 LOCAL command, as in health checks,
// version 1 UNKNOWN, version 2 AF_UNSPEC) is consumed, and the connection
// keeps its real addresses.
//
// The mux closes a connection, and reports an error matching
// ErrProxyHeader to the error handler, when
//   - a trusted source sends a malformed header: a bad protocol, address,
//     port, version or command, a version 1 line without CRLF within 107
//     bytes, a version 2 length too short for its address family, a
//     malformed TLV, a CRC32C TLV that does not match;
//   - a trusted source sends a truncated header: the connection ends, the
//     match timeout expires or the sniff limit is reached within it (the
//     header must fit in MaxSniffBytes; once consumed, it no longer counts
//     against it);
//   - cfg.Required is set and a trusted source sends no header;
//   - cfg.PassUntrusted is not set and an untrusted source sends a header.
//
// cfg.Policies override Trusted and Required per source network: see
// ProxySourcePolicy.
//
// Looking for a header means reading the first bytes of a connection
// before matching it (just the first byte, unless it starts like a
// header), so protocols where the server speaks first are matched only
// when the match timeout expires, except from untrusted sources when
// cfg.PassUntrusted is set.
func ProxyProtocol(cfg ProxyConfig) Option {
	pc := newProxyConfig(cfg)
	return func(c *config) { c.proxy = pc }
}

func newProxyConfig(cfg ProxyConfig) *proxyConfig {
	return &proxyConfig{
		trusted:  normPrefixes(cfg.Trusted),
		required: cfg.Required,
		pass:     cfg.PassUntrusted,
		policies: newPolicies(cfg.Policies),
	}
}

type proxyConfig struct {
	trusted  []netip.Prefix
	required bool
	pass     bool
	policies []ProxySourcePolicy // longest prefix first; see proxypolicy.go
}

// ProxyInfo is a PROXY protocol header the mux consumed.
type ProxyInfo struct {
	// Version is 1 or 2.
	Version int
	// Source and Destination are the addresses of the client's connection
	// to the proxy (a *net.TCPAddr, or for version 2 a *net.UDPAddr or
	// *net.UnixAddr), nil if the header carries none.
	Source, Destination net.Addr
	// TLVs are the type-length-value fields of a version 2 header, in their
	// order.
	TLVs []ProxyTLV
}

// ProxyTLV is a type-length-value field of a version 2 PROXY header, such
// as 0x01 (ALPN), 0x02 (authority: the host name the client asked the
// proxy for), 0x05 (unique ID), 0x20 (SSL), or 0xEA (AWS VPC endpoint ID).
type ProxyTLV struct {
	Type  byte
	Value []byte
}

// TLV returns the value of the first TLV of type typ.
func (p *ProxyInfo) TLV(typ byte) ([]byte, bool) {
	for _, t := range p.TLVs {
		if t.Type == typ {
			return t.Value, true
		}
	}
	return nil, false
}

// ProxyHeader returns the PROXY protocol header the mux consumed from c, a
// connection a child listener delivered, or a connection that wraps one
// and has a NetConn method (such as the *tls.Conn of a TLS server behind
// the mux). It reports false if there was none.
func ProxyHeader(c net.Conn) (*ProxyInfo, bool) {
	for range 16 {
		if mc := muxConnOf(c); mc != nil {
			p := mc.proxyInfo()
			return p, p != nil
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = nc.NetConn()
	}
	return nil, false
}

// RemoteAddr returns the address of the peer: the client's address a PROXY
// protocol header carried (see ProxyProtocol), or the underlying
// connection's.
func (c *MuxConn) RemoteAddr() net.Addr {
	if p := c.proxyInfo(); p != nil && p.Source != nil {
		return p.Source
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the local address: the destination address a PROXY
// protocol header carried (see ProxyProtocol), or the underlying
// connection's.
func (c *MuxConn) LocalAddr() net.Addr {
	if p := c.proxyInfo(); p != nil && p.Destination != nil {
		return p.Destination
	}
	return c.Conn.LocalAddr()
}

// ErrProxyHeader is matched (errors.Is) by the error the handler gets when
// the mux closes a connection because of its PROXY protocol header; see
// ProxyProtocol.
var ErrProxyHeader = errors.New("cmux: PROXY protocol header refused")

type proxyError struct {
	remote any
	reason string
	err    error // the read error that cut a header short, if any
}

func (e *proxyError) Error() string {
	s := fmt.Sprintf("cmux: PROXY protocol header from %v refused: %s", e.remote, e.reason)
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *proxyError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrProxyHeader, e.err}
	}
	return []error{ErrProxyHeader}
}

// readProxyHeader handles the PROXY protocol header of c. It reports false
// if c was closed.
func (m *cMux) readProxyHeader(c *MuxConn) error {
	pc := m.proxy
	trusted, required := pc.rule(c.Conn.RemoteAddr())
	if !trusted && pc.pass {
		return nil
	}
	var err error
	switch v := proxyhdr.Detect(c.sniff); {
	case v == 0 && trusted && required:
		err = &proxyError{reason: "missing"}
	case v == 0:
	case !trusted:
		err = &proxyError{reason: "sent by an untrusted source"}
	default:
		h, n, perr := proxyhdr.Parse(c.sniff, v)
		if perr != nil {
			e := perr.(*proxyhdr.Error)
			err = &proxyError{reason: e.Reason, err: e.Err}
			break
		}
		c.extState().proxy = proxyInfo(h)
		c.sniff.consume(n)
	}
	if err != nil {
		err.(*proxyError).remote = remoteAddr(c.Conn)
	}
	return err
}

// proxyInfo returns the ProxyInfo of a parsed header.
func proxyInfo(h *proxyhdr.Header) *ProxyInfo {
	info := &ProxyInfo{Version: h.Version, Source: h.Source, Destination: h.Destination}
	if len(h.TLVs) > 0 {
		info.TLVs = make([]ProxyTLV, len(h.TLVs))
		for i, t := range h.TLVs {
			info.TLVs[i] = ProxyTLV(t)
		}
	}
	return info
}

// trusts reports whether the remote address a is in a trusted network.
func (pc *proxyConfig) trusts(a net.Addr) bool {
	return addrIn(a, pc.trusted)
}
