package cmux

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest"
)

// termPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, for the TerminateTLS tests.
type termPKI struct {
	pki    *wiretest.PKI
	server tls.Certificate
	client tls.Certificate
}

func newTermPKI(t testing.TB) *termPKI {
	pki := newTestPKI(t)
	srv := pki.Leaf(t, "server", "localhost")
	return &termPKI{pki: pki, server: srv, client: pki.Leaf(t, "client-1")}
}

// serverConfig returns the mux's TLS config: ALPN h2 and http/1.1, client
// certificates verified if given.
func (p *termPKI) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.pki.Roots,
	}
}

// clientConfig returns a client config with the client certificate and
// protos for ALPN.
func (p *termPKI) clientConfig(protos ...string) *tls.Config {
	return &tls.Config{
		RootCAs:      p.pki.Roots,
		ServerName:   "localhost",
		Certificates: []tls.Certificate{p.client},
		NextProtos:   protos,
	}
}

// connTypeKey is the context key of the type of the connection net/http
// served a request on.
type connTypeKey struct{}

// describeTLS answers "name proto alpn client-cn conn-type".
func describeTLS(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fmt.Fprintf(w, "%s %s no-TLS", name, r.Proto)
			return
		}
		cn := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		alpn := r.TLS.NegotiatedProtocol
		if alpn == "" {
			alpn = "none"
		}
		fmt.Fprintf(w, "%s %s %s %s %v", name, r.Proto, alpn, cn, r.Context().Value(connTypeKey{}))
	})
}

// serveTermHTTPS serves l with ServeHTTPS and describeTLS(name); the
// cleanup closes the server.
func serveTermHTTPS(t testing.TB, l net.Listener, name string) *http.Server {
	hs := &http.Server{
		Handler: describeTLS(name),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connTypeKey{}, fmt.Sprintf("%T", c))
		},
		ErrorLog: nil,
	}
	goServe(t, "ServeHTTPS", func() error { return ServeHTTPS(hs, l) }, func() { hs.Close() })
	return hs
}

// termGet makes one request on a new connection with cfg (ALPN h2 makes
// it HTTP/2) and returns the body.
func termGet(t testing.TB, addr string, cfg *tls.Config, header http.Header) string {
	t.Helper()
	body, err := termGetErr(addr, cfg, header)
	require.NoError(t, err)
	return body
}

// termGetErr is termGet for any goroutine: it returns the error.
func termGetErr(addr string, cfg *tls.Config, header http.Header) (string, error) {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	if len(cfg.NextProtos) > 0 && cfg.NextProtos[0] == "h2" {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := (&http.Client{Transport: tr}).Do(req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestTerminateTLSRouting terminates TLS in the mux and routes inside it:
// HTTP/2 by content-type (a gRPC-like request, sniffed), HTTP/1 by a header
// field (sniffed), and the rest. Every request sees its TLS state (client
// certificate, ALPN). The connections nothing was read from are delivered
// as the *tls.Conn itself, the others are served by ServeHTTPS as a
// stateConn.
func TestTerminateTLSRouting(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	h1, h2, none := p.clientConfig("http/1.1"), p.clientConfig("h2", "http/1.1"), p.clientConfig()
	anon := p.clientConfig("http/1.1")
	anon.Certificates = nil
	grpcCT := http.Header{"Content-Type": {"application/grpc"}}
	routed := http.Header{"X-Route": {"sniffed"}}
	type request struct {
		name   string
		cfg    *tls.Config
		header http.Header
		want   string
	}
	for _, chain := range []struct {
		name     string
		routed   bool // an HTTP/1 header matcher before Any
		requests []request
	}{
		{"gRPC, Any", false, []request{
			{"HTTP/1.1", h1, nil, "rest HTTP/1.1 http/1.1 client-1 *tls.Conn"},
			{"HTTP/1.1 without ALPN", none, nil, "rest HTTP/1.1 none client-1 *tls.Conn"},
			{"HTTP/1.1 without a client certificate", anon, nil, "rest HTTP/1.1 http/1.1 - *tls.Conn"},
			{"HTTP/2", h2, nil, "rest HTTP/2.0 h2 client-1 *cmux.stateConn"},
			{"HTTP/2 gRPC content-type", h2, grpcCT, "grpc HTTP/2.0 h2 client-1 *cmux.stateConn"},
			// An HTTP/1 request with that content-type is not HTTP/2: the
			// HTTP/2 matcher says no without reading.
			{"HTTP/1.1 gRPC content-type", h1, grpcCT, "rest HTTP/1.1 http/1.1 client-1 *tls.Conn"},
		}},
		{"gRPC, HTTP/1 header, Any", true, []request{
			{"HTTP/1.1", h1, nil, "rest HTTP/1.1 http/1.1 client-1 *cmux.stateConn"},
			{"HTTP/1.1 routed", h1, routed, "routed HTTP/1.1 http/1.1 client-1 *cmux.stateConn"},
			{"HTTP/1.1 routed without ALPN", none, routed, "routed HTTP/1.1 none client-1 *cmux.stateConn"},
			// The HTTP/1 matcher says no to h2 without reading.
			{"HTTP/2 with the header", h2, routed, "rest HTTP/2.0 h2 client-1 *cmux.stateConn"},
			{"HTTP/2 gRPC content-type", h2, grpcCT, "grpc HTTP/2.0 h2 client-1 *cmux.stateConn"},
		}},
	} {
		t.Run(chain.name, func(t *testing.T) {
			root := listenLoopback(t)
			m := NewWithOptions(root, TerminateTLS(p.serverConfig()))
			serveTermHTTPS(t, m.Match(HTTP2HeaderFieldPrefix("content-type", "application/grpc")), "grpc")
			if chain.routed {
				serveTermHTTPS(t, m.Match(HTTP1HeaderField("X-Route", "sniffed")), "routed")
			}
			serveTermHTTPS(t, m.Match(Any()), "rest")
			serveMux(t, m, root)
			for _, r := range chain.requests {
				t.Run(r.name, func(t *testing.T) {
					assert.Equal(t, r.want, termGet(t, root.Addr().String(), r.cfg, r.header))
				})
			}
		})
	}
}

// TestNegotiatedProtocol routes by ALPN alone: nothing is read, so every
// connection is delivered as the *tls.Conn, and net/http serves HTTP/2
// itself.
func TestNegotiatedProtocol(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()))
	h2L := m.Match(NegotiatedProtocol("h2"))
	h1L := m.Match(NegotiatedProtocol("http/1.1"))
	noneL := m.Match(NegotiatedProtocol(""))
	serveTermHTTPS(t, h2L, "h2")
	// A plain http.Server is enough when nothing is read.
	hs := &http.Server{Handler: describeTLS("h1"), ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connTypeKey{}, fmt.Sprintf("%T", c))
	}}
	serveHTTP(t, h1L, hs)
	noneC := acceptChan(t, noneL)
	serveMux(t, m, root)
	addr := root.Addr().String()

	assert.Equal(t, "h2 HTTP/2.0 h2 client-1 *tls.Conn", termGet(t, addr, p.clientConfig("h2"), nil))
	assert.Equal(t, "h1 HTTP/1.1 http/1.1 client-1 *tls.Conn", termGet(t, addr, p.clientConfig("http/1.1"), nil))

	c, err := tls.Dial("tcp", addr, p.clientConfig())
	require.NoError(t, err)
	defer c.Close()
	sc := takeConn(t, noneC)
	tc, ok := sc.(*tls.Conn)
	require.True(t, ok, "delivered %T", sc)
	assert.Equal(t, "", tc.ConnectionState().NegotiatedProtocol)
	assert.Equal(t, c.LocalAddr().String(), tc.RemoteAddr().String())

	// Called outside a mux, or on a connection without TLS, it says no.
	assert.False(t, NegotiatedProtocol("")(strings.NewReader("GET / HTTP/1.1\r\n")))
}

// TestNegotiatedProtocolTLSListener: on a root listener made by
// tls.NewListener, NegotiatedProtocol completes the handshake.
func TestNegotiatedProtocolTLSListener(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := tls.NewListener(listenLoopback(t), p.serverConfig())
	m := NewWithOptions(root, ExposeConnectionState())
	h2C := acceptChan(t, m.Match(NegotiatedProtocol("h2")))
	h1C := acceptChan(t, m.Match(NegotiatedProtocol("http/1.1")))
	serveMux(t, m, root)
	for _, tc := range []struct {
		proto string
		ch    <-chan net.Conn
	}{{"http/1.1", h1C}, {"h2", h2C}} {
		c, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig(tc.proto))
		require.NoError(t, err)
		defer c.Close()
		sc := takeConn(t, tc.ch)
		cs, ok := sc.(interface{ ConnectionState() tls.ConnectionState })
		require.True(t, ok)
		assert.Equal(t, tc.proto, cs.ConnectionState().NegotiatedProtocol)
	}
}

// termEvents collects the errors a mux reports, and its NotMatched events.
type termEvents struct {
	mu         sync.Mutex
	notMatched []error
}

func (e *termEvents) hooks() Hooks {
	return Hooks{NotMatched: func(ev ConnEvent) {
		e.mu.Lock()
		e.notMatched = append(e.notMatched, ev.Err)
		e.mu.Unlock()
	}}
}

func (e *termEvents) last() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.notMatched) == 0 {
		return nil
	}
	return e.notMatched[len(e.notMatched)-1]
}

// readAllWithin reads c until EOF or an error, within d, and returns what it
// read and the error that ended it (nil for EOF).
func readAllWithin(c net.Conn, d time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestTerminateTLSFailures: plaintext, a client that closes at once, a
// handshake refused, and a slow handshake are each closed cleanly and
// reported with ErrTLSHandshake and their cause; a slow handshake delays
// no other connection.
func TestTerminateTLSFailures(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	cfg := p.serverConfig()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	root := listenLoopback(t)
	var ev termEvents
	const timeout = time.Second
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := NewWithOptions(root, TerminateTLS(cfg), MatchTimeout(timeout), WithHooks(ev.hooks()), WithLogger(logger))
	errs := errorChan(m, 16)
	okC := acceptChan(t, m.Match(Any()))
	serveMux(t, m, root)
	addr := root.Addr().String()

	check := func(t *testing.T, err error, want ...error) {
		t.Helper()
		require.ErrorIs(t, err, ErrTLSHandshake)
		for _, w := range want {
			assert.ErrorIs(t, err, w)
		}
		assert.Equal(t, err, ev.last(), "the NotMatched hook's error")
		assert.Contains(t, err.Error(), "127.0.0.1")
		assert.Contains(t, logs.String(), err.Error(), "logged")
	}

	t.Run("plaintext HTTP", func(t *testing.T) {
		c := dialTCP(t, addr)
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		got, rerr := readAllWithin(c, waitFor)
		assert.NoError(t, rerr, "the mux closes the connection")
		assert.True(t, strings.HasPrefix(got, "HTTP/1.0 400 Bad Request\r\n"), "got %q", got)
		err = nextErr(t, errs)
		var rhe tls.RecordHeaderError
		assert.True(t, errors.As(err, &rhe), "a tls.RecordHeaderError")
		check(t, err)
		assert.Contains(t, err.Error(), "plaintext")
		assert.False(t, errors.Is(err, ErrMatchTimeout))
	})

	t.Run("plaintext, not HTTP", func(t *testing.T) {
		c := dialTCP(t, addr)
		_, err := io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
		require.NoError(t, err)
		got, _ := readAllWithin(c, waitFor)
		assert.False(t, strings.Contains(got, "HTTP/"), "got %q", got)
		check(t, nextErr(t, errs))
	})

	t.Run("closed at once", func(t *testing.T) {
		c := dialTCP(t, addr)
		c.Close()
		check(t, nextErr(t, errs), ErrNoBytes)
	})

	t.Run("no client certificate", func(t *testing.T) {
		cc := p.clientConfig("h2")
		cc.Certificates = nil
		c, err := tls.Dial("tcp", addr, cc)
		if err == nil {
			// TLS 1.3: the client learns of the refusal on its first read.
			_, err = readAllWithin(c, waitFor)
			c.Close()
		}
		assert.Error(t, err)
		check(t, nextErr(t, errs))
	})

	t.Run("slow handshake", func(t *testing.T) {
		slow := dialTCP(t, addr)
		hello := wiretest.ClientHello(p.clientConfig("h2"))
		_, err := slow.Write(hello[:len(hello)/2])
		require.NoError(t, err)
		start := time.Now()
		// Meanwhile another client is served at once.
		c, err := tls.Dial("tcp", addr, p.clientConfig("h2"))
		require.NoError(t, err)
		defer c.Close()
		takeConn(t, okC)
		assert.Less(t, time.Since(start), timeout, "a slow handshake delayed another connection")

		_, rerr := readAllWithin(slow, waitFor)
		assert.NoError(t, rerr, "the mux closes the slow connection")
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, timeout-50*time.Millisecond)
		assert.Less(t, elapsed, 3*time.Second)
		check(t, nextErr(t, errs), ErrMatchTimeout)
	})
}

// TestTerminateTLSDefaultsOff: without TerminateTLS a TLS client's bytes
// reach the matchers and the delivered connection as they were sent.
func TestTerminateTLSDefaultsOff(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	m := New(root)
	ch := acceptChan(t, m.Match(TLS()))
	serveMux(t, m, root)
	go func() {
		c, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig("h2"))
		if err == nil {
			c.Close()
		}
	}()
	sc := takeConn(t, ch)
	_, ok := sc.(*MuxConn)
	assert.True(t, ok, "delivered %T", sc)
	b := make([]byte, 1)
	_ = sc.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.ReadFull(sc, b)
	require.NoError(t, err)
	assert.Equal(t, byte(0x16), b[0])
}

// TestTerminateTLSProxyHeader: a PROXY header in the clear, then TLS; the
// delivered *tls.Conn has the client's address of the header.
func TestTerminateTLSProxyHeader(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()),
		ProxyProtocol(ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	ch := acceptChan(t, m.Match(NegotiatedProtocol("h2")))
	serveMux(t, m, root)

	raw := dialTCP(t, root.Addr().String())
	_, err := io.WriteString(raw, "PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n")
	require.NoError(t, err)
	c := tls.Client(raw, p.clientConfig("h2"))
	done := make(chan error, 1)
	go func() { done <- c.Handshake() }()
	sc := takeConn(t, ch)
	require.NoError(t, <-done)
	_, ok := sc.(*tls.Conn)
	require.True(t, ok, "delivered %T", sc)
	assert.Equal(t, "192.0.2.7:40000", sc.RemoteAddr().String())
	assert.Equal(t, "198.51.100.1:443", sc.LocalAddr().String())
	info, ok := ProxyHeader(sc)
	require.True(t, ok)
	assert.Equal(t, "192.0.2.7:40000", info.Source.String())

	// The stream after the handshake reaches the server intact.
	_, err = io.WriteString(c, "hello\n")
	require.NoError(t, err)
	_ = sc.SetReadDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(sc).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "hello\n", line)
}

// TestTerminateTLSShutdown: Close aborts handshakes in progress, and
// Shutdown lets terminated connections be delivered; nothing leaks.
func TestTerminateTLSShutdown(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)

	t.Run("Close", func(t *testing.T) {
		root := listenLoopback(t)
		m := NewWithOptions(root, TerminateTLS(p.serverConfig()), MatchTimeout(time.Minute))
		ch := acceptChan(t, m.Match(Any()))
		b := serveMux(t, m, root)
		var stalled []net.Conn
		for range 4 {
			c := dialTCP(t, root.Addr().String())
			_, err := c.Write([]byte{0x16, 3, 1}) // a record header, then nothing
			require.NoError(t, err)
			stalled = append(stalled, c)
		}
		time.Sleep(50 * time.Millisecond)
		m.Close()
		require.ErrorIs(t, b.wait(t, waitFor), ErrServerClosed)
		for _, c := range stalled {
			_, err := readAllWithin(c, waitFor)
			assert.NoError(t, err, "closed by Close")
		}
		select {
		case c, ok := <-ch:
			assert.False(t, ok, "delivered %v", c)
		case <-time.After(waitFor):
			t.Error("child Accept did not return")
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		root := listenLoopback(t)
		m := NewWithOptions(root, TerminateTLS(p.serverConfig()))
		ch := acceptChan(t, m.Match(Any()))
		b := serveMux(t, m, root)
		c, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig("h2"))
		require.NoError(t, err)
		defer c.Close()
		sc := takeConn(t, ch)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		require.NoError(t, m.(Shutdowner).Shutdown(ctx))
		require.ErrorIs(t, b.wait(t, waitFor), ErrServerClosed)
		// The delivered connection is the server's: it still works.
		_, err = io.WriteString(c, "x")
		require.NoError(t, err)
		_ = sc.SetReadDeadline(time.Now().Add(waitFor))
		one := make([]byte, 1)
		_, err = io.ReadFull(sc, one)
		require.NoError(t, err)
	})
}

// TestTerminateTLSNotMatched: a terminated connection that no matcher
// wants is closed with a TLS close_notify and reported as ErrNotMatched;
// ALPN let the HTTP/2 matcher decide without reading. The Delivered hook
// sees a delivered *tls.Conn.
func TestTerminateTLSNotMatched(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	var mu sync.Mutex
	var notMatched, delivered []ConnEvent
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()), WithHooks(Hooks{
		NotMatched: func(ev ConnEvent) { mu.Lock(); notMatched = append(notMatched, ev); mu.Unlock() },
		Delivered:  func(ev ConnEvent) { mu.Lock(); delivered = append(delivered, ev); mu.Unlock() },
	}))
	errs := errorChan(m, 4)
	h2C := acceptChan(t, Name(m.Match(HTTP2()), "h2"))
	serveMux(t, m, root)

	c, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig("http/1.1"))
	require.NoError(t, err)
	defer c.Close()
	_, rerr := readAllWithin(c, waitFor)
	assert.NoError(t, rerr, "closed with close_notify")
	err = nextErr(t, errs)
	var nm ErrNotMatched
	require.ErrorAs(t, err, &nm)
	assert.ErrorIs(t, err, ErrNoMatch)
	mu.Lock()
	require.Len(t, notMatched, 1)
	assert.Equal(t, 0, notMatched[0].Sniffed, "decided by ALPN, without reading")
	_, isTLS := notMatched[0].Conn.(*tls.Conn)
	assert.True(t, isTLS, "ConnEvent.Conn is %T", notMatched[0].Conn)
	mu.Unlock()

	c2, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig("h2"))
	require.NoError(t, err)
	defer c2.Close()
	_, err = io.WriteString(c2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	require.NoError(t, err)
	sc := takeConn(t, h2C)
	_, isMux := sc.(*tlsMuxConn)
	assert.True(t, isMux, "delivered %T after reading the preface", sc)
	mu.Lock()
	require.Len(t, delivered, 1)
	assert.Equal(t, "h2", delivered[0].Listener)
	mu.Unlock()
	buf := make([]byte, 24)
	_ = sc.SetReadDeadline(time.Now().Add(waitFor))
	_, err = io.ReadFull(sc, buf)
	require.NoError(t, err)
	assert.Equal(t, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", string(buf), "the sniffed bytes are replayed")
}

// TestTerminateTLSSilent: a protocol where the server speaks first, inside
// TLS. Silent waits for the first byte after the handshake; its timeout does
// not break the TLS connection, which is delivered as the *tls.Conn.
func TestTerminateTLSSilent(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()), MatchTimeout(5*time.Second))
	silentC := acceptChan(t, m.Match(Silent(200*time.Millisecond)))
	httpC := acceptChan(t, m.Match(HTTP1Fast()))
	serveMux(t, m, root)

	quiet, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig())
	require.NoError(t, err)
	defer quiet.Close()
	sc := takeConn(t, silentC)
	_, ok := sc.(*tls.Conn)
	require.True(t, ok, "delivered %T", sc)
	_, err = io.WriteString(sc, "* OK greeting\r\n")
	require.NoError(t, err)
	_ = quiet.SetDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(quiet).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "* OK greeting\r\n", line)
	// And the client's answer reaches the server.
	_, err = io.WriteString(quiet, "a LOGIN\r\n")
	require.NoError(t, err)
	_ = sc.SetReadDeadline(time.Now().Add(waitFor))
	line, err = bufio.NewReader(sc).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "a LOGIN\r\n", line)

	talker, err := tls.Dial("tcp", root.Addr().String(), p.clientConfig("http/1.1"))
	require.NoError(t, err)
	defer talker.Close()
	_, err = io.WriteString(talker, "GET / HTTP/1.1\r\n\r\n")
	require.NoError(t, err)
	hc := takeConn(t, httpC)
	_ = hc.SetReadDeadline(time.Now().Add(waitFor))
	line, err = bufio.NewReader(hc).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "GET / HTTP/1.1\r\n", line)
}

// BenchmarkTerminateTLSDelivery compares the two kinds of connections a
// terminating mux delivers to ServeHTTPS: the *tls.Conn itself (the chain
// Any, which reads nothing) and the connection that replays what the
// matchers read (the chain HTTP1Fast for HTTP/1.1; HTTP2 for HTTP/2). "conn"
// makes a new connection per request, "reuse" sends every request on one
// connection.
func BenchmarkTerminateTLSDelivery(b *testing.B) {
	p := newTermPKI(b)
	for _, chain := range []struct {
		name string
		m    Matcher
	}{{"tlsconn", Any()}, {"sniffed", nil}} {
		for _, proto := range []string{"http/1.1", "h2"} {
			root := listenLoopback(b)
			m := NewWithOptions(root, TerminateTLS(p.serverConfig()))
			mt := chain.m
			if mt == nil {
				mt = HTTP1Fast()
				if proto == "h2" {
					mt = HTTP2()
				}
			}
			hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.TLS == nil {
					w.WriteHeader(500)
				}
			})}
			l := m.Match(mt)
			goServe(b, "ServeHTTPS", func() error { return ServeHTTPS(hs, l) }, func() { hs.Close() })
			serveMux(b, m, root)
			url := "https://" + root.Addr().String() + "/"
			for _, reuse := range []bool{false, true} {
				name := chain.name + "/" + proto + "/conn"
				if reuse {
					name = chain.name + "/" + proto + "/reuse"
				}
				b.Run(name, func(b *testing.B) {
					tr := &http.Transport{TLSClientConfig: p.clientConfig(proto), DisableKeepAlives: !reuse, ForceAttemptHTTP2: proto == "h2"}
					if proto != "h2" {
						tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
					}
					defer tr.CloseIdleConnections()
					c := &http.Client{Transport: tr, Timeout: waitFor}
					for range b.N {
						resp, err := c.Get(url)
						if err != nil {
							b.Fatal(err)
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Fatal(resp.Status)
						}
					}
				})
			}
		}
	}
}

// TestTerminateTLSServerName: on a terminated connection TLSServerName
// matches the handshake's server name without reading.
func TestTerminateTLSServerName(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()))
	adminC := acceptChan(t, m.Match(TLSServerName("admin.example.com")))
	wildC := acceptChan(t, m.Match(TLSServerName("*.example.com")))
	noneC := acceptChan(t, m.Match(TLSServerName("")))
	serveMux(t, m, root)
	for _, tc := range []struct {
		name string
		ch   <-chan net.Conn
	}{{"ADMIN.example.com.", adminC}, {"api.example.com", wildC}, {"", noneC}} {
		cfg := p.clientConfig("h2")
		cfg.ServerName = tc.name
		cfg.InsecureSkipVerify = true // the certificate names localhost
		c, err := tls.Dial("tcp", root.Addr().String(), cfg)
		require.NoError(t, err, tc.name)
		defer c.Close()
		sc := takeConn(t, tc.ch)
		tlsc, ok := sc.(*tls.Conn)
		require.True(t, ok, "delivered %T: nothing read", sc)
		assert.Equal(t, strings.TrimSuffix(tc.name, "."), strings.TrimSuffix(tlsc.ConnectionState().ServerName, "."))
	}
}

// TestServeHTTPSShutdown: srv.Shutdown waits for a request in flight on a
// sniffed HTTP/2 connection (served by net/http's own HTTP/2 server through
// ServeHTTPS) and on a *tls.Conn, and ServeHTTPS returns
// http.ErrServerClosed.
func TestServeHTTPSShutdown(t *testing.T) {
	checkLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	// Independent: srv.Shutdown closes both children, and a child's Close
	// would otherwise close the root (and fail the second time).
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()), IndependentListeners())
	sniffedL := m.Match(HTTP2())                    // reads the preface
	tlsL := m.Match(NegotiatedProtocol("http/1.1")) // reads nothing
	started := make(chan string, 2)
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.Proto
		<-release
		fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	})
	hs := &http.Server{Handler: handler}
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(func() { unblock(); hs.Close() }) // on failure
	served := make(chan error, 2)
	go func() { served <- ServeHTTPS(hs, sniffedL) }()
	go func() { served <- ServeHTTPS(hs, tlsL) }()
	serveMux(t, m, root)

	bodies := make(chan string, 2)
	for _, proto := range []string{"h2", "http/1.1"} {
		go func() {
			body, err := termGetErr(root.Addr().String(), p.clientConfig(proto), nil)
			if err != nil {
				body = err.Error()
			}
			bodies <- body
		}()
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case proto := <-started:
			got[proto] = true
		case <-time.After(waitFor):
			t.Fatal("requests did not start")
		}
	}
	assert.Equal(t, map[string]bool{"HTTP/2.0": true, "HTTP/1.1": true}, got)
	shut := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	go func() { shut <- hs.Shutdown(ctx) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned before the requests finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	unblock()
	require.NoError(t, <-shut)
	want := map[string]bool{"HTTP/2.0 true": true, "HTTP/1.1 true": true}
	gotBodies := map[string]bool{}
	for range 2 {
		select {
		case b := <-bodies:
			gotBodies[b] = true
		case <-time.After(waitFor):
			t.Fatal("no response")
		}
	}
	assert.Equal(t, want, gotBodies)
	for range 2 {
		select {
		case err := <-served:
			assert.ErrorIs(t, err, http.ErrServerClosed)
		case <-time.After(waitFor):
			t.Fatal("ServeHTTPS did not return")
		}
	}
}
