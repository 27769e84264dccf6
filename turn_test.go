package cmux

// Tests of the turn to accept (see acceptors), from a review of it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// deadlineListener is a memListener with a SetDeadline the mux can use to
// interrupt its Accept (as a *net.TCPListener's), that counts the callers
// in Accept and records whether two ever were at once.
type deadlineListener struct {
	*memListener
	acceptGauge
	mu   sync.Mutex
	past bool
	wake chan struct{}
}

func newDeadlineListener() *deadlineListener {
	return &deadlineListener{memListener: newMemListener(), wake: make(chan struct{})}
}

func (l *deadlineListener) SetDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.past = !t.IsZero() && !t.After(time.Now())
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

func (l *deadlineListener) Accept() (net.Conn, error) {
	defer l.enter()()
	for {
		l.mu.Lock()
		past, wake := l.past, l.wake
		l.mu.Unlock()
		if past {
			return nil, os.ErrDeadlineExceeded
		}
		select {
		case c := <-l.connc:
			return c, nil
		case <-l.done:
			return nil, net.ErrClosed
		case <-wake:
		}
	}
}

// An acceptor that keeps the turn to accept through a stop (its summoned
// worker runs only after accepting stopped, and so declines the turn)
// does not go back to the root's Accept once done matching, even when its
// matching outlasted Serve's interruptAccept (1s): no goroutine of the mux
// is in Accept after Serve returned, and a connection that comes then is
// left to the program. It went back to Accept before it looked whether
// accepting had stopped. GOMAXPROCS=1 and a matcher that calls Close pin
// the interleaving: the summoned worker runs only once the acceptor waits,
// after Close.
func TestTurnKeptThroughStopLeavesNoAcceptor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	testcheck.CheckLeaks(t)
	dl := newDeadlineListener()
	defer dl.Close()
	m := New(dl)
	var once sync.Once
	m.Match(func(r io.Reader) bool {
		once.Do(func() {
			m.Close()
			time.Sleep(1500 * time.Millisecond) // outlasts interruptAccept
		})
		return false
	})
	wait := serveUntil(t, m, ErrServerClosed)
	sendConn(t, dl.memListener, &memConn{flight: []byte(acceptorsFlight)})
	wait()
	time.Sleep(50 * time.Millisecond)
	if n := dl.in.Load(); n != 0 {
		t.Errorf("%d goroutine(s) of the mux in the root's Accept after Serve returned", n)
	}
	acceptsNothing(t, dl.memListener)
}

// turnStressConn returns a connection of a random kind: one whose bytes are
// there, one that sends nothing until closed, one that sends after a
// while, one no matcher wants.
func turnStressConn(r *rand.Rand, clients *[]net.Conn) net.Conn {
	switch r.IntN(4) {
	case 0:
		return &memConn{flight: []byte(acceptorsFlight)}
	case 1:
		client, server := net.Pipe()
		*clients = append(*clients, client)
		return server
	case 2:
		client, server := net.Pipe()
		*clients = append(*clients, client)
		d := time.Duration(r.IntN(3)) * time.Millisecond
		go func() {
			time.Sleep(d)
			_ = client.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(client, acceptorsFlight)
		}()
		return server
	default:
		return &memConn{flight: []byte("\x00\x01\x02\x03junk")}
	}
}

// Random mixes of connections and ends of Serve, by default, on one and
// two processors: Accept is never called by two goroutines at once; after
// Serve returns on an Accept error the handler refused, no goroutine of the
// mux is or gets in Accept; after the root is closed, nothing is left.
func TestTurnStress(t *testing.T) {
	for _, procs := range []int{1, 2} {
		for _, end := range []string{"refused", "close", "shutdown"} {
			t.Run(fmt.Sprintf("GOMAXPROCS=%d/%s", procs, end), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				deadline := time.Now().Add(3 * time.Second)
				for i := 0; i < 40 && time.Now().Before(deadline); i++ {
					testTurnStress(t, rand.New(rand.NewPCG(uint64(i), uint64(procs))), end)
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

func testTurnStress(t *testing.T, r *rand.Rand, end string) {
	boom := errors.New("boom")
	el := newErrListener(nil)
	dl := &stressListener{errListener: el}
	var opts []Option
	if r.IntN(2) == 0 {
		opts = append(opts, MatchTimeout(time.Duration(1+r.IntN(20))*time.Millisecond))
	}
	var inHook atomic.Int32
	var hooksOverlapped atomic.Bool
	if r.IntN(2) == 0 {
		opts = append(opts, WithHooks(Hooks{Accepted: func(ConnEvent) {
			if inHook.Add(1) > 1 {
				hooksOverlapped.Store(true)
			}
			if r := rand.IntN(4); r == 0 {
				time.Sleep(time.Duration(r) * 100 * time.Microsecond)
			}
			inHook.Add(-1)
		}, NotMatched: func(ConnEvent) {}}))
	}
	m := NewWithOptions(dl, opts...)
	refuse := end == "refused"
	m.HandleError(func(err error) bool { return !(refuse && errors.Is(err, boom)) })
	l := m.Match(HTTP1Fast())
	user := m.Match(func(r io.Reader) bool { var b [1]byte; _, err := r.Read(b[:]); return err == nil && b[0] == 0 })
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	serveConns(t, l, func(net.Conn) {})
	serveConns(t, user, func(net.Conn) {})
	var clients []net.Conn
	n := 1 + r.IntN(12)
	for range n {
		c := turnStressConn(r, &clients)
		select {
		case el.connc <- c:
		case <-time.After(2 * time.Second):
			t.Fatal("no one accepted a connection for 2s")
		}
		if r.IntN(3) == 0 {
			runtime.Gosched()
		}
	}
	switch end {
	case "refused":
		select {
		case el.errc <- boom:
		case <-time.After(2 * time.Second):
			t.Fatal("no one in Accept for the error")
		}
	case "close":
		m.Close()
	case "shutdown":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_ = m.(*cMux).Shutdown(ctx)
		cancel()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if end == "refused" {
		time.Sleep(20 * time.Millisecond)
		if n := dl.in.Load(); n != 0 {
			t.Errorf("%d goroutine(s) in Accept after Serve returned on a refused error", n)
		}
		acceptsNothing(t, el.memListener)
	}
	for _, c := range clients {
		c.Close()
	}
	el.Close()
	if dl.overlapped.Load() {
		t.Error("Accept called by two goroutines at once")
	}
	if hooksOverlapped.Load() {
		t.Error("the Accepted hook called by two goroutines at once")
	}
	m.Close()
	acc := &m.(*cMux).acc
	waitUntil(t, "no acceptor left", func() bool { return acc.live.Load() == 0 })
	waitUntil(t, "the root's Accept left", func() bool { return dl.in.Load() == 0 })
}

// stressListener is an errListener that counts the callers in Accept.
type stressListener struct {
	*errListener
	acceptGauge
}

func (l *stressListener) Accept() (net.Conn, error) {
	defer l.enter()()
	return l.errListener.Accept()
}

// A matcher that ends its goroutine (runtime.Goexit; t.FailNow or
// require.X called from a matcher in a program's test) on a worker: Serve
// still returns once the mux is closed: work's p.wg.Done is deferred, so
// that workers.close does not wait for that worker for ever, as it did
// for a while. (v0.1.5's serve goroutine has a deferred Done too.)
func TestWorkerGoexitDoesNotHangServe(t *testing.T) {
	ml := newMemListener()
	defer ml.Close()
	m := NewWithOptions(ml, MaxMatching(4)) // a worker matches every connection
	exited := make(chan struct{})
	m.Match(func(r io.Reader) bool {
		close(exited)
		runtime.Goexit()
		return false
	})
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	sendConn(t, ml, &memConn{flight: []byte(acceptorsFlight)})
	<-exited
	m.Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Close: it waits for a worker that exited")
	}
}
