package e2e

//lint:file-ignore SA1019 the example drives the x/net/http2 server on purpose: users run it, and the mux must work with it.

// Example_muxInsideTLSWithHTTP2, moved here from the root package's
// example_tls_test.go, which imports no golang.org/x/net/http2 (see
// scripts/check-deps), with a copy of its exampleCA.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
)

// Terminate TLS on the root listener, then mux the decrypted connections:
// one certificate setup for every protocol behind the mux, at a cost. The
// servers get the mux's connection, not a *tls.Conn: with
// ExposeConnectionState, net/http fills Request.TLS through its
// ConnectionState method, but serves HTTP/2 only on
// a *tls.Conn (TLSNextProto), so HTTP/2 over TLS takes
// http2.Server.ServeConn on each connection, as here; and a gRPC server
// behind the mux would need insecure credentials and would not see the
// peer's TLS state. When the protocols differ by SNI or ALPN, the
// ClientHello matchers (see ExampleTLSClientHello) avoid these costs.
func Example_muxInsideTLSWithHTTP2() {
	issue, roots := exampleCA()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.NewWithOptions(tls.NewListener(l, &tls.Config{
		Certificates: []tls.Certificate{issue("api.example.com")},
		NextProtos:   []string{"h2", "http/1.1"},
	}), cmux.ExposeConnectionState())
	h2L := m.Match(cmux.HTTP2())
	h1L := m.Match(cmux.HTTP1Fast())

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s, TLS %v, ALPN %q", r.Proto, r.TLS != nil, r.TLS.NegotiatedProtocol)
	})
	h2s := &http2.Server{}
	go func() {
		for {
			c, err := h2L.Accept()
			if err != nil {
				return
			}
			go h2s.ServeConn(c, &http2.ServeConnOpts{Handler: handler})
		}
	}()
	hs := &http.Server{Handler: handler}
	go hs.Serve(h1L)
	go m.Serve()

	for _, tr := range []*http.Transport{
		{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "api.example.com"}},
		{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "api.example.com", NextProtos: []string{"http/1.1"}}},
	} {
		resp, err := (&http.Client{Transport: tr}).Get("https://" + l.Addr().String() + "/")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		fmt.Println(string(body))
	}

	hs.Close()
	m.Close()
	l.Close()
	// Output:
	// HTTP/2.0, TLS true, ALPN "h2"
	// HTTP/1.1, TLS true, ALPN "http/1.1"
}

// exampleCA returns a function that issues certificates for host names,
// and a pool that trusts them.
func exampleCA() (issue func(names ...string) tls.Certificate, roots *x509.CertPool) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	serial := int64(1)
	issue = func(names ...string) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			DNSNames:     names,
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			log.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return issue, roots
}
