package cmux

import (
	"crypto/tls"
	"io"
	"strings"
	"sync"
)

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
func TLSServerName(patterns ...string) Matcher {
	ps := make([]string, len(patterns))
	for i, p := range patterns {
		ps[i] = strings.TrimSuffix(lowerASCII(p), ".")
	}
	return func(r io.Reader) bool {
		return matchHello(r, func(hp *helloParse) bool {
			name := hp.serverName
			if n := len(name); n > 0 && name[n-1] == '.' {
				name = name[:n-1]
			}
			for _, p := range ps {
				if matchServerName(name, p) {
					return true
				}
			}
			return false
		})
	}
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
func TLSALPN(protos ...string) Matcher {
	return func(r io.Reader) bool {
		return matchHello(r, func(hp *helloParse) bool {
			list := cursor(hp.alpn)
			for len(list) > 0 {
				proto, _ := list.vec8()
				for _, p := range protos {
					if string(proto) == p {
						return true
					}
				}
			}
			return false
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
func TLSVersion(versions ...uint16) Matcher {
	return func(r io.Reader) bool {
		return matchHello(r, func(hp *helloParse) bool {
			v := hp.maxVersion()
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
		c := s.conn
		if c.hello == nil {
			c.hello = getHelloParse()
			c.hello.run(s)
		}
		return c.hello.ok && f(c.hello)
	}
	hp := getHelloParse()
	defer putHelloParse(hp)
	hp.run(asPeeker(r))
	return hp.ok && f(hp)
}

const (
	recordHeaderLen      = 5
	recordTypeHandshake  = 22
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

// helloParse is the result of reading a connection's ClientHello. The
// byte slices point into msg.
type helloParse struct {
	ok            bool
	msg           []byte // the handshake message, reassembled from records
	serverName    []byte // host name of server_name; nil if none
	alpn          []byte // ALPN protocol_name_list; nil if none
	versions      []byte // supported_versions list; nil if none
	legacyVersion uint16
	pub           *ClientHelloInfo // built on demand by info
}

var helloParsePool = sync.Pool{New: func() any { return new(helloParse) }}

func getHelloParse() *helloParse { return helloParsePool.Get().(*helloParse) }

func putHelloParse(hp *helloParse) {
	msg := hp.msg[:0]
	if cap(msg) > 16<<10 {
		msg = nil
	}
	*hp = helloParse{msg: msg}
	helloParsePool.Put(hp)
}

// run reads and parses the ClientHello; hp.ok reports whether it is
// well-formed.
func (hp *helloParse) run(p peeker) {
	body, ok := hp.read(p)
	hp.ok = ok && hp.parse(body)
}

// read reassembles the ClientHello message from the handshake records at
// the start of the connection and returns its body. It checks the first
// record header's type and version (3.0 to 3.4) byte by byte, so that a
// connection that is not TLS is ruled out on its first byte; like
// crypto/tls, it ignores the version of the records that follow.
func (hp *helloParse) read(p peeker) ([]byte, bool) {
	hp.msg = hp.msg[:0]
	off := 0
	for first := true; ; first = false {
		for i := range 3 {
			b, _ := p.peek(off + i + 1)
			if len(b) <= off+i {
				return nil, false
			}
			c := b[off+i]
			if i == 0 && c != recordTypeHandshake || first && (i == 1 && c != 3 || i == 2 && c > 4) {
				return nil, false
			}
		}
		b, _ := p.peek(off + recordHeaderLen)
		if len(b) < off+recordHeaderLen {
			return nil, false
		}
		n := int(b[off+3])<<8 | int(b[off+4])
		if n == 0 || n > maxRecordLen {
			return nil, false
		}
		off += recordHeaderLen
		if b, _ = p.peek(off + n); len(b) < off+n {
			return nil, false
		}
		hp.msg = append(hp.msg, b[off:off+n]...)
		off += n
		if len(hp.msg) < 4 {
			continue
		}
		if hp.msg[0] != handshakeClientHello {
			return nil, false
		}
		l := int(hp.msg[1])<<16 | int(hp.msg[2])<<8 | int(hp.msg[3])
		if l > maxHelloLen {
			return nil, false
		}
		if len(hp.msg) >= 4+l {
			return hp.msg[4 : 4+l], true
		}
	}
}

// parse parses a ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
func (hp *helloParse) parse(body []byte) bool {
	// The checks of the fields before the extensions are those of
	// crypto/tls's servers, which accept, for one, an empty list of cipher
	// suites at this stage.
	s := cursor(body)
	v, ok := s.u16()
	if !ok {
		return false
	}
	hp.legacyVersion = v
	if _, ok = s.bytes(32); !ok { // random
		return false
	}
	if _, ok = s.vec8(); !ok { // legacy_session_id
		return false
	}
	if cs, ok := s.vec16(); !ok || len(cs)%2 != 0 {
		return false
	}
	if _, ok = s.vec8(); !ok { // legacy_compression_methods
		return false
	}
	if len(s) == 0 {
		return true // no extensions (TLS 1.2 and older)
	}
	exts, ok := s.vec16()
	if !ok || len(s) != 0 {
		return false
	}
	var seen [3]bool
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return false
		}
		var i int
		switch typ {
		case extServerName:
			i, ok = 0, hp.parseServerName(data)
		case extALPN:
			i, ok = 1, hp.parseALPN(data)
		case extSupportedVersions:
			i, ok = 2, hp.parseVersions(data)
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
func (hp *helloParse) parseServerName(data cursor) bool {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return false
	}
	for len(list) > 0 {
		typ, ok1 := list.u8()
		name, ok2 := list.vec16()
		if !ok1 || !ok2 {
			return false
		}
		if typ != 0 {
			continue
		}
		if hp.serverName != nil || len(name) == 0 {
			return false // one host_name at most, not empty
		}
		hp.serverName = name
	}
	return true
}

// parseALPN parses an application_layer_protocol_negotiation extension
// (RFC 7301 §3.1).
func (hp *helloParse) parseALPN(data cursor) bool {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return false
	}
	hp.alpn = list
	for len(list) > 0 {
		if proto, ok := list.vec8(); !ok || len(proto) == 0 {
			return false
		}
	}
	return true
}

// parseVersions parses a ClientHello's supported_versions extension
// (RFC 8446 §4.2.1).
func (hp *helloParse) parseVersions(data cursor) bool {
	list, ok := data.vec8()
	if !ok || len(data) != 0 || len(list) < 2 || len(list)%2 != 0 {
		return false
	}
	hp.versions = list
	return true
}

// maxVersion returns the highest version the client supports.
func (hp *helloParse) maxVersion() uint16 {
	if hp.versions == nil {
		return min(hp.legacyVersion, tls.VersionTLS12)
	}
	var m uint16
	for i := 0; i+1 < len(hp.versions); i += 2 {
		if v := uint16(hp.versions[i])<<8 | uint16(hp.versions[i+1]); !isGREASE(v) {
			m = max(m, v)
		}
	}
	return m
}

// isGREASE reports whether v is a GREASE value (RFC 8701).
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// info returns the ClientHelloInfo of the parse, built on first use.
func (hp *helloParse) info() *ClientHelloInfo {
	if hp.pub != nil {
		return hp.pub
	}
	ci := &ClientHelloInfo{ServerName: string(hp.serverName)}
	for list := cursor(hp.alpn); len(list) > 0; {
		proto, _ := list.vec8()
		ci.SupportedProtos = append(ci.SupportedProtos, string(proto))
	}
	if hp.versions == nil {
		ci.SupportedVersions = []uint16{hp.maxVersion()}
	}
	for i := 0; i+1 < len(hp.versions); i += 2 {
		if v := uint16(hp.versions[i])<<8 | uint16(hp.versions[i+1]); !isGREASE(v) {
			ci.SupportedVersions = append(ci.SupportedVersions, v)
		}
	}
	hp.pub = ci
	return ci
}

// cursor reads the big-endian fields of a TLS structure.
type cursor []byte

func (c *cursor) bytes(n int) ([]byte, bool) {
	if n > len(*c) {
		*c = nil
		return nil, false
	}
	b := (*c)[:n:n]
	*c = (*c)[n:]
	return b, true
}

func (c *cursor) u8() (byte, bool) {
	b, ok := c.bytes(1)
	if !ok {
		return 0, false
	}
	return b[0], true
}

func (c *cursor) u16() (uint16, bool) {
	b, ok := c.bytes(2)
	if !ok {
		return 0, false
	}
	return uint16(b[0])<<8 | uint16(b[1]), true
}

// vec8 reads a vector with a one-byte length.
func (c *cursor) vec8() (cursor, bool) {
	n, ok := c.u8()
	if !ok {
		return nil, false
	}
	return c.bytes(int(n))
}

// vec16 reads a vector with a two-byte length.
func (c *cursor) vec16() (cursor, bool) {
	n, ok := c.u16()
	if !ok {
		return nil, false
	}
	return c.bytes(int(n))
}
