package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// step bounds every single wait of the test.
const step = 10 * time.Second

// TestTLSExample runs the example on a loopback port with certificates it
// generated into files, and talks gRPC (with and without a client
// certificate), HTTP/1.1 and HTTP/2 to it.
func TestTLSExample(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := generate(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := serverConfig(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, cfg, pw, io.Discard); pw.Close() }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(step):
			t.Error("run did not return")
		}
	}()
	// The first line, then a drain of the rest (run writes nothing else to
	// stdout, but must never block on it).
	br := bufio.NewReader(pr)
	lines := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case line := <-lines:
		if line != "LISTEN "+ln.Addr().String()+"\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(step):
		t.Fatal("no LISTEN line")
	}

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	const subject = "CN=example client,O=cmux"
	rctx, rcancel := context.WithTimeout(context.Background(), step)
	defer rcancel()

	// gRPC with mTLS: health (unary and streaming) and WhoAmI.
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	if r, err := hc.Check(rctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", r, err)
	}
	wctx, wcancel := context.WithCancel(rctx)
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v %v", r, err)
	}
	wcancel()
	var who wrapperspb.StringValue
	if err := cc.Invoke(rctx, WhoAmIMethod, &emptypb.Empty{}, &who); err != nil || who.Value != subject {
		t.Fatalf("WhoAmI: %q %v", who.Value, err)
	}

	// gRPC without a client certificate: WhoAmI refuses.
	anon, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	err = anon.Invoke(rctx, WhoAmIMethod, &emptypb.Empty{}, &who)
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("WhoAmI without a certificate: %v", err)
	}

	// REST over HTTP/1.1 and HTTP/2.
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: step}).Get("https://" + ln.Addr().String() + "/tls")
		if err != nil {
			t.Fatal(err)
		}
		var info tlsInfo
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if err != nil {
			t.Fatal(err)
		}
		wantProto, wantALPN := "HTTP/1.1", "http/1.1"
		if h2 {
			wantProto, wantALPN = "HTTP/2.0", "h2"
		}
		if info.Proto != wantProto || info.ALPN != wantALPN || info.ClientSubject != subject || !strings.HasPrefix(info.Version, "TLS 1.") {
			t.Errorf("GET /tls: %+v", info)
		}
	}
}
