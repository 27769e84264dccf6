package e2e

// Helpers of these tests, copied from the root module's helpers_test.go
// (which the root package's tests keep unexported): loopback listeners,
// servers that run until the test ends, and test certificates.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/internal/testcheck"
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

// newCert returns a certificate made from tmpl, valid from an hour ago to
// an hour from now, for a new P-256 key and signed by issuer (self-signed
// if issuer is nil). Its Leaf is set.
func newCert(t testing.TB, tmpl *x509.Certificate, issuer *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	require.NoError(t, err)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	parent, parentKey := tmpl, any(key)
	if issuer != nil {
		parent, parentKey = issuer.Leaf, issuer.PrivateKey
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// selfSignedCert returns a certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSignedCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	cert := newCert(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cmux test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool
}

// testPKI is a test CA.
type testPKI struct {
	roots *x509.CertPool // trusts the CA
	ca    tls.Certificate
}

// newTestPKI returns a new CA.
func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	ca := newCert(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cmux test CA"},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	return &testPKI{roots: roots, ca: ca}
}

// leafSerial numbers the certificates leaf issues.
var leafSerial atomic.Int64

// leaf returns a certificate named cn for the DNS names, for servers and
// clients.
func (p *testPKI) leaf(t testing.TB, cn string, names ...string) tls.Certificate {
	t.Helper()
	return newCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(leafSerial.Add(1) + 1),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, &p.ca)
}
