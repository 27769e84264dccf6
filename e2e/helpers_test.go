package e2e

// Helpers of these tests, copied from the root module's helpers_test.go
// (which the root package's tests keep unexported): loopback listeners,
// servers that run until the test ends, and test certificates.

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/internal/testcheck"
	"github.com/cmux-go/cmux/internal/wiretest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// assert and require are the checks of the root module's
// internal/testcheck (testify's names, arguments and meaning).
var assert, require = testcheck.Assert, testcheck.Require

// waitFor bounds every wait of these tests for something that should
// happen at once.
const waitFor = 5 * time.Second

// listenLoopback listens on a free TCP port of 127.0.0.1; the cleanup
// closes the listener.
func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// dialTCP connects to addr with a deadline of d; the cleanup closes the
// connection.
func dialTCP(t testing.TB, addr string, d time.Duration) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(d)))
	return c
}

// goServe runs serve in a goroutine. The cleanup calls stop and fails t
// unless serve returns within waitFor; what names serve in that failure.
func goServe(t testing.TB, what string, serve func() error, stop func()) {
	done := make(chan struct{})
	go func() {
		_ = serve()
		close(done)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("%s did not return", what)
		}
	})
}

// newMux returns a mux on a new loopback listener, made with opts; start
// serves it until the test ends.
func newMux(t testing.TB, opts ...cmux.Option) (m cmux.CMux, start func(), addr string) {
	t.Helper()
	l := listenLoopback(t)
	m = cmux.NewWithOptions(l, opts...)
	start = func() { serveMux(t, m, l) }
	return m, start, l.Addr().String()
}

// serveMux runs m.Serve; the cleanup closes m and its root listener and
// waits for Serve to return.
func serveMux(t testing.TB, m cmux.CMux, root net.Listener) {
	goServe(t, "CMux.Serve", m.Serve, func() {
		m.Close()
		root.Close()
	})
}

// serveHTTP serves l with hs; the cleanup closes hs and waits for Serve.
func serveHTTP(t testing.TB, l net.Listener, hs *http.Server) {
	goServe(t, "http.Server.Serve", func() error { return hs.Serve(l) }, func() { hs.Close() })
}

// serveHTTPS serves l with hs over TLS with hs.TLSConfig; the cleanup
// closes hs and waits for ServeTLS.
func serveHTTPS(t testing.TB, l net.Listener, hs *http.Server) {
	goServe(t, "http.Server.ServeTLS", func() error { return hs.ServeTLS(l, "", "") }, func() { hs.Close() })
}

// serveHealth serves l with a gRPC server, made with opts, that has the
// health service; the cleanup stops it and waits for Serve.
func serveHealth(t testing.TB, l net.Listener, opts ...grpc.ServerOption) {
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	goServe(t, "grpc.Server.Serve", func() error { return gs.Serve(l) }, gs.Stop)
}

// serveConns runs handle on every connection l accepts, each in its own
// goroutine, and closes the connection when handle returns. The cleanup
// closes l and waits for the handlers.
func serveConns(t testing.TB, l net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// Echo is the net/rpc service of the end-to-end test.
type Echo struct{}

// Upper answers s in upper case.
func (Echo) Upper(s string, reply *string) error {
	*reply = strings.ToUpper(s)
	return nil
}

// The certificates of the tests are internal/wiretest's.
var (
	selfSignedCert = wiretest.SelfSigned
	newTestPKI     = wiretest.NewPKI
)
