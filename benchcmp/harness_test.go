package benchcmp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The harness: an in-memory root listener whose Accept hands out memConns,
// connections whose client has already sent its whole first flight. It is
// shared by both libraries, so whatever it costs is the same on both sides.

// errClosed is what a closed memConn or memListener returns. It is built
// once so that no error is allocated per connection.
var errClosed error = &net.OpError{Op: "use", Net: "mem", Err: net.ErrClosed}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// connStats counts, over every memConn of one run, the readers waiting for
// bytes and the deadline timers they hold (see BenchmarkIdleConns).
type connStats struct {
	waiting atomic.Int64 // Reads blocked because the flight is used up
	timers  atomic.Int64 // live timers of such Reads (for a read deadline)
	wakes   atomic.Int64 // wake channels made
}

// memConn is the server side of a connection whose client sent flight and
// then waits, as an idle client does: Read serves flight, then blocks until
// Close or the read deadline. Write discards (or records, for the sanity
// test) and counts. Close is cheap and may be called more than once.
type memConn struct {
	flight []byte
	stats  *connStats    // may be nil
	rec    *bytes.Buffer // if not nil, receives what the server writes
	// gate, if not 0, is how much of flight the client sends before it
	// waits for the server's first write (a gRPC client that waits for
	// SETTINGS). Only the sanity test sets it.
	gate int

	mu       sync.Mutex
	off      int
	closed   bool
	rdl, wdl time.Time
	wake     chan struct{} // closed on Close or a deadline change while waiters > 0
	waiters  int
	written  int
}

func newMemConn(flight []byte, stats *connStats) *memConn {
	return &memConn{flight: flight, stats: stats}
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return 0, errClosed
		}
		sent := len(c.flight)
		if c.gate > 0 && c.written == 0 {
			sent = c.gate
		}
		if c.off < sent {
			n := copy(p, c.flight[c.off:sent])
			c.off += n
			c.mu.Unlock()
			return n, nil
		}
		if len(p) == 0 {
			c.mu.Unlock()
			return 0, nil
		}
		dl := c.rdl
		if !dl.IsZero() && !time.Now().Before(dl) {
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if c.wake == nil {
			c.wake = make(chan struct{})
			if c.stats != nil {
				c.stats.wakes.Add(1)
			}
		}
		wake := c.wake
		c.waiters++
		c.mu.Unlock()
		c.wait(wake, dl)
		c.mu.Lock()
		c.waiters--
	}
}

// wait blocks until wake is closed or dl (if set) passes.
func (c *memConn) wait(wake <-chan struct{}, dl time.Time) {
	if c.stats != nil {
		c.stats.waiting.Add(1)
		defer c.stats.waiting.Add(-1)
	}
	if dl.IsZero() {
		<-wake
		return
	}
	t := time.NewTimer(time.Until(dl))
	if c.stats != nil {
		c.stats.timers.Add(1)
		defer c.stats.timers.Add(-1)
	}
	select {
	case <-wake:
	case <-t.C:
	}
	t.Stop()
}

// kick wakes the blocked readers so that they look again at the state.
// Without readers it keeps the wake channel, so that a deadline set before
// the first Read costs nothing. c.mu must be held.
func (c *memConn) kick() {
	if c.wake != nil && c.waiters > 0 {
		close(c.wake)
		c.wake = nil
	}
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errClosed
	}
	if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
		return 0, os.ErrDeadlineExceeded
	}
	if c.gate > 0 && c.written == 0 && len(p) > 0 {
		c.kick() // the client goes on
	}
	c.written += len(p)
	if c.rec != nil {
		c.rec.Write(p)
	}
	return len(p), nil
}

func (c *memConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	c.closed = true
	c.kick()
	return nil
}

func (c *memConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr { return memRemote }

// memRemote is the remote address of every memConn: an IP address, as a
// TCP connection's, for the address matchers.
var memRemote net.Addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *memConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl, c.wdl = t, t
	c.kick()
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	c.kick()
	return nil
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	return nil
}

// memListener is the root listener. dial hands it a connection; the
// hand-off is unbuffered, so a connection is in Accept's hands when dial
// returns. It has no SetDeadline, like most wrapped listeners.
type memListener struct {
	connc chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newMemListener() *memListener {
	return &memListener{connc: make(chan net.Conn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.connc:
		return c, nil
	case <-l.done:
		return nil, errClosed
	}
}

func (l *memListener) dial(c net.Conn) bool {
	select {
	case l.connc <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

// acceptAndClose accepts n connections from l and closes each at once,
// without reading, as a server that hangs up does. It sends nil on done
// after the n-th, or Accept's error if that comes first.
func acceptAndClose(l net.Listener, n int, done chan<- error) {
	for i := 0; i < n; i++ {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		c.Close()
	}
	done <- nil
}

// errServeHung is returned by stop when Serve does not return.
var errServeHung = errors.New("the mux's Serve did not return within 10s after Close")

// stop shuts a running mux down: the mux's Close, the root's Close (v0.1.5's
// Serve returns only when the root's Accept fails), the Close of the given
// connections (v0.1.5's Serve waits for the connections still being
// matched), then waits for Serve.
func stop(r *running, root io.Closer, conns []*memConn) error {
	r.close()
	root.Close()
	for _, c := range conns {
		c.Close()
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-r.served:
		return nil
	case <-t.C:
		return errServeHung
	}
}

// waitGoroutines waits up to 5s for the number of goroutines to come down
// to base, and fails tb with every goroutine's stack if it does not.
func waitGoroutines(tb testing.TB, base int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(time.Millisecond)
	}
}
