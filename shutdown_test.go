package cmux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// shutdownOf reaches Shutdown as programs do.
func shutdownOf(t *testing.T, m CMux) Shutdowner {
	t.Helper()
	s, ok := m.(Shutdowner)
	if !ok {
		t.Fatalf("%T has no Shutdown method", m)
	}
	return s
}

// TestShutdownLosesNothing: Shutdown with connections in every phase. A
// client mid-match finishes and is served, a connection queued for a child
// whose server has not accepted it yet is kept for it, and a request in
// flight on a delivered connection completes; Serve returns, the port
// closes, and Shutdown returns nil once the queue is taken.
func TestShutdownLosesNothing(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t, IndependentListeners())
	httpL := x.Match(HTTP1Fast())
	queuedL := x.Match(PrefixMatcher("Q"))
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			inHandler <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})}
	hsDone := make(chan error, 1)
	go func() { hsDone <- hs.Serve(httpL) }()
	x.start(t)

	// Delivered, with a request in flight.
	slowResp := make(chan string, 1)
	go func() {
		c := dialAndWrite(t, x.addr(), "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		slowResp <- readResponse(c)
	}()
	<-inHandler
	// Queued for a child nobody accepts from yet.
	queued := dialAndWrite(t, x.addr(), "QUEUED")
	ql := queuedL.(*muxListener)
	waitUntil(t, "queued", func() bool { return len(ql.connc) == 1 })
	// Mid-match: half a request line.
	mid := dialAndWrite(t, x.addr(), "GE")
	waitUntil(t, "mid-match", func() bool { return x.inflightCount() == 1 })

	shut := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	go func() { shut <- shutdownOf(t, x.CMux).Shutdown(ctx) }()

	// Serve returns only once the mid-match client is matched.
	waitUntil(t, "root closed", func() bool {
		c, err := net.DialTimeout("tcp", x.addr(), 50*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-x.done:
		t.Fatalf("Serve returned while a connection was being matched: %v", x.background.err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := io.WriteString(mid, "T /mid HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readResponse(mid); got != "ok /mid" {
		t.Errorf("mid-match client got %q", got)
	}
	err := x.wait(t, waitFor)
	if !errors.Is(err, ErrServerClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve() = %v, want ErrServerClosed and net.ErrClosed", err)
	}

	// Shutdown waits for the queued connection to be accepted.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a connection queued", err)
	case <-time.After(50 * time.Millisecond):
	}
	sc, err := acceptWithin(t, queuedL)
	if err != nil {
		t.Fatalf("queued connection: %v", err)
	}
	if got := readN(t, sc, 6); got != "QUEUED" {
		t.Errorf("queued connection read %q", got)
	}
	if _, err := sc.Write([]byte("!")); err != nil {
		t.Error(err)
	}
	if b := make([]byte, 1); readFull(queued, b) != nil || b[0] != '!' {
		t.Error("queued connection does not reach its client")
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown() = %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return")
	}
	if _, err := acceptWithin(t, queuedL); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Accept after Shutdown = %v, want ErrServerClosed", err)
	}

	// The server's own graceful stop finishes the request in flight.
	hctx, hcancel := context.WithTimeout(context.Background(), waitFor)
	defer hcancel()
	hsShut := make(chan error, 1)
	go func() { hsShut <- hs.Shutdown(hctx) }()
	close(release)
	if got := <-slowResp; got != "ok /slow" {
		t.Errorf("request in flight got %q", got)
	}
	if err := <-hsShut; err != nil {
		t.Errorf("http.Server.Shutdown() = %v", err)
	}
	if err := <-hsDone; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		t.Errorf("http.Server.Serve() = %v", err)
	}
}

// TestShutdownContextEnds: a client that never finishes its first bytes
// holds Shutdown until ctx ends; then it is closed and Shutdown returns
// ctx.Err().
func TestShutdownContextEnds(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	x.Match(HTTP1Fast())
	x.start(t)
	c := dialAndWrite(t, x.addr(), "GE")
	waitUntil(t, "mid-match", func() bool { return x.inflightCount() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := shutdownOf(t, x.CMux).Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown() = %v, want context.DeadlineExceeded", err)
	}
	requireClosedByPeer(t, c)
	if err := x.wait(t, waitFor); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve() = %v, want ErrServerClosed", err)
	}
}

// TestShutdownBeforeServe: Shutdown of a mux that was never served
// returns at once, and a later Serve returns at once.
func TestShutdownBeforeServe(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t)
	l := x.Match(Any())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := shutdownOf(t, x.CMux).Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	x.start(t)
	if err := x.wait(t, waitFor); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve() = %v, want ErrServerClosed", err)
	}
	if _, err := acceptWithin(t, l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Accept() = %v, want ErrServerClosed", err)
	}
}

// TestShutdownConcurrent: Shutdown, Close and Shutdown again at once, with
// traffic, under the race detector; every call returns.
func TestShutdownConcurrent(t *testing.T) {
	checkLeaks(t)
	for i := range 20 {
		x := newServedMux(t)
		serveConns(t, x.Match(Any()), func(c net.Conn) { c.Close() })
		x.start(t)
		for range 3 {
			dialAndWrite(t, x.addr(), "x")
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- shutdownOf(t, x.CMux).Shutdown(ctx)
			}()
		}
		if i%2 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x.Close()
			}()
		}
		wg.Wait()
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("round %d: Shutdown() = %v", i, err)
			}
		}
		if err := x.wait(t, waitFor); !errors.Is(err, net.ErrClosed) {
			t.Errorf("round %d: Serve() = %v", i, err)
		}
	}
}

// TestMaxMatching: at the cap the mux stops accepting: a normal client
// waits in the kernel's backlog until a slot frees, and the error handler
// hears of it.
func TestMaxMatching(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t, MaxMatching(2))
	errs := errorChan(x, 10)
	ch := acceptChan(t, x.Match(PrefixMatcher("GO")))
	x.start(t)

	a := dialAndWrite(t, x.addr(), "")
	dialAndWrite(t, x.addr(), "")
	waitUntil(t, "two being matched", func() bool { return x.inflightCount() == 2 })
	dialAndWrite(t, x.addr(), "GO")
	if err := nextErr(t, errs); !errors.Is(err, ErrMatchingLimit) {
		t.Fatalf("error handler got %v, want ErrMatchingLimit", err)
	}
	select {
	case <-ch:
		t.Fatal("a connection was accepted past the cap")
	case <-time.After(100 * time.Millisecond):
	}
	if x.inflightCount() != 2 {
		t.Errorf("%d connections being matched, want 2", x.inflightCount())
	}
	a.Close() // frees a slot: a is dropped
	if got := readN(t, takeConn(t, ch), 2); got != "GO" {
		t.Errorf("read %q", got)
	}
}

// TestMaxMatchingPerSource: a source at its cap gets new connections
// closed at once, while another source is served.
func TestMaxMatchingPerSource(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t, MaxMatchingPerSource(2))
	errs := errorChan(x, 10)
	ch := acceptChan(t, x.Match(PrefixMatcher("GO")))
	x.start(t)

	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: waitFor}
	for range 2 {
		c, err := other.Dial("tcp", x.addr())
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
	waitUntil(t, "two being matched", func() bool { return x.inflightCount() == 2 })
	c, err := other.Dial("tcp", x.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	requireClosedByPeer(t, c)
	var le *limitError
	if err := nextErr(t, errs); !errors.Is(err, ErrMatchingLimit) || !errors.As(err, &le) || le.remote == nil {
		t.Fatalf("error handler got %v, want ErrMatchingLimit naming the client", err)
	}

	dialAndWrite(t, x.addr(), "GO") // from 127.0.0.1
	if got := readN(t, takeConn(t, ch), 2); got != "GO" {
		t.Errorf("read %q", got)
	}
}

// TestMaxMatchingBurst: a burst of silent clients at the cap delays a normal
// client by no more than the cap's queueing: with MaxMatchingPerSource the
// burst's source is capped and the normal client is not delayed at all;
// with MaxMatching alone it waits for the burst's matching deadlines.
func TestMaxMatchingBurst(t *testing.T) {
	checkLeaks(t)
	const (
		burst   = 60
		cap     = 20
		timeout = 300 * time.Millisecond
	)
	for _, perSource := range []bool{false, true} {
		t.Run(fmt.Sprintf("perSource=%v", perSource), func(t *testing.T) {
			checkLeaks(t)
			opts := []Option{MatchTimeout(timeout), MaxMatching(cap)}
			if perSource {
				opts = append(opts, MaxMatchingPerSource(cap/2))
			}
			x := newServedMux(t, opts...)
			x.HandleError(func(error) bool { return true })
			ch := acceptChan(t, x.Match(PrefixMatcher("GO")))
			x.start(t)

			slow := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, Timeout: waitFor}
			for range burst {
				c, err := slow.Dial("tcp", x.addr())
				if err != nil {
					t.Skipf("cannot dial from 127.0.0.3: %v", err)
				}
				t.Cleanup(func() { c.Close() })
			}
			start := time.Now()
			dialAndWrite(t, x.addr(), "GO")
			takeConn(t, ch)
			d := time.Since(start)
			// Without a per-source cap the burst holds the cap for up to
			// burst/cap rounds of the matching deadline.
			bound := time.Duration(burst/cap+1)*timeout + time.Second
			if perSource {
				bound = time.Second
			}
			t.Logf("normal client served after %v (bound %v)", d.Round(time.Millisecond), bound)
			if d > bound {
				t.Errorf("normal client served after %v, want at most %v", d, bound)
			}
		})
	}
}

// inflightCount returns the number of connections being matched.
func (x *servedMux) inflightCount() int {
	m := x.CMux.(*cMux)
	m.connMu.Lock()
	defer m.connMu.Unlock()
	return len(m.inflight)
}

// waitUntil polls cond until it holds, failing t after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// readResponse reads one HTTP/1.1 response from c and returns its body, or
// the error.
func readResponse(c net.Conn) string {
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func readFull(c net.Conn, b []byte) error {
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.ReadFull(c, b)
	return err
}
