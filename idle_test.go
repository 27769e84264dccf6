package cmux

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// TestIdleWaitWithoutSniffer: a connection that has sent nothing when it is
// accepted, whose first matcher needs bytes, waits for them on a worker
// without a sniffer, over TCP and over a connection that is not a socket;
// once its bytes come, it is matched and delivered with every byte, and
// the matchers that need no bytes, or wait on time, still decide at once.
func TestIdleWaitWithoutSniffer(t *testing.T) {
	var waits atomic.Int64
	testHookIdleWait = func() { waits.Add(1) }
	t.Cleanup(func() { testHookIdleWait = nil })

	flight := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name  string
		pipe  bool
		build func(m CMux) net.Listener
		idle  bool // the wait without a sniffer is expected
	}{
		{"tcp", false, func(m CMux) net.Listener {
			m.Match(HTTP2HeaderField("content-type", "application/grpc"))
			return m.Match(HTTP1Fast())
		}, true},
		{"pipe", true, func(m CMux) net.Listener {
			m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			return m.Match(HTTP1Fast())
		}, true},
		{"any-first", false, func(m CMux) net.Listener { return m.Match(Any()) }, false},
		{"silent-first", false, func(m CMux) net.Listener {
			m.Match(Silent(time.Second))
			return m.Match(HTTP1Fast())
		}, false},
		{"user-matcher-first", false, func(m CMux) net.Listener {
			inner := HTTP1Fast()
			return m.Match(func(r io.Reader) bool { return inner(r) })
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer testcheck.CheckLeaks(t)
			waits.Store(0)
			var root net.Listener
			var dial func() net.Conn
			if tc.pipe {
				ml := newMemListener()
				root = ml
				dial = func() net.Conn {
					c, s := net.Pipe()
					ml.connc <- s
					return c
				}
			} else {
				root = listenLoopback(t)
				dial = func() net.Conn { return dialTCP(t, root.Addr().String()) }
			}
			m := New(root)
			want := tc.build(m)
			serveMux(t, m, root)
			accepted := acceptChan(t, want)

			c := dial()
			defer c.Close()
			if tc.name == "any-first" {
				dc := takeConn(t, accepted)
				dc.Close()
				assert.Equal(t, int64(0), waits.Load())
				return
			}
			time.Sleep(50 * time.Millisecond) // accepted, and found silent
			// A pipe's Write returns once every byte is read: write
			// from another goroutine.
			wrote := make(chan error, 1)
			go func() { _, err := c.Write([]byte(flight)); wrote <- err }()
			dc := takeConn(t, accepted)
			defer dc.Close()
			assert.Equal(t, flight, readN(t, dc, len(flight)))
			select {
			case err := <-wrote:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("the client's Write did not return")
			}
			if tc.idle {
				assert.Equal(t, int64(1), waits.Load(), "waits without a sniffer")
			} else {
				assert.Equal(t, int64(0), waits.Load(), "waits without a sniffer")
			}
		})
	}
}
