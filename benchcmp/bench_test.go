package benchcmp

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFullPath measures one connection's whole path per iteration:
// the root's Accept, the mux, the matchers, the child's Accept and the
// server's Close without reading. The benchmark goroutine dials b.N fresh
// connections; a goroutine accepts them from the case's child and closes
// them; the iteration count is reached when the child has accepted b.N.
// Run with GOMAXPROCS=1, ns/op is the CPU of every goroutine involved.
// allocs/op and B/op include the harness's one memConn per connection, on
// both sides alike.
func BenchmarkFullPath(b *testing.B) {
	eachCase(b, libs, benchFullPath)
}

func benchFullPath(b *testing.B, lib library, c benchCase) {
	skipUnsupported(b, lib, c)
	base := runtime.NumGoroutine()
	root := newMemListener()
	r := lib.start(root, c.children)
	done := make(chan error, 1)
	go acceptAndClose(r.children[c.want], b.N, done)

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !root.dial(newMemConn(c.flight, nil)) {
			b.Fatal("root listener closed")
		}
	}
	err := <-done
	b.StopTimer()

	if err != nil {
		b.Errorf("child Accept: %v", err)
	}
	if err := stop(r, root, nil); err != nil {
		b.Fatal(err)
	}
	waitGoroutines(b, base)
}

// BenchmarkTCPPath is BenchmarkFullPath over real loopback TCP: the root
// listener is a net.TCPListener on 127.0.0.1, and each iteration is one new
// connection. tcpClients goroutines dial; each client writes the case's
// flight, reads until the server has closed the connection and closes its
// end (tcpClient). The server side is the same as BenchmarkFullPath's: the
// child's Accept, then Close without reading. The iteration count is
// reached when the child has accepted b.N connections and every client has
// closed its end. Run with GOMAXPROCS=1, ns/op is the CPU of the whole
// process per connection, the clients' included, and so are B/op and
// allocs/op: the clients' share is the same for both libraries. Most of
// it is the kernel's. cpu-ns/op is the process's CPU time (getrusage) per
// connection, which is ns/op on a machine that runs nothing else;
// usr-ns/op and sys-ns/op split it into user space and kernel. rst/op is the
// TCP resets sent per connection, by either end (the whole network
// namespace's, from /proc/net/snmp): a server that closes a connection
// with bytes unread resets it, and a reset costs the kernel less than a
// FIN and a TIME_WAIT. twovf/op is the sockets closed without TIME_WAIT
// per connection because the kernel's table of them was full.
//
// Each connection leaves a socket in TIME_WAIT on the side that closed
// first (the server, unless it closed with unread bytes, which resets the
// connection instead): run it with a fixed -benchtime Nx of some 10000s.
func BenchmarkTCPPath(b *testing.B) {
	eachCase(b, socketLibs, benchTCPPath)
}

func benchTCPPath(b *testing.B, lib library, c benchCase) {
	skipUnsupported(b, lib, c)
	base := runtime.NumGoroutine()
	root, addr := listenTCP(b)
	r := lib.start(root, c.children)
	done := make(chan error, 1)
	go acceptAndClose(r.children[c.want], b.N, done)

	b.ReportAllocs()
	b.ResetTimer()
	u0, s0 := cpuTime()
	k0 := readTCPCounters()
	dialErr := dialTCP(addr, c.flight, b.N)
	var err error
	if dialErr == nil {
		err = <-done
	}
	u1, s1 := cpuTime()
	k1 := readTCPCounters()
	b.StopTimer()
	b.ReportMetric(float64(u1-u0+s1-s0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(u1-u0)/float64(b.N), "usr-ns/op")
	b.ReportMetric(float64(s1-s0)/float64(b.N), "sys-ns/op")
	k1.report(b, k0)

	if dialErr != nil {
		b.Errorf("dial: %v", dialErr)
	}
	if err != nil {
		b.Errorf("child Accept: %v", err)
	}
	if err := stop(r, root, nil); err != nil {
		b.Fatal(err)
	}
	if dialErr != nil {
		<-done // the child's Accept fails once the mux is closed
	}
	waitGoroutines(b, base)
}

// idleConns is how many connections BenchmarkIdleConns holds at once.
const idleConns = 1000

// idleChildren is a common mux: gRPC, HTTP/1, and a catch-all. A
// connection that has sent nothing waits in the first matcher.
var idleChildren = []child{
	{h2Field("content-type", "application/grpc")},
	{http1Fast()},
	{anyM()},
}

// BenchmarkIdleConns measures what the mux holds for each connection it
// has accepted and is still matching because the client has sent nothing:
// live heap after GC (heapB/idleconn), goroutine stacks (stackB/idleconn)
// and goroutines (goroutines/idleconn), over idleConns connections. Each
// iteration is one such measurement; ns/op is not reported.
//
// heapB/idleconn is the library's alone: the harness's share (the timer of
// a Read that waits under a read deadline, and the runtime's sudog of each
// waiting channel operation) is counted, reported as harnessB/idleconn and
// taken out; the harness's connections are allocated before the
// measurement. The runtime's goroutine descriptors are not in heapB: they
// are reused from a free list that is filled first, so that both libraries
// are measured alike.
func BenchmarkIdleConns(b *testing.B) {
	for _, lib := range libs {
		b.Run("lib="+lib.name, func(b *testing.B) {
			var sum idleResult
			for i := 0; i < b.N; i++ {
				m := measureIdle(b, lib, idleConns)
				sum.heap += m.heap
				sum.harness += m.harness
				sum.stack += m.stack
				sum.goroutines += m.goroutines
			}
			n := float64(b.N)
			b.ReportMetric(sum.heap/n, "heapB/idleconn")
			b.ReportMetric(sum.harness/n, "harnessB/idleconn")
			b.ReportMetric(sum.stack/n, "stackB/idleconn")
			b.ReportMetric(sum.goroutines/n, "goroutines/idleconn")
			b.ReportMetric(0, "ns/op") // the time of a setup, not of interest
		})
	}
}

// idleResult is per idle connection.
type idleResult struct {
	heap, harness, stack, goroutines float64
}

// measureIdle holds n idle connections in lib's mux and measures them.
func measureIdle(tb testing.TB, lib library, n int) idleResult {
	tb.Helper()
	cal := calibrate()
	warmGoroutines(2 * n)
	base := runtime.NumGoroutine()

	root := newMemListener()
	r := lib.start(root, idleChildren)
	stats := &connStats{}
	conns := make([]*memConn, n)
	for i := range conns {
		conns[i] = newMemConn(nil, stats)
		conns[i].wake = make(chan struct{})
	}

	before := memNow()
	g0 := runtime.NumGoroutine()
	for _, c := range conns {
		if !root.dial(c) {
			tb.Fatal("root listener closed")
		}
	}
	// Every connection is matched in its own goroutine in both libraries:
	// wait until each has a Read waiting for bytes.
	deadline := time.Now().Add(10 * time.Second)
	for stats.waiting.Load() < int64(n) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d connections waiting in Read", stats.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let the last ones park
	g1 := runtime.NumGoroutine()
	after := memNow()

	harness := float64(stats.timers.Load())*cal.timer +
		float64(stats.waiting.Load()+stats.timers.Load())*cal.sudog
	res := idleResult{
		heap:       (float64(after.HeapAlloc) - float64(before.HeapAlloc) - harness) / float64(n),
		harness:    harness / float64(n),
		stack:      (float64(after.StackInuse) - float64(before.StackInuse)) / float64(n),
		goroutines: float64(g1-g0) / float64(n),
	}
	if got := stats.wakes.Load(); got != 0 {
		tb.Errorf("%d wake channels made during the measurement", got)
	}

	if err := stop(r, root, conns); err != nil {
		tb.Fatal(err)
	}
	runtime.KeepAlive(conns)
	waitGoroutines(tb, base)
	return res
}

func memNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// warmGoroutines starts n goroutines and lets them end, so that the
// goroutines started next reuse their descriptors and allocate none. Each
// grows its stack first: the runtime frees a stack that is not of the
// starting size when its goroutine ends, so the goroutines started next
// allocate their stacks anew, and StackInuse counts them.
//
// It counts its own goroutines, not runtime.NumGoroutine: goroutines of
// earlier tests may end meanwhile (an idle worker of a closed mux, say),
// and a count that waits for the total would then wait forever.
func warmGoroutines(n int) {
	release := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			growStack(16)
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	// Let them exit, so that their descriptors are free for reuse.
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
}

// calibration is the heap, in bytes, of the runtime objects the harness
// holds for a waiting Read.
type calibration struct {
	timer float64 // a *time.Timer and what the runtime keeps for it
	sudog float64 // a goroutine parked on a channel operation
}

var (
	calOnce sync.Once
	cal     calibration
)

func calibrate() calibration {
	calOnce.Do(func() {
		const k = 4000
		ts := make([]*time.Timer, k)
		m0 := memNow()
		for i := range ts {
			ts[i] = time.NewTimer(time.Hour)
		}
		m1 := memNow()
		for _, t := range ts {
			t.Stop()
		}
		cal.timer = (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / k

		warmGoroutines(2 * k)
		block := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(k)
		var parked atomic.Int64
		m0 = memNow()
		for i := 0; i < k; i++ {
			go func() {
				defer wg.Done()
				parked.Add(1)
				<-block
			}()
		}
		for parked.Load() < k {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond) // let the last ones park
		m1 = memNow()
		close(block)
		wg.Wait()
		cal.sudog = (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / k
	})
	return cal
}

// growStack uses about depth KiB of stack.
//
//go:noinline
func growStack(depth int) byte {
	var frame [1024]byte
	frame[depth%len(frame)] = byte(depth)
	if depth == 0 {
		return frame[0]
	}
	return growStack(depth-1) + frame[depth%len(frame)]
}

// eachCase runs bench for every case and library of libs, as sub-benchmarks
// case=NAME/lib=NAME (the names run.sh and cmd/report read).
func eachCase(b *testing.B, libs []library, bench func(*testing.B, library, benchCase)) {
	for _, c := range cases() {
		b.Run("case="+c.name, func(b *testing.B) {
			for _, lib := range libs {
				b.Run("lib="+lib.name, func(b *testing.B) { bench(b, lib, c) })
			}
		})
	}
}
