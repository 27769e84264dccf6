package cmux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

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

// hoFrame returns an HTTP/2 frame header announcing length, and payload.
func hoFrame(length int, typ, flags byte, stream uint32, payload []byte) []byte {
	b := []byte{byte(length >> 16), byte(length >> 8), byte(length), typ, flags,
		byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
	return append(b, payload...)
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
	settings := hoFrame(6, h2.FrameSettings, 0, 0, []byte{0, 4, 0, 1, 0, 0})
	cont := hoFrame(4087, h2.FrameContinuation, 0, 1, bytes.Repeat([]byte{'a'}, 4087))
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
		first:  hoH2(hoFrame(1, h2.FrameHeaders, 0, 1, []byte{0x82}), cont, cont),
		more:   hoRepeat(cont, 1),
		target: hoH2Target,
		bound:  "limit",
	}, {
		// (d) A frame header announcing 16 MiB, then silence: rejected on
		// the header, long before MatchTimeout (a minute here).
		name:   "Frame16MiB",
		first:  hoH2(hoFrame(1<<24-1, h2.FrameHeaders, h2.FlagEndHeaders, 1, nil)),
		target: hoH2Target,
		bound:  "frame",
	}, {
		name:   "FirstFrame16MiB",
		first:  append([]byte(h2.Preface), hoFrame(1<<24-1, h2.FrameSettings, 0, 0, nil)...),
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
		first:  hoH2(hoFrame(100, h2.FrameHeaders, h2.FlagEndHeaders, 1, []byte("0123456789"))),
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
		ping := hoFrame(8, h2.FramePing, 0, 0, []byte("12345678"))
		time.AfterFunc(50*time.Millisecond, func() {
			c.Write(append(hoFrame(0, h2.FrameSettings, h2.FlagAck, 0, nil), ping...))
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

// muxGoroutines returns the stacks of goroutines the mux runs.
func muxGoroutines() []string {
	var gs []string
	for _, g := range goroutineStacks() {
		if strings.Contains(g, "cmux.(*cMux).") {
			gs = append(gs, g)
		}
	}
	return gs
}

// TestShutdownUnderLoad: with 100 connections mid-match, 100 queued for a
// child whose server does not accept, and 100 delivered and open, Close or
// closing the root listener stops Serve promptly, leaves no goroutine of
// the mux, closes every connection not delivered, and no delivered one.
func TestShutdownUnderLoad(t *testing.T) {
	checkLeaks(t)
	const n = 100
	for _, closeRoot := range []bool{false, true} {
		name := "Close"
		if closeRoot {
			name = "RootClose"
		}
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			x := newHoMux(t)
			queuedL := x.Match(PrefixMatcher("Q"))
			deliveredCh := acceptChan(t, x.Match(PrefixMatcher("D")))
			x.serve(t)

			delivered := hoDialMany(t, x.addr(), n, "D")
			servers := map[string]net.Conn{}
			for range n {
				sc := takeConn(t, deliveredCh)
				b := make([]byte, 1)
				require.NoError(t, sc.SetReadDeadline(time.Now().Add(hoWait)))
				_, err := io.ReadFull(sc, b)
				require.NoError(t, err)
				servers[sc.RemoteAddr().String()] = sc
			}
			queued := hoDialMany(t, x.addr(), n, "Q")
			ql := queuedL.(*muxListener)
			hoEventually(t, "queued", func() bool { return len(ql.connc) == n })
			silent := hoDialMany(t, x.addr(), n, "")
			hoEventually(t, "mid-match", func() bool { return x.root.accepted.Load() == 3*n && x.matching() == n })

			start := time.Now()
			if closeRoot {
				x.root.Close()
			} else {
				x.Close()
			}
			err := x.waitServe(t)
			t.Logf("Serve returned after %v: %v", time.Since(start).Round(time.Microsecond), err)
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.Contains(t, err.Error(), "use of closed network connection")
			if !closeRoot {
				assert.ErrorIs(t, err, ErrServerClosed)
			}
			hoEventually(t, "the mux's goroutines exit", func() bool { return len(muxGoroutines()) == 0 })

			for _, c := range silent {
				hoRequireClosed(t, c)
			}
			// Queued connections that no server accepted are closed with
			// Serve's return, whatever stopped it.
			for _, c := range queued {
				hoRequireClosed(t, c)
			}
			_, err = queuedL.Accept()
			if closeRoot {
				assert.ErrorIs(t, err, ErrListenerClosed)
			} else {
				assert.ErrorIs(t, err, ErrServerClosed)
			}
			for _, c := range delivered {
				hoRequireOpen(t, c, servers[c.LocalAddr().String()])
			}
			assert.Zero(t, x.matching())
		})
	}
}

// TestBurstSilent: 1,000 silent connections being matched do not delay a
// normal client, and are still being matched afterwards.
func TestBurstSilent(t *testing.T) {
	checkLeaks(t)
	const n = 1000
	hoNoFile(t, 2*n+500)
	x := newHoMux(t)
	get := hoHTTP(t, x.Match(HTTP1HeaderField("X-Normal", "yes")))
	x.serve(t)
	hoDialMany(t, x.addr(), n, "")
	hoEventually(t, "all accepted", func() bool { return x.matching() == n })
	get()
	assert.Equal(t, n, x.matching())
}

// hoNoFile makes sure this process may open need files, raising
// RLIMIT_NOFILE if it must, or skips t.
func hoNoFile(t testing.TB, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur >= need {
		return
	}
	old := lim
	lim.Cur = max(lim.Cur, need)
	lim.Max = max(lim.Max, lim.Cur)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("needs %d open files, RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %v", need, old.Cur, old.Max, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

const (
	hoBurstN       = 10000
	hoBurstPayload = 24
	hoBurstEnvAddr = "CMUX_TEST_BURST_ADDR"
	hoBurstEnvN    = "CMUX_TEST_BURST_N"
)

// hoBurstLine returns the 24 bytes connection i sends: an HTTP/1 request
// line for even i, other bytes for odd i.
func hoBurstLine(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("GET /%08d HTTP/1.1\r\n", i)
	}
	return fmt.Sprintf("ANY-%08d-0123456789\n", i)
}

// TestBurst: 10,000 connections opened as fast as 64 dialers go, all open
// at once, are matched and delivered, each to the right listener with its
// bytes. The client ends live in a child process (this test binary, see
// TestBurstClientProcess), so that each process needs some 10,000 files,
// not 20,000.
func TestBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections: skipped with -short")
	}
	checkLeaks(t)
	hoNoFile(t, hoBurstN+1000)
	x := newHoMux(t)
	httpL, anyL := x.Match(HTTP1Fast()), x.Match(Any())
	x.serve(t)

	var (
		mu      sync.Mutex
		held    []net.Conn
		seen    = make([]bool, hoBurstN)
		failed  = make(chan error, 1)
		allHeld = make(chan struct{})
	)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	// Servers: take each connection, check its 24 bytes, answer one byte
	// and hold it open.
	type delivered struct {
		net.Conn
		http bool // from the HTTP1Fast listener
	}
	conns := make(chan delivered, 256)
	var acceptors, handlers sync.WaitGroup
	for _, l := range []net.Listener{httpL, anyL} {
		acceptors.Add(1)
		go func() {
			defer acceptors.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				conns <- delivered{c, l == httpL}
			}
		}()
	}
	for range 8 {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			b := make([]byte, hoBurstPayload)
			for c := range conns {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.ReadFull(c, b); err != nil {
					fail(fmt.Errorf("server read: %v", err))
					c.Close()
					continue
				}
				i, err := strconv.Atoi(strings.Trim(string(b[4:13]), "/-"))
				if err != nil || i < 0 || i >= hoBurstN || string(b) != hoBurstLine(i) || c.http != (i%2 == 0) {
					fail(fmt.Errorf("server read %q from the HTTP1Fast listener: %v", b, c.http))
					c.Close()
					continue
				}
				c.SetDeadline(time.Time{})
				mu.Lock()
				dup := seen[i]
				seen[i] = true
				held = append(held, c.Conn)
				all := len(held) == hoBurstN
				mu.Unlock()
				if dup {
					fail(fmt.Errorf("connection %d delivered twice", i))
				}
				if _, err := c.Write([]byte{'k'}); err != nil {
					fail(fmt.Errorf("server write: %v", err))
				}
				if all {
					close(allHeld)
				}
			}
		}()
	}
	defer func() {
		x.Close()
		acceptors.Wait()
		close(conns)
		handlers.Wait()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBurstClientProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), hoBurstEnvAddr+"="+x.addr(), hoBurstEnvN+"="+strconv.Itoa(hoBurstN))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()

	var out []string
	clientHolds := false
	for !clientHolds {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("client process ended: %s\n%s", strings.Join(out, "\n"), stderr.String())
			}
			out = append(out, l)
			clientHolds = l == fmt.Sprintf("holding %d", hoBurstN)
		case err := <-failed:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("timed out: %s\n%s", strings.Join(out, "\n"), stderr.String())
		}
	}
	select {
	case <-allHeld:
	case err := <-failed:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("timed out waiting for the servers")
	}
	t.Logf("%d connections matched, delivered and open at once after %v", hoBurstN, time.Since(start).Round(time.Millisecond))
	mu.Lock()
	for i, ok := range seen {
		if !ok {
			t.Errorf("connection %d not delivered", i)
		}
	}
	// The servers hang up first, then the client process.
	for _, c := range held {
		c.Close()
	}
	held = nil
	mu.Unlock()
	stdin.Close()
	for range lines {
	}
	require.NoError(t, <-exited, "client process: %s\n%s", strings.Join(out, "\n"), stderr.String())
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
	assert.Empty(t, hoDrainErrs(x.errs))
}

func hoDrainErrs(ch chan error) []error {
	var errs []error
	for {
		select {
		case err := <-ch:
			errs = append(errs, err)
		default:
			return errs
		}
	}
}

// TestBurstClientProcess is the client side of TestBurst, run in a child
// process: it opens the connections with 64 dialers, sends each its bytes,
// waits for each server's answer, prints "holding N" once all are open and
// closes them when its standard input ends.
func TestBurstClientProcess(t *testing.T) {
	addr := os.Getenv(hoBurstEnvAddr)
	if addr == "" {
		t.Skip("the client process of TestBurst")
	}
	checkLeaks(t)
	n, err := strconv.Atoi(os.Getenv(hoBurstEnvN))
	require.NoError(t, err)
	hoNoFile(t, uint64(n)+500)
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var next atomic.Int64
	errc := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 1)
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					errc <- fmt.Errorf("dial %d: %v", i, err)
					return
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(c, hoBurstLine(i)); err != nil {
					errc <- fmt.Errorf("write %d: %v", i, err)
					return
				}
				if _, err := io.ReadFull(c, b); err != nil || b[0] != 'k' {
					errc <- fmt.Errorf("read %d: %q %v", i, b, err)
					return
				}
				c.SetDeadline(time.Time{})
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	fmt.Printf("holding %d\n", n)
	io.Copy(io.Discard, os.Stdin)
}

// TestPropertyDelivered: random payloads (0 to 100 KiB), random chains of
// built-in and user matchers, random write splits: the connection goes to
// the listener whose matcher says yes on the same bytes read as a plain
// reader, and that listener reads exactly the bytes sent; if none says
// yes, the connection is closed and ErrNotMatched reported.
func TestPropertyDelivered(t *testing.T) {
	checkLeaks(t)
	seed := uint64(20240601)
	if s := os.Getenv("CMUX_PROPERTY_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (set CMUX_PROPERTY_SEED to repeat another)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	iterations := 200
	if testing.Short() {
		iterations = 40
	}
	start := time.Now()
	outcomes := map[string]int{}
	for i := range iterations {
		if time.Since(start) > 2*time.Minute {
			t.Logf("stopped after %d iterations: time bound", i)
			break
		}
		outcome, ok := hoProperty(t, rng, i)
		if !ok {
			break
		}
		outcomes[outcome]++
	}
	t.Logf("outcomes: %v", outcomes)
}

// hoMatcher is a matcher of the property test and its description.
type hoMatcher struct {
	name string
	m    MatchWriter
}

func hoRandMatcher(rng *rand.Rand) hoMatcher {
	val := []string{"a", "b", ""}[rng.IntN(3)]
	switch rng.IntN(15) {
	case 0:
		strs := []string{"GET ", "\x16\x03", "PRI *", "SSH-", "\x00", "G", "GET /x"}
		rng.Shuffle(len(strs), func(i, j int) { strs[i], strs[j] = strs[j], strs[i] })
		strs = strs[:1+rng.IntN(3)]
		return hoMatcher{fmt.Sprintf("PrefixMatcher(%q)", strs), readOnly(PrefixMatcher(strs...))}
	case 1:
		return hoMatcher{"HTTP1Fast()", readOnly(HTTP1Fast())}
	case 2:
		return hoMatcher{"HTTP1()", readOnly(HTTP1())}
	case 3:
		return hoMatcher{"TLS()", readOnly(TLS())}
	case 4:
		return hoMatcher{"HTTP2()", readOnly(HTTP2())}
	case 5:
		return hoMatcher{"HTTP1HeaderField(X-Key, " + val + ")", readOnly(HTTP1HeaderField("X-Key", val))}
	case 6:
		return hoMatcher{"HTTP1HeaderFieldPrefix(X-Key, " + val + ")", readOnly(HTTP1HeaderFieldPrefix("x-key", val))}
	case 7:
		return hoMatcher{"HTTP2HeaderField(x-key, " + val + ")", readOnly(HTTP2HeaderField("x-key", val))}
	case 8:
		return hoMatcher{"HTTP2MatchHeaderFieldSendSettings(x-key, " + val + ")", HTTP2MatchHeaderFieldSendSettings("x-key", val)}
	case 9:
		return hoMatcher{"HTTP2MatchHeaderFieldPrefixSendSettings(x-key, " + val + ")", HTTP2MatchHeaderFieldPrefixSendSettings("X-Key", val)}
	case 10, 11:
		k := hoRandSize(rng)
		return hoMatcher{fmt.Sprintf("reads %d, no", k), func(_ io.Writer, r io.Reader) bool {
			io.ReadFull(r, make([]byte, k))
			return false
		}}
	case 12, 13:
		k := hoRandSize(rng)
		return hoMatcher{fmt.Sprintf("reads %d, yes if all and the last is odd", k), func(_ io.Writer, r io.Reader) bool {
			b := make([]byte, k)
			n, _ := io.ReadFull(r, b)
			return n == k && (k == 0 || b[k-1]&1 == 1)
		}}
	default:
		return hoMatcher{"reads all, no", func(_ io.Writer, r io.Reader) bool {
			io.Copy(io.Discard, r)
			return false
		}}
	}
}

// hoRandSize returns a size up to 100 KiB, mostly small.
func hoRandSize(rng *rand.Rand) int {
	switch rng.IntN(3) {
	case 0:
		return rng.IntN(64)
	case 1:
		return rng.IntN(4 << 10)
	default:
		return rng.IntN(100 << 10)
	}
}

func hoRandPayload(t *testing.T, rng *rand.Rand) []byte {
	var head []byte
	val := []string{"a", "b", "ab"}[rng.IntN(3)]
	switch rng.IntN(6) {
	case 0:
		head = []byte("GET /x HTTP/1.1\r\nHost: h\r\nX-Key: " + val + "\r\n\r\n")
	case 1:
		head = btH2Flight(t, rng.IntN(2) == 0, "x-key", val)
	case 2:
		head = []byte("\x16\x03\x01\x02\x00\x01")
	case 3:
		head = []byte("SSH-2.0-x\r\n")
	case 4:
		return nil
	}
	n := max(hoRandSize(rng)-len(head), 0)
	p := make([]byte, len(head)+n)
	copy(p, head)
	for i := len(head); i < len(p); i++ {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// hoProperty runs one iteration of TestPropertyDelivered and returns what
// became of the connection; false if t failed.
func hoProperty(t *testing.T, rng *rand.Rand, iter int) (string, bool) {
	limit := []int{DefaultMaxSniffBytes, 1024, 5000}[rng.IntN(3)]
	var chain [][]hoMatcher
	for range 1 + rng.IntN(4) {
		var ms []hoMatcher
		for range 1 + rng.IntN(3) {
			ms = append(ms, hoRandMatcher(rng))
		}
		chain = append(chain, ms)
	}
	if rng.IntN(2) == 0 {
		chain = append(chain, []hoMatcher{{"Any()", readOnly(Any())}})
	}
	payload := hoRandPayload(t, rng)
	var splits []int
	for range rng.IntN(12) {
		splits = append(splits, rng.IntN(len(payload)+1))
	}
	// Where it must go: the first matcher that says yes on the same bytes
	// as a plain reader (at most limit of them).
	want := -1
	for i, ms := range chain {
		for _, mt := range ms {
			if want < 0 && mt.m(io.Discard, btModel(payload, limit, false)) {
				want = i
			}
		}
	}
	var names []string
	for i, ms := range chain {
		var ns []string
		for _, mt := range ms {
			ns = append(ns, mt.name)
		}
		names = append(names, fmt.Sprintf("%d: %s", i, strings.Join(ns, ", ")))
	}
	desc := fmt.Sprintf("iteration %d: %d bytes %q..., limit %d, splits %v, listeners [%s], want listener %d",
		iter, len(payload), payload[:min(len(payload), 24)], limit, splits, strings.Join(names, "; "), want)

	outcome := "not matched"
	switch {
	case want >= 0 && chain[want][0].name == "Any()":
		outcome = "Any()"
	case want >= 0:
		outcome = fmt.Sprintf("listener %d", want)
	}
	return outcome, t.Run(fmt.Sprint(iter), func(t *testing.T) {
		checkLeaks(t)
		x := newHoMux(t, MaxSniffBytes(limit))
		got := make(chan int, len(chain))
		conns := make(chan net.Conn, len(chain))
		for i, ms := range chain {
			mws := make([]MatchWriter, len(ms))
			for j, mt := range ms {
				mws[j] = mt.m
			}
			l := x.MatchWithWriters(mws...)
			ch := acceptChan(t, l)
			go func() {
				if c, ok := <-ch; ok {
					got <- i
					conns <- c
				}
			}()
		}
		x.serve(t)

		c := dialTCP(t, x.addr())
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(hoWait)))
		wrote := make(chan error, 1)
		// Like a real client, the writer sends a SETTINGS ACK only after it
		// has read the mux's SETTINGS, if the mux writes them (it does so at
		// once when it needs more bytes, or never): early holds what it read.
		var early []byte
		ackAt := hoFirstAck(payload)
		decided := make(chan struct{})
		defer func() {
			select {
			case <-decided:
			default:
				close(decided)
			}
		}()
		go func() {
			p, sent := payload, 0
			write := func(b []byte) error {
				if ackAt >= sent && ackAt < sent+len(b) {
					if _, err := c.Write(b[:ackAt-sent]); err != nil {
						return err
					}
					early = hoAwaitMuxSettings(c, decided)
					b, sent = b[ackAt-sent:], ackAt
				}
				_, err := c.Write(b)
				sent += len(b)
				return err
			}
			for _, s := range splits {
				if s < len(p) {
					if err := write(p[:s]); err != nil {
						wrote <- err
						return
					}
					p = p[s:]
				}
			}
			err := write(p)
			if err == nil {
				err = c.CloseWrite()
			}
			wrote <- err
		}()

		if want < 0 {
			select {
			case err := <-x.errs:
				close(decided)
				var nm ErrNotMatched
				require.ErrorAs(t, err, &nm, desc)
			case i := <-got:
				t.Fatalf("%s: delivered to listener %d", desc, i)
			case <-time.After(hoWait):
				t.Fatalf("%s: no ErrNotMatched", desc)
			}
			hoRequireClosed(t, c)
			<-wrote
			return
		}
		var sc net.Conn
		select {
		case i := <-got:
			close(decided)
			require.Equal(t, want, i, desc)
			sc = <-conns
			defer sc.Close()
		case err := <-x.errs:
			t.Fatalf("%s: %v", desc, err)
		case <-time.After(hoWait):
			t.Fatalf("%s: not delivered", desc)
		}
		require.NoError(t, sc.SetReadDeadline(time.Now().Add(hoWait)))
		h := sha256.New()
		n, err := io.Copy(h, sc)
		require.NoError(t, err, desc)
		require.NoError(t, <-wrote, desc)
		// The mux wrote its SETTINGS before delivery, or never: then the
		// client's first SETTINGS ACK, sent after the client read them, is
		// not the server's to read (see http2.go).
		exp := payload
		require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		if b, _ := io.ReadAll(c); len(early)+len(b) > 0 {
			b = append(early, b...)
			require.Equal(t, h2.MuxSettings, b, desc)
			exp = btDropAck(payload, 0)
		}
		sum := sha256.Sum256(exp)
		require.Equal(t, len(exp), int(n), desc)
		require.Equal(t, sum[:], h.Sum(nil), desc)
	})
}

// hoFirstAck returns the offset of the first SETTINGS ACK frame of an
// HTTP/2 client stream, or -1.
func hoFirstAck(b []byte) int {
	if !bytes.HasPrefix(b, []byte(h2.Preface)) {
		return -1
	}
	for off := len(h2.Preface); off+h2.FrameHeaderLen <= len(b); {
		if b[off+3] == h2.FrameSettings && b[off+4]&h2.FlagAck != 0 {
			return off
		}
		off += h2.FrameHeaderLen + (int(b[off])<<16 | int(b[off+1])<<8 | int(b[off+2]))
	}
	return -1
}

// hoAwaitMuxSettings reads the mux's SETTINGS frame from c, if the mux
// writes it before it has decided (decided is closed) or a second passes,
// and returns what it read.
func hoAwaitMuxSettings(c net.Conn, decided <-chan struct{}) []byte {
	buf := make([]byte, len(h2.MuxSettings))
	n := 0
	for deadline := time.Now().Add(time.Second); n < len(buf) && time.Now().Before(deadline); {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		m, err := c.Read(buf[n:])
		n += m
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		select {
		case <-decided:
			if n == 0 {
				deadline = time.Now()
			}
		default:
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return buf[:n]
}

// FuzzTLSMatcher: TLS(versions...) matches exactly the inputs that start
// with a handshake record of one of the versions, reading one byte past the
// first that rules every version out, or the three it needs; through the
// mux's sniffer it decides the same.
func FuzzTLSMatcher(f *testing.F) {
	f.Add([]byte{}, []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
	f.Add([]byte{3, 4, 3, 3}, []byte("\x16\x03\x04"))
	f.Add([]byte{3, 0}, []byte("\x16\x03\x01"))
	f.Add([]byte{}, []byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{}, []byte("\x16\x03"))
	f.Fuzz(func(t *testing.T, vs, in []byte) {
		var versions []int
		for i := 0; i+1 < len(vs) && len(versions) < 8; i += 2 {
			versions = append(versions, int(vs[i])<<8|int(vs[i+1]))
		}
		set := versions
		if len(set) == 0 {
			set = []int{0x0300, 0x0301, 0x0302, 0x0303}
		}
		prefixes := make([]string, len(set))
		for i, v := range set {
			prefixes[i] = string([]byte{0x16, byte(v >> 8), byte(v)})
		}
		hoCheckPrefix(t, TLS(versions...), prefixes, in)
	})
}

// FuzzHTTP1Fast: HTTP1Fast(ext...) is a prefix match on the default
// methods and ext, decided as early as the bytes allow.
func FuzzHTTP1Fast(f *testing.F) {
	f.Add("", []byte("PATCH /x HTTP/1.1\r\n"))
	f.Add("PROPFIND\nMKCOL", []byte("PROPFIND / HTTP/1.1\r\n"))
	f.Add("", []byte("\x05\x01\x00"))
	f.Add("G", []byte("GE"))
	f.Fuzz(func(t *testing.T, ext string, in []byte) {
		var exts []string
		if ext != "" {
			exts = strings.Split(ext, "\n")
		}
		hoCheckPrefix(t, HTTP1Fast(exts...), append(hoMethods(), exts...), in)
	})
}

// hoMethods returns the methods HTTP1Fast matches by default.
func hoMethods() []string {
	return []string{"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT", "PATCH"}
}

// FuzzHTTP2Preface: HTTP2() matches exactly the inputs that start with the
// client preface, deciding on the first byte that differs.
func FuzzHTTP2Preface(f *testing.F) {
	f.Add([]byte(http2.ClientPreface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	f.Add([]byte("PRI * HTTP/1.1\r\n"))
	f.Add([]byte("PRI"))
	f.Fuzz(func(t *testing.T, in []byte) {
		hoCheckPrefix(t, HTTP2(), []string{http2.ClientPreface}, in)
	})
}

// hoCheckPrefix checks m, a prefix matcher of prefixes, on in: the result,
// the bytes it reads one at a time, and the result through a sniffer over
// a connection that gives in in pieces.
func hoCheckPrefix(t *testing.T, m Matcher, prefixes []string, in []byte) {
	want := false
	for _, p := range prefixes {
		want = want || bytes.HasPrefix(in, []byte(p))
	}
	// It needs the bytes up to the first one that rules out every
	// prefix, or up to the end of the shortest prefix that matches.
	need := len(in)
	for i := 0; i <= len(in); i++ {
		alive, done := false, false
		for _, p := range prefixes {
			if len(p) <= i && bytes.HasPrefix(in, []byte(p)) {
				done = true
			}
			if len(p) > i && i < len(in) && bytes.HasPrefix([]byte(p), in[:i+1]) {
				alive = true
			}
		}
		if done {
			need = i
			break
		}
		if !alive {
			need = min(i+1, len(in))
			break
		}
	}
	cr := &countReader{r: bytes.NewReader(in)}
	if got := m(hoOneByte{cr}); got != want {
		t.Fatalf("on %q one byte per Read: %v, want %v (prefixes %q)", in, got, want, prefixes)
	}
	if cr.n != need {
		t.Fatalf("on %q: read %d bytes, needs %d (prefixes %q)", in, cr.n, need, prefixes)
	}
	if got := m(bytes.NewReader(in)); got != want {
		t.Fatalf("on %q: %v, want %v", in, got, want)
	}
	c := &MuxConn{Conn: &btConn{src: in, sizes: []byte{3, 1, 200}, stallAt: -1}}
	c.sniff.init(c, newBufferPools(1024), 1024)
	if got := m(&c.sniff); got != want {
		t.Fatalf("on %q through the sniffer: %v, want %v", in, got, want)
	}
	c.endMatching(false)
}

// hoOneByte reads one byte at a time.
type hoOneByte struct{ r io.Reader }

func (o hoOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
