// Package tlshello reads the TLS ClientHello at the start of a connection
// (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2), reassembled from any number of
// handshake records, without terminating TLS: the server name, the ALPN
// protocols and the supported versions.
package tlshello

import (
	"crypto/tls"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cmux-go/cmux/internal/peek"
)

const (
	recordHeaderLen = 5
	// RecordTypeHandshake is the content type of a handshake record.
	RecordTypeHandshake  = 22
	handshakeClientHello = 1
	// maxRecordLen bounds the length of a record that carries the
	// ClientHello (crypto/tls accepts up to 2^14+2048).
	maxRecordLen = 1<<14 + 2048
	// maxHelloLen bounds the ClientHello message (crypto/tls's servers
	// refuse longer handshake messages).
	maxHelloLen = 1 << 16

	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
)

// Hello is the result of reading a connection's ClientHello. The byte
// slices point into a buffer of the Hello's own. The zero value is ready to
// use; Reset makes a used one ready again.
type Hello struct {
	// OK reports whether the connection starts with a well-formed
	// ClientHello.
	OK bool
	// ServerName is the host name of the server_name extension, nil if
	// none.
	ServerName    []byte
	msg           []byte            // the handshake message, reassembled from records
	alpn          cryptobyte.String // ALPN protocol_name_list; nil if none
	versions      cryptobyte.String // supported_versions list; nil if none
	legacyVersion uint16
}

// Reset empties h for another connection, keeping its buffer unless it grew
// large.
func (h *Hello) Reset() {
	msg := h.msg[:0]
	if cap(msg) > 16<<10 {
		msg = nil
	}
	*h = Hello{msg: msg}
}

// Run reads and parses the ClientHello; h.OK reports whether it is
// well-formed.
func (h *Hello) Run(p peek.Peeker) {
	body, ok := h.read(p)
	h.OK = ok && h.parse(body)
}

// read reassembles the ClientHello message from the handshake records at
// the start of the connection and returns its body. It checks the first
// record header's type and version (3.0 to 3.4) byte by byte, so that a
// connection that is not TLS is ruled out on its first byte; like
// crypto/tls, it ignores the version of the records that follow.
func (h *Hello) read(p peek.Peeker) ([]byte, bool) {
	h.msg = h.msg[:0]
	off := 0
	for first := true; ; first = false {
		for i := range 3 {
			b, _ := p.Peek(off + i + 1)
			if len(b) <= off+i {
				return nil, false
			}
			c := b[off+i]
			if i == 0 && c != RecordTypeHandshake || first && (i == 1 && c != 3 || i == 2 && c > 4) {
				return nil, false
			}
		}
		b, _ := p.Peek(off + recordHeaderLen)
		if len(b) < off+recordHeaderLen {
			return nil, false
		}
		n := int(b[off+3])<<8 | int(b[off+4])
		if n == 0 || n > maxRecordLen {
			return nil, false
		}
		off += recordHeaderLen
		if b, _ = p.Peek(off + n); len(b) < off+n {
			return nil, false
		}
		h.msg = append(h.msg, b[off:off+n]...)
		off += n
		if len(h.msg) < 4 {
			continue
		}
		if h.msg[0] != handshakeClientHello {
			return nil, false
		}
		l := int(h.msg[1])<<16 | int(h.msg[2])<<8 | int(h.msg[3])
		if l > maxHelloLen {
			return nil, false
		}
		if len(h.msg) >= 4+l {
			return h.msg[4 : 4+l], true
		}
	}
}

// parse parses a ClientHello body.
func (h *Hello) parse(body []byte) bool {
	// The checks of the fields before the extensions are those of
	// crypto/tls's servers, which accept, for one, an empty list of cipher
	// suites at this stage.
	s := cryptobyte.String(body)
	var sessionID, suites, compression, exts cryptobyte.String
	if !s.ReadUint16(&h.legacyVersion) ||
		!s.Skip(32) || // random
		!s.ReadUint8LengthPrefixed(&sessionID) ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&compression) {
		return false
	}
	if s.Empty() {
		return true // no extensions (TLS 1.2 and older)
	}
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	var seen [3]bool
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return false
		}
		var i int
		var ok bool
		switch typ {
		case extServerName:
			i, ok = 0, h.parseServerName(data)
		case extALPN:
			i, ok = 1, h.parseALPN(data)
		case extSupportedVersions:
			i, ok = 2, h.parseVersions(data)
		default:
			continue
		}
		if !ok || seen[i] {
			return false
		}
		seen[i] = true
	}
	return true
}

// parseServerName parses a server_name extension (RFC 6066 §3).
func (h *Hello) parseServerName(data cryptobyte.String) bool {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return false
	}
	for !list.Empty() {
		var typ uint8
		var name cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&name) {
			return false
		}
		if typ != 0 {
			continue
		}
		if h.ServerName != nil || len(name) == 0 {
			return false // one host_name at most, not empty
		}
		h.ServerName = name
	}
	return true
}

// parseALPN parses an application_layer_protocol_negotiation extension
// (RFC 7301 §3.1).
func (h *Hello) parseALPN(data cryptobyte.String) bool {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return false
	}
	if !walkALPN(list, func([]byte) bool { return true }) {
		return false
	}
	h.alpn = list
	return true
}

// walkALPN calls f with each protocol of an ALPN protocol_name_list until
// f returns false. It reports false if the list is malformed (a protocol
// that is empty or longer than the list).
func walkALPN(list cryptobyte.String, f func(proto []byte) bool) bool {
	for !list.Empty() {
		var proto cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&proto) || proto.Empty() {
			return false
		}
		if !f(proto) {
			return true
		}
	}
	return true
}

// EachProto calls f with each protocol the client offers in its ALPN
// extension, in its order, until f returns false.
func (h *Hello) EachProto(f func(proto []byte) bool) {
	walkALPN(h.alpn, f)
}

// parseVersions parses a ClientHello's supported_versions extension
// (RFC 8446 §4.2.1).
func (h *Hello) parseVersions(data cryptobyte.String) bool {
	var list cryptobyte.String
	if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() || len(list) < 2 || len(list)%2 != 0 {
		return false
	}
	h.versions = list
	return true
}

// HasVersions reports whether the ClientHello has a supported_versions
// extension.
func (h *Hello) HasVersions() bool { return h.versions != nil }

// EachVersion calls f with each version of the supported_versions
// extension, in order, but for GREASE values (RFC 8701); without that
// extension, with MaxVersion alone.
func (h *Hello) EachVersion(f func(v uint16)) {
	if h.versions == nil {
		f(h.MaxVersion())
		return
	}
	for list := h.versions; !list.Empty(); {
		var v uint16
		list.ReadUint16(&v)
		if !IsGREASE(v) {
			f(v)
		}
	}
}

// MaxVersion returns the highest version the client supports: that of the
// supported_versions extension, or, without it, the version field, at most
// TLS 1.2 (RFC 8446 §4.2.1).
func (h *Hello) MaxVersion() uint16 {
	if h.versions == nil {
		return min(h.legacyVersion, tls.VersionTLS12)
	}
	var m uint16
	h.EachVersion(func(v uint16) { m = max(m, v) })
	return m
}

// IsGREASE reports whether v is a GREASE value (RFC 8701).
func IsGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }
