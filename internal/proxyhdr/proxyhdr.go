// Package proxyhdr parses the PROXY protocol header (version 1, text, and
// 2, binary) that a proxy puts at the start of a connection to pass on the
// client's address.
package proxyhdr

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cmux-go/cmux/internal/peek"
)

// Header is a parsed PROXY protocol header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Source and Destination are the addresses of the client's connection
	// to the proxy (a *net.TCPAddr, or for version 2 a *net.UDPAddr or
	// *net.UnixAddr), nil if the header carries none.
	Source, Destination net.Addr
	// TLVs are the type-length-value fields of a version 2 header, in their
	// order.
	TLVs []TLV
}

// TLV is a type-length-value field of a version 2 header.
type TLV struct {
	Type  byte
	Value []byte
}

// Error is why a header was refused: Reason says how it is malformed or
// truncated; Err is the read error that cut it short, if any.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

const (
	// V1Sig and V2Sig are the signatures headers start with.
	V1Sig = "PROXY "
	V2Sig = "\r\n\r\n\x00\r\nQUIT\n"
	// V1Max is the longest version 1 header, CRLF included.
	V1Max = 107
	// V2HeaderLen is the length of a version 2 header before its
	// address block.
	V2HeaderLen = 16
)

// Detect reports the version of the PROXY header the connection
// starts with, or 0 if it does not start with a header signature. It reads
// only until the first byte that rules both signatures out.
func Detect(p peek.Peeker) int {
	v1, v2 := true, true
	for i := 0; ; i++ {
		if v1 && i == len(V1Sig) {
			return 1
		}
		if v2 && i == len(V2Sig) {
			return 2
		}
		if !v1 && !v2 {
			return 0
		}
		b, _ := p.Peek(i + 1)
		if len(b) <= i {
			return 0
		}
		v1 = v1 && b[i] == V1Sig[i]
		v2 = v2 && b[i] == V2Sig[i]
	}
}

// Parse parses the version v header the connection starts with (v as
// Detect returns it), and returns it and its length in bytes. Its errors
// are *Error.
func Parse(p peek.Peeker, v int) (*Header, int, error) {
	if v == 1 {
		return parseProxyV1(p)
	}
	return parseProxyV2(p)
}

func malformed(format string, args ...any) error {
	return &Error{Reason: "malformed: " + fmt.Sprintf(format, args...)}
}

func truncated(version int, err error) error {
	return &Error{Reason: fmt.Sprintf("truncated version %d header", version), Err: err}
}

// parseProxyV1 parses a version 1 header:
// "PROXY TCP4|TCP6 src dst srcport dstport\r\n" or "PROXY UNKNOWN ...\r\n".
func parseProxyV1(p peek.Peeker) (*Header, int, error) {
	var line []byte
	for i := len(V1Sig); ; i++ {
		if i == V1Max {
			return nil, 0, malformed("version 1 header without CRLF in its first %d bytes", V1Max)
		}
		b, err := p.Peek(i + 1)
		if len(b) <= i {
			return nil, 0, truncated(1, err)
		}
		if b[i] == '\n' {
			if b[i-1] != '\r' {
				return nil, 0, malformed("version 1 header ends without CR")
			}
			line = b[len(V1Sig) : i-1]
			break
		}
	}
	n := len(V1Sig) + len(line) + 2
	info := &Header{Version: 1}
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

	// TLVCRC32C is the type of the TLV that holds the header's CRC32C.
	TLVCRC32C = 0x03
)

// proxyAddrLen is the length of the address block of each family.
var proxyAddrLen = [4]int{proxyAFUnspec: 0, proxyAFInet: 12, proxyAFInet6: 36, proxyAFUnix: 216}

// parseProxyV2 parses a version 2 header.
func parseProxyV2(p peek.Peeker) (*Header, int, error) {
	b, err := p.Peek(V2HeaderLen)
	if len(b) < V2HeaderLen {
		return nil, 0, truncated(2, err)
	}
	verCmd, fam := b[12], b[13]
	n := V2HeaderLen + int(binary.BigEndian.Uint16(b[14:]))
	if verCmd>>4 != 2 {
		return nil, 0, malformed("version %d in a version 2 signature", verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd != proxyCmdLocal && cmd != proxyCmdProxy {
		return nil, 0, malformed("version 2 command %#x", cmd)
	}
	if b, err = p.Peek(n); len(b) < n {
		return nil, 0, truncated(2, err)
	}
	family, transport := fam>>4, fam&0xf
	validFam := fam == 0 || (family <= proxyAFUnix && family != proxyAFUnspec && transport >= 1 && transport <= 2)
	info := &Header{Version: 2}
	if cmd == proxyCmdLocal {
		// The receiver ignores the address block and the family; keep the
		// TLVs when they can be told apart and are well-formed.
		if validFam && n-V2HeaderLen >= proxyAddrLen[family] {
			if tlvs, err := parseTLVs(b[:n], V2HeaderLen+proxyAddrLen[family]); err == nil {
				info.TLVs = tlvs
			}
		}
		return info, n, nil
	}
	if !validFam {
		return nil, 0, malformed("version 2 address family and protocol %#02x", fam)
	}
	block := b[V2HeaderLen:n]
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
	tlvs, err := parseTLVs(b[:n], V2HeaderLen+proxyAddrLen[family])
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
func parseTLVs(hdr []byte, off int) ([]TLV, error) {
	if off == len(hdr) {
		return nil, nil
	}
	// One copy holds every value.
	buf := append([]byte(nil), hdr[off:]...)
	var tlvs []TLV
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
		if typ == TLVCRC32C {
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
		tlvs = append(tlvs, TLV{Type: typ, Value: v})
		i += l
	}
	return tlvs, nil
}
