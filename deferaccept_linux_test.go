package cmux

import (
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// deferAccept sets TCP_DEFER_ACCEPT on l: the kernel queues a connection
// for Accept once its first bytes are there (or secs have passed).
func deferAccept(t testing.TB, l net.Listener, secs int) {
	t.Helper()
	rc, err := l.(*net.TCPListener).SyscallConn()
	require.NoError(t, err)
	var serr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, secs)
	}))
	require.NoError(t, serr)
}

// workers counts the mux's worker goroutines.
func workers() int {
	n := 0
	for _, s := range testcheck.GoroutineStacks() {
		if strings.Contains(s, "cmux.(*cMux).work(") {
			n++
		}
	}
	return n
}

// On a listener with TCP_DEFER_ACCEPT, whose Accept returns a connection
// once its first bytes are there, the accept loop matches every connection
// itself (matchNow), with no worker and no wait in the poller: the README's
// recipe for the lowest cost per connection rests on it. The control, a
// listener without it and clients that write 2 ms after connecting, shows
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
				deferAccept(t, root, 5)
			}
			m := New(root)
			hl := m.Match(HTTP1Fast())
			m.Match(Any())
			serveMux(t, m, root)
			accepted := acceptChan(t, hl)
			const req = "GET / HTTP/1.1\r\nHost: cmux\r\n\r\n"
			for i := range 20 {
				c := dialTCP(t, root.Addr().String())
				if !deferred {
					time.Sleep(2 * time.Millisecond)
				}
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
			n := workers()
			if deferred && n != 0 {
				t.Fatalf("%d workers started for connections whose bytes were there at Accept", n)
			}
			if !deferred && n == 0 {
				t.Fatal("control: no worker for connections whose bytes were late")
			}
		})
	}
}
