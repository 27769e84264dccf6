package cmux

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// This file tests the mux under load: shutdown while connections are
// matched, and bursts of connections.

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

			// Each check waits up to hoWait: stop at the first failure
			// rather than wait for every connection.
			for _, c := range silent {
				if hoRequireClosed(t, c); t.Failed() {
					t.FailNow()
				}
			}
			// Queued connections that no server accepted are closed with
			// Serve's return, whatever stopped it.
			for _, c := range queued {
				if hoRequireClosed(t, c); t.Failed() {
					t.FailNow()
				}
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

// After a burst of connections matched off the accept loop, every
// goroutine the mux started for it is gone within a second of the last
// delivery, while the mux goes on serving: the workers that matched them,
// after being idle for one to two workerIdle (at most 600 ms); with
// ConcurrentAccept and connections that are not sockets, the acceptors
// that matched them, at once; and the expirer of MatchTimeout (a tick, at
// most 250 ms).
func TestWorkersStopAfterBurst(t *testing.T) {
	for _, opts := range [][]Option{nil, {ConcurrentAccept()}} {
		name := "memory"
		if opts != nil {
			name += ",ConcurrentAccept"
		}
		t.Run(name, func(t *testing.T) {
			ml := newMemListener()
			testGoroutinesStopAfterBurst(t, ml, func() {
				ml.connc <- &memConn{flight: []byte("x")}
			}, opts...)
		})
	}
	t.Run("tcp", func(t *testing.T) {
		tl := listenLoopback(t)
		var clients []net.Conn
		t.Cleanup(func() {
			for _, c := range clients {
				c.Close()
			}
		})
		testGoroutinesStopAfterBurst(t, tl, func() {
			c := dialTCP(t, tl.Addr().String())
			clients = append(clients, c)
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// testGoroutinesStopAfterBurst serves root and makes a burst of
// connections with connect (which sends one byte on each), all matched
// by a matcher of the program's, which runs off the accept loop.
func testGoroutinesStopAfterBurst(t *testing.T, root net.Listener, connect func(), opts ...Option) {
	testcheck.CheckLeaks(t)
	m := NewWithOptions(root, opts...)
	// Sleeping keeps many goroutines busy at once.
	l := m.Match(func(io.Reader) bool { time.Sleep(20 * time.Millisecond); return true })
	serveMux(t, m, root)
	accepted := acceptChan(t, l)
	time.Sleep(20 * time.Millisecond)
	base := runtime.NumGoroutine()

	const n = 200
	for range n {
		connect()
	}
	peak := runtime.NumGoroutine()
	for range n {
		takeConn(t, accepted).Close()
	}
	done := time.Now()
	require.Greater(t, peak, base+4, "the burst did not start goroutines")
	for runtime.NumGoroutine() > base {
		if time.Since(done) > time.Second {
			t.Fatalf("%d goroutines 1s after the burst, %d before it", runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d goroutines at the peak, all gone %v after the last delivery", peak-base, time.Since(done).Round(time.Millisecond))
}
