package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// thWait bounds every wait of the TLS tests.
const thWait = 10 * time.Second

// TestTLSHelloGRPCAndHTTPS serves on one TLS port, without terminating
// TLS in the mux: gRPC (ALPN h2) requiring client certificates, HTTPS
// (HTTP/1.1) and a second host name by SNI (HTTP/2 over TLS), each with
// its own tls.Config. The root module's TestTLSHelloH2AndHTTPS is this
// test with an x/net/http2 client and a net/http server in place of
// grpc-go.
func TestTLSHelloGRPCAndHTTPS(t *testing.T) {
	checkLeaks(t)
	pki := newTestPKI(t)
	apiCert := pki.Leaf(t, "api", "api.example.com")
	adminCert := pki.Leaf(t, "admin", "admin.example.com")
	clientCert := pki.Leaf(t, "client-1")

	m, start, addr := newMux(t)
	start() // serving before the listeners are made, as the root module's thServedMux does
	adminL := m.Match(cmux.TLSServerName("admin.example.com"))
	grpcL := m.Match(cmux.TLSALPN("h2"))
	httpsL := m.Match(cmux.TLS())

	// gRPC, with its own TLS credentials.
	var mu sync.Mutex
	var grpcState tls.ConnectionState
	serveHealth(t, grpcL,
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{apiCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pki.Roots,
		})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if p, ok := peer.FromContext(ctx); ok {
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
					mu.Lock()
					grpcState = ti.State
					mu.Unlock()
				}
			}
			return h(ctx, req)
		}),
	)

	describe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fmt.Fprint(w, "no TLS")
			return
		}
		cn := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "%s %s %s %s", r.Proto, r.TLS.NegotiatedProtocol, r.TLS.ServerName, cn)
	})
	serveTLS := func(l net.Listener, cfg *tls.Config) {
		serveHTTPS(t, l, &http.Server{Handler: describe, TLSConfig: cfg, ErrorLog: nil})
	}
	serveTLS(httpsL, &tls.Config{
		Certificates: []tls.Certificate{apiCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pki.Roots,
		NextProtos:   []string{"http/1.1"},
	})
	serveTLS(adminL, &tls.Config{Certificates: []tls.Certificate{adminCert}})

	// gRPC client with a client certificate.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		ServerName:   "api.example.com",
		RootCAs:      pki.Roots,
		Certificates: []tls.Certificate{clientCert},
	})))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), thWait)
	defer cancel()
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus())
	mu.Lock()
	assert.Equal(t, "h2", grpcState.NegotiatedProtocol)
	assert.Equal(t, "api.example.com", grpcState.ServerName)
	if assert.Len(t, grpcState.PeerCertificates, 1) {
		assert.Equal(t, "client-1", grpcState.PeerCertificates[0].Subject.CommonName)
	}
	mu.Unlock()

	get := func(tr *http.Transport) string {
		t.Helper()
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: thWait}).Get("https://" + addr + "/")
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// HTTPS, HTTP/1.1, with and without a client certificate.
	assert.Equal(t, "HTTP/1.1 http/1.1 api.example.com client-1", get(&http.Transport{TLSClientConfig: &tls.Config{
		ServerName: "api.example.com", RootCAs: pki.Roots, NextProtos: []string{"http/1.1"},
		Certificates: []tls.Certificate{clientCert},
	}}))
	assert.Equal(t, "HTTP/1.1  api.example.com -", get(&http.Transport{TLSClientConfig: &tls.Config{
		ServerName: "api.example.com", RootCAs: pki.Roots,
	}}))
	// The second host name, whose server speaks HTTP/2 too: SNI routes it
	// before ALPN h2 would.
	assert.Equal(t, "HTTP/2.0 h2 admin.example.com -", get(&http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		ServerName: "admin.example.com", RootCAs: pki.Roots,
	}}))
}
