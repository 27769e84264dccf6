package cmux

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/sockopt"
	"github.com/cmux-go/cmux/internal/testcheck"
)

// workers returns the header lines ("goroutine N") of the worker
// goroutines of every mux in the process (see muxGoroutines).
func workers() map[string]bool {
	w := make(map[string]bool)
	for _, s := range muxGoroutines() {
		if strings.Contains(s, "cmux.(*cMux).work(") {
			head, _, _ := strings.Cut(s, " [")
			w[head] = true
		}
	}
	return w
}

// On a listener with TCP_DEFER_ACCEPT, whose Accept returns a connection
// once its first bytes are there, the accept loop matches the connections
// that the first bytes decide itself (matchNow), with no worker and no wait
// in the poller: the README's recipe for the lowest cost per connection
// rests on it. The chain is the one cmuxgrpc/cpupair.sh measures, whose
// gRPC matcher rules out an HTTP/1 request on its first byte. Clients write
// 2 ms after connecting; the control, the same without the option, shows
// that the count sees the workers that match connections whose bytes are
// late.
func TestDeferAcceptMatchesOnAcceptLoop(t *testing.T) {
	for _, deferred := range []bool{true, false} {
		name := "TCP_DEFER_ACCEPT"
		if !deferred {
			name = "control"
		}
		t.Run(name, func(t *testing.T) {
			testcheck.CheckLeaks(t)
			root := listenLoopback(t)
			if deferred {
				require.NoError(t, sockopt.DeferAccept(root, 5))
			}
			m := New(root)
			m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			hl := m.Match(HTTP1Fast())
			m.Match(Any())
			serveMux(t, m, root)
			accepted := acceptChan(t, hl)
			before := workers()
			const req = "GET / HTTP/1.1\r\nHost: cmux\r\n\r\n"
			for i := range 20 {
				c := dialTCP(t, root.Addr().String())
				time.Sleep(2 * time.Millisecond)
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				sc := takeConn(t, accepted)
				sc.SetReadDeadline(time.Now().Add(waitFor))
				got := make([]byte, len(req))
				if _, err := io.ReadFull(sc, got); err != nil || string(got) != req {
					t.Fatalf("connection %d: read %q, %v; want %q", i, got, err, req)
				}
				sc.Close()
				c.Close()
			}
			// Workers stay idle for 300 ms at least: one that matched a
			// connection is still there.
			n := 0
			for w := range workers() {
				if !before[w] {
					n++
				}
			}
			if deferred && n != 0 {
				t.Fatalf("%d workers started for connections whose bytes were there at Accept", n)
			}
			if !deferred && n == 0 {
				t.Fatal("control: no worker for connections whose bytes were late")
			}
		})
	}
}
