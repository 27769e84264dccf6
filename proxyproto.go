package cmux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"strconv"
	"strings"
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
	pc := &proxyConfig{required: cfg.Required, pass: cfg.PassUntrusted}
	for _, p := range cfg.Trusted {
		if !p.IsValid() {
			continue
		}
		// An IPv4-mapped prefix means its IPv4 addresses.
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		pc.trusted = append(pc.trusted, p.Masked())
	}
	return pc
}

type proxyConfig struct {
	trusted  []netip.Prefix
	required bool
	pass     bool
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
		switch v := c.(type) {
		case *MuxConn:
			return v.proxy, v.proxy != nil
		case *tlsMuxConn:
			return v.proxy, v.proxy != nil
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// RemoteAddr returns the address of the peer: the client's address a PROXY
// protocol header carried (see ProxyProtocol), or the underlying
// connection's.
func (c *MuxConn) RemoteAddr() net.Addr {
	if c.proxy != nil && c.proxy.Source != nil {
		return c.proxy.Source
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the local address: the destination address a PROXY
// protocol header carried (see ProxyProtocol), or the underlying
// connection's.
func (c *MuxConn) LocalAddr() net.Addr {
	if c.proxy != nil && c.proxy.Destination != nil {
		return c.proxy.Destination
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
	trusted := pc.trusts(c.Conn.RemoteAddr())
	if !trusted && pc.pass {
		return nil
	}
	var err error
	switch v := detectProxyHeader(&c.sniff); {
	case v == 0 && trusted && pc.required:
		err = &proxyError{reason: "missing"}
	case v == 0:
	case !trusted:
		err = &proxyError{reason: "sent by an untrusted source"}
	default:
		var info *ProxyInfo
		var n int
		if info, n, err = parseProxyHeader(&c.sniff, v); err == nil {
			c.proxy = info
			c.sniff.consume(n)
		}
	}
	if err != nil {
		err.(*proxyError).remote = remoteAddr(c.Conn)
	}
	return err
}

// trusts reports whether the remote address a is in a trusted network.
func (pc *proxyConfig) trusts(a net.Addr) bool {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.IPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		return false
	}
	ip = ip.Unmap()
	for _, p := range pc.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

const (
	proxyV1Sig = "PROXY "
	proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"
	// proxyV1Max is the longest version 1 header, CRLF included.
	proxyV1Max    = 107
	proxyV2HdrLen = 16
)

// detectProxyHeader reports the version of the PROXY header the connection
// starts with, or 0 if it does not start with a header signature. It reads
// only until the first byte that rules both signatures out.
func detectProxyHeader(p peeker) int {
	v1, v2 := true, true
	for i := 0; ; i++ {
		if v1 && i == len(proxyV1Sig) {
			return 1
		}
		if v2 && i == len(proxyV2Sig) {
			return 2
		}
		if !v1 && !v2 {
			return 0
		}
		b, _ := p.peek(i + 1)
		if len(b) <= i {
			return 0
		}
		v1 = v1 && b[i] == proxyV1Sig[i]
		v2 = v2 && b[i] == proxyV2Sig[i]
	}
}

// parseProxyHeader parses the version v header the connection starts with,
// and returns it and its length in bytes. Its errors are *proxyError.
func parseProxyHeader(p peeker, v int) (*ProxyInfo, int, error) {
	if v == 1 {
		return parseProxyV1(p)
	}
	return parseProxyV2(p)
}

func malformed(format string, args ...any) error {
	return &proxyError{reason: "malformed: " + fmt.Sprintf(format, args...)}
}

func truncated(version int, err error) error {
	return &proxyError{reason: fmt.Sprintf("truncated version %d header", version), err: err}
}

// parseProxyV1 parses a version 1 header:
// "PROXY TCP4|TCP6 src dst srcport dstport\r\n" or "PROXY UNKNOWN ...\r\n".
func parseProxyV1(p peeker) (*ProxyInfo, int, error) {
	var line []byte
	for i := len(proxyV1Sig); ; i++ {
		if i == proxyV1Max {
			return nil, 0, malformed("version 1 header without CRLF in its first %d bytes", proxyV1Max)
		}
		b, err := p.peek(i + 1)
		if len(b) <= i {
			return nil, 0, truncated(1, err)
		}
		if b[i] == '\n' {
			if b[i-1] != '\r' {
				return nil, 0, malformed("version 1 header ends without CR")
			}
			line = b[len(proxyV1Sig) : i-1]
			break
		}
	}
	n := len(proxyV1Sig) + len(line) + 2
	info := &ProxyInfo{Version: 1}
	proto, rest, _ := strings.Cut(string(line), " ")
	switch proto {
	case "UNKNOWN":
		// The rest of the line is to be ignored.
		return info, n, nil
	case "TCP4", "TCP6":
	default:
		return nil, 0, malformed("version 1 protocol %q", proto)
	}
	f := strings.Split(rest, " ")
	if len(f) != 4 {
		return nil, 0, malformed("version 1 header %q", line)
	}
	var addrs [2]netip.AddrPort
	for i := range addrs {
		ip, err := netip.ParseAddr(f[i])
		if err != nil || ip.Zone() != "" || (proto == "TCP4") != ip.Is4() {
			return nil, 0, malformed("%s address %q", proto, f[i])
		}
		port, ok := parsePort(f[2+i])
		if !ok {
			return nil, 0, malformed("port %q", f[2+i])
		}
		addrs[i] = netip.AddrPortFrom(ip, port)
	}
	info.Source = net.TCPAddrFromAddrPort(addrs[0])
	info.Destination = net.TCPAddrFromAddrPort(addrs[1])
	return info, n, nil
}

// parsePort parses a decimal port without leading zeros.
func parsePort(s string) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err == nil
}

// Version 2 commands, address families and TLV types.
const (
	proxyCmdLocal = 0x0
	proxyCmdProxy = 0x1

	proxyAFUnspec = 0x0
	proxyAFInet   = 0x1
	proxyAFInet6  = 0x2
	proxyAFUnix   = 0x3

	proxyTransportDgram = 0x2

	proxyTLVCRC32C = 0x03
)

// proxyAddrLen is the length of the address block of each family.
var proxyAddrLen = [4]int{proxyAFUnspec: 0, proxyAFInet: 12, proxyAFInet6: 36, proxyAFUnix: 216}

// parseProxyV2 parses a version 2 header.
func parseProxyV2(p peeker) (*ProxyInfo, int, error) {
	b, err := p.peek(proxyV2HdrLen)
	if len(b) < proxyV2HdrLen {
		return nil, 0, truncated(2, err)
	}
	verCmd, fam := b[12], b[13]
	n := proxyV2HdrLen + int(binary.BigEndian.Uint16(b[14:]))
	if verCmd>>4 != 2 {
		return nil, 0, malformed("version %d in a version 2 signature", verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd != proxyCmdLocal && cmd != proxyCmdProxy {
		return nil, 0, malformed("version 2 command %#x", cmd)
	}
	if b, err = p.peek(n); len(b) < n {
		return nil, 0, truncated(2, err)
	}
	family, transport := fam>>4, fam&0xf
	validFam := fam == 0 || (family <= proxyAFUnix && family != proxyAFUnspec && transport >= 1 && transport <= 2)
	info := &ProxyInfo{Version: 2}
	if cmd == proxyCmdLocal {
		// The receiver ignores the address block and the family; keep the
		// TLVs when they can be told apart and are well-formed.
		if validFam && n-proxyV2HdrLen >= proxyAddrLen[family] {
			if tlvs, err := parseTLVs(b[:n], proxyV2HdrLen+proxyAddrLen[family]); err == nil {
				info.TLVs = tlvs
			}
		}
		return info, n, nil
	}
	if !validFam {
		return nil, 0, malformed("version 2 address family and protocol %#02x", fam)
	}
	block := b[proxyV2HdrLen:n]
	if len(block) < proxyAddrLen[family] {
		return nil, 0, malformed("version 2 length %d too short for family %#x", len(block), family)
	}
	dgram := transport == proxyTransportDgram
	switch family {
	case proxyAFInet, proxyAFInet6:
		l := 4
		if family == proxyAFInet6 {
			l = 16
		}
		src, _ := netip.AddrFromSlice(block[:l])
		dst, _ := netip.AddrFromSlice(block[l : 2*l])
		sp := netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[2*l:]))
		dp := netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[2*l+2:]))
		if dgram {
			info.Source, info.Destination = net.UDPAddrFromAddrPort(sp), net.UDPAddrFromAddrPort(dp)
		} else {
			info.Source, info.Destination = net.TCPAddrFromAddrPort(sp), net.TCPAddrFromAddrPort(dp)
		}
	case proxyAFUnix:
		netw := "unix"
		if dgram {
			netw = "unixgram"
		}
		info.Source = &net.UnixAddr{Name: unixPath(block[:108]), Net: netw}
		info.Destination = &net.UnixAddr{Name: unixPath(block[108:216]), Net: netw}
	}
	tlvs, err := parseTLVs(b[:n], proxyV2HdrLen+proxyAddrLen[family])
	if err != nil {
		return nil, 0, err
	}
	info.TLVs = tlvs
	return info, n, nil
}

// unixPath returns the NUL-terminated path in b.
func unixPath(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// parseTLVs parses the TLVs of the version 2 header hdr from offset off
// and checks a CRC32C TLV. The values are copies.
func parseTLVs(hdr []byte, off int) ([]ProxyTLV, error) {
	if off == len(hdr) {
		return nil, nil
	}
	// One copy holds every value.
	buf := append([]byte(nil), hdr[off:]...)
	var tlvs []ProxyTLV
	for i := 0; i < len(buf); {
		if len(buf)-i < 3 {
			return nil, malformed("version 2 TLV header truncated")
		}
		typ, l := buf[i], int(binary.BigEndian.Uint16(buf[i+1:]))
		i += 3
		if len(buf)-i < l {
			return nil, malformed("version 2 TLV %#02x longer than the header", typ)
		}
		v := buf[i : i+l : i+l]
		if typ == proxyTLVCRC32C {
			if l != 4 {
				return nil, malformed("version 2 CRC32C TLV of length %d", l)
			}
			at := off + i // v's offset in hdr
			sum := crc32.Update(0, crc32c, hdr[:at])
			sum = crc32.Update(sum, crc32c, []byte{0, 0, 0, 0})
			sum = crc32.Update(sum, crc32c, hdr[at+4:])
			if sum != binary.BigEndian.Uint32(v) {
				return nil, malformed("version 2 CRC32C mismatch")
			}
		}
		tlvs = append(tlvs, ProxyTLV{Type: typ, Value: v})
		i += l
	}
	return tlvs, nil
}
