package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/cmuxgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// termSetup is a mux that terminates TLS on one port, serving grpc-go
// (with cmuxgrpc.TerminatedTLS) and net/http (with cmux.ServeHTTPS), and
// the files and configs its clients need.
type termSetup struct {
	addr     string
	dir      string // ca.pem, client.pem, client-key.pem
	client   tls.Certificate
	roots    *x509.CertPool
	errs     chan error
	mu       sync.Mutex
	grpcSeen []string // "method cn alpn" per RPC
}

func (s *termSetup) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.grpcSeen...)
}

// writePEM writes blocks of type typ to dir/name.
func writePEM(t *testing.T, dir, name, typ string, ders ...[]byte) {
	t.Helper()
	var b []byte
	for _, der := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
}

func writeKey(t *testing.T, dir, name string, c tls.Certificate) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	writePEM(t, dir, name, "PRIVATE KEY", der)
}

// authorize is the per-RPC authorization of the tests: it records what
// AuthInfo says and refuses a client without a certificate.
func (s *termSetup) authorize(ctx context.Context, method string) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Internal, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return status.Errorf(codes.Unauthenticated, "AuthInfo is %T", p.AuthInfo)
	}
	cn := "-"
	if len(ti.State.PeerCertificates) > 0 {
		cn = ti.State.PeerCertificates[0].Subject.CommonName
	}
	s.mu.Lock()
	s.grpcSeen = append(s.grpcSeen, fmt.Sprintf("%s %s %s", method, cn, ti.State.NegotiatedProtocol))
	s.mu.Unlock()
	if cn == "-" {
		return status.Error(codes.PermissionDenied, "client certificate required")
	}
	return nil
}

func newTermSetup(t *testing.T) *termSetup {
	t.Helper()
	pki := newTestPKI(t)
	serverCert := pki.Leaf(t, "server", "localhost")
	s := &termSetup{dir: t.TempDir(), client: pki.Leaf(t, "client-1"), roots: pki.Roots, errs: make(chan error, 64)}
	writePEM(t, s.dir, "ca.pem", "CERTIFICATE", pki.CA.Certificate[0])
	writePEM(t, s.dir, "client.pem", "CERTIFICATE", s.client.Certificate[0])
	writeKey(t, s.dir, "client-key.pem", s.client)

	l := listenLoopback(t)
	s.addr = l.Addr().String()
	m := cmux.NewWithOptions(l, cmux.TerminateTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pki.Roots,
	}), cmux.MatchTimeout(2*time.Second))
	m.HandleError(func(err error) bool {
		select {
		case s.errs <- err:
		default:
		}
		return true
	})
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.Any())

	serveHealth(t, grpcL,
		grpc.Creds(cmuxgrpc.TerminatedTLS()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fmt.Fprintf(w, "%s no-TLS\n", r.Proto)
			return
		}
		cn, alpn := "-", r.TLS.NegotiatedProtocol
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		if alpn == "" {
			alpn = "none"
		}
		fmt.Fprintf(w, "%s %s %s\n", r.Proto, alpn, cn)
	})}
	goServe(t, "cmux.ServeHTTPS", func() error { return cmux.ServeHTTPS(hs, httpL) }, func() { hs.Close() })
	serveMux(t, m, l)
	return s
}

func (s *termSetup) grpcConn(t *testing.T, withCert bool) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.roots, ServerName: "localhost"}
	if withCert {
		cfg.Certificates = []tls.Certificate{s.client}
	}
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestTerminateTLSGRPC: grpc-go over mTLS, terminated by the mux, served
// by grpc-go's own transport; AuthInfo carries the client certificate and
// ALPN, unary and streaming, and per-RPC authorization can refuse a client
// without a certificate.
func TestTerminateTLSGRPC(t *testing.T) {
	checkLeaks(t)
	s := newTermSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), thWait)
	defer cancel()

	hc := healthpb.NewHealthClient(s.grpcConn(t, true))
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)

	wctx, wcancel := context.WithCancel(ctx)
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	first, err := w.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, first.Status)
	wcancel()

	anon := healthpb.NewHealthClient(s.grpcConn(t, false))
	_, err = anon.Check(ctx, &healthpb.HealthCheckRequest{})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	assert.Equal(t, []string{
		"/grpc.health.v1.Health/Check client-1 h2",
		"/grpc.health.v1.Health/Watch client-1 h2",
		"/grpc.health.v1.Health/Check - h2",
	}, s.seen())
}

// runTool runs a command line tool with stdin; it skips the test if the
// tool is missing, unless in CI.
func runTool(t *testing.T, stdin string, name string, args ...string) (string, string, int) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s timed out: %s", name, e.String())
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// TestTerminateTLSTools: curl (HTTP/1.1 and HTTP/2, with a client
// certificate), nghttp over TLS, openssl s_client with and without ALPN,
// and plaintext on the TLS port.
func TestTerminateTLSTools(t *testing.T) {
	checkLeaks(t)
	s := newTermSetup(t)
	port := s.addr[strings.LastIndexByte(s.addr, ':')+1:]
	url := "https://localhost:" + port + "/"
	resolve := "localhost:" + port + ":127.0.0.1"
	certArgs := []string{"--cacert", filepath.Join(s.dir, "ca.pem"), "--cert", filepath.Join(s.dir, "client.pem"), "--key", filepath.Join(s.dir, "client-key.pem")}

	t.Run("curl --http1.1", func(t *testing.T) {
		out, errOut, code := runTool(t, "", "curl", append([]string{"-sS", "--noproxy", "*", "--max-time", "20", "--resolve", resolve, "--http1.1", url}, certArgs...)...)
		require.Zero(t, code, "curl: %s", errOut)
		assert.Equal(t, "HTTP/1.1 http/1.1 client-1\n", out)
	})
	t.Run("curl --http2", func(t *testing.T) {
		out, errOut, code := runTool(t, "", "curl", append([]string{"-sS", "--noproxy", "*", "--max-time", "20", "--resolve", resolve, "--http2", url}, certArgs...)...)
		require.Zero(t, code, "curl: %s", errOut)
		assert.Equal(t, "HTTP/2.0 h2 client-1\n", out)
	})
	t.Run("curl without a client certificate", func(t *testing.T) {
		out, errOut, code := runTool(t, "", "curl", "-sS", "--noproxy", "*", "--max-time", "20", "--resolve", resolve, "--cacert", filepath.Join(s.dir, "ca.pem"), url)
		require.Zero(t, code, "curl: %s", errOut)
		assert.Equal(t, "HTTP/2.0 h2 -\n", out)
	})
	t.Run("nghttp", func(t *testing.T) {
		out, errOut, code := runTool(t, "", "nghttp", "-v", "-t", "20",
			"--cert", filepath.Join(s.dir, "client.pem"), "--key", filepath.Join(s.dir, "client-key.pem"),
			"https://"+s.addr+"/a", "https://"+s.addr+"/b")
		require.Zero(t, code, "nghttp: %s\n%s", errOut, out)
		assert.Equal(t, 2, strings.Count(out, "HTTP/2.0 h2 client-1\n"), "nghttp output:\n%s", out)
		assert.NotContains(t, out, "recv GOAWAY", "nghttp output:\n%s", out)
	})
	openssl := func(t *testing.T, alpn string) string {
		args := []string{"s_client", "-connect", s.addr, "-servername", "localhost", "-CAfile", filepath.Join(s.dir, "ca.pem"),
			"-cert", filepath.Join(s.dir, "client.pem"), "-key", filepath.Join(s.dir, "client-key.pem"), "-quiet", "-ign_eof"}
		if alpn != "" {
			args = append(args, "-alpn", alpn)
		}
		out, errOut, _ := runTool(t, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "openssl", args...)
		return out + errOut
	}
	t.Run("openssl s_client without ALPN", func(t *testing.T) {
		out := openssl(t, "")
		assert.Contains(t, out, "HTTP/1.1 200 OK")
		assert.Contains(t, out, "HTTP/1.1 none client-1\n")
	})
	t.Run("openssl s_client -alpn http/1.1", func(t *testing.T) {
		out := openssl(t, "http/1.1")
		assert.Contains(t, out, "HTTP/1.1 http/1.1 client-1\n")
	})
	t.Run("openssl s_client -alpn h2", func(t *testing.T) {
		// The mux negotiates h2 with a client that offers it alone.
		args := []string{"s_client", "-connect", s.addr, "-servername", "localhost", "-alpn", "h2", "-CAfile", filepath.Join(s.dir, "ca.pem")}
		out, errOut, _ := runTool(t, "", "openssl", args...)
		assert.Contains(t, out+errOut, "ALPN protocol: h2")
	})
	t.Run("plaintext on the TLS port", func(t *testing.T) {
		for len(s.errs) > 0 {
			<-s.errs
		}
		out, errOut, code := runTool(t, "", "curl", "-sS", "--noproxy", "*", "--max-time", "20", "http://"+s.addr+"/")
		assert.Zero(t, code, "curl: %s", errOut)
		assert.Equal(t, "Client sent an HTTP request to a TLS port.\n", out)
		select {
		case err := <-s.errs:
			assert.ErrorIs(t, err, cmux.ErrTLSHandshake)
			var rhe tls.RecordHeaderError
			assert.True(t, errors.As(err, &rhe), "%v", err)
		case <-time.After(thWait):
			t.Error("no error reported")
		}
		// A client that sends nothing gets a clean close at the timeout.
		c := dialTCP(t, s.addr, thWait)
		start := time.Now()
		_, err := io.ReadAll(c)
		assert.NoError(t, err)
		assert.Less(t, time.Since(start), thWait)
		c2, err := net.DialTimeout("tcp", s.addr, waitFor)
		require.NoError(t, err)
		c2.Close()
	})
}
