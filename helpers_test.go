package cmux

// Helpers shared by the test files: loopback listeners and connections,
// servers that run until the test ends, test certificates, and a few small
// readers and writers.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
	"github.com/cmux-go/cmux/internal/wiretest"
)

// assert and require are the checks of internal/testcheck, which have the
// names, arguments and meaning of testify's: assert reports a failure and
// lets the test go on, require stops the test.
var assert, require = testcheck.Assert, testcheck.Require

// waitFor bounds every wait of these tests for something that should
// happen at once.
const waitFor = 5 * time.Second

// ---------------------------------------------------------------------------
// Listeners and connections on 127.0.0.1.

// listenLoopback listens on a free TCP port of 127.0.0.1; the cleanup
// closes the listener.
func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// dialTCP connects to addr; the cleanup closes the connection.
func dialTCP(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// acceptChan returns the connections l accepts, until its Accept fails. The
// cleanup closes l and the connections nobody took.
func acceptChan(t testing.TB, l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1024)
	go func() {
		defer close(ch)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		timeout := time.After(waitFor)
		for {
			select {
			case c, ok := <-ch:
				if !ok {
					return
				}
				c.Close()
			case <-timeout:
				t.Error("child Accept did not return after Close")
				return
			}
		}
	})
	return ch
}

// takeConn returns the next connection from ch, failing t if none comes
// within waitFor. The cleanup closes it.
func takeConn(t testing.TB, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c, ok := <-ch:
		require.True(t, ok, "child listener closed")
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(waitFor):
		t.Fatal("no connection delivered")
		return nil
	}
}

// ---------------------------------------------------------------------------
// Servers that run until the test ends.

// background is a server's Serve running in its own goroutine.
type background struct {
	done chan struct{} // closed when Serve returned
	err  error         // what Serve returned, once done is closed
}

// goServe runs serve in a goroutine. The cleanup calls stop and fails t
// unless serve returns within waitFor; what names serve in that failure.
func goServe(t testing.TB, what string, serve func() error, stop func()) *background {
	b := &background{done: make(chan struct{})}
	go func() {
		b.err = serve()
		close(b.done)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-b.done:
		case <-time.After(waitFor):
			t.Errorf("%s did not return", what)
		}
	})
	return b
}

// wait returns what Serve returned, failing t if it takes longer than d.
func (b *background) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-b.done:
		return b.err
	case <-time.After(d):
		t.Fatalf("Serve did not return within %v", d)
		return nil
	}
}

// serveMux runs m.Serve; the cleanup closes m and its root listener and
// waits for Serve to return.
func serveMux(t testing.TB, m CMux, root net.Listener) *background {
	return goServe(t, "CMux.Serve", m.Serve, func() {
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

// errorChan makes m's error handler send every error to the returned
// channel, of capacity n, and go on serving; errors that do not fit are
// dropped.
func errorChan(m CMux, n int) chan error {
	errs := make(chan error, n)
	m.HandleError(func(err error) bool {
		select {
		case errs <- err:
		default:
		}
		return true
	})
	return errs
}

// nextErr returns the next error from errs, failing t if none comes within
// waitFor.
func nextErr(t testing.TB, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(waitFor):
		t.Fatal("no error reported")
		return nil
	}
}

// ---------------------------------------------------------------------------
// Certificates.

// The certificates of the tests are internal/wiretest's.
var (
	selfSignedCert = wiretest.SelfSigned
	newTestPKI     = wiretest.NewPKI
)

// serverTLS returns a server config with the certificates.
func serverTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: certs}
}

// clientTLS returns a client config that trusts roots.
func clientTLS(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots}
}

// ---------------------------------------------------------------------------
// Small readers and writers.

// readOnly makes a Matcher a MatchWriter that never writes.
func readOnly(m Matcher) MatchWriter { return func(_ io.Writer, r io.Reader) bool { return m(r) } }

// syncBuffer is a bytes.Buffer safe for concurrent use, e.g. a server's
// ErrorLog or a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// rewritesSettings reports whether c's writes still walk the server's first
// SETTINGS frame.
func (c *MuxConn) rewritesSettings() bool { return c.h2 != nil && c.h2.settings.Active() }
