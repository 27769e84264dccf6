// Package wiretest builds, for tests, what clients send first: HTTP/2
// frames, TLS ClientHellos and PROXY protocol headers, byte by byte, so
// that the tests of the parsers and of the mux share one builder of each.
package wiretest

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"hash/crc32"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/http2/hpack"
)

// ---------------------------------------------------------------------------
// HTTP/2 (RFC 9113 §4.1, §6)

// Preface is the HTTP/2 client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// FrameHeader returns a frame header that announces length payload bytes.
func FrameHeader(length int, typ, flags byte, stream uint32) []byte {
	return []byte{byte(length >> 16), byte(length >> 8), byte(length), typ, flags,
		byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
}

// Frame returns a frame with payload.
func Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	return append(FrameHeader(len(payload), typ, flags, stream), payload...)
}

// Settings returns a SETTINGS frame of the id, value pairs kv.
func Settings(kv ...uint32) []byte {
	var p []byte
	for i := 0; i+1 < len(kv); i += 2 {
		p = binary.BigEndian.AppendUint16(p, uint16(kv[i]))
		p = binary.BigEndian.AppendUint32(p, kv[i+1])
	}
	return Frame(0x4, 0, 0, p)
}

// SettingsAck returns a SETTINGS frame with the ACK flag.
func SettingsAck() []byte { return Frame(0x4, 0x1, 0, nil) }

// WindowUpdate returns a WINDOW_UPDATE frame.
func WindowUpdate(stream, incr uint32) []byte {
	return Frame(0x8, 0, stream, binary.BigEndian.AppendUint32(nil, incr))
}

// Ping returns a PING frame.
func Ping() []byte { return Frame(0x6, 0, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8}) }

// Priority returns a PRIORITY frame.
func Priority(stream uint32) []byte { return Frame(0x2, 0, stream, []byte{0, 0, 0, 0, 15}) }

// Data returns a DATA frame of one byte.
func Data(stream uint32) []byte { return Frame(0x0, 0, stream, []byte("x")) }

// Headers returns a HEADERS frame carrying frag, with END_HEADERS if end,
// padLen bytes of padding (and the PADDED flag) if padLen > 0, and a
// priority field (and the PRIORITY flag) if prio.
func Headers(stream uint32, frag []byte, end bool, padLen int, prio bool) []byte {
	var flags byte
	var p []byte
	if end {
		flags |= 0x4
	}
	if padLen > 0 {
		flags |= 0x8
		p = append(p, byte(padLen))
	}
	if prio {
		flags |= 0x20
		p = append(p, 0, 0, 0, 0, 15)
	}
	p = append(p, frag...)
	p = append(p, make([]byte, padLen)...)
	return Frame(0x1, flags, stream, p)
}

// Continuation returns a CONTINUATION frame, with END_HEADERS if end.
func Continuation(stream uint32, end bool, frag []byte) []byte {
	var flags byte
	if end {
		flags = 0x4
	}
	return Frame(0x9, flags, stream, frag)
}

// Block HPACK-encodes fields (name, value, name, value, ...).
func Block(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// GRPCRequest is the header block of a gRPC request with extra fields.
func GRPCRequest(extra ...string) []byte {
	return Block(append([]string{":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/Method",
		":authority", "localhost", "content-type", "application/grpc"}, extra...)...)
}

// Cat concatenates parts.
func Cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ---------------------------------------------------------------------------
// TLS ClientHello (RFC 8446 §4.1.2)

// HelloMsg builds a ClientHello handshake message with the given extensions
// (type int, data []byte pairs).
func HelloMsg(vers uint16, exts ...any) []byte {
	body := binary.BigEndian.AppendUint16(nil, vers)
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // cipher suites
	body = append(body, 1, 0)                // compression
	if len(exts) > 0 {
		var e []byte
		for i := 0; i+1 < len(exts); i += 2 {
			e = binary.BigEndian.AppendUint16(e, uint16(exts[i].(int)))
			d := exts[i+1].([]byte)
			e = binary.BigEndian.AppendUint16(e, uint16(len(d)))
			e = append(e, d...)
		}
		body = binary.BigEndian.AppendUint16(body, uint16(len(e)))
		body = append(body, e...)
	}
	return append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// FixLen sets the length of the handshake message msg to what it has.
func FixLen(msg []byte) []byte {
	n := len(msg) - 4
	msg[1], msg[2], msg[3] = byte(n>>16), byte(n>>8), byte(n)
	return msg
}

// SNIExt returns the data of a server_name extension of host names.
func SNIExt(names ...string) []byte {
	var l []byte
	for _, n := range names {
		l = append(l, 0)
		l = binary.BigEndian.AppendUint16(l, uint16(len(n)))
		l = append(l, n...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(l))), l...)
}

// ALPNExt returns the data of an ALPN extension.
func ALPNExt(protos ...string) []byte {
	var l []byte
	for _, p := range protos {
		l = append(l, byte(len(p)))
		l = append(l, p...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(l))), l...)
}

// VersExt returns the data of a supported_versions extension.
func VersExt(vs ...uint16) []byte {
	b := []byte{byte(2 * len(vs))}
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// Records puts the handshake bytes msg into records of at most size bytes
// each.
func Records(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		k := min(size, len(msg))
		out = append(out, 22, 3, 1, byte(k>>8), byte(k))
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
}

// ClientHello returns the ClientHello records crypto/tls's client sends
// with cfg.
func ClientHello(cfg *tls.Config) []byte {
	c := &recConn{}
	_ = tls.Client(c, cfg).Handshake()
	return c.buf.Bytes()
}

// recConn records what a TLS client writes; reads fail.
type recConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recConn) Write(p []byte) (int, error)      { return c.buf.Write(p) }
func (c *recConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (c *recConn) Close() error                     { return nil }
func (c *recConn) SetDeadline(time.Time) error      { return nil }
func (c *recConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

// ---------------------------------------------------------------------------
// PROXY protocol

// ProxyV2Sig is the signature of a version 2 header.
const ProxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"

// TLV is a type-length-value field of a version 2 header.
type TLV struct {
	Type  byte
	Value []byte
}

// ProxyV2 builds a version 2 header; with crc, it adds a CRC32C TLV.
func ProxyV2(verCmd, fam byte, addrs []byte, crc bool, tlvs ...TLV) []byte {
	var body []byte
	body = append(body, addrs...)
	for _, t := range tlvs {
		body = append(body, t.Type)
		body = binary.BigEndian.AppendUint16(body, uint16(len(t.Value)))
		body = append(body, t.Value...)
	}
	if crc {
		body = append(body, 0x03, 0, 4, 0, 0, 0, 0)
	}
	h := append([]byte(ProxyV2Sig), verCmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	h = append(h, body...)
	if crc {
		binary.BigEndian.PutUint32(h[len(h)-4:], crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
	}
	return h
}

// ProxyInet returns a version 2 address block of two IPs and ports.
func ProxyInet(src, dst string, sp, dp uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	b := append(s.AsSlice(), d.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, sp)
	return binary.BigEndian.AppendUint16(b, dp)
}

// ProxyUnix returns a version 2 address block of two Unix socket paths.
func ProxyUnix(src, dst string) []byte {
	b := make([]byte, 216)
	copy(b, src)
	copy(b[108:], dst)
	return b
}
