package cmux

import (
	"bytes"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/h2"
)

// The cost of a connection while it is matched, in memory: N in-memory
// connections are held mid-match, and the heap (and goroutine stacks) they
// add is divided by N.

// bhConn is a client that sends flight, then stays silent until closed.
type bhConn struct {
	flight    []byte
	off       int
	parked    *sync.WaitGroup // Done once the mux waits for more
	parkOnce  sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *bhConn) Read(p []byte) (int, error) {
	if c.off < len(c.flight) {
		n := copy(p, c.flight[c.off:])
		c.off += n
		return n, nil
	}
	c.parkOnce.Do(c.parked.Done)
	<-c.closed
	return 0, net.ErrClosed
}

func (c *bhConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *bhConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *bhConn) LocalAddr() net.Addr                { return memAddr{} }
func (c *bhConn) RemoteAddr() net.Addr               { return memAddr{} }
func (c *bhConn) SetDeadline(t time.Time) error      { return nil }
func (c *bhConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *bhConn) SetWriteDeadline(t time.Time) error { return nil }

// benchMatchingHeap holds bhConns connections that sent flight mid-match on
// a mux set up by setup, and reports the heap and stack bytes each adds.
func benchMatchingHeap(b *testing.B, flight []byte, setup func(CMux)) {
	const n = 1000
	var heap, stack float64
	for range b.N {
		b.StopTimer()
		root := newMemListener()
		m := New(root)
		setup(m)
		done := make(chan error, 1)
		go func() { done <- m.Serve() }()
		var parked sync.WaitGroup
		parked.Add(n)
		conns := make([]*bhConn, n)
		for i := range conns {
			conns[i] = &bhConn{flight: flight, parked: &parked, closed: make(chan struct{})}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC() // and the pools' victim caches
		runtime.ReadMemStats(&before)
		b.StartTimer()

		for _, c := range conns {
			root.connc <- c
		}
		parked.Wait()

		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		stack += float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
		m.Close()
		root.Close()
		<-done
		runtime.KeepAlive(conns)
	}
	b.ReportMetric(heap/float64(b.N), "heapB/conn")
	b.ReportMetric(stack/float64(b.N), "stackB/conn")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
}

// BenchmarkMatchingHeap: what a connection costs while it is matched.
// Idle: connected and silent, before a gRPC matcher and HTTP1Fast. Hostile:
// 60 KiB of a header line that does not end, to HTTP1HeaderField.
func BenchmarkMatchingHeap(b *testing.B) {
	b.Run("Idle", func(b *testing.B) {
		benchMatchingHeap(b, nil, func(m CMux) {
			m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			m.Match(HTTP1Fast())
		})
	})
	b.Run("Hostile", func(b *testing.B) {
		flight := append([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Long: "), bytes.Repeat([]byte("a"), 60<<10)...)
		benchMatchingHeap(b, flight, func(m CMux) {
			m.Match(HTTP1HeaderField("X-Tenant", "blue"))
		})
	})
	b.Run("HostileHTTP2", func(b *testing.B) {
		// 60 KiB of SETTINGS frames, to an HTTP/2 header matcher.
		settings := []byte{0, 0, 6, h2.FrameSettings, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0}
		flight := append([]byte(h2.Preface), bytes.Repeat(settings, 60<<10/len(settings))...)
		benchMatchingHeap(b, flight, func(m CMux) {
			m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
		})
	})
}
