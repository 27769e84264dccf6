package cmux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The exported API of soheilhy/cmux v0.1.5, each identifier with its exact
// type: this file compiles only if every one is there unchanged.
var (
	_ func(net.Listener) CMux = New
	// Programs call New with the listener alone.
	_ = func(l net.Listener) CMux { return New(l) }

	_ Matcher                         = func(io.Reader) bool { return true }
	_ func(io.Reader) bool            = Matcher(nil)
	_ MatchWriter                     = func(io.Writer, io.Reader) bool { return true }
	_ func(io.Writer, io.Reader) bool = MatchWriter(nil)
	_ ErrorHandler                    = func(error) bool { return true }
	_ func(error) bool                = ErrorHandler(nil)

	_ func() Matcher                   = Any
	_ func(...string) Matcher          = PrefixMatcher
	_ func(...string) Matcher          = HTTP1Fast
	_ func() Matcher                   = HTTP1
	_ func() Matcher                   = HTTP2
	_ func(...int) Matcher             = TLS
	_ func(string, string) Matcher     = HTTP1HeaderField
	_ func(string, string) Matcher     = HTTP1HeaderFieldPrefix
	_ func(string, string) Matcher     = HTTP2HeaderField
	_ func(string, string) Matcher     = HTTP2HeaderFieldPrefix
	_ func(string, string) MatchWriter = HTTP2MatchHeaderFieldSendSettings
	_ func(string, string) MatchWriter = HTTP2MatchHeaderFieldPrefixSendSettings

	_ func(CMux, ...Matcher) net.Listener     = CMux.Match
	_ func(CMux, ...MatchWriter) net.Listener = CMux.MatchWithWriters
	_ func(CMux) error                        = CMux.Serve
	_ func(CMux)                              = CMux.Close
	_ func(CMux, ErrorHandler)                = CMux.HandleError
	_ func(CMux, time.Duration)               = CMux.SetReadTimeout
	// CMux has no more methods than these: a type with only them is one.
	_ CMux = v015Mux{}

	_ func(ErrNotMatched) string = ErrNotMatched.Error
	_ func(ErrNotMatched) bool   = ErrNotMatched.Temporary
	_ func(ErrNotMatched) bool   = ErrNotMatched.Timeout
	_ net.Error                  = ErrNotMatched{}
	_ net.Error                  = ErrListenerClosed
	_ error                      = ErrServerClosed

	_ func(*MuxConn, []byte) (int, error) = (*MuxConn).Read
	_ net.Conn                            = (*MuxConn)(nil)
	_                                     = &MuxConn{Conn: (*net.TCPConn)(nil)}
)

// v015Mux implements exactly the methods of CMux in v0.1.5, as a user's mock
// would.
type v015Mux struct{}

func (v015Mux) Match(...Matcher) net.Listener                { return nil }
func (v015Mux) MatchWithWriters(...MatchWriter) net.Listener { return nil }
func (v015Mux) Serve() error                                 { return nil }
func (v015Mux) Close()                                       {}
func (v015Mux) HandleError(ErrorHandler)                     {}
func (v015Mux) SetReadTimeout(time.Duration)                 {}

func TestAPIValues(t *testing.T) {
	checkLeaks(t)
	assert.False(t, ErrListenerClosed.Temporary())
	assert.False(t, ErrListenerClosed.Timeout())
	assert.Equal(t, "mux: listener closed", ErrListenerClosed.Error())
	assert.Equal(t, "mux: server closed", ErrServerClosed.Error())
	assert.ErrorIs(t, ErrListenerClosed, net.ErrClosed)
	assert.ErrorIs(t, ErrServerClosed, net.ErrClosed)

	var nm ErrNotMatched
	assert.True(t, nm.Temporary())
	assert.False(t, nm.Timeout())
	assert.NotEmpty(t, nm.Error())

	l := listenLoopback(t)
	m := New(l) // one argument, as v0.1.5 programs call it
	require.NotNil(t, m)
	child := m.Match(Any())
	assert.Equal(t, l.Addr(), child.Addr())
	m.Close()
	assert.NoError(t, l.Close())
}

// servedMux is a mux on a fresh 127.0.0.1 listener.
type servedMux struct {
	CMux
	root        net.Listener
	*background // once started
}

// newServedMux returns a mux on a new TCP listener; call start to serve it.
func newServedMux(t *testing.T, opts ...Option) *servedMux {
	t.Helper()
	return newServedMuxOn(t, listenLoopback(t), opts...)
}

// newServedMuxOn is newServedMux on root, which the cleanup closes.
func newServedMuxOn(t *testing.T, root net.Listener, opts ...Option) *servedMux {
	t.Cleanup(func() { root.Close() })
	return &servedMux{CMux: NewWithOptions(root, opts...), root: root}
}

// start runs Serve in the background. The cleanup closes the mux and the
// root listener and waits for Serve to return.
func (x *servedMux) start(t *testing.T) { x.background = serveMux(t, x.CMux, x.root) }

func (x *servedMux) addr() string { return x.root.Addr().String() }

// acceptWithin calls l.Accept, failing t if it blocks longer than waitFor.
func acceptWithin(t *testing.T, l net.Listener) (net.Conn, error) {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(waitFor):
		t.Fatal("Accept blocked")
		return nil, nil
	}
}

func dialAndWrite(t *testing.T, addr, data string) *net.TCPConn {
	t.Helper()
	c := dialTCP(t, addr)
	_, err := io.WriteString(c, data)
	require.NoError(t, err)
	return c
}

// readN reads n bytes from c, failing t if they do not come.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	require.NoError(t, err)
	return string(b)
}

// requireClosedByPeer fails t unless the peer of c closed it: a read sees
// EOF or a reset, no data and no timeout.
func requireClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	n, err := c.Read(make([]byte, 16))
	assert.Zero(t, n)
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read from %v: %v; want EOF or connection reset", c.LocalAddr(), err)
	}
}

// serveLines serves l with a line protocol: each connection gets one line
// back, prefixed by tag, then is closed. The cleanup closes l and waits.
func serveLines(t *testing.T, l net.Listener, tag string) {
	serveConns(t, l, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(waitFor))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(c, tag+line)
		}
	})
}

// lineRoundTrip sends line to addr and returns the answer line.
func lineRoundTrip(t *testing.T, addr, line string) string {
	t.Helper()
	c := dialAndWrite(t, addr, line+"\n")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	got, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSuffix(got, "\n")
}

// Echo is the net/rpc service of the end-to-end test.
type Echo struct{}

// Upper answers s in upper case.
func (Echo) Upper(s string, reply *string) error {
	*reply = strings.ToUpper(s)
	return nil
}

// TestAllProtocolsOnOnePort serves HTTP/1.1, net/rpc, TLS, gRPC and h2c on
// one port at once and runs concurrent clients of all of them. gRPC is the
// wire behaviour of grpc-go's client and server (grpcwire_test.go); the
// e2e module runs this test with grpc-go itself.
func TestAllProtocolsOnOnePort(t *testing.T) {
	checkLeaks(t)
	cert, roots := selfSignedCert(t)
	x := newServedMux(t)
	var errMu sync.Mutex
	var muxErrs []error
	x.HandleError(func(err error) bool {
		errMu.Lock()
		muxErrs = append(muxErrs, err)
		errMu.Unlock()
		return true
	})
	grpcL := x.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	h2cL := x.Match(HTTP2())
	tlsL := x.Match(TLS())
	httpL := x.Match(HTTP1Fast())
	rpcL := x.Match(Any())

	// gRPC health service (an HTTP/2 server that answers as grpc-go's).
	serveHealth(t, grpcL)

	tagged := func(tag string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s tls=%v", tag, r.Proto, r.TLS != nil)
		})
	}
	// h2c through net/http (x/net/http2's h2c handler: the e2e module's
	// TestXNetHTTP2), HTTP/1.1, and HTTP/1.1 over crypto/tls.
	serveHTTP(t, h2cL, h2ProtocolsServer(t, tagged("h2c"), nil))
	serveHTTP(t, httpL, &http.Server{Handler: tagged("http1")})
	serveHTTP(t, tls.NewListener(tlsL, serverTLS(cert)), &http.Server{Handler: tagged("https")})

	// net/rpc.
	rs := rpc.NewServer()
	require.NoError(t, rs.Register(Echo{}))
	serveConns(t, rpcL, func(c net.Conn) { rs.ServeConn(c) })

	x.start(t)
	addr := x.addr()

	// Clients. Every request opens a fresh connection, so each one goes
	// through the mux.
	httpGet := func(tr http.RoundTripper, url, want string) error {
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if string(b) != want {
			return fmt.Errorf("GET %s: %q, want %q", url, b, want)
		}
		return nil
	}
	clients := []func() error{
		func() error {
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			return httpGet(tr, "http://"+addr+"/", "http1 HTTP/1.1 tls=false")
		},
		func() error {
			tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: clientTLS(roots)}
			defer tr.CloseIdleConnections()
			return httpGet(tr, "https://"+addr+"/", "https HTTP/1.1 tls=true")
		},
		func() error {
			tr := h2cTransport(t, func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			})
			defer tr.CloseIdleConnections()
			return httpGet(tr, "http://"+addr+"/", "h2c HTTP/2.0 tls=false")
		},
		func() error {
			// A health check as grpc-go's client sends it: it waits for
			// the server's SETTINGS before its HEADERS.
			return grpcWireCheck(addr, 1)
		},
		func() error {
			c, err := net.DialTimeout("tcp", addr, waitFor)
			if err != nil {
				return err
			}
			rc := rpc.NewClient(c)
			defer rc.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var reply string
			if err := rc.Call("Echo.Upper", "abc", &reply); err != nil {
				return err
			}
			if reply != "ABC" {
				return fmt.Errorf("rpc: %q, want ABC", reply)
			}
			return nil
		},
	}
	names := []string{"http1", "https", "h2c", "grpc-wire", "rpc"}

	const goroutines, requests = 8, 20
	errc := make(chan error, goroutines*requests)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				k := (g + i) % len(clients)
				if err := clients[k](); err != nil {
					errc <- fmt.Errorf("%s client %d request %d: %w", names[k], g, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	errMu.Lock()
	defer errMu.Unlock()
	assert.Empty(t, muxErrs, "errors reported to the handler")
}

// TestMatchOrder checks that listeners are tried in registration order,
// the matchers of one call in argument order, and that each matcher reads
// from the first byte whatever earlier matchers read.
func TestMatchOrder(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	var mu sync.Mutex
	var calls []string
	record := func(name string, m Matcher) Matcher {
		return func(r io.Reader) bool {
			mu.Lock()
			calls = append(calls, name)
			mu.Unlock()
			return m(r)
		}
	}
	read10 := func(r io.Reader) bool {
		_, err := io.ReadFull(r, make([]byte, 10))
		assert.NoError(t, err)
		return false
	}
	startsHello := func(r io.Reader) bool {
		b := make([]byte, 5)
		_, err := io.ReadFull(r, b)
		return err == nil && string(b) == "hello"
	}
	ls := []net.Listener{
		x.Match(record("read10", read10), record("hello", startsHello), record("hey", PrefixMatcher("hey"))),
		x.Match(record("he", PrefixMatcher("he")), record("go", PrefixMatcher("go"))),
		x.Match(record("any", Any())),
	}
	chans := make([]<-chan net.Conn, len(ls))
	for i, l := range ls {
		chans[i] = acceptChan(t, l)
	}
	x.start(t)

	for _, tc := range []struct {
		data  string
		to    int
		calls []string
	}{
		{"hello, world", 0, []string{"read10", "hello"}},
		{"hey there, you", 0, []string{"read10", "hello", "hey"}},
		{"help me, please", 1, []string{"read10", "hello", "hey", "he"}},
		{"goodbye, world", 1, []string{"read10", "hello", "hey", "he", "go"}},
		{"zzzzzzzzzzzz", 2, []string{"read10", "hello", "hey", "he", "go", "any"}},
	} {
		mu.Lock()
		calls = nil
		mu.Unlock()
		dialAndWrite(t, x.addr(), tc.data)
		c := takeConn(t, chans[tc.to])
		assert.Equal(t, tc.data, readN(t, c, len(tc.data)))
		mu.Lock()
		assert.Equal(t, tc.calls, calls, "matchers called for %q", tc.data)
		mu.Unlock()
	}
}

// TestDeliveredBytesIntact sends random payloads in random splits through
// matchers that read different amounts, and checks that the delivered
// connection reads exactly the payload and writes to the client.
func TestDeliveredBytesIntact(t *testing.T) {
	checkLeaks(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	x := newServedMux(t)
	// What each matcher read of the current connection.
	var mu sync.Mutex
	reads := map[string][]byte{}
	reader := func(name string, n int) Matcher {
		return func(r io.Reader) bool {
			b := make([]byte, n)
			m, _ := io.ReadFull(r, b)
			mu.Lock()
			reads[name] = b[:m]
			mu.Unlock()
			return false
		}
	}
	readOnce := func(r io.Reader) bool {
		b := make([]byte, 4096)
		m, _ := r.Read(b)
		mu.Lock()
		reads["once"] = b[:m]
		mu.Unlock()
		return false
	}
	sizes := map[string]int{"1": 1, "1000": 1000, "17000": 17000, "70000": 70000}
	readers := x.Match(reader("1", 1), reader("1000", 1000), readOnce,
		reader("17000", 17000), reader("70000", 70000), PrefixMatcher("\x00never"))
	ch := acceptChan(t, x.Match(Any()))
	x.start(t)
	assert.Equal(t, x.root.Addr(), readers.Addr())

	for i := range 24 {
		payload := make([]byte, 1+rng.IntN(200<<10))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		// Client write sizes: 1-byte writes first, then random chunks.
		var splits []int
		for rest, k := len(payload), 0; rest > 0; k++ {
			var n int
			switch {
			case i%3 == 0 && k < 2000:
				n = 1
			case i%3 == 1:
				n = 1 + rng.IntN(64<<10)
			default:
				n = 1 + rng.IntN(300)
			}
			n = min(n, rest)
			splits = append(splits, n)
			rest -= n
		}

		c := dialTCP(t, x.addr())
		clientErr := make(chan error, 1)
		go func() {
			p := payload
			for _, n := range splits {
				if _, err := c.Write(p[:n]); err != nil {
					clientErr <- err
					return
				}
				p = p[n:]
			}
			clientErr <- c.CloseWrite()
		}()

		sc := takeConn(t, ch)
		_, isMux := sc.(*MuxConn)
		assert.True(t, isMux, "delivered %T, want *MuxConn", sc)
		require.NoError(t, sc.SetReadDeadline(time.Now().Add(30*time.Second)))
		got, err := io.ReadAll(sc)
		require.NoError(t, err)
		require.NoError(t, <-clientErr)
		require.Equal(t, len(payload), len(got), "payload %d bytes (%d writes)", len(payload), len(splits))
		if !bytes.Equal(payload, got) {
			d := 0
			for payload[d] == got[d] {
				d++
			}
			t.Fatalf("payload of %d bytes: first difference at byte %d", len(payload), d)
		}

		mu.Lock()
		for name, b := range reads {
			assert.True(t, bytes.HasPrefix(payload, b), "matcher %s read bytes that are not the payload's first", name)
			if n, ok := sizes[name]; ok {
				assert.Equal(t, min(n, len(payload), DefaultMaxSniffBytes), len(b), "bytes matcher %s read", name)
			} else {
				assert.NotEmpty(t, b)
			}
		}
		clear(reads)
		mu.Unlock()

		// Writes go to the client.
		sum := sha256.Sum256(got)
		_, err = sc.Write(sum[:])
		require.NoError(t, err)
		require.NoError(t, sc.Close())
		want := sha256.Sum256(payload)
		assert.Equal(t, string(want[:]), readN(t, c, len(want)))
		c.Close()
	}
}

// TestCloseStopsServe closes a mux while clients are being matched.
func TestCloseStopsServe(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	const silent = 20
	matching := make(chan struct{}, silent)
	l := x.Match(func(r io.Reader) bool {
		matching <- struct{}{}
		_, err := r.Read(make([]byte, 1))
		return err == nil
	})
	x.start(t)

	clients := make([]net.Conn, silent)
	for i := range clients {
		clients[i] = dialTCP(t, x.addr())
	}
	for range silent {
		select {
		case <-matching:
		case <-time.After(waitFor):
			t.Fatal("silent clients were not being matched")
		}
	}

	x.Close()
	err := x.wait(t, 2*time.Second)
	require.Error(t, err)
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.ErrorIs(t, err, ErrServerClosed)
	assert.Contains(t, err.Error(), "use of closed network connection")
	for _, c := range clients {
		requireClosedByPeer(t, c)
	}

	_, err = acceptWithin(t, l)
	assert.ErrorIs(t, err, ErrServerClosed)
	assert.ErrorIs(t, err, net.ErrClosed)

	// The root listener is the caller's: it still accepts.
	tl := x.root.(*net.TCPListener)
	require.NoError(t, tl.SetDeadline(time.Now().Add(waitFor)))
	c := dialAndWrite(t, x.addr(), "direct")
	rc, err := tl.Accept()
	require.NoError(t, err)
	assert.Equal(t, "direct", readN(t, rc, 6))
	require.NoError(t, rc.Close())
	requireClosedByPeer(t, c)
	assert.NoError(t, x.root.Close())
}

// TestRootClose closes the root listener: Serve returns, the connections
// queued for children and never accepted are closed, and children report
// ErrListenerClosed.
func TestRootClose(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	l := x.Match(PrefixMatcher("q"))
	idle := x.Match(Any())
	x.start(t)

	const queued = 3
	var clients []net.Conn
	for i := range queued {
		clients = append(clients, dialAndWrite(t, x.addr(), fmt.Sprint("q", i)))
	}
	ml := l.(*muxListener)
	for deadline := time.Now().Add(waitFor); len(ml.connc) < queued; time.Sleep(5 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "connections not queued")
	}

	require.NoError(t, x.root.Close())
	err := x.wait(t, waitFor)
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.Contains(t, err.Error(), "use of closed network connection")

	for _, c := range clients {
		requireClosedByPeer(t, c)
	}
	_, err = acceptWithin(t, l)
	assert.ErrorIs(t, err, ErrListenerClosed)
	_, err = acceptWithin(t, idle)
	assert.ErrorIs(t, err, ErrListenerClosed)
}

// TestCloseOneChildClosesRoot shuts down the server of one child, as
// programs end their mux: by default that closes the root listener, so
// Serve returns and every child reports closed.
func TestCloseOneChildClosesRoot(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	httpL := x.Match(HTTP1Fast())
	anyL := x.Match(Any())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	serveHTTP(t, httpL, hs)
	x.start(t)

	// A connection queued for anyL, whose server never accepts it.
	queued := dialAndWrite(t, x.addr(), "other")
	ml := anyL.(*muxListener)
	for deadline := time.Now().Add(waitFor); len(ml.connc) < 1; time.Sleep(5 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "connection not queued")
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, hs.Shutdown(ctx)) // closes httpL, and so the root

	err := x.wait(t, waitFor)
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.Contains(t, err.Error(), "use of closed network connection")
	requireClosedByPeer(t, queued)
	_, err = acceptWithin(t, anyL)
	assert.ErrorIs(t, err, ErrListenerClosed)
	_, err = acceptWithin(t, httpL)
	assert.ErrorIs(t, err, ErrListenerClosed)

	// The root listener is closed: a second Close of a child reports it,
	// as the root's second Close does.
	err = anyL.Close()
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = net.DialTimeout("tcp", x.addr(), waitFor)
	assert.Error(t, err, "the port still accepts")
}

// TestCloseChildBeforeServe: a child closed before Serve runs closes the
// root, so Serve returns at once, and the closed child's Accept does not
// wait for Serve.
func TestCloseChildBeforeServe(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	l := x.Match(Any())
	require.NoError(t, l.Close())
	_, err := acceptWithin(t, l)
	assert.ErrorIs(t, err, ErrListenerClosed)
	x.start(t)
	err = x.wait(t, waitFor)
	assert.ErrorIs(t, err, net.ErrClosed)
}

// TestCloseOneChildIndependent shuts down the server of one child of a mux
// with IndependentListeners: the others go on.
func TestCloseOneChildIndependent(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t, IndependentListeners())
	httpL := x.Match(HTTP1Fast())
	rawL := x.Match(PrefixMatcher("RAW"))
	anyL := x.Match(Any())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	serveHTTP(t, httpL, hs)
	serveLines(t, rawL, "raw:")
	serveLines(t, anyL, "any:")
	x.start(t)

	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitFor}
	resp, err := client.Get("http://" + x.addr() + "/")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "ok", string(b))

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, hs.Shutdown(ctx)) // closes httpL

	assert.Equal(t, "raw:RAW 1", lineRoundTrip(t, x.addr(), "RAW 1"))
	assert.Equal(t, "any:other", lineRoundTrip(t, x.addr(), "other"))

	for range 5 {
		c := dialAndWrite(t, x.addr(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		requireClosedByPeer(t, c)
	}
	_, err = acceptWithin(t, httpL)
	assert.Error(t, err)
	assert.ErrorIs(t, err, net.ErrClosed)

	assert.Equal(t, "raw:RAW 2", lineRoundTrip(t, x.addr(), "RAW 2"))
}

func TestErrorHandler(t *testing.T) {
	checkLeaks(t)
	t.Run("NotMatched", func(t *testing.T) {
		checkLeaks(t)
		x := newServedMux(t)
		errs := errorChan(x, 10)
		ch := acceptChan(t, x.Match(PrefixMatcher("OK")))
		x.start(t)

		c := dialAndWrite(t, x.addr(), "NOPE")
		err := nextErr(t, errs)
		var nm ErrNotMatched
		require.ErrorAs(t, err, &nm)
		assert.Contains(t, err.Error(), c.LocalAddr().String())
		requireClosedByPeer(t, c)

		dialAndWrite(t, x.addr(), "OK!")
		assert.Equal(t, "OK!", readN(t, takeConn(t, ch), 3))
	})

	t.Run("StopServing", func(t *testing.T) {
		checkLeaks(t)
		x := newServedMux(t)
		x.HandleError(func(error) bool { return false })
		x.Match(PrefixMatcher("OK"))
		x.start(t)

		// As in v0.1.5, refusing the error closes the root listener:
		// Serve returns its Accept error and the port is closed.
		c := dialAndWrite(t, x.addr(), "NOPE")
		err := x.wait(t, waitFor)
		assert.ErrorIs(t, err, net.ErrClosed)
		assert.Contains(t, err.Error(), "use of closed network connection")
		requireClosedByPeer(t, c)
		_, err = net.DialTimeout("tcp", x.addr(), waitFor)
		assert.Error(t, err, "the port still accepts")
	})

	t.Run("MatcherPanic", func(t *testing.T) {
		checkLeaks(t)
		x := newServedMux(t)
		errs := errorChan(x, 10)
		x.Match(func(r io.Reader) bool {
			b := make([]byte, 1)
			if _, err := io.ReadFull(r, b); err == nil && b[0] == 'P' {
				panic("matcher bug")
			}
			return false
		})
		ch := acceptChan(t, x.Match(PrefixMatcher("ok")))
		x.start(t)

		pc := dialAndWrite(t, x.addr(), "PANIC")
		dialAndWrite(t, x.addr(), "ok1")
		assert.Equal(t, "ok1", readN(t, takeConn(t, ch), 3))
		assert.ErrorIs(t, nextErr(t, errs), ErrMatcherPanic)
		requireClosedByPeer(t, pc)
		dialAndWrite(t, x.addr(), "ok2")
		assert.Equal(t, "ok2", readN(t, takeConn(t, ch), 3))
		assert.Empty(t, errs)
	})
}

func TestMatchTimeout(t *testing.T) {
	checkLeaks(t)
	// A silent client falls through to Any(), and the delivered connection
	// has no deadline left: a read waits for the client's late bytes.
	fallThrough := func(t *testing.T, x *servedMux) {
		x.Match(HTTP1Fast())
		ch := acceptChan(t, x.Match(Any()))
		x.start(t)

		c := dialTCP(t, x.addr())
		sc := takeConn(t, ch)
		late := time.AfterFunc(300*time.Millisecond, func() { io.WriteString(c, "late") })
		defer late.Stop()
		guard := time.AfterFunc(waitFor, func() { sc.Close() })
		defer guard.Stop()
		b := make([]byte, 4)
		_, err := io.ReadFull(sc, b)
		require.NoError(t, err)
		assert.Equal(t, "late", string(b))
	}
	t.Run("SetReadTimeout", func(t *testing.T) {
		checkLeaks(t)
		x := newServedMux(t)
		x.SetReadTimeout(100 * time.Millisecond)
		fallThrough(t, x)
	})
	t.Run("MatchTimeoutOption", func(t *testing.T) {
		checkLeaks(t)
		fallThrough(t, newServedMux(t, MatchTimeout(100*time.Millisecond)))
	})
	t.Run("NoAny", func(t *testing.T) {
		checkLeaks(t)
		x := newServedMux(t)
		x.SetReadTimeout(100 * time.Millisecond)
		errs := errorChan(x, 10)
		x.Match(HTTP1Fast())
		x.start(t)

		c := dialTCP(t, x.addr())
		var nm ErrNotMatched
		assert.ErrorAs(t, nextErr(t, errs), &nm)
		requireClosedByPeer(t, c)
	})
}

func TestMaxSniffBytes(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t, MaxSniffBytes(1024))
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	x.Match(func(r io.Reader) bool {
		b, err := io.ReadAll(r)
		res <- result{len(b), err}
		return false
	})
	ch := acceptChan(t, x.Match(Any()))
	x.start(t)

	junk := make([]byte, 4<<10)
	for i := range junk {
		junk[i] = byte(i*7 + i>>8)
	}
	c := dialTCP(t, x.addr())
	_, err := c.Write(junk)
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())

	select {
	case r := <-res:
		assert.Equal(t, 1024, r.n)
		assert.ErrorIs(t, r.err, ErrSniffLimit)
	case <-time.After(waitFor):
		t.Fatal("matcher not called")
	}
	sc := takeConn(t, ch)
	require.NoError(t, sc.SetReadDeadline(time.Now().Add(waitFor)))
	got, err := io.ReadAll(sc)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(junk, got), "delivered %d bytes, not the 4 KiB sent", len(got))
}

// TestDeliveredConnTCP checks what a delivered TCP connection can do
// besides Read and Write.
func TestDeliveredConnTCP(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	ch := acceptChan(t, x.Match(PrefixMatcher("CAP")))
	x.start(t)

	c := dialAndWrite(t, x.addr(), "CAP1")
	sc := takeConn(t, ch)
	assert.Equal(t, "CAP1", readN(t, sc, 4))

	nc, ok := sc.(interface{ NetConn() net.Conn })
	require.True(t, ok, "%T has no NetConn", sc)
	_, ok = nc.NetConn().(*net.TCPConn)
	assert.True(t, ok, "NetConn() is %T, want *net.TCPConn", nc.NetConn())
	_, ok = sc.(interface{ ConnectionState() tls.ConnectionState })
	assert.False(t, ok, "a plain TCP connection has ConnectionState")

	// Half-close: the client reads EOF and can still write.
	cw, ok := sc.(interface{ CloseWrite() error })
	require.True(t, ok, "%T has no CloseWrite", sc)
	require.NoError(t, cw.CloseWrite())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, io.EOF)
	_, err = io.WriteString(c, "after")
	require.NoError(t, err)
	assert.Equal(t, "after", readN(t, sc, 5))

	// ReadFrom: io.Copy from a file sends the file.
	c2 := dialAndWrite(t, x.addr(), "CAP2")
	sc2 := takeConn(t, ch)
	assert.Equal(t, "CAP2", readN(t, sc2, 4))
	_, ok = sc2.(io.ReaderFrom)
	require.True(t, ok, "%T is not an io.ReaderFrom", sc2)
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i ^ i>>9)
	}
	f, err := os.CreateTemp(t.TempDir(), "sendfile")
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(data)
	require.NoError(t, err)
	_, err = f.Seek(0, io.SeekStart)
	require.NoError(t, err)
	type result struct {
		b   []byte
		err error
	}
	recv := make(chan result, 1)
	go func() {
		_ = c2.SetReadDeadline(time.Now().Add(waitFor))
		b, err := io.ReadAll(c2)
		recv <- result{b, err}
	}()
	n64, err := io.Copy(sc2, f)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n64)
	require.NoError(t, sc2.Close())
	r := <-recv
	require.NoError(t, r.err)
	assert.True(t, bytes.Equal(data, r.b), "client got %d bytes, want the %d of the file", len(r.b), len(data))
}

// TestDeliveredConnTLS muxes inside TLS: the delivered connections carry
// the TLS state, and net/http fills Request.TLS.
func TestDeliveredConnTLS(t *testing.T) {
	checkLeaks(t)
	for _, expose := range []bool{false, true} {
		t.Run(fmt.Sprintf("ExposeConnectionState=%v", expose), func(t *testing.T) {
			checkLeaks(t)
			testDeliveredConnTLS(t, expose)
		})
	}
}

// testDeliveredConnTLS: on a TLS root listener the delivered connection has
// ConnectionState only with ExposeConnectionState (v0.1.5 never had it).
func testDeliveredConnTLS(t *testing.T, expose bool) {
	cert, roots := selfSignedCert(t)
	var opts []Option
	if expose {
		opts = append(opts, ExposeConnectionState())
	}
	x := newServedMuxOn(t, tls.NewListener(listenLoopback(t), serverTLS(cert)), opts...)
	httpL := x.Match(HTTP1Fast())
	rawCh := acceptChan(t, x.Match(PrefixMatcher("RAW")))
	connHasState := make(chan bool, 1)
	serveHTTP(t, httpL, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "tls=%v", r.TLS != nil && r.TLS.HandshakeComplete)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			_, ok := c.(interface{ ConnectionState() tls.ConnectionState })
			select {
			case connHasState <- ok:
			default:
			}
			return ctx
		},
	})
	x.start(t)

	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: clientTLS(roots)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitFor}).Get("https://" + x.addr() + "/")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, fmt.Sprintf("tls=%v", expose), string(b))
	assert.Equal(t, expose, <-connHasState, "delivered connection has ConnectionState")

	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", x.addr(), clientTLS(roots))
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "RAW")
	require.NoError(t, err)
	sc := takeConn(t, rawCh)
	assert.Equal(t, "RAW", readN(t, sc, 3))
	cs, ok := sc.(interface{ ConnectionState() tls.ConnectionState })
	require.Equal(t, expose, ok, "%T has ConnectionState", sc)
	if expose {
		assert.True(t, cs.ConnectionState().HandshakeComplete)
	} else {
		_, isMuxConn := sc.(*MuxConn)
		assert.True(t, isMuxConn, "delivered %T, want *MuxConn", sc)
	}
	nc, ok := sc.(interface{ NetConn() net.Conn })
	require.True(t, ok, "%T has no NetConn", sc)
	_, ok = nc.NetConn().(*tls.Conn)
	assert.True(t, ok, "NetConn() is %T, want *tls.Conn", nc.NetConn())
}
