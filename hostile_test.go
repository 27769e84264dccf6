package cmux

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/cmux-go/cmux/internal/wiretest"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/h2"
)

// Hostile and broken clients: every bound of the matching phase, deadlines,
// panics, shutdown under load, bursts, and a property test of delivery.

const (
	hoWait   = 5 * time.Second // bound of every wait for something that must happen
	hoPrompt = 2 * time.Second // a normal client must be served within this
	hoCap    = 20000           // MaxSniffBytes of the bound tests
)

// hoListener is a TCP listener whose connections count the bytes the
// server side reads from them, per client address. It keeps SetDeadline,
// with which the mux interrupts a blocked Accept.
type hoListener struct {
	*net.TCPListener
	accepted atomic.Int64
	mu       sync.Mutex
	read     map[string]*atomic.Int64
}

func hoListen(t testing.TB) *hoListener {
	t.Helper()
	return &hoListener{TCPListener: listenLoopback(t).(*net.TCPListener), read: map[string]*atomic.Int64{}}
}

func (l *hoListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err != nil {
		return nil, err
	}
	n := new(atomic.Int64)
	l.mu.Lock()
	l.read[c.RemoteAddr().String()] = n
	l.mu.Unlock()
	l.accepted.Add(1)
	return &hoConn{Conn: c, n: n}, nil
}

// readFrom returns the bytes the server side read from client's
// connection, -1 if it was not accepted yet.
func (l *hoListener) readFrom(client net.Conn) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.read[client.LocalAddr().String()]; ok {
		return n.Load()
	}
	return -1
}

type hoConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *hoConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// hoMux is a served mux on a counting listener; its error handler sends
// every error to errs.
type hoMux struct {
	*cMux
	root *hoListener
	errs chan error
	run  *background // once serving
}

// newHoMux returns a mux; serve starts it.
func newHoMux(t testing.TB, opts ...Option) *hoMux {
	t.Helper()
	root := hoListen(t)
	x := &hoMux{cMux: NewWithOptions(root, opts...).(*cMux), root: root}
	x.errs = errorChan(x, 4096)
	return x
}

// serve runs Serve in the background. The cleanup closes the mux and the
// root listener and waits for Serve.
func (x *hoMux) serve(t testing.TB) { x.run = serveMux(t, x, x.root) }

func (x *hoMux) addr() string { return x.root.Addr().String() }

// matching returns the number of connections being matched.
func (x *hoMux) matching() int {
	x.connMu.Lock()
	defer x.connMu.Unlock()
	return len(x.inflight)
}

// waitServe returns what Serve returned, failing t if it does not return
// within hoWait.
func (x *hoMux) waitServe(t testing.TB) error {
	t.Helper()
	return x.run.wait(t, hoWait)
}

// hoEventually polls cond every 5ms until it holds, failing t after hoWait.
func hoEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(hoWait); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hoDialMany dials n connections with a few workers, each writing payload
// (if any). The cleanup closes them.
func hoDialMany(t testing.TB, addr string, n int, payload string) []*net.TCPConn {
	t.Helper()
	conns := make([]*net.TCPConn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var next atomic.Int64
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				c, err := net.DialTimeout("tcp", addr, hoWait)
				if err != nil {
					errc <- err
					return
				}
				conns[i] = c.(*net.TCPConn)
				if payload != "" {
					if _, err := io.WriteString(c, payload); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	require.NoError(t, <-errc)
	return conns
}

// hoRequireClosed fails t unless the server closed c: reads see EOF or a
// reset within hoWait (after whatever the mux wrote), not a timeout.
func hoRequireClosed(t testing.TB, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(hoWait)))
	buf := make([]byte, 512)
	for range 64 {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read from %v: %v; want EOF or connection reset", c.LocalAddr(), err)
		}
		return
	}
	t.Errorf("%v: the server keeps writing", c.LocalAddr())
}

// hoRequireOpen fails t unless client and server, the two ends of one
// delivered connection, still exchange bytes both ways.
func hoRequireOpen(t testing.TB, client, server net.Conn) {
	t.Helper()
	deadline := time.Now().Add(hoWait)
	require.NoError(t, client.SetDeadline(deadline))
	require.NoError(t, server.SetDeadline(deadline))
	_, err := io.WriteString(client, "ping")
	require.NoError(t, err)
	b := make([]byte, 4)
	_, err = io.ReadFull(server, b)
	require.NoError(t, err, "server side of %v", client.LocalAddr())
	require.Equal(t, "ping", string(b))
	_, err = io.WriteString(server, "pong")
	require.NoError(t, err)
	_, err = io.ReadFull(client, b)
	require.NoError(t, err, "client %v", client.LocalAddr())
	require.Equal(t, "pong", string(b))
	require.NoError(t, client.SetDeadline(time.Time{}))
	require.NoError(t, server.SetDeadline(time.Time{}))
}

// hoHTTP serves HTTP on l and returns a function that makes one request,
// with the header X-Normal: yes, and fails t unless the answer comes
// within hoPrompt.
func hoHTTP(t testing.TB, l net.Listener) func() {
	serveHTTP(t, l, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	})})
	tr := &http.Transport{DisableKeepAlives: true}
	client := &http.Client{Transport: tr, Timeout: hoPrompt}
	t.Cleanup(tr.CloseIdleConnections)
	addr := l.Addr().String()
	return func() {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addr+"/normal", nil)
		require.NoError(t, err)
		req.Header.Set("X-Normal", "yes")
		start := time.Now()
		resp, err := client.Do(req)
		require.NoError(t, err, "a normal client was not served within %v", hoPrompt)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, "ok /normal", string(body))
		t.Logf("normal request served in %v", time.Since(start).Round(time.Millisecond))
	}
}

// hoFlooder is a hostile client: it sends first, and on go on, chunks of
// an endless stream until a write fails, hoFloodMax bytes are sent or
// hoWait has passed. It keeps the first bytes it sent.
type hoFlooder struct {
	c    *net.TCPConn
	mu   sync.Mutex
	sent []byte // the first hoKeep bytes sent
	goOn chan struct{}
	done chan struct{} // closed when it stopped sending
	err  error         // why it stopped; nil if it sent hoFloodMax
}

const (
	hoFloodMax = 16 << 20
	hoKeep     = 1 << 20
)

func hoFlood(t testing.TB, c *net.TCPConn, first []byte, more func(i int) []byte) *hoFlooder {
	f := &hoFlooder{c: c, goOn: make(chan struct{}), done: make(chan struct{})}
	f.sent = append(f.sent, first...)
	_, err := c.Write(first)
	require.NoError(t, err)
	if more == nil {
		close(f.done)
		return f
	}
	go func() {
		defer close(f.done)
		<-f.goOn
		total := len(first)
		_ = c.SetWriteDeadline(time.Now().Add(hoWait))
		for i := 0; total < hoFloodMax; i++ {
			chunk := more(i)
			f.mu.Lock()
			if len(f.sent) < hoKeep {
				f.sent = append(f.sent, chunk...)
			}
			f.mu.Unlock()
			n, err := c.Write(chunk)
			total += n
			if err != nil {
				f.err = err
				return
			}
		}
	}()
	t.Cleanup(func() {
		f.start()
		c.Close()
		select {
		case <-f.done:
		case <-time.After(hoWait):
			t.Error("flooder did not stop")
		}
	})
	return f
}

func (f *hoFlooder) start() {
	select {
	case <-f.goOn:
	default:
		close(f.goOn)
	}
}

// prefix returns the first n bytes sent, waiting up to hoWait for them.
func (f *hoFlooder) prefix(t testing.TB, n int) []byte {
	t.Helper()
	var b []byte
	hoEventually(t, "bytes sent", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.sent) >= n {
			b = bytes.Clone(f.sent[:n])
			return true
		}
		return false
	})
	return b
}

// hoRepeat returns a generator of chunks of s repeated n times.
func hoRepeat(s []byte, n int) func(int) []byte {
	chunk := bytes.Repeat(s, n)
	return func(int) []byte { return chunk }
}

// hoH2 returns the preface and a SETTINGS frame, followed by raw.
func hoH2(raw ...[]byte) []byte {
	b := []byte(h2.Preface)
	b = append(b, 0, 0, 6, h2.FrameSettings, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100)
	for _, r := range raw {
		b = append(b, r...)
	}
	return b
}

func hoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

type hoCase struct {
	name   string
	first  []byte             // sent first; the normal client is served once the mux has read it
	more   func(i int) []byte // then sent endlessly; nil: the client stays silent
	target func(m CMux, got chan<- error) net.Listener
	// what ends the matching: "limit" (the mux read exactly hoCap bytes),
	// "frame" (decided on the bytes sent, without waiting), "timeout"
	// (after MatchTimeout, 200ms)
	bound string
	// deliver: the target listener gets the connection.
	deliver bool
}

func hoH2Target(m CMux, _ chan<- error) net.Listener {
	return m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"), readOnly(HTTP2HeaderFieldPrefix(":path", "/x")))
}

func hoCases() []hoCase {
	h1 := "GET / HTTP/1.1\r\nHost: x\r\nX-Long: "
	settings := wiretest.Frame(h2.FrameSettings, 0, 0, []byte{0, 4, 0, 1, 0, 0})
	cont := wiretest.Frame(h2.FrameContinuation, 0, 1, bytes.Repeat([]byte{'a'}, 4087))
	return []hoCase{{
		// (a) An endless header line, to header-field matchers: the normal
		// listener's and the target's.
		name:  "EndlessHTTP1HeaderLine",
		first: []byte(h1 + strings.Repeat("a", 8000)),
		more:  hoRepeat([]byte("a"), 4096),
		target: func(m CMux, _ chan<- error) net.Listener {
			return m.Match(HTTP1HeaderFieldPrefix("X-Long", "b"))
		},
		bound: "limit",
	}, {
		// (b) SETTINGS frames for ever, never a HEADERS frame.
		name:   "SettingsFlood",
		first:  hoH2(bytes.Repeat(settings, 533)),
		more:   hoRepeat(settings, 273),
		target: hoH2Target,
		bound:  "limit",
	}, {
		// (c) A header block that never ends.
		name:   "EndlessContinuation",
		first:  hoH2(wiretest.Frame(h2.FrameHeaders, 0, 1, []byte{0x82}), cont, cont),
		more:   hoRepeat(cont, 1),
		target: hoH2Target,
		bound:  "limit",
	}, {
		// (d) A frame header announcing 16 MiB, then silence: rejected on
		// the header, long before MatchTimeout (a minute here).
		name:   "Frame16MiB",
		first:  hoH2(wiretest.FrameHeader(1<<24-1, h2.FrameHeaders, h2.FlagEndHeaders, 1)),
		target: hoH2Target,
		bound:  "frame",
	}, {
		name:   "FirstFrame16MiB",
		first:  append([]byte(h2.Preface), wiretest.FrameHeader(1<<24-1, h2.FrameSettings, 0, 0)...),
		target: hoH2Target,
		bound:  "frame",
	}, {
		// (e) A TLS record that never ends, behind a user matcher that
		// reads all it can: it gets hoCap bytes and ErrSniffLimit, and
		// TLS() still matches.
		name:  "EndlessClientHello",
		first: append([]byte{0x16, 3, 1, 0xff, 0xff, 1, 0, 0xff, 0xfb, 3, 3}, hoRandom(1, 8000)...),
		more: func(i int) []byte {
			return hoRandom(uint64(i+2), 4096)
		},
		target: func(m CMux, got chan<- error) net.Listener {
			readAll := func(r io.Reader) bool {
				b, err := io.ReadAll(r)
				if len(b) != hoCap {
					err = fmt.Errorf("read %d bytes, want %d: %v", len(b), hoCap, err)
				} else if !errors.Is(err, ErrSniffLimit) {
					err = fmt.Errorf("read all with %v, want ErrSniffLimit", err)
				} else {
					err = nil
				}
				got <- err
				return false
			}
			return m.Match(readAll, TLS())
		},
		bound:   "limit",
		deliver: true,
	}, {
		// (f) A client that stops mid-frame and stays silent.
		name:   "StopsMidFrame",
		first:  hoH2(append(wiretest.FrameHeader(100, h2.FrameHeaders, h2.FlagEndHeaders, 1), []byte("0123456789")...)),
		target: hoH2Target,
		bound:  "timeout",
	}, {
		name:  "StopsMidHTTP1Header",
		first: []byte(h1 + "aaaa"),
		target: func(m CMux, _ chan<- error) net.Listener {
			return m.Match(HTTP1HeaderField("X-Long", "aaaa"))
		},
		bound: "timeout",
	}}
}

// TestBoundHostileClients: each hostile client costs the mux at most
// MaxSniffBytes and MatchTimeout, ends in a clear outcome (closed with
// ErrNotMatched reported, or delivered to Any() if there is one), and a
// normal HTTP client on the same mux is served promptly meanwhile.
func TestBoundHostileClients(t *testing.T) {
	checkLeaks(t)
	for _, tc := range hoCases() {
		for _, withAny := range []bool{false, true} {
			if tc.deliver && withAny {
				continue
			}
			name := tc.name + "/NotMatched"
			if withAny {
				name = tc.name + "/Any"
			}
			if tc.deliver {
				name = tc.name + "/Delivered"
			}
			t.Run(name, func(t *testing.T) {
				checkLeaks(t)
				hoRunCase(t, tc, withAny)
			})
		}
	}
}

func hoRunCase(t *testing.T, tc hoCase, withAny bool) {
	timeout := time.Minute
	if tc.bound == "timeout" {
		timeout = 200 * time.Millisecond
	}
	x := newHoMux(t, MaxSniffBytes(hoCap), MatchTimeout(timeout))
	// The normal listener comes first: the hostile client goes through
	// its header matcher, and the normal client need not go through the
	// target's (a user matcher that reads all would hold it).
	get := hoHTTP(t, x.Match(HTTP1HeaderField("X-Normal", "yes")))
	targetErr := make(chan error, 10)
	targetCh := acceptChan(t, tc.target(x, targetErr))
	var anyCh <-chan net.Conn
	if withAny {
		anyCh = acceptChan(t, x.Match(Any()))
	}
	x.serve(t)

	start := time.Now()
	c := dialTCP(t, x.addr())
	f := hoFlood(t, c, tc.first, tc.more)
	// The hostile client is being matched, the mux has read what it
	// sent: other clients are served.
	hoEventually(t, "the mux reads the first bytes", func() bool { return x.root.readFrom(c) >= int64(len(tc.first)) })
	get()
	f.start()

	wantRead := int64(len(tc.first))
	if tc.bound == "limit" {
		wantRead = hoCap
	}
	var delivered net.Conn
	switch {
	case tc.deliver:
		delivered = takeConn(t, targetCh)
		select {
		case err := <-targetErr:
			require.NoError(t, err, "the user matcher")
		case <-time.After(hoWait):
			t.Fatal("user matcher not run")
		}
	case withAny:
		delivered = takeConn(t, anyCh)
	default:
		select {
		case err := <-x.errs:
			var nm ErrNotMatched
			require.ErrorAs(t, err, &nm)
			assert.Contains(t, err.Error(), c.LocalAddr().String())
		case <-time.After(hoWait):
			t.Fatal("no ErrNotMatched reported")
		}
		hoRequireClosed(t, c)
	}
	elapsed := time.Since(start)
	// What the mux read while matching, exactly.
	assert.Equal(t, wantRead, x.root.readFrom(c), "bytes the mux read")
	if tc.bound == "timeout" {
		assert.GreaterOrEqual(t, elapsed, timeout, "decided before MatchTimeout")
	}

	if delivered != nil {
		// The delivered connection reads what the client sent, from the
		// first byte: the sniffed bytes and more.
		n := int(wantRead)
		if tc.more != nil {
			n += 10000
		}
		require.NoError(t, delivered.SetReadDeadline(time.Now().Add(hoWait)))
		got := make([]byte, n)
		_, err := io.ReadFull(delivered, got)
		require.NoError(t, err)
		require.True(t, bytes.Equal(f.prefix(t, n), got), "the delivered connection does not read what the client sent")
		delivered.Close()
	}
	select {
	case <-f.done:
		if tc.more != nil && f.err == nil {
			t.Errorf("the client sent %d bytes without the server closing", hoFloodMax)
		}
	case <-time.After(hoWait):
		t.Fatal("the hostile client's writes did not fail after the server closed")
	}
	get()
	select {
	case err := <-x.errs:
		t.Errorf("unexpected error reported: %v", err)
	case c := <-targetCh:
		t.Errorf("connection from %v delivered to the target", c.RemoteAddr())
	default:
	}
}

// TestBoundSniffLimitDefault: without options, the mux reads exactly
// DefaultMaxSniffBytes from a client whose header line never ends.
func TestBoundSniffLimitDefault(t *testing.T) {
	checkLeaks(t)
	x := newHoMux(t)
	x.Match(HTTP1HeaderField("X-Normal", "yes"))
	x.serve(t)
	c := dialTCP(t, x.addr())
	f := hoFlood(t, c, []byte("GET / HTTP/1.1\r\nX-Long: "), hoRepeat([]byte("b"), 8192))
	f.start()
	select {
	case err := <-x.errs:
		var nm ErrNotMatched
		require.ErrorAs(t, err, &nm)
	case <-time.After(hoWait):
		t.Fatal("no ErrNotMatched reported")
	}
	assert.Equal(t, int64(DefaultMaxSniffBytes), x.root.readFrom(c))
	hoRequireClosed(t, c)
}

// TestDeadlines: the mux's read deadline is gone from the delivered
// connection, and deadlines the server sets afterwards are honoured.
func TestDeadlines(t *testing.T) {
	checkLeaks(t)
	readDL := func(t *testing.T, sc net.Conn, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		require.NoError(t, sc.SetReadDeadline(start.Add(d)))
		guard := time.AfterFunc(hoWait, func() { sc.Close() })
		defer guard.Stop()
		n, err := sc.Read(make([]byte, 16))
		elapsed := time.Since(start)
		assert.Zero(t, n)
		var ne net.Error
		require.ErrorAs(t, err, &ne, "read did not time out (%v after %v)", err, elapsed)
		require.True(t, ne.Timeout(), "read: %v", err)
		assert.GreaterOrEqual(t, elapsed, d-5*time.Millisecond)
		assert.Less(t, elapsed, 2*time.Second, "the deadline the server set was not honoured")
		require.NoError(t, sc.SetReadDeadline(time.Time{}))
		return elapsed
	}
	readLate := func(t *testing.T, c, sc net.Conn, after time.Duration) {
		t.Helper()
		late := time.AfterFunc(after, func() { io.WriteString(c, "late") })
		defer late.Stop()
		guard := time.AfterFunc(hoWait, func() { sc.Close() })
		defer guard.Stop()
		b := make([]byte, 4)
		_, err := io.ReadFull(sc, b)
		require.NoError(t, err, "a read after the mux's timeout")
		assert.Equal(t, "late", string(b))
	}

	t.Run("ClearedBeforeDelivery", func(t *testing.T) {
		checkLeaks(t)
		x := newHoMux(t, MatchTimeout(200*time.Millisecond))
		ch := acceptChan(t, x.Match(PrefixMatcher("DL")))
		x.serve(t)
		c := dialTCP(t, x.addr())
		io.WriteString(c, "DL")
		sc := takeConn(t, ch)
		b := make([]byte, 2)
		_, err := io.ReadFull(sc, b)
		require.NoError(t, err)
		// Past the mux's 200ms, the delivered connection still reads.
		readLate(t, c, sc, 400*time.Millisecond)
	})

	t.Run("ServerDeadlineHonoured", func(t *testing.T) {
		checkLeaks(t)
		x := newHoMux(t, MatchTimeout(3*time.Second))
		ch := acceptChan(t, x.Match(PrefixMatcher("DL")))
		x.serve(t)
		c := dialTCP(t, x.addr())
		io.WriteString(c, "DL")
		sc := takeConn(t, ch)
		// The deadline is set while the sniffed bytes wait to be read:
		// they come at once, then the read times out at the server's
		// 100ms, not at the mux's 3s and not never.
		require.NoError(t, sc.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		b := make([]byte, 2)
		_, err := io.ReadFull(sc, b)
		require.NoError(t, err)
		assert.Equal(t, "DL", string(b))
		n, err := sc.Read(b)
		assert.Zero(t, n)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout())
		readDL(t, sc, 100*time.Millisecond)
		readLate(t, c, sc, 50*time.Millisecond)
	})

	t.Run("AfterMuxTimeout", func(t *testing.T) {
		// A silent client falls through to Any() when the mux's deadline
		// fires; the server's own deadline then works as usual.
		checkLeaks(t)
		x := newHoMux(t, MatchTimeout(200*time.Millisecond))
		x.Match(HTTP1Fast())
		ch := acceptChan(t, x.Match(Any()))
		x.serve(t)
		c := dialTCP(t, x.addr())
		sc := takeConn(t, ch)
		readDL(t, sc, 100*time.Millisecond)
		readLate(t, c, sc, 300*time.Millisecond)
	})

	t.Run("HTTP2AfterMuxSettings", func(t *testing.T) {
		// On a connection where the mux wrote SETTINGS, reads go through
		// the filter of the client's ACK; a timeout there is not sticky.
		checkLeaks(t)
		x := newHoMux(t, MatchTimeout(3*time.Second))
		ch := acceptChan(t, x.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")))
		x.serve(t)
		c := dialTCP(t, x.addr())
		first := hoH2()
		_, err := c.Write(first)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(hoWait)))
		got := make([]byte, len(h2.MuxSettings))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		require.Equal(t, h2.MuxSettings, got)
		headers := btH2Flight(t, false, "content-type", "application/grpc")[len(h2.Preface)+h2.FrameHeaderLen+6:]
		_, err = c.Write(headers)
		require.NoError(t, err)
		sc := takeConn(t, ch)
		require.NoError(t, sc.SetReadDeadline(time.Now().Add(hoWait)))
		want := append(bytes.Clone(first), headers...)
		got = make([]byte, len(want))
		_, err = io.ReadFull(sc, got)
		require.NoError(t, err)
		require.Equal(t, want, got)

		readDL(t, sc, 100*time.Millisecond)
		// The ACK of the mux's SETTINGS is dropped, the PING passes.
		ping := wiretest.Frame(h2.FramePing, 0, 0, []byte("12345678"))
		time.AfterFunc(50*time.Millisecond, func() {
			c.Write(append(wiretest.SettingsAck(), ping...))
		})
		require.NoError(t, sc.SetReadDeadline(time.Now().Add(hoWait)))
		got = make([]byte, len(ping))
		_, err = io.ReadFull(sc, got)
		require.NoError(t, err, "read after a timeout")
		assert.Equal(t, ping, got)
	})
}

// TestPanicMatcher: a panicking matcher costs its connection only; the
// handler gets an error matching ErrMatcherPanic, other connections are
// served, also those being matched meanwhile.
func TestPanicMatcher(t *testing.T) {
	checkLeaks(t)
	setup := func(x *hoMux) {
		x.Match(func(r io.Reader) bool {
			b := make([]byte, 5)
			if _, err := io.ReadFull(r, b); err == nil && string(b) == "PANIC" {
				panic("matcher bug")
			}
			return false
		})
		x.MatchWithWriters(func(w io.Writer, r io.Reader) bool {
			b := make([]byte, 6)
			if _, err := io.ReadFull(r, b); err == nil && string(b) == "WPANIC" {
				w.Write([]byte("bye"))
				panic(nil)
			}
			return false
		})
	}

	t.Run("Served", func(t *testing.T) {
		checkLeaks(t)
		x := newHoMux(t)
		setup(x)
		get := hoHTTP(t, x.Match(HTTP1HeaderField("X-Normal", "yes")))
		x.serve(t)

		// A connection being matched while others panic.
		waiting := dialTCP(t, x.addr())
		io.WriteString(waiting, "GET /waiting HTTP/1.1\r\nHost: x\r\n")
		hoEventually(t, "the mux reads", func() bool { return x.root.readFrom(waiting) > 0 })

		for _, in := range []string{"PANIC!", "WPANIC!"} {
			c := dialTCP(t, x.addr())
			io.WriteString(c, in)
			select {
			case err := <-x.errs:
				require.ErrorIs(t, err, ErrMatcherPanic)
				assert.Contains(t, err.Error(), c.LocalAddr().String())
			case <-time.After(hoWait):
				t.Fatal("panic not reported")
			}
			hoRequireClosed(t, c)
			get()
		}

		io.WriteString(waiting, "X-Normal: yes\r\nConnection: close\r\n\r\n")
		require.NoError(t, waiting.SetReadDeadline(time.Now().Add(hoWait)))
		resp, err := http.ReadResponse(bufio.NewReader(waiting), nil)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, "ok /waiting", string(body))
		select {
		case err := <-x.errs:
			t.Errorf("unexpected error: %v", err)
		default:
		}
	})

	t.Run("HandlerStops", func(t *testing.T) {
		checkLeaks(t)
		x := newHoMux(t)
		setup(x)
		panics := make(chan error, 1)
		x.HandleError(func(err error) bool {
			if errors.Is(err, ErrMatcherPanic) {
				panics <- err
				return false
			}
			return true
		})
		x.serve(t)
		c := dialTCP(t, x.addr())
		io.WriteString(c, "PANIC")
		// The handler refused the panic: the root is closed, as for any
		// error the handler refuses, and Serve returns its Accept error.
		err := x.waitServe(t)
		assert.ErrorIs(t, err, net.ErrClosed)
		assert.ErrorIs(t, <-panics, ErrMatcherPanic)
		hoRequireClosed(t, c)
	})
}
