// Command tls serves gRPC, HTTP/1.1 and HTTP/2 on one TCP port, with one
// tls.Config, TLS terminated once by cmux (cmux.TerminateTLS):
//
//   - gRPC, served by grpc-go's own transport (grpc.Server.Serve) with
//     cmuxgrpc.TerminatedTLS credentials: the health service, and
//     cmux.example.Identity/WhoAmI, which answers the subject of the client
//     certificate as the handler sees it through peer.AuthInfo;
//   - REST over HTTP/1.1 and HTTP/2, served by a plain net/http server
//     through cmux.ServeHTTPS: GET /tls answers the request's TLS state
//     (Request.TLS) as JSON.
//
// The mux negotiates ALPN "h2" and "http/1.1" and verifies client
// certificates when the client presents one (signed by -client-ca). The
// gRPC listener takes the HTTP/2 connections whose first request has
// content-type application/grpc; the HTTP listener the rest. HTTP/1.1 and
// clients without ALPN reach net/http as the *tls.Conn itself, as nothing
// was read from them to route them.
//
// Run it with
//
//	go -C examples run ./tls [-addr 127.0.0.1:8443] [-cert server.pem -key server-key.pem] [-client-ca ca.pem]
//
// Without -cert and -key it makes a throwaway CA, a server certificate for
// localhost and 127.0.0.1 and a client certificate ("CN=example client"),
// writes them to a new temporary directory, and prints where. Once
// listening it prints "LISTEN <addr>" on stdout, then commands to try on
// stderr. It shuts down gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/cmuxgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "address to listen on")
	certFile := flag.String("cert", "", "server certificate (PEM); with -key. Default: generated")
	keyFile := flag.String("key", "", "server private key (PEM)")
	caFile := flag.String("client-ca", "", "CA of the client certificates (PEM). Default: the generated CA, or none with -cert")
	flag.Parse()

	cfg, err := serverConfig(*certFile, *keyFile, *caFile, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, ln, cfg, os.Stdout, os.Stderr); err != nil {
		log.Fatal(err)
	}
}

// run serves ln until ctx ends, then shuts down gracefully.
func run(ctx context.Context, ln net.Listener, cfg *tls.Config, stdout, stderr io.Writer) error {
	m := cmux.NewWithOptions(ln, cmux.TerminateTLS(cfg), cmux.MatchTimeout(10*time.Second))
	m.HandleError(func(err error) bool {
		fmt.Fprintln(stderr, "cmux:", err)
		return true
	})
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.Any())

	gs := grpc.NewServer(grpc.Creds(cmuxgrpc.TerminatedTLS()))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	gs.RegisterService(&identityDesc, identity{})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /tls", handleTLS)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}

	errc := make(chan error, 3)
	go func() { errc <- gs.Serve(grpcL) }()
	go func() { errc <- cmux.ServeHTTPS(hs, httpL) }()
	go func() { errc <- m.Serve() }()
	fmt.Fprintf(stdout, "LISTEN %s\n", ln.Addr())
	printUsage(stderr, ln.Addr())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.(cmux.Shutdowner).Shutdown(sctx)
	_ = hs.Shutdown(sctx)
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		gs.Stop()
		<-done
	}
	return err
}

func printUsage(w io.Writer, addr net.Addr) {
	fmt.Fprintf(w, `Try (with the generated files; -k or --cacert for curl):
  curl --cacert ca.pem --cert client.pem --key client-key.pem --http1.1 https://localhost:%[1]d/tls
  curl --cacert ca.pem --cert client.pem --key client-key.pem --http2 https://localhost:%[1]d/tls
  grpcurl -cacert ca.pem -cert client.pem -key client-key.pem localhost:%[1]d grpc.health.v1.Health/Check
`, addr.(*net.TCPAddr).Port)
}

// tlsInfo is what GET /tls answers.
type tlsInfo struct {
	Proto         string `json:"proto"`
	ALPN          string `json:"alpn"`
	Version       string `json:"tls_version"`
	CipherSuite   string `json:"cipher_suite"`
	ServerName    string `json:"server_name"`
	ClientSubject string `json:"client_subject,omitempty"`
	Resumed       bool   `json:"resumed"`
}

func handleTLS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.TLS == nil {
		http.Error(w, `{"error":"no TLS state"}`, http.StatusInternalServerError)
		return
	}
	info := tlsInfo{
		Proto:       r.Proto,
		ALPN:        r.TLS.NegotiatedProtocol,
		Version:     tls.VersionName(r.TLS.Version),
		CipherSuite: tls.CipherSuiteName(r.TLS.CipherSuite),
		ServerName:  r.TLS.ServerName,
		Resumed:     r.TLS.DidResume,
	}
	if len(r.TLS.PeerCertificates) > 0 {
		info.ClientSubject = r.TLS.PeerCertificates[0].Subject.String()
	}
	_ = json.NewEncoder(w).Encode(info)
}

// identity is the cmux.example.Identity service, written without generated
// code: WhoAmI(google.protobuf.Empty) returns google.protobuf.StringValue.
type identity struct{}

// identityServer is the interface grpc-go checks the implementation against.
type identityServer interface {
	whoAmI(context.Context) (*wrapperspb.StringValue, error)
}

// whoAmI answers the subject of the client certificate, as the handler sees
// it through peer.AuthInfo.
func (identity) whoAmI(ctx context.Context) (*wrapperspb.StringValue, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, status.Errorf(codes.Unauthenticated, "no TLS: AuthInfo is %T", p.AuthInfo)
	}
	if len(ti.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no client certificate")
	}
	return wrapperspb.String(ti.State.PeerCertificates[0].Subject.String()), nil
}

// WhoAmIMethod is the full name of the method, for ClientConn.Invoke.
const WhoAmIMethod = "/cmux.example.Identity/WhoAmI"

var identityDesc = grpc.ServiceDesc{
	ServiceName: "cmux.example.Identity",
	HandlerType: (*identityServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "WhoAmI",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, _ any) (any, error) { return srv.(identityServer).whoAmI(ctx) }
			if ic == nil {
				return call(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: WhoAmIMethod}, call)
		},
	}},
}

// serverConfig returns the mux's TLS config: from the files, or with
// certificates it generates and writes (and reports to w).
func serverConfig(certFile, keyFile, caFile string, w io.Writer) (*tls.Config, error) {
	cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	var clientCAs *x509.CertPool
	switch {
	case certFile != "" || keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	default:
		dir, err := os.MkdirTemp("", "cmux-tls-example-")
		if err != nil {
			return nil, err
		}
		cert, ca, err := generate(dir)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		clientCAs = x509.NewCertPool()
		clientCAs.AddCert(ca)
		fmt.Fprintf(w, "wrote a throwaway CA and certificates to %s: ca.pem, server.pem, server-key.pem, client.pem, client-key.pem\n", dir)
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s: no certificate", caFile)
		}
	}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// generate makes a CA, a server certificate for localhost and 127.0.0.1,
// and a client certificate, and writes them with their keys to dir.
func generate(dir string) (tls.Certificate, *x509.Certificate, error) {
	now := time.Now()
	mk := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			return nil, nil, nil, err
		}
		tmpl.SerialNumber = serial
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(7*24*time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			return nil, nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return c, key, der, err
	}
	ca, caKey, caDER, err := mk(&x509.Certificate{
		Subject: pkix.Name{CommonName: "cmux example CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	srv, srvKey, srvDER, err := mk(&x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	_, cliKey, cliDER, err := mk(&x509.Certificate{
		Subject:  pkix.Name{CommonName: "example client", Organization: []string{"cmux"}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	writes := []struct {
		name, typ string
		der       []byte
	}{
		{"ca.pem", "CERTIFICATE", caDER},
		{"server.pem", "CERTIFICATE", srvDER},
		{"client.pem", "CERTIFICATE", cliDER},
	}
	for _, k := range []struct {
		name string
		key  *ecdsa.PrivateKey
	}{{"server-key.pem", srvKey}, {"client-key.pem", cliKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		writes = append(writes, struct {
			name, typ string
			der       []byte
		}{k.name, "PRIVATE KEY", der})
	}
	for _, f := range writes {
		b := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o600); err != nil {
			return tls.Certificate{}, nil, err
		}
	}
	if srv == nil {
		return tls.Certificate{}, nil, errors.New("no server certificate")
	}
	return tls.Certificate{Certificate: [][]byte{srvDER, caDER}, PrivateKey: srvKey, Leaf: srv}, ca, nil
}
