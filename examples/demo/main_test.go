package main

//lint:file-ignore SA1019 the test drives the x/net/http2 client on purpose: it is one of the peers users run.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// step bounds every single wait in these tests.
const step = 10 * time.Second

// syncBuffer is a goroutine-safe bytes.Buffer: run writes logs to it from
// its server goroutines while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDemo starts run on a loopback port, talks every protocol to it, then
// cancels it and checks that it returns nil without leaving goroutines.
func TestDemo(t *testing.T) {
	baseline := runtime.NumGoroutine()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, ln, out) }()
	defer func() {
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	}()

	// Clients, closed before the goroutine check.
	h1 := &http.Transport{} // no proxy; plain http:// is HTTP/1.1
	h2c := &http2.Transport{
		// h2c with prior knowledge: the "TLS" dial returns a plain TCP connection.
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	// The same through net/http's own h2c support (Go 1.24+).
	nethttpH2C := &http.Transport{}
	nethttpH2C.Protocols = new(http.Protocols)
	nethttpH2C.Protocols.SetUnencryptedHTTP2(true)
	gconn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("usage", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(addr)
		want := []string{
			"curl --http1.1 http://" + addr + "/hello",
			"curl --http2-prior-knowledge http://" + addr + "/hello",
			"grpcurl -plaintext " + addr + " grpc.health.v1.Health/Check",
			"nc -N 127.0.0.1 " + port,
			"curl http://" + addr + "/metrics | grep cmux_",
		}
		deadline := time.Now().Add(step)
		for {
			s := out.String()
			missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return strings.Contains(s, w) })
			if len(missing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("usage text lacks %q; output:\n%s", missing, s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	clients := []struct {
		name  string
		rt    http.RoundTripper
		proto string
	}{
		{"HTTP/1.1", h1, "HTTP/1.1"},
		{"h2c x/net", h2c, "HTTP/2.0"},
		{"h2c net/http", nethttpH2C, "HTTP/2.0"},
	}
	for _, c := range clients {
		t.Run("hello "+c.name, func(t *testing.T) {
			// Three times: the later requests must reuse the first
			// connection, which proves the server kept it open (an HTTP/2
			// server that rejects the client's ACK of the SETTINGS cmux
			// sent while matching would close it with PROTOCOL_ERROR).
			for i := range 3 {
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				var reused bool
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
				})
				body := httpDo(ctx, t, c.rt, http.MethodGet, "http://"+addr+"/hello", "", c.proto)
				if i > 0 && !reused {
					t.Errorf("request %d used a new connection", i+1)
				}
				var got helloResponse
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("decoding %q: %v", body, err)
				}
				if want := (helloResponse{"hello", c.proto}); got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			}
		})
		t.Run("echo "+c.name, func(t *testing.T) {
			msg := "ping over " + c.name
			if body := httpDo(context.Background(), t, c.rt, http.MethodPost, "http://"+addr+"/echo", msg, c.proto); string(body) != msg {
				t.Fatalf("got %q, want %q", body, msg)
			}
		})
	}

	t.Run("grpc health", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		resp, err := healthpb.NewHealthClient(gconn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("status %v, want SERVING", resp.GetStatus())
		}
	})

	t.Run("grpc reflection", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		stream, err := reflectionpb.NewServerReflectionClient(gconn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !slices.Contains(names, "grpc.health.v1.Health") {
			t.Fatalf("services %q lack grpc.health.v1.Health", names)
		}
		stream.CloseSend()
	})

	t.Run("tcp echo", func(t *testing.T) {
		c := dial(t, addr)
		defer c.Close()
		r := bufio.NewReader(c)
		for _, line := range []string{"hi\n", "second line\n"} {
			start := time.Now()
			if _, err := io.WriteString(c, line); err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading echo of %q: %v (got %q)", line, err, got)
			}
			if got != line {
				t.Fatalf("got %q, want %q", got, line)
			}
			// The first line waits for cmux to rule out gRPC, h2c and
			// HTTP/1; it should not wait for the match timeout.
			if d := time.Since(start); d > matchTimeout/2 {
				t.Errorf("echo of %q took %v", line, d)
			}
		}
	})

	t.Run("tcp echo line too long", func(t *testing.T) {
		c := dial(t, addr)
		defer c.Close()
		// Exactly a full buffer without a newline: the server then has no
		// unread bytes when it closes, so the close is not a reset.
		if _, err := c.Write(bytes.Repeat([]byte("x"), echoMaxLine)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(got), "error: line longer than") {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("tcp echo silent client", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for the match timeout")
		}
		// A client that sends nothing reaches the echo server once cmux's
		// match timeout has expired, and is echoed from then on.
		c := dial(t, addr)
		defer c.Close()
		time.Sleep(matchTimeout + 500*time.Millisecond)
		if _, err := io.WriteString(c, "late\n"); err != nil {
			t.Fatal(err)
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != "late\n" {
			t.Fatalf("got %q, %v; want %q", got, err, "late\n")
		}
	})

	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("curl not found, and CI is set:", err)
			}
			t.Skip("curl not found:", err)
		}
		for _, c := range []struct{ flag, proto string }{
			{"--http1.1", "HTTP/1.1"},
			{"--http2-prior-knowledge", "HTTP/2.0"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), step)
			cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--fail",
				"--noproxy", "*", "--max-time", "5", c.flag, "http://"+addr+"/hello")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			cancel()
			if err != nil {
				t.Errorf("curl %s: %v; stderr: %s", c.flag, err, stderr.Bytes())
				continue
			}
			var resp helloResponse
			if err := json.Unmarshal(got, &resp); err != nil {
				t.Errorf("curl %s: decoding %q: %v", c.flag, got, err)
				continue
			}
			if want := (helloResponse{"hello", c.proto}); resp != want {
				t.Errorf("curl %s: got %+v, want %+v", c.flag, resp, want)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// A TCP health probe: connect, close without a byte. cmux drops
		// it (no_bytes) and counts it once it has closed it, so the
		// counter is polled.
		c := dial(t, addr)
		c.Close()
		// Every listener matched a connection in the subtests above.
		want := []string{
			`cmux_connections_total{listener="grpc",outcome="matched",reason=""}`,
			`cmux_connections_total{listener="h2c",outcome="matched",reason=""}`,
			`cmux_connections_total{listener="http1",outcome="matched",reason=""}`,
			`cmux_connections_total{listener="echo",outcome="matched",reason=""}`,
			`cmux_connections_total{listener="",outcome="not_matched",reason="no_bytes"}`,
			`cmux_match_duration_seconds_count{listener="http1",outcome="matched"}`,
			`cmux_match_duration_seconds_count{listener="",outcome="not_matched"}`,
			`cmux_queue_duration_seconds_count{listener="http1"}`,
		}
		deadline := time.Now().Add(step)
		for {
			body := string(httpDo(context.Background(), t, h1, http.MethodGet, "http://"+addr+"/metrics", "", "HTTP/1.1"))
			values := promValues(body)
			missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return values[w] >= 1 })
			if len(missing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/metrics lacks a positive %q; got:\n%s", missing, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Shut down.
	gconn.Close()
	h1.CloseIdleConnections()
	h2c.CloseIdleConnections()
	nethttpH2C.CloseIdleConnections()
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("run returned %v, want nil", err)
		}
	case <-time.After(3 * shutdownTimeout):
		t.Fatal("run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts connections after run returned")
	}

	// Every goroutine started by run and by the clients should be gone.
	deadline := time.Now().Add(step)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d at start:\n%s",
				runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpDo sends one request through rt and returns the body of the 200
// response, which must have come over wantProto.
func httpDo(ctx context.Context, t *testing.T, rt http.RoundTripper, method, url, body, wantProto string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, step)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	if resp.Proto != wantProto {
		t.Fatalf("%s %s: response proto %s, want %s", method, url, resp.Proto, wantProto)
	}
	return b
}

// promValues returns the value of each series (name and labels, as
// written) of a Prometheus text exposition.
func promValues(text string) map[string]float64 {
	values := make(map[string]float64)
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64); err == nil {
			values[line[:i]] = v
		}
	}
	return values
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, step)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(step))
	return c
}
