package cmux

//lint:file-ignore SA1019 the tests drive the x/net/http2 client on purpose: users run it, and the mux must work with it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/net/http2"
)

// thWait bounds every wait of the TLS and PROXY protocol tests.
const thWait = 10 * time.Second

// thServedMux starts Serve on a new mux on 127.0.0.1; its handled errors
// go to errs. The cleanup closes the mux and the root listener and waits
// for Serve to return.
func thServedMux(t *testing.T, opts ...Option) (m CMux, addr string, errs chan error) {
	t.Helper()
	root := listenLoopback(t)
	m = NewWithOptions(root, opts...)
	errs = errorChan(m, 100)
	serveMux(t, m, root)
	return m, root.Addr().String(), errs
}

// thServe runs handle on every connection l accepts, each in its own
// goroutine. The cleanup closes l and waits for the handlers.
func thServe(t *testing.T, l net.Listener, handle func(net.Conn)) {
	serveConns(t, l, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(thWait))
		handle(c)
	})
}

// thServeID terminates TLS with cfg on the connections of l and answers
// each with "id alpn servername".
func thServeID(t *testing.T, l net.Listener, id string, cfg *tls.Config) {
	thServe(t, l, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		st := tc.ConnectionState()
		fmt.Fprintf(tc, "%s %s %s\n", id, st.NegotiatedProtocol, st.ServerName)
		tc.Close()
	})
}

// thServeRaw answers every connection with "raw " and the bytes it sent
// until it half-closed, in hex.
func thServeRaw(t *testing.T, l net.Listener) {
	thServe(t, l, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "raw %x\n", b)
	})
}

// thServeNone fails t if l gets a connection.
func thServeNone(t *testing.T, l net.Listener, name string) {
	thServe(t, l, func(c net.Conn) { t.Errorf("%s got a connection", name) })
}

// thAskTLS completes a TLS handshake with cfg and returns the server's line.
func thAskTLS(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	d := &net.Dialer{Timeout: thWait}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thWait))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// thAskRaw sends b, half-closes and returns the answer, "" if none.
func thAskRaw(t *testing.T, addr string, b []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, thWait)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thWait))
	_, err = c.Write(b)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// thRecConn records what a TLS client writes; reads fail.
type thRecConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *thRecConn) Write(p []byte) (int, error)      { return c.buf.Write(p) }
func (c *thRecConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *thRecConn) Close() error                     { return nil }
func (c *thRecConn) SetDeadline(time.Time) error      { return nil }
func (c *thRecConn) SetReadDeadline(time.Time) error  { return nil }
func (c *thRecConn) SetWriteDeadline(time.Time) error { return nil }

// thHello returns the ClientHello records crypto/tls's client sends with
// cfg.
func thHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c := &thRecConn{}
	_ = tls.Client(c, cfg).Handshake()
	require.NotZero(t, c.buf.Len())
	return c.buf.Bytes()
}

// thRecords puts the handshake bytes msg into records of at most size
// bytes each.
func thRecords(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		k := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(k>>8), byte(k))
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
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

// thParse parses the ClientHello in the bytes r reads.
func thParse(r io.Reader) (*ClientHelloInfo, uint16, bool) {
	hp := getHelloParse()
	defer putHelloParse(hp)
	hp.run(&readerPeeker{r: r})
	if !hp.ok {
		return nil, 0, false
	}
	return hp.info(), hp.maxVersion(), true
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

// thGoHello returns what crypto/tls's server makes of the ClientHello in
// b, or nil if it rejects it.
func thGoHello(b []byte) *ClientHelloInfo {
	var got *ClientHelloInfo
	srv := tls.Server(&thFeedConn{r: bytes.NewReader(b)}, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		got = &ClientHelloInfo{ServerName: h.ServerName, SupportedProtos: h.SupportedProtos}
		for _, v := range h.SupportedVersions {
			if !isGREASE(v) {
				got.SupportedVersions = append(got.SupportedVersions, v)
			}
		}
		return nil, errTHStop
	}})
	_ = srv.Handshake()
	return got
}

func TestTLSHelloParse(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		name     string
		cfg      *tls.Config
		want     ClientHelloInfo
		wantVers uint16
	}{
		{"sni", &tls.Config{ServerName: "a.example.com"},
			ClientHelloInfo{ServerName: "a.example.com", SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}}, tls.VersionTLS13},
		{"alpn", &tls.Config{ServerName: "B.Example.COM", NextProtos: []string{"h2", "http/1.1"}},
			ClientHelloInfo{ServerName: "B.Example.COM", SupportedProtos: []string{"h2", "http/1.1"}, SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}}, tls.VersionTLS13},
		{"tls12", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12},
			ClientHelloInfo{SupportedVersions: []uint16{tls.VersionTLS12, tls.VersionTLS11, tls.VersionTLS10}}, tls.VersionTLS12},
		{"tls13only", &tls.Config{ServerName: "x", MinVersion: tls.VersionTLS13, NextProtos: []string{"acme-tls/1"}},
			ClientHelloInfo{ServerName: "x", SupportedProtos: []string{"acme-tls/1"}, SupportedVersions: []uint16{tls.VersionTLS13}}, tls.VersionTLS13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hello := thHello(t, tc.cfg)
			info, vers, ok := thParse(bytes.NewReader(hello))
			require.True(t, ok)
			assert.Equal(t, tc.want, *info)
			assert.Equal(t, tc.wantVers, vers)
			assert.Equal(t, info, thGoHello(hello), "crypto/tls's view")

			// Split into records of any size, read one byte at a time.
			msg := thMessages(t, hello)
			for _, size := range []int{1, 2, 3, 4, 5, 7, 100, 511, len(msg) - 1} {
				split := thRecords(msg, size)
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

// thHelloMsg builds a ClientHello handshake message with the given
// extensions (type, data pairs).
func thHelloMsg(vers uint16, exts ...any) []byte {
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
	return append([]byte{handshakeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// thFixLen sets the length of the handshake message msg to what it has.
func thFixLen(msg []byte) []byte {
	n := len(msg) - 4
	msg[1], msg[2], msg[3] = byte(n>>16), byte(n>>8), byte(n)
	return msg
}

func thSNIExt(names ...string) []byte {
	var l []byte
	for _, n := range names {
		l = append(l, 0)
		l = binary.BigEndian.AppendUint16(l, uint16(len(n)))
		l = append(l, n...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(l))), l...)
}

func thALPNExt(protos ...string) []byte {
	var l []byte
	for _, p := range protos {
		l = append(l, byte(len(p)))
		l = append(l, p...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(l))), l...)
}

func thVersExt(vs ...uint16) []byte {
	b := []byte{byte(2 * len(vs))}
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func TestTLSHelloParseHandBuilt(t *testing.T) {
	checkLeaks(t)
	ok := []struct {
		name     string
		msg      []byte
		want     ClientHelloInfo
		wantVers uint16
	}{
		{"no extensions", thHelloMsg(tls.VersionTLS11), ClientHelloInfo{SupportedVersions: []uint16{tls.VersionTLS11}}, tls.VersionTLS11},
		{"grease", thHelloMsg(tls.VersionTLS12, extSupportedVersions, thVersExt(0x7a7a, tls.VersionTLS13, tls.VersionTLS12), extALPN, thALPNExt("h2")),
			ClientHelloInfo{SupportedProtos: []string{"h2"}, SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}}, tls.VersionTLS13},
		{"unknown extension", thHelloMsg(tls.VersionTLS12, 0xfe0d, []byte{1, 2, 3}, extServerName, thSNIExt("a")),
			ClientHelloInfo{ServerName: "a", SupportedVersions: []uint16{tls.VersionTLS12}}, tls.VersionTLS12},
	}
	for _, tc := range ok {
		info, vers, good := thParse(bytes.NewReader(thRecords(tc.msg, 1<<14)))
		require.True(t, good, tc.name)
		assert.Equal(t, tc.want, *info, tc.name)
		assert.Equal(t, tc.wantVers, vers, tc.name)
	}

	valid := thRecords(thHelloMsg(tls.VersionTLS12, extServerName, thSNIExt("a")), 1<<14)
	oddSuites := thHelloMsg(tls.VersionTLS12)
	oddSuites[4+2+32+1+1] = 3 // cipher_suites length
	bad := map[string][]byte{
		"not handshake":       append([]byte{23}, valid[1:]...),
		"record version 2":    append([]byte{22, 2}, valid[2:]...),
		"record version 3.5":  append([]byte{22, 3, 5}, valid[3:]...),
		"server hello":        append(append([]byte(nil), valid[:5]...), append([]byte{2}, valid[6:]...)...),
		"zero-length record":  append([]byte{22, 3, 1, 0, 0}, valid...),
		"record too long":     {22, 3, 1, 0x48, 0x01},
		"message too long":    thRecords([]byte{1, 1, 0, 1}, 100),
		"two host names":      thRecords(thHelloMsg(tls.VersionTLS12, extServerName, thSNIExt("a", "b")), 1<<14),
		"empty host name":     thRecords(thHelloMsg(tls.VersionTLS12, extServerName, thSNIExt("")), 1<<14),
		"empty name list":     thRecords(thHelloMsg(tls.VersionTLS12, extServerName, []byte{0, 0}), 1<<14),
		"duplicate sni":       thRecords(thHelloMsg(tls.VersionTLS12, extServerName, thSNIExt("a"), extServerName, thSNIExt("a")), 1<<14),
		"empty alpn":          thRecords(thHelloMsg(tls.VersionTLS12, extALPN, thALPNExt("")), 1<<14),
		"alpn list short":     thRecords(thHelloMsg(tls.VersionTLS12, extALPN, []byte{0, 5, 2, 'h', '2'}), 1<<14),
		"odd versions":        thRecords(thHelloMsg(tls.VersionTLS12, extSupportedVersions, []byte{3, 3, 4, 3}), 1<<14),
		"no versions":         thRecords(thHelloMsg(tls.VersionTLS12, extSupportedVersions, []byte{0}), 1<<14),
		"trailing ext data":   thRecords(thHelloMsg(tls.VersionTLS12, extALPN, append(thALPNExt("h2"), 0)), 1<<14),
		"extension too long":  thRecords(thHelloMsg(tls.VersionTLS12, extALPN, thALPNExt("h2"))[:50], 1<<14),
		"trailing body bytes": thRecords(thFixLen(append(thHelloMsg(tls.VersionTLS12, extALPN, thALPNExt("h2")), 0)), 1<<14),
		"alert between":       append(thRecords(thHelloMsg(tls.VersionTLS12)[:10], 10), 21, 3, 1, 0, 2, 2, 40),
		"http":                []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
		"ssl2":                {0x80, 0x2e, 0x01, 0x03, 0x01},
		"empty":               {},
		"header only":         valid[:5],
		"odd cipher suites":   thRecords(oddSuites, 100),
		"short body":          thRecords([]byte{1, 0, 0, 1, 3}, 100),
	}
	for name, b := range bad {
		_, _, good := thParse(bytes.NewReader(b))
		assert.False(t, good, name)
	}
}

func TestTLSHelloServerNamePatterns(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "A.EXAMPLE.com", true},
		{"A.Example.com", "a.example.com", true},
		{"a.example.com.", "a.example.com", true},
		{"a.example.com", "a.example.com.", true},
		{"a.example.com", "b.example.com", false},
		{"a.example.com", "aa.example.com", false},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "WWW.Example.Com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", "wwwexample.com", false},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", "a", false},
	}
	for _, tc := range cases {
		var exts []any
		if tc.name != "" {
			exts = []any{extServerName, thSNIExt(tc.name)}
		}
		hello := thRecords(thHelloMsg(tls.VersionTLS12, exts...), 1<<14)
		got := TLSServerName("nomatch.test", tc.pattern)(bytes.NewReader(hello))
		assert.Equal(t, tc.want, got, "pattern %q, name %q", tc.pattern, tc.name)
	}
	hello := thRecords(thHelloMsg(tls.VersionTLS12, extALPN, thALPNExt("spdy/3", "h2")), 1<<14)
	assert.True(t, TLSALPN("http/1.1", "h2")(bytes.NewReader(hello)))
	assert.False(t, TLSALPN("http/1.1", "H2")(bytes.NewReader(hello)))
	assert.False(t, TLSALPN()(bytes.NewReader(hello)))
	assert.True(t, TLSVersion(tls.VersionTLS12)(bytes.NewReader(hello)))
	assert.False(t, TLSVersion(tls.VersionTLS13)(bytes.NewReader(hello)))
	assert.False(t, TLSServerName("a")(strings.NewReader("GET / HTTP/1.1\r\n\r\n")))
	assert.False(t, TLSClientHello(func(*ClientHelloInfo) bool { return true })(strings.NewReader("\x16\x03\x01\x00")))
}

// thRoutingMux serves, on one port, TLS servers chosen by the ClientHello:
// "a" (SNI a.example.com), "wild" (*.wild.example.com), "h2" (ALPN h2),
// "legacy" (TLS 1.2 and older), "nosni" (no SNI), "tls13", then "raw"
// for the rest.
func thRoutingMux(t *testing.T, opts ...Option) string {
	pki := newTestPKI(t)
	m, addr, _ := thServedMux(t, opts...)
	routes := []struct {
		id string
		mt Matcher
	}{
		{"a", TLSServerName("a.example.com")},
		{"wild", TLSServerName("*.wild.example.com")},
		{"h2", TLSALPN("h2")},
		{"legacy", TLSVersion(tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12)},
		{"nosni", TLSServerName("")},
		{"tls13", TLSVersion(tls.VersionTLS13)},
	}
	for _, r := range routes {
		cfg := &tls.Config{
			Certificates: []tls.Certificate{pki.leaf(t, r.id, r.id+".example.com")},
			NextProtos:   []string{"h2", "http/1.1"},
			MinVersion:   tls.VersionTLS10,
		}
		thServeID(t, m.Match(r.mt), r.id, cfg)
	}
	thServeRaw(t, m.Match(Any()))
	return addr
}

func TestTLSHelloRouting(t *testing.T) {
	checkLeaks(t)
	addr := thRoutingMux(t)
	cfg := func(sni string, alpn []string, maxVers uint16) *tls.Config {
		return &tls.Config{ServerName: sni, NextProtos: alpn, MaxVersion: maxVers, MinVersion: tls.VersionTLS10, InsecureSkipVerify: true}
	}
	cases := []struct {
		cfg  *tls.Config
		want string
	}{
		{cfg("a.example.com", nil, 0), "a  a.example.com"},
		{cfg("A.Example.COM", []string{"h2"}, 0), "a h2 A.Example.COM"},
		{cfg("a.example.com", nil, tls.VersionTLS11), "a  a.example.com"},
		{cfg("x.wild.example.com", []string{"http/1.1"}, 0), "wild http/1.1 x.wild.example.com"},
		{cfg("x.y.wild.example.com", []string{"h2", "http/1.1"}, 0), "h2 h2 x.y.wild.example.com"},
		{cfg("b.example.com", []string{"http/1.1"}, tls.VersionTLS12), "legacy http/1.1 b.example.com"},
		{cfg("b.example.com", nil, tls.VersionTLS10), "legacy  b.example.com"},
		{cfg("", nil, 0), "nosni"},
		{cfg("c.example.com", []string{"http/1.1"}, 0), "tls13 http/1.1 c.example.com"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, thAskTLS(t, addr, tc.cfg), "%+v", tc.cfg)
	}
	// What is not a ClientHello goes on to the next listener, intact.
	for _, b := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0x16, 0x03, 0x01},
		{0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0},
		thHello(t, cfg("a.example.com", nil, 0))[:100],
	} {
		assert.Equal(t, fmt.Sprintf("raw %x", b), thAskRaw(t, addr, b))
	}
}

func TestTLSHelloOpenSSL(t *testing.T) {
	checkLeaks(t)
	thNeed(t, "openssl")
	addr := thRoutingMux(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-servername", "a.example.com"}, "a  a.example.com"},
		{[]string{"-servername", "x.wild.example.com", "-alpn", "h2"}, "wild h2 x.wild.example.com"},
		{[]string{"-servername", "b.example.com", "-alpn", "http/1.1,h2"}, "h2 h2 b.example.com"},
		{[]string{"-servername", "b.example.com", "-alpn", "http/1.1", "-tls1_2"}, "legacy http/1.1 b.example.com"},
		{[]string{"-noservername", "-tls1_3"}, "nosni"},
		{[]string{"-servername", "c.example.com", "-tls1_3"}, "tls13  c.example.com"},
	}
	for _, tc := range cases {
		args := append([]string{"s_client", "-connect", addr, "-quiet"}, tc.args...)
		ctx, cancel := context.WithTimeout(context.Background(), thWait)
		cmd := exec.CommandContext(ctx, "openssl", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.WaitDelay = time.Second
		out, err := cmd.Output()
		require.NoError(t, ctx.Err(), "openssl %q timed out", args)
		cancel()
		_ = err // s_client exits non-zero on some verification outcomes
		assert.Equal(t, tc.want, strings.TrimSpace(string(out)), "openssl %q: %s", args, stderr.String())
	}
}

// thNeed skips t if the program name is missing, or fails it in CI.
func thNeed(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// TestTLSHelloSplitRecords sends the ClientHello of a real handshake in
// many records and reads, through a relay; the handshake then completes,
// so the delivered bytes are intact.
func TestTLSHelloSplitRecords(t *testing.T) {
	checkLeaks(t)
	addr := thRoutingMux(t)
	for _, size := range []int{1, 3, 64, 700} {
		relay := thSplitRelay(t, addr, size)
		got := thAskTLS(t, relay, &tls.Config{ServerName: "a.example.com", NextProtos: []string{"h2"}, InsecureSkipVerify: true})
		assert.Equal(t, "a h2 a.example.com", got, "records of %d bytes", size)
	}
}

// thSplitRelay accepts one connection and relays it to addr, with its
// first flight (the ClientHello) rewritten into records of size bytes,
// written in pieces that split record headers too.
func thSplitRelay(t *testing.T, addr string, size int) string {
	l := listenLoopback(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		l.Close()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(thWait))
		up, err := net.DialTimeout("tcp", addr, thWait)
		if err != nil {
			return
		}
		defer up.Close()
		_ = up.SetDeadline(time.Now().Add(thWait))
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		out := thRecords(body, size)
		// The first pieces one by one, with pauses, then the rest.
		for i := 0; i < 12 && len(out) > 0; i++ {
			k := min(len(out), 1+i%4)
			if _, err := up.Write(out[:k]); err != nil {
				return
			}
			out = out[k:]
			time.Sleep(2 * time.Millisecond)
		}
		if _, err := up.Write(out); err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(up, c)
			up.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(c, up)
		c.(*net.TCPConn).CloseWrite()
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestTLSHelloNoWait: a short non-TLS first flight is matched by a later
// matcher without waiting for bytes a ClientHello would need.
func TestTLSHelloNoWait(t *testing.T) {
	checkLeaks(t)
	m, addr, _ := thServedMux(t, MatchTimeout(time.Minute))
	thServeNone(t, m.Match(TLSServerName("a.example.com"), TLSALPN("h2"), TLSVersion(tls.VersionTLS13)), "TLS listener")
	socks := m.Match(PrefixMatcher("\x05"))
	thServe(t, socks, func(c net.Conn) {
		b := make([]byte, 3)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write([]byte{5, 0})
		}
	})
	c, err := net.DialTimeout("tcp", addr, thWait)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thWait))
	_, err = c.Write([]byte{5, 1, 0})
	require.NoError(t, err)
	b := make([]byte, 2)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err, "the SOCKS greeting was not matched in time")
	assert.Equal(t, []byte{5, 0}, b)
}

// TestTLSHelloSniffLimit: a ClientHello larger than the sniff limit
// matches no TLS matcher.
func TestTLSHelloSniffLimit(t *testing.T) {
	checkLeaks(t)
	var protos []string
	for i := range 100 {
		protos = append(protos, fmt.Sprintf("protocol-number-%03d", i))
	}
	cfg := &tls.Config{ServerName: "a.example.com", NextProtos: protos, InsecureSkipVerify: true}
	require.Greater(t, len(thHello(t, cfg)), 2048)
	for _, limit := range []int{1024, DefaultMaxSniffBytes} {
		m, addr, _ := thServedMux(t, MaxSniffBytes(limit))
		pki := newTestPKI(t)
		thServeID(t, m.Match(TLSServerName("a.example.com")), "a", serverTLS(pki.leaf(t, "a", "a.example.com")))
		thServeID(t, m.Match(Any()), "any", serverTLS(pki.leaf(t, "any", "a.example.com")))
		want := "a  a.example.com"
		if limit == 1024 {
			want = "any  a.example.com"
		}
		assert.Equal(t, want, thAskTLS(t, addr, cfg), "limit %d", limit)
	}
}

// TestTLSHelloParsedOnce: the TLS matchers of a mux share one parse.
func TestTLSHelloParsedOnce(t *testing.T) {
	checkLeaks(t)
	m, addr, _ := thServedMux(t)
	var mu sync.Mutex
	var seen []*ClientHelloInfo
	record := func(ret bool) Matcher {
		return TLSClientHello(func(ci *ClientHelloInfo) bool {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ci)
			return ret
		})
	}
	thServeNone(t, m.Match(record(false), TLSServerName("other"), TLSALPN("other")), "first listener")
	pki := newTestPKI(t)
	thServeID(t, m.Match(TLSVersion(0x0300), record(true)), "second", serverTLS(pki.leaf(t, "a", "a.example.com")))
	assert.Equal(t, "second  a.example.com", thAskTLS(t, addr, &tls.Config{ServerName: "a.example.com", RootCAs: pki.roots}))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2)
	assert.Same(t, seen[0], seen[1])
	assert.Equal(t, "a.example.com", seen[0].ServerName)
}

// TestTLSHelloH2AndHTTPS serves on one TLS port, without terminating TLS
// in the mux: HTTP/2 (ALPN h2 alone, as gRPC clients offer) requiring
// client certificates, HTTPS (HTTP/1.1) and a second host name by SNI
// (HTTP/2 over TLS), each with its own tls.Config. The e2e module's
// TestTLSHelloGRPCAndHTTPS is this test with grpc-go on the h2 listener.
func TestTLSHelloH2AndHTTPS(t *testing.T) {
	checkLeaks(t)
	pki := newTestPKI(t)
	apiCert := pki.leaf(t, "api", "api.example.com")
	adminCert := pki.leaf(t, "admin", "admin.example.com")
	clientCert := pki.leaf(t, "client-1")

	m, addr, _ := thServedMux(t)
	adminL := m.Match(TLSServerName("admin.example.com"))
	h2L := m.Match(TLSALPN("h2"))
	httpsL := m.Match(TLS())

	describe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fmt.Fprint(w, "no TLS")
			return
		}
		cn := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "%s %s %s %s", r.Proto, r.TLS.NegotiatedProtocol, r.TLS.ServerName, cn)
	})
	serveTLS := func(l net.Listener, cfg *tls.Config) {
		serveHTTPS(t, l, &http.Server{Handler: describe, TLSConfig: cfg, ErrorLog: nil})
	}
	// HTTP/2 with its own TLS configuration, requiring client
	// certificates, where the gRPC server of the e2e test is.
	serveTLS(h2L, &tls.Config{
		Certificates: []tls.Certificate{apiCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.roots,
	})
	serveTLS(httpsL, &tls.Config{
		Certificates: []tls.Certificate{apiCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pki.roots,
		NextProtos:   []string{"http/1.1"},
	})
	serveTLS(adminL, serverTLS(adminCert))

	// An HTTP/2 client with a client certificate, offering "h2" alone as
	// gRPC clients do.
	h2tr := &http2.Transport{TLSClientConfig: &tls.Config{
		ServerName:   "api.example.com",
		RootCAs:      pki.roots,
		Certificates: []tls.Certificate{clientCert},
	}}
	defer h2tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h2tr, Timeout: thWait}).Get("https://" + addr + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, "HTTP/2.0 h2 api.example.com client-1", string(body))

	get := func(tr *http.Transport) string {
		t.Helper()
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: thWait}).Get("https://" + addr + "/")
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// HTTPS, HTTP/1.1, with and without a client certificate.
	assert.Equal(t, "HTTP/1.1 http/1.1 api.example.com client-1", get(&http.Transport{TLSClientConfig: &tls.Config{
		ServerName: "api.example.com", RootCAs: pki.roots, NextProtos: []string{"http/1.1"},
		Certificates: []tls.Certificate{clientCert},
	}}))
	assert.Equal(t, "HTTP/1.1  api.example.com -", get(&http.Transport{TLSClientConfig: &tls.Config{
		ServerName: "api.example.com", RootCAs: pki.roots,
	}}))
	// The second host name, whose server speaks HTTP/2 too: SNI routes it
	// before ALPN h2 would.
	assert.Equal(t, "HTTP/2.0 h2 admin.example.com -", get(&http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		ServerName: "admin.example.com", RootCAs: pki.roots,
	}}))
}

// thFuzzParse parses the ClientHello in b with the internal parse.
func thFuzzParse(r io.Reader) (ok bool, info ClientHelloInfo, maxVers uint16, hasVersions bool) {
	hp := getHelloParse()
	defer putHelloParse(hp)
	hp.run(&readerPeeker{r: r})
	if !hp.ok {
		return false, info, 0, false
	}
	return true, *hp.info(), hp.maxVersion(), hp.versions != nil
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
	checkLeaks(f)
	for _, cfg := range []*tls.Config{
		{ServerName: "a.example.com", NextProtos: []string{"h2", "http/1.1"}},
		{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, MinVersion: tls.VersionTLS10},
	} {
		f.Add(thHello(f, cfg))
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
				okR, infoR, versR, _ := thFuzzParse(bytes.NewReader(thRecords(msg, size)))
				require.True(t, okR, "records of %d bytes", size)
				require.Equal(t, info, infoR)
				require.Equal(t, vers, versR)
			}
		}
		// Where crypto/tls accepts a ClientHello (and the first record
		// header is one the parser takes: type 22, version 3.0 to 3.4),
		// the parser reads the same.
		if len(data) < 3 || data[0] != recordTypeHandshake || data[1] != 3 || data[2] > 4 {
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
