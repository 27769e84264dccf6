package compat

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor bounds every wait for something that should happen.
const waitFor = 5 * time.Second

// quiet is how long a scenario watches for something that should not
// happen.
const quiet = 500 * time.Millisecond

// closedText is what code in the wild looks for in Serve's error.
const closedText = "use of closed network connection"

// listen returns a TCP listener on 127.0.0.1, closed at the end of t.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// A waiter is a function running in its own goroutine, whose error can be
// waited for any number of times.
type waiter struct {
	c   chan struct{}
	err error
}

// goWait runs f in a goroutine.
func goWait(f func() error) *waiter {
	w := &waiter{c: make(chan struct{})}
	go func() {
		w.err = f()
		close(w.c)
	}()
	return w
}

// serve runs m.Serve in a goroutine.
func serve(m Mux) *waiter { return goWait(m.Serve) }

// wait returns f's error, or fails t if f does not return within d.
func (w *waiter) wait(t *testing.T, d time.Duration, what string) error {
	t.Helper()
	select {
	case <-w.c:
		return w.err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// returnsWithin reports whether f returns within d.
func (w *waiter) returnsWithin(d time.Duration) bool {
	select {
	case <-w.c:
		return true
	case <-time.After(d):
		return false
	}
}

// within waits up to d for a value on c; it fails t if none comes.
func within[T any](t *testing.T, c <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		panic("unreachable")
	}
}

// nothingWithin reports whether no value comes on c for d; the value that
// came otherwise.
func nothingWithin[T any](c <-chan T, d time.Duration) (T, bool) {
	select {
	case v := <-c:
		return v, false
	case <-time.After(d):
		var zero T
		return zero, true
	}
}

// result is a value or an error from a goroutine.
type result[T any] struct {
	v   T
	err error
}

// async runs f in a goroutine and returns the channel of its result.
func async[T any](f func() (T, error)) <-chan result[T] {
	c := make(chan result[T], 1)
	go func() {
		v, err := f()
		c <- result[T]{v, err}
	}()
	return c
}

// accept runs l.Accept in a goroutine; the connection it returns, if any,
// is closed at the end of t.
func accept(t *testing.T, l net.Listener) <-chan result[net.Conn] {
	t.Helper()
	c := make(chan result[net.Conn], 1)
	var mu sync.Mutex
	var got net.Conn
	done := false
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		if got != nil {
			got.Close()
		}
	})
	go func() {
		conn, err := l.Accept()
		mu.Lock()
		if done && conn != nil {
			conn.Close()
		}
		got = conn
		mu.Unlock()
		c <- result[net.Conn]{conn, err}
	}()
	return c
}

// dial connects to addr; the connection is closed at the end of t.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send dials addr and writes b.
func send(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	c := dial(t, addr)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// readN reads exactly n bytes from c within waitFor.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// peerClosed reports whether c's peer closed it (EOF or reset) within d,
// and what was read before.
func peerClosed(c net.Conn, d time.Duration) (closed bool, data []byte, err error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	data, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, data, err
	}
	return true, data, err
}

// requirePeerClosed fails t unless c's peer closes it within waitFor.
func requirePeerClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	if closed, _, err := peerClosed(c, waitFor); !closed {
		t.Errorf("%s: connection still open after %v (%v)", what, waitFor, err)
	}
}

// requireStillOpen fails t if c's peer closes it within d.
func requireStillOpen(t *testing.T, c net.Conn, d time.Duration, what string) {
	t.Helper()
	if closed, data, err := peerClosed(c, d); closed {
		t.Errorf("%s: connection closed within %v (read %q, %v), want it open", what, d, data, err)
	}
}

// requirePortClosed fails t unless connecting to addr is refused.
func requirePortClosed(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", addr)
		return
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: %v, want connection refused", addr, err)
	}
}

// requirePortOpen fails t unless connecting to addr succeeds.
func requirePortOpen(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Errorf("dial %s: %v, want the port open", addr, err)
		return
	}
	c.Close()
}

// requireClosedError fails t unless err is what Serve returns when the
// root listener was closed: the root's accept error, which code in the
// wild tells from a failure by its text.
func requireClosedError(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s = nil, want the closed listener's error", what)
		return
	}
	if !strings.Contains(err.Error(), closedText) {
		t.Errorf("%s = %q, want it to contain %q", what, err, closedText)
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("%s = %v, want errors.Is(err, net.ErrClosed)", what, err)
	}
}

// requireRootAcceptError fails t unless err is exactly the error a closed
// TCP listener's Accept returns, as v0.1.5's Serve passes it on.
func requireRootAcceptError(t *testing.T, err error, addr net.Addr, what string) {
	t.Helper()
	requireClosedError(t, err, what)
	want := "accept tcp " + addr.String() + ": " + closedText
	if err != nil && err.Error() != want {
		t.Errorf("%s = %q, want %q", what, err, want)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("%s = %T, want a *net.OpError", what, err)
	}
}

// isChildClosed reports whether err is one of the errors a child's Accept
// returns once Serve stopped.
func isChildClosed(lib *Lib, err error) bool {
	return errors.Is(err, lib.ErrListenerClosed) || errors.Is(err, lib.ErrServerClosed)
}

// testCert returns a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "compat"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

func serverTLSConfig() *tls.Config {
	cert, _ := testCert()
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func clientTLSConfig() *tls.Config {
	_, pool := testCert()
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// inSubprocess is set in a child process started by crashes.
var inSubprocess = os.Getenv("COMPAT_SUBPROCESS") != ""
