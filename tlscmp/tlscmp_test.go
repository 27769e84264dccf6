package tlscmp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
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
	"github.com/cmux-go/cmux/internal/testcheck"
	"github.com/cmux-go/cmux/internal/wiretest"
	"github.com/elastic/gmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

var assert, require = testcheck.Assert, testcheck.Require

// wait bounds every wait of these tests.
const wait = 10 * time.Second

// quiet is the ErrorLog of the servers: the tests provoke errors.
var quiet = log.New(io.Discard, "", 0)

// handshakeBound is the bound on a TLS handshake given to both muxes.
const handshakeBound = 500 * time.Millisecond

// fixture is the certificates both servers and all clients share, also as
// PEM files in dir (ca.pem, client.pem, client-key.pem) for the command
// line clients.
type fixture struct {
	server, client tls.Certificate
	pki            *wiretest.PKI
	dir            string
}

func newFixture(t testing.TB) *fixture {
	pki := wiretest.NewPKI(t)
	f := &fixture{server: pki.Leaf(t, "server", "localhost"), client: pki.Leaf(t, "client-1"), pki: pki, dir: t.TempDir()}
	key, err := x509.MarshalPKCS8PrivateKey(f.client.PrivateKey)
	require.NoError(t, err)
	for name, blk := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: pki.CA.Certificate[0]},
		"client.pem":     {Type: "CERTIFICATE", Bytes: f.client.Certificate[0]},
		"client-key.pem": {Type: "PRIVATE KEY", Bytes: key},
	} {
		require.NoError(t, os.WriteFile(filepath.Join(f.dir, name), pem.EncodeToMemory(blk), 0o600))
	}
	return f
}

func (f *fixture) file(name string) string { return filepath.Join(f.dir, name) }

// customProto is an ALPN protocol that is not HTTP: an echo of one line.
const customProto = "x-echo"

// serverConfig is the one tls.Config of every server.
func (f *fixture) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{f.server},
		NextProtos:   []string{"h2", "http/1.1", customProto},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    f.pki.Roots,
	}
}

func (f *fixture) clientConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: f.pki.Roots, ServerName: "localhost", Certificates: []tls.Certificate{f.client}, NextProtos: protos}
}

// describe answers "proto alpn client-cn".
var describe = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		fmt.Fprintf(w, "%s no-TLS", r.Proto)
		return
	}
	cn := "-"
	if len(r.TLS.PeerCertificates) > 0 {
		cn = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	alpn := r.TLS.NegotiatedProtocol
	if alpn == "" {
		alpn = "none"
	}
	fmt.Fprintf(w, "%s %s %s", r.Proto, alpn, cn)
})

// peerCN returns the client certificate's CN that AuthInfo carries, or
// what AuthInfo is instead.
func peerCN(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "no peer"
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return fmt.Sprintf("AuthInfo %T", p.AuthInfo)
	}
	if len(ti.State.PeerCertificates) == 0 {
		return "-"
	}
	return ti.State.PeerCertificates[0].Subject.CommonName
}

// newGRPC returns a gRPC server with the health service that sends the
// client's CN as seen through AuthInfo in the header "x-peer-cn".
func newGRPC(opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			_ = grpc.SetHeader(ctx, metadata.Pairs("x-peer-cn", peerCN(ctx)))
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			_ = ss.SetHeader(metadata.Pairs("x-peer-cn", peerCN(ss.Context())))
			return h(srv, ss)
		}))
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	return gs
}

// background runs serve; the cleanup calls stop and waits for serve.
func background(t testing.TB, serve func() error, stop func()) {
	done := make(chan struct{})
	go func() {
		_ = serve()
		close(done)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("a server did not stop")
		}
	})
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// Servers: each returns the address of gRPC and of HTTP (the same for the
// muxes).

// startCmux serves gRPC (natively, with cmuxgrpc.TerminatedTLS) and HTTP
// (cmux.ServeHTTPS) on one port, TLS terminated by the mux.
func startCmux(t testing.TB, f *fixture) (grpcAddr, httpAddr string) {
	l := listen(t)
	m := cmux.NewWithOptions(l, cmux.TerminateTLS(f.serverConfig()), cmux.MatchTimeout(handshakeBound))
	echoL := m.Match(cmux.NegotiatedProtocol(customProto))
	background(t, func() error { serveEcho(echoL); return nil }, func() { echoL.Close() })
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.Any())
	gs := newGRPC(grpc.Creds(cmuxgrpc.TerminatedTLS()))
	background(t, func() error { return gs.Serve(grpcL) }, gs.Stop)
	hs := &http.Server{Handler: describe}
	background(t, func() error { return cmux.ServeHTTPS(hs, httpL) }, func() { hs.Close() })
	background(t, m.Serve, func() { m.Close(); l.Close() })
	return l.Addr().String(), l.Addr().String()
}

// startGmux serves gRPC and HTTP on one port with gmux, as its
// documentation says: http.Server.ServeTLS, gmux.ConfigureServer, and a
// gRPC server without transport credentials (gmux hands it the decrypted
// stream).
func startGmux(t testing.TB, f *fixture) (grpcAddr, httpAddr string) {
	return startGmuxWith(t, f)
}

// startGmuxWith is startGmux with grpcOpts for the gRPC server.
func startGmuxWith(t testing.TB, f *fixture, grpcOpts ...grpc.ServerOption) (grpcAddr, httpAddr string) {
	l := listen(t)
	hs := &http.Server{Handler: describe, TLSConfig: f.serverConfig(), ReadHeaderTimeout: handshakeBound, ErrorLog: quiet}
	grpcL, err := gmux.ConfigureServer(hs, nil)
	require.NoError(t, err)
	gs := newGRPC(grpcOpts...)
	background(t, func() error { return gs.Serve(grpcL) }, gs.Stop)
	background(t, func() error { return hs.ServeTLS(l, "", "") }, func() { hs.Close() })
	return l.Addr().String(), l.Addr().String()
}

// startGmuxCreds is startGmux with cmuxgrpc.TerminatedTLS credentials on
// the gRPC server: gmux's connections have a ConnectionState method.
func startGmuxCreds(t testing.TB, f *fixture) (string, string) {
	return startGmuxWith(t, f, grpc.Creds(cmuxgrpc.TerminatedTLS()))
}

// startBare serves gRPC with grpc-go's own TLS credentials and HTTP with
// http.Server.ServeTLS, on two ports.
func startBare(t testing.TB, f *fixture) (grpcAddr, httpAddr string) {
	gl, hl := listen(t), listen(t)
	cfg := f.serverConfig()
	cfg.NextProtos = []string{"h2"}
	gs := newGRPC(grpc.Creds(credentials.NewTLS(cfg)))
	background(t, func() error { return gs.Serve(gl) }, gs.Stop)
	hs := &http.Server{Handler: describe, TLSConfig: f.serverConfig(), ErrorLog: quiet}
	background(t, func() error { return hs.ServeTLS(hl, "", "") }, func() { hs.Close() })
	return gl.Addr().String(), hl.Addr().String()
}

// serveEcho echoes one line on each connection l accepts, until l is
// closed.
func serveEcho(l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(wait))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				_, _ = io.WriteString(c, "echo "+line)
			}
		}()
	}
}

// Clients.

// echo speaks customProto: it sends a line and returns the answer, or the
// error.
func echo(f *fixture, addr string) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr, f.clientConfig(customProto))
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "hi\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if len(b) == 0 && err == nil {
		return "closed", nil
	}
	return strings.TrimSpace(string(b)), err
}

// tool runs a command line client and returns its output (stdout, or
// stderr and the exit code if it failed); ok is false if it is not
// installed, unless in CI.
func tool(t testing.TB, stdin, name string, args ...string) (string, bool) {
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Logf("%s %q: %v: %s", name, args, err, e.String())
		return fmt.Sprintf("failed (exit %d)", cmd.ProcessState.ExitCode()), true
	}
	return strings.TrimSpace(o.String()), true
}

// curl runs curl with the client certificate against addr, with the host
// name localhost.
func curl(t testing.TB, f *fixture, addr string, flags ...string) (string, bool) {
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	args := append([]string{"-sS", "--noproxy", "*", "--max-time", "20", "--resolve", "localhost:" + port + ":127.0.0.1",
		"--cacert", f.file("ca.pem"), "--cert", f.file("client.pem"), "--key", f.file("client-key.pem")}, flags...)
	return tool(t, "", "curl", append(args, "https://localhost:"+port+"/")...)
}

// nghttp makes two requests on one connection and returns the first
// body, or what went wrong.
func nghttp(t testing.TB, f *fixture, addr string) (string, bool) {
	out, ok := tool(t, "", "nghttp", "-t", "20", "--cert", f.file("client.pem"), "--key", f.file("client-key.pem"),
		"https://"+addr+"/a", "https://"+addr+"/b")
	if !ok || strings.HasPrefix(out, "failed") {
		return out, ok
	}
	if n := strings.Count(out, "HTTP/2.0 h2 client-1"); n != 2 {
		t.Logf("nghttp: %q", out)
		return fmt.Sprintf("%d answers of 2", n), true
	}
	return "HTTP/2.0 h2 client-1", true
}

// sClient sends an HTTP/1.1 GET through openssl s_client, with ALPN protos
// if not empty, and returns the last line of the answer.
func sClient(t testing.TB, f *fixture, addr, alpn string) (string, bool) {
	args := []string{"s_client", "-connect", addr, "-servername", "localhost", "-CAfile", f.file("ca.pem"),
		"-cert", f.file("client.pem"), "-key", f.file("client-key.pem"), "-quiet", "-ign_eof"}
	if alpn != "" {
		args = append(args, "-alpn", alpn)
	}
	out, ok := tool(t, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "openssl", args...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), ok
}

// grpcUnary makes a health Check on a new connection and returns the CN
// the server saw through AuthInfo.
func grpcUnary(f *fixture, addr string, cert bool) (string, error) {
	cfg := f.clientConfig()
	if !cert {
		cfg.Certificates = nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return "", err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var md metadata.MD
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
	if err != nil {
		return "", err
	}
	return strings.Join(md.Get("x-peer-cn"), ","), nil
}

// grpcStream receives the first message of a health Watch and returns the
// CN the server saw.
func grpcStream(f *fixture, addr string) (string, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(f.clientConfig())))
	if err != nil {
		return "", err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return "", err
	}
	if _, err := w.Recv(); err != nil {
		return "", err
	}
	md, err := w.Header()
	if err != nil {
		return "", err
	}
	return strings.Join(md.Get("x-peer-cn"), ","), nil
}

// httpGet makes one request on a new connection made with cfg (HTTP/2 if
// its NextProtos start with h2) and returns the body.
func httpGet(addr string, cfg *tls.Config) (string, error) {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	if len(cfg.NextProtos) > 0 && cfg.NextProtos[0] == "h2" {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: wait}).Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// plaintext sends an HTTP/1.1 request without TLS and returns the status
// line of the answer, or the error; the server must close.
func plaintext(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line, err
}

// slowHandshake sends half a ClientHello and reports how long the server
// takes to close the connection (at most wait).
func slowHandshake(f *fixture, addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	hello := wiretest.ClientHello(f.clientConfig("h2"))
	if _, err := c.Write(hello[:len(hello)/2]); err != nil {
		return 0, err
	}
	start := time.Now()
	_ = c.SetDeadline(start.Add(wait))
	_, err = io.ReadAll(c)
	return time.Since(start), err
}

// A capability is one row of the README's table: what a client does, and
// what each server must give. run returns ok false to skip the row (a
// command line client that is not installed).
type capability struct {
	name string
	run  func(t testing.TB, f *fixture, grpcAddr, httpAddr string) (got string, ok bool)
	want map[string]string // by server
}

// errs makes a capability's run of a function that may fail.
func errs(fn func(f *fixture, g, h string) (string, error)) func(testing.TB, *fixture, string, string) (string, bool) {
	return func(_ testing.TB, f *fixture, g, h string) (string, bool) {
		got, err := fn(f, g, h)
		if err != nil {
			return "error: " + err.Error(), true
		}
		return got, true
	}
}

// all is the same want for every server.
func all(want string) map[string]string {
	return map[string]string{"cmux": want, "gmux": want, "gmux+TerminatedTLS": want}
}

var servers = []struct {
	name  string
	start func(testing.TB, *fixture) (string, string)
}{
	{"cmux", startCmux},
	{"gmux", startGmux},
	{"gmux+TerminatedTLS", startGmuxCreds},
}

var capabilities = []capability{
	{"grpc-go mTLS unary: CN via AuthInfo", errs(func(f *fixture, g, _ string) (string, error) { return grpcUnary(f, g, true) }),
		map[string]string{"cmux": "client-1", "gmux": "AuthInfo <nil>", "gmux+TerminatedTLS": "client-1"}},
	{"grpc-go mTLS streaming: CN via AuthInfo", errs(func(f *fixture, g, _ string) (string, error) { return grpcStream(f, g) }),
		map[string]string{"cmux": "client-1", "gmux": "AuthInfo <nil>", "gmux+TerminatedTLS": "client-1"}},
	{"grpc-go without client certificate", errs(func(f *fixture, g, _ string) (string, error) { return grpcUnary(f, g, false) }),
		map[string]string{"cmux": "-", "gmux": "AuthInfo <nil>", "gmux+TerminatedTLS": "-"}},
	{"Go HTTP/1.1 (ALPN http/1.1): Request.TLS", errs(func(f *fixture, _, h string) (string, error) { return httpGet(h, f.clientConfig("http/1.1")) }),
		all("HTTP/1.1 http/1.1 client-1")},
	{"Go HTTP/1.1 without ALPN: Request.TLS", errs(func(f *fixture, _, h string) (string, error) { return httpGet(h, f.clientConfig()) }),
		all("HTTP/1.1 none client-1")},
	{"Go HTTP/2 REST: Request.TLS", errs(func(f *fixture, _, h string) (string, error) { return httpGet(h, f.clientConfig("h2", "http/1.1")) }),
		all("HTTP/2.0 h2 client-1")},
	{"curl --http1.1 with a client certificate", func(t testing.TB, f *fixture, _, h string) (string, bool) { return curl(t, f, h, "--http1.1") },
		all("HTTP/1.1 http/1.1 client-1")},
	// gmux v0.3.1 (with the golang.org/x/net grpc v1.85 selects) answers
	// neither curl's nor nghttp's HTTP/2 request, while net/http's HTTP/2
	// client works.
	{"curl --http2 with a client certificate", func(t testing.TB, f *fixture, _, h string) (string, bool) { return curl(t, f, h, "--http2") },
		map[string]string{"cmux": "HTTP/2.0 h2 client-1", "gmux": "failed (exit 52)", "gmux+TerminatedTLS": "failed (exit 52)"}},
	{"nghttp, two requests on one connection", func(t testing.TB, f *fixture, _, h string) (string, bool) { return nghttp(t, f, h) },
		map[string]string{"cmux": "HTTP/2.0 h2 client-1", "gmux": "0 answers of 2", "gmux+TerminatedTLS": "0 answers of 2"}},
	{"openssl s_client without ALPN, HTTP/1.1", func(t testing.TB, f *fixture, _, h string) (string, bool) { return sClient(t, f, h, "") },
		all("HTTP/1.1 none client-1")},
	{"openssl s_client -alpn http/1.1", func(t testing.TB, f *fixture, _, h string) (string, bool) { return sClient(t, f, h, "http/1.1") },
		all("HTTP/1.1 http/1.1 client-1")},
	{"plaintext HTTP on the TLS port", errs(func(_ *fixture, _, h string) (string, error) { return plaintext(h) }),
		all("HTTP/1.0 400 Bad Request")},
	{"slow handshake closed within 2s (bound 500ms)", errs(func(f *fixture, _, h string) (string, error) {
		d, err := slowHandshake(f, h)
		return fmt.Sprint(d < 2*time.Second), err
	}), all("true")},
	{"a protocol other than HTTP, by ALPN (x-echo)", errs(func(f *fixture, _, h string) (string, error) { return echo(f, h) }),
		map[string]string{"cmux": "echo hi", "gmux": "closed", "gmux+TerminatedTLS": "closed"}},
}

// TestCapabilities runs every capability against every server, on the same
// certificates, and logs the table of the README.
func TestCapabilities(t *testing.T) {
	testcheck.CheckLeaks(t)
	f := newFixture(t)
	var mu sync.Mutex
	table := map[string]map[string]string{}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			g, h := s.start(t, f)
			for _, c := range capabilities {
				got, ok := c.run(t, f, g, h)
				if !ok {
					t.Logf("%s: skipped, not installed", c.name)
					continue
				}
				mu.Lock()
				if table[c.name] == nil {
					table[c.name] = map[string]string{}
				}
				table[c.name][s.name] = got
				mu.Unlock()
				assert.Equal(t, c.want[s.name], got, c.name)
			}
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| client | cmux | gmux | gmux+TerminatedTLS |\n|---|---|---|---|\n")
	for _, c := range capabilities {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.name, table[c.name]["cmux"], table[c.name]["gmux"], table[c.name]["gmux+TerminatedTLS"])
	}
	t.Log(b.String())
}

// BenchmarkNewConn measures the rate of new TLS connections (per second,
// and per second of this process's CPU time, which the machine's other
// load does not change), each with one request (an HTTP/1.1 GET, an HTTP/2 GET, or a gRPC health Check), through
// each server, and through bare crypto/tls servers (http.Server.ServeTLS,
// grpc-go with its own TLS credentials).
func BenchmarkNewConn(b *testing.B) {
	f := newFixture(b)
	type target struct{ name, grpc, http string }
	var targets []target
	for _, s := range []struct {
		name  string
		start func(testing.TB, *fixture) (string, string)
	}{{"bare", startBare}, {"cmux", startCmux}, {"gmux", startGmux}} {
		g, h := s.start(b, f)
		targets = append(targets, target{s.name, g, h})
	}
	workloads := []struct {
		name string
		run  func(t target) error
	}{
		{"http1", func(t target) error { _, err := httpGet(t.http, f.clientConfig("http/1.1")); return err }},
		{"h2", func(t target) error { _, err := httpGet(t.http, f.clientConfig("h2", "http/1.1")); return err }},
		{"grpc", func(t target) error { _, err := grpcUnary(f, t.grpc, true); return err }},
	}
	// Warm every server and client path up, so that the first one measured
	// does not pay for it.
	for _, w := range workloads {
		for _, t := range targets {
			for range 50 {
				if err := w.run(t); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	// Workload first, then server: the servers of one workload run close
	// in time, under the same load of the machine.
	for _, w := range workloads {
		for _, t := range targets {
			b.Run(w.name+"/"+t.name, func(b *testing.B) {
				cpu0 := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := w.run(t); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
				if cpu := cpuTime() - cpu0; cpu > 0 {
					// Clients and server share the process: the CPU time of
					// the machine's other processes does not count.
					b.ReportMetric(float64(b.N)/cpu.Seconds(), "conns/cpu-s")
				}
			})
		}
	}
}
