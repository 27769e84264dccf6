package cmux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest"
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
			exts = []any{0, wiretest.SNIExt(tc.name)}
		}
		hello := wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, exts...), 1<<14)
		got := TLSServerName("nomatch.test", tc.pattern)(bytes.NewReader(hello))
		assert.Equal(t, tc.want, got, "pattern %q, name %q", tc.pattern, tc.name)
	}
	hello := wiretest.Records(wiretest.HelloMsg(tls.VersionTLS12, 16, wiretest.ALPNExt("spdy/3", "h2")), 1<<14)
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
			Certificates: []tls.Certificate{pki.Leaf(t, r.id, r.id+".example.com")},
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
		wiretest.ClientHello(cfg("a.example.com", nil, 0))[:100],
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
		out := wiretest.Records(body, size)
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
	require.Greater(t, len(wiretest.ClientHello(cfg)), 2048)
	for _, limit := range []int{1024, DefaultMaxSniffBytes} {
		m, addr, _ := thServedMux(t, MaxSniffBytes(limit))
		pki := newTestPKI(t)
		thServeID(t, m.Match(TLSServerName("a.example.com")), "a", serverTLS(pki.Leaf(t, "a", "a.example.com")))
		thServeID(t, m.Match(Any()), "any", serverTLS(pki.Leaf(t, "any", "a.example.com")))
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
	thServeID(t, m.Match(TLSVersion(0x0300), record(true)), "second", serverTLS(pki.Leaf(t, "a", "a.example.com")))
	assert.Equal(t, "second  a.example.com", thAskTLS(t, addr, &tls.Config{ServerName: "a.example.com", RootCAs: pki.Roots}))
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
	apiCert := pki.Leaf(t, "api", "api.example.com")
	adminCert := pki.Leaf(t, "admin", "admin.example.com")
	clientCert := pki.Leaf(t, "client-1")

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
		ClientCAs:    pki.Roots,
	})
	serveTLS(httpsL, &tls.Config{
		Certificates: []tls.Certificate{apiCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pki.Roots,
		NextProtos:   []string{"http/1.1"},
	})
	serveTLS(adminL, serverTLS(adminCert))

	// An HTTP/2 client with a client certificate, offering "h2" alone as
	// gRPC clients do.
	h2tr := h2TLSTransport(t, &tls.Config{
		ServerName:   "api.example.com",
		RootCAs:      pki.Roots,
		Certificates: []tls.Certificate{clientCert},
	})
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
		ServerName: "api.example.com", RootCAs: pki.Roots, NextProtos: []string{"http/1.1"},
		Certificates: []tls.Certificate{clientCert},
	}}))
	assert.Equal(t, "HTTP/1.1  api.example.com -", get(&http.Transport{TLSClientConfig: &tls.Config{
		ServerName: "api.example.com", RootCAs: pki.Roots,
	}}))
	// The second host name, whose server speaks HTTP/2 too: SNI routes it
	// before ALPN h2 would.
	assert.Equal(t, "HTTP/2.0 h2 admin.example.com -", get(&http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		ServerName: "admin.example.com", RootCAs: pki.Roots,
	}}))
}
