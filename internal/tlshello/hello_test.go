package tlshello

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cmux-go/cmux/internal/peek"
	"github.com/cmux-go/cmux/internal/testcheck"
	"github.com/cmux-go/cmux/internal/wiretest"
)

var assert, require = testcheck.Assert, testcheck.Require

// info is what the mux's ClientHelloInfo holds.
type info struct {
	ServerName        string
	SupportedProtos   []string
	SupportedVersions []uint16
}

// infoOf returns the info of a parse, as the mux builds its ClientHelloInfo.
func infoOf(h *Hello) *info {
	in := &info{ServerName: string(h.ServerName)}
	h.EachProto(func(p []byte) bool {
		in.SupportedProtos = append(in.SupportedProtos, string(p))
		return true
	})
	h.EachVersion(func(v uint16) { in.SupportedVersions = append(in.SupportedVersions, v) })
	return in
}

// thParse parses the ClientHello in the bytes r reads.
func thParse(r io.Reader) (*info, uint16, bool) {
	var h Hello
	h.Run(peek.NewReader(r, 64<<10))
	if !h.OK {
		return nil, 0, false
	}
	return infoOf(&h), h.MaxVersion(), true
}

// thGoHello returns what crypto/tls's server makes of the ClientHello in
// b, or nil if it rejects it.
func thGoHello(b []byte) *info {
	var got *info
	srv := tls.Server(&thFeedConn{r: bytes.NewReader(b)}, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		got = &info{ServerName: h.ServerName, SupportedProtos: h.SupportedProtos}
		for _, v := range h.SupportedVersions {
			if !IsGREASE(v) {
				got.SupportedVersions = append(got.SupportedVersions, v)
			}
		}
		return nil, errTHStop
	}})
	_ = srv.Handshake()
	return got
}

func TestTLSHelloParse(t *testing.T) {
	cases := []struct {
		name     string
		cfg      *tls.Config
		want     info
		wantVers uint16
	}{
		{"sni", &tls.Config{ServerName: "a.example.com"},
			info{ServerName: "a.example.com", SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}}, tls.VersionTLS13},
		{"alpn", &tls.Config{ServerName: "B.Example.COM", NextProtos: []string{"h2", "http/1.1"}},
			info{ServerName: "B.Example.COM", SupportedProtos: []string{"h2", "http/1.1"}, SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}}, tls.VersionTLS13},
		{"tls12", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12},
			info{SupportedVersions: []uint16{tls.VersionTLS12, tls.VersionTLS11, tls.VersionTLS10}}, tls.VersionTLS12},
		{"tls13only", &tls.Config{ServerName: "x", MinVersion: tls.VersionTLS13, NextProtos: []string{"acme-tls/1"}},
			info{ServerName: "x", SupportedProtos: []string{"acme-tls/1"}, SupportedVersions: []uint16{tls.VersionTLS13}}, tls.VersionTLS13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hello := wiretest.ClientHello(tc.cfg)
			info, vers, ok := thParse(bytes.NewReader(hello))
			require.True(t, ok)
			assert.Equal(t, tc.want, *info)
			assert.Equal(t, tc.wantVers, vers)
			assert.Equal(t, info, thGoHello(hello), "crypto/tls's view")

			// Split into records of any size, read one byte at a time.
			msg := thMessages(t, hello)
			for _, size := range []int{1, 2, 3, 4, 5, 7, 100, 511, len(msg) - 1} {
				split := wiretest.Records(msg, size)
				info2, _, ok := thParse(iotest.OneByteReader(bytes.NewReader(split)))
				require.True(t, ok, "records of %d bytes", size)
				assert.Equal(t, info, info2, "records of %d bytes", size)
				assert.Equal(t, info, thGoHello(split), "crypto/tls's view of records of %d bytes", size)
			}
			// Any truncation is no ClientHello.
			for n := range len(hello) {
				_, _, ok := thParse(bytes.NewReader(hello[:n]))
				require.False(t, ok, "first %d bytes", n)
			}
		})
	}
}

func TestTLSHelloParseHandBuilt(t *testing.T) {
	ok := []struct {
		name     string
		msg      []byte
		want     info
		wantVers uint16
	}{
		{"no extensions", wiretest.HelloMsg(tls.VersionTLS11), info{SupportedVersions: []uint16{tls.VersionTLS11}}, tls.VersionTLS11},
		{"grease", wiretest.HelloMsg(tls.VersionTLS12, extSupportedVersions, wiretest.VersExt(0x7a7a, tls.VersionTLS13, tls.VersionTLS12), extALPN, wiretest.ALPNExt("h2")),
			info{SupportedProtos: []string{"h2"}, SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}}, tls.VersionTLS13},
		{"unknown extension", wiretest.HelloMsg(tls.VersionTLS12, 0xfe0d, []byte{1, 2, 3}, extServerName, wiretest.SNIExt("a")),
			info{ServerName: "a", SupportedVersions: []uint16{tls.VersionTLS12}}, tls.VersionTLS12},
	}
	for _, tc := range ok {
		info, vers, good := thParse(bytes.NewReader(wiretest.Records(tc.msg, 1<<14)))
		require.True(t, good, tc.name)
		assert.Equal(t, tc.want, *info, tc.name)
		assert.Equal(t, tc.wantVers, vers, tc.name)
	}

	valid := wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extServerName, wiretest.SNIExt("a")), 1<<14)
	oddSuites := wiretest.HelloMsg(tls.VersionTLS12)
	oddSuites[4+2+32+1+1] = 3 // cipher_suites length
	bad := map[string][]byte{
		"not handshake":       append([]byte{23}, valid[1:]...),
		"record version 2":    append([]byte{22, 2}, valid[2:]...),
		"record version 3.5":  append([]byte{22, 3, 5}, valid[3:]...),
		"server hello":        append(append([]byte(nil), valid[:5]...), append([]byte{2}, valid[6:]...)...),
		"zero-length record":  append([]byte{22, 3, 1, 0, 0}, valid...),
		"record too long":     {22, 3, 1, 0x48, 0x01},
		"message too long":    wiretest.Records([]byte{1, 1, 0, 1}, 100),
		"two host names":      wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extServerName, wiretest.SNIExt("a", "b")), 1<<14),
		"empty host name":     wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extServerName, wiretest.SNIExt("")), 1<<14),
		"empty name list":     wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extServerName, []byte{0, 0}), 1<<14),
		"duplicate sni":       wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extServerName, wiretest.SNIExt("a"), extServerName, wiretest.SNIExt("a")), 1<<14),
		"empty alpn":          wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extALPN, wiretest.ALPNExt("")), 1<<14),
		"alpn list short":     wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extALPN, []byte{0, 5, 2, 'h', '2'}), 1<<14),
		"odd versions":        wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extSupportedVersions, []byte{3, 3, 4, 3}), 1<<14),
		"no versions":         wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extSupportedVersions, []byte{0}), 1<<14),
		"trailing ext data":   wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extALPN, append(wiretest.ALPNExt("h2"), 0)), 1<<14),
		"extension too long":  wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, extALPN, wiretest.ALPNExt("h2"))[:50], 1<<14),
		"trailing body bytes": wiretest.Records(wiretest.FixLen(append(wiretest.HelloMsg(tls.VersionTLS12, extALPN, wiretest.ALPNExt("h2")), 0)), 1<<14),
		"alert between":       append(wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12)[:10], 10), 21, 3, 1, 0, 2, 2, 40),
		"http":                []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
		"ssl2":                {0x80, 0x2e, 0x01, 0x03, 0x01},
		"empty":               {},
		"header only":         valid[:5],
		"odd cipher suites":   wiretest.Records(oddSuites, 100),
		"short body":          wiretest.Records([]byte{1, 0, 0, 1, 3}, 100),
	}
	for name, b := range bad {
		_, _, good := thParse(bytes.NewReader(b))
		assert.False(t, good, name)
	}
}

// thFuzzParse parses the ClientHello in b with the internal parse.
func thFuzzParse(r io.Reader) (ok bool, in info, maxVers uint16, hasVersions bool) {
	var h Hello
	h.Run(peek.NewReader(r, 64<<10))
	if !h.OK {
		return false, in, 0, false
	}
	return true, *infoOf(&h), h.MaxVersion(), h.HasVersions()
}

// thHelloPrefix returns the handshake message at the start of the records
// in b (b holds a well-formed ClientHello).
func thHelloPrefix(b []byte) []byte {
	var msg []byte
	for len(msg) < 4 || len(msg) < 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
	}
	return msg[:4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3]))]
}

// FuzzTLSClientHello checks the ClientHello parser: it never panics, reads
// the same from any split of the input, reads the same message however it
// is put into records, and reads what crypto/tls's server reads whenever
// crypto/tls accepts the ClientHello.
func FuzzTLSClientHello(f *testing.F) {
	for _, cfg := range []*tls.Config{
		{ServerName: "a.example.com", NextProtos: []string{"h2", "http/1.1"}},
		{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, MinVersion: tls.VersionTLS10},
	} {
		f.Add(wiretest.ClientHello(cfg))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ok, info, vers, hasVers := thFuzzParse(bytes.NewReader(data))
		ok1, info1, vers1, _ := thFuzzParse(iotest.OneByteReader(bytes.NewReader(data)))
		if ok != ok1 || vers != vers1 {
			t.Fatalf("whole input: %v %#x, one byte per Read: %v %#x", ok, vers, ok1, vers1)
		}
		require.Equal(t, info, info1)
		if ok {
			msg := thHelloPrefix(data)
			for _, size := range []int{1, 5, 1 << 14} {
				okR, infoR, versR, _ := thFuzzParse(bytes.NewReader(wiretest.Records(msg, size)))
				require.True(t, okR, "records of %d bytes", size)
				require.Equal(t, info, infoR)
				require.Equal(t, vers, versR)
			}
		}
		// Where crypto/tls accepts a ClientHello (and the first record
		// header is one the parser takes: type 22, version 3.0 to 3.4),
		// the parser reads the same.
		if len(data) < 3 || data[0] != RecordTypeHandshake || data[1] != 3 || data[2] > 4 {
			return
		}
		goInfo := thGoHello(data)
		if goInfo == nil {
			return
		}
		require.True(t, ok, "crypto/tls accepts it, the parser does not")
		require.Equal(t, goInfo.ServerName, info.ServerName)
		require.Equal(t, goInfo.SupportedProtos, info.SupportedProtos)
		if hasVers {
			require.Equal(t, goInfo.SupportedVersions, info.SupportedVersions)
		} else if len(goInfo.SupportedVersions) > 0 {
			// crypto/tls lists the versions it knows up to the version
			// field; the parser caps that field at TLS 1.2.
			require.Equal(t, min(goInfo.SupportedVersions[0], tls.VersionTLS12), vers)
		}
	})
}

// thMessages returns the handshake bytes of the records in b.
func thMessages(t testing.TB, b []byte) []byte {
	var msg []byte
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 5)
		n := int(binary.BigEndian.Uint16(b[3:5]))
		require.GreaterOrEqual(t, len(b), 5+n)
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
	}
	return msg
}

// thFeedConn feeds a TLS server the bytes r reads; writes are dropped.
type thFeedConn struct {
	net.Conn
	r io.Reader
}

func (c *thFeedConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *thFeedConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *thFeedConn) Close() error                     { return nil }
func (c *thFeedConn) SetDeadline(time.Time) error      { return nil }
func (c *thFeedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *thFeedConn) SetWriteDeadline(time.Time) error { return nil }

var errTHStop = errors.New("stop")
