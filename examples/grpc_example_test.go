package examples_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The examples of cmux with grpc-go, moved from the cmux module's
// example_test.go, example_tls_test.go and example_grpcrest_test.go:
// Example_grpcAndHTTP was cmux's package example (Example),
// Example_tlsClientHello was ExampleTLSClientHello.

// Serve gRPC and HTTP/1.1 on one port. (This was cmux's package example;
// it lives here so that the cmux module does not require grpc.)
func Example_grpcAndHTTP() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	// gRPC clients wait for the server's SETTINGS before they send the
	// headers that identify them: use a matcher that sends them.
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.HTTP1Fast())

	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})}
	go gs.Serve(grpcL)
	go hs.Serve(httpL)
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()

	// A gRPC health check...
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gRPC:", res.GetStatus())
	cc.Close()

	// ...and an HTTP GET, on the same port.
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("HTTP:", string(body))

	// Stopping one server closes its listener and, as with soheilhy/cmux,
	// the root listener: Serve returns, and the other servers' listeners
	// report closed. (IndependentListeners makes children independent.)
	gs.Stop()
	err = <-served
	hs.Close()
	fmt.Println("served until:", errors.Is(err, net.ErrClosed))
	// Output:
	// gRPC: SERVING
	// HTTP: hello over HTTP/1.1
	// served until: true
}

// Serve gRPC and REST on one port and on one HTTP/2 connection. Proxies
// such as Envoy, Istio and Cloud Run send gRPC and other requests to a
// backend over the same pooled HTTP/2 connections, so no connection-level
// matcher can split them: an http.Handler splits them per request, handing
// gRPC requests to grpc.Server.ServeHTTP. That path is slower than grpc-go's
// own transport and lacks some of its features (see the README).
func Example_grpcAndREST() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	// HTTP/2 in the clear (h2c) and HTTP/1 go to one server. Other
	// protocols can share the port: m.Match(cmux.TLS()), m.Match(cmux.SSH())...
	httpL := m.Match(cmux.HTTP2(), cmux.HTTP1Fast())

	grpcServer := grpc.NewServer()
	healthpb.RegisterHealthServer(grpcServer, health.NewServer())
	rest := http.NewServeMux()
	rest.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Protocols: &protocols,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				grpcServer.ServeHTTP(w, r)
				return
			}
			rest.ServeHTTP(w, r)
		}),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(httpL)
	}()
	muxDone := make(chan struct{})
	go func() {
		defer close(muxDone)
		m.Serve()
	}()
	addr := l.Addr().String()

	// A gRPC client.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gRPC:", resp.GetStatus())
	cc.Close()

	// REST clients, over HTTP/2 (h2c) and HTTP/1.1.
	for _, h2c := range []bool{true, false} {
		var p http.Protocols
		p.SetUnencryptedHTTP2(h2c)
		p.SetHTTP1(!h2c)
		tr := &http.Transport{Protocols: &p}
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/hello")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		tr.CloseIdleConnections()
		fmt.Println("REST:", string(body))
	}

	// Stop the HTTP server first: Shutdown waits for the handlers, gRPC
	// calls included. grpcServer.GracefulStop would not wait for the calls
	// ServeHTTP serves; it cancels them.
	srv.Shutdown(ctx)
	<-served
	grpcServer.Stop()
	m.Close()
	l.Close()
	<-muxDone

	// Output:
	// gRPC: SERVING
	// REST: hello over HTTP/2.0
	// REST: hello over HTTP/1.1
}

// Serve gRPC and HTTPS on one TLS port, routed by the protocols the client
// offers in ALPN. gRPC clients offer "h2" alone, while browsers offer "h2"
// and "http/1.1" (TLSALPN("h2") would match both). Each server has its own
// tls.Config, so gRPC sees the peer's TLS state and net/http fills
// Request.TLS as on a listener of their own.
func Example_tlsClientHello() {
	issue, roots := exampleCA()
	cert := issue("api.example.com")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	grpcL := m.Match(cmux.TLSClientHello(func(h *cmux.ClientHelloInfo) bool {
		return slices.Equal(h.SupportedProtos, []string{"h2"})
	}))
	httpsL := m.Match(cmux.TLS())

	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s, ALPN %q", r.Proto, r.TLS.NegotiatedProtocol)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
	}
	go gs.Serve(grpcL)
	go hs.ServeTLS(httpsL, "", "")
	go m.Serve()

	clientTLS := &tls.Config{RootCAs: roots, ServerName: "api.example.com"}
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gRPC:", res.GetStatus())
	cc.Close()

	// A client that offers HTTP/2 and HTTP/1.1, as browsers do; the HTTPS
	// server, which this example configures for HTTP/1.1, picks that.
	clientTLS.NextProtos = []string{"h2", "http/1.1"}
	tr := &http.Transport{TLSClientConfig: clientTLS}
	resp, err := (&http.Client{Transport: tr}).Get("https://" + l.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	fmt.Println("HTTPS:", string(body))

	gs.Stop()
	hs.Close()
	m.Close()
	l.Close()
	// Output:
	// gRPC: SERVING
	// HTTPS: HTTP/1.1, ALPN "http/1.1"
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
