// Command demo serves four protocols on a single TCP port with cmux:
//
//   - gRPC (health service and server reflection), for grpcurl and any gRPC client;
//   - a small REST API over HTTP/1.1;
//   - the same REST API over HTTP/2 without TLS (h2c, "prior knowledge");
//   - a line-based TCP echo for every other connection;
//   - its own metrics, in the Prometheus text format, at /metrics on the
//     HTTP side.
//
// cmux looks at the first bytes of each new connection and hands it to the
// server that wants it. Listeners are tried in the order they are created:
//
//  1. gRPC: an HTTP/2 connection whose first request has content-type
//     application/grpc. The matcher answers the client's SETTINGS frame, so
//     gRPC clients that wait for the server's SETTINGS before sending their
//     first request work too.
//  2. h2c: any other HTTP/2 connection (the HTTP/2 client preface).
//  3. HTTP/1.1: a connection starting with an HTTP method.
//  4. Everything else that sends a byte, and a client that sends nothing
//     before the match timeout, goes to the echo server. A client that
//     closes the connection without sending anything (a TCP health probe)
//     is dropped.
//
// cmux counts what it did with each connection (cmux_connections_total, by
// listener: grpc, h2c, http1 or echo; by outcome: matched or not_matched;
// and by reason for not_matched: no_bytes for a probe) and how long it
// took, in the histograms cmux_match_duration_seconds and
// cmux_queue_duration_seconds; see package
// github.com/cmux-go/cmux/examples/cmuxmetrics. It logs the connections it
// drops (a probe at Debug level, which the demo's logger leaves out).
//
// Listeners 2 and 3 are served by one net/http server configured for both
// HTTP/1.1 and unencrypted HTTP/2, so the same handlers answer both.
//
// Run it with
//
//	go -C examples run ./demo [-addr 127.0.0.1:8080]
//
// from the repository root (examples is a module of its own), or go run
// ./demo in examples/.
//
// It prints the commands that exercise each protocol, and shuts down
// gracefully on SIGINT or SIGTERM.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/cmuxgrpc"
	"github.com/cmux-go/cmux/examples/cmuxmetrics"
)

const (
	// matchTimeout bounds how long cmux waits for the bytes it needs to
	// classify a connection. A client that stays silent that long ends up
	// with the echo server, which matches anything.
	matchTimeout = 5 * time.Second
	// shutdownTimeout bounds each graceful step; after it, connections are
	// closed forcibly.
	shutdownTimeout = 5 * time.Second

	echoMaxLine     = 4096             // longest line the echo server accepts
	echoIdleTimeout = 30 * time.Second // echo connections idle longer are closed
	maxEchoBody     = 1 << 20          // largest body POST /echo accepts
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "TCP address to listen on (loopback only by default)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if err := run(ctx, ln, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run serves gRPC, HTTP/1.1, h2c and TCP echo on ln until ctx is done, then
// shuts everything down and returns nil, or returns an error if a server
// stopped on its own. It writes the usage text and logs to out, and always
// closes ln.
func run(ctx context.Context, ln net.Listener, out io.Writer) error {
	logger := slog.New(slog.NewTextHandler(out, nil))

	// The mux's metrics, served at /metrics. A registry of its own rather
	// than prometheus.DefaultRegisterer: run may be called more than once
	// in a process (the tests do).
	reg := prometheus.NewRegistry()

	// Independent children: the servers below stop one by one, each
	// closing its own listener, while the others finish their work.
	m := cmux.NewWithOptions(ln, cmux.IndependentListeners(), cmux.MatchTimeout(matchTimeout),
		cmux.WithHooks(cmuxmetrics.PrometheusHooks(reg)), cmux.WithLogger(logger))

	// Order matters: the first listener whose matcher accepts wins. The
	// names label the metrics and the mux's log messages.
	grpcL := cmux.Name(m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")), "grpc")
	h2cL := cmux.Name(m.Match(cmux.HTTP2()), "h2c")
	http1L := cmux.Name(m.Match(cmux.HTTP1Fast()), "http1")
	// Not cmux.Any(), which would also take a probe's empty connection.
	echoL := cmux.Name(m.Match(sentSomething, cmux.Silent(matchTimeout)), "echo")

	grpcSrv, healthSrv := newGRPCServer()
	httpSrv := newHTTPServer(logger, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	echoSrv := newEchoServer(echoMaxLine, echoIdleTimeout)

	// Start every server; each reports once when its Serve returns.
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 5)
	var wg sync.WaitGroup
	serve := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- result{name, fn()}
		}()
	}
	// cmuxgrpc.Listener: idle gRPC connections hold no read buffer.
	serve("grpc", func() error { return grpcSrv.Serve(cmuxgrpc.Listener(grpcL)) })
	serve("http (h2c)", func() error { return httpSrv.Serve(h2cL) })
	serve("http (HTTP/1.1)", func() error { return httpSrv.Serve(http1L) })
	serve("echo", func() error { return echoSrv.Serve(echoL) })
	serve("cmux", m.Serve)

	printUsage(out, ln.Addr())

	// Wait for a shutdown request, or for a server to stop unexpectedly.
	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case r := <-results:
		runErr = fmt.Errorf("%s stopped unexpectedly: %v", r.name, r.err)
		logger.Error("server stopped", "server", r.name, "err", r.err)
	}

	// Graceful shutdown, each step bounded by shutdownTimeout.
	healthSrv.Shutdown() // report NOT_SERVING to health watchers
	stopGRPC(grpcSrv, shutdownTimeout)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown timed out, closing connections", "err", err)
		httpSrv.Close()
	}

	m.Close()          // every child Accept now fails, and Serve returns
	ln.Close()         // the root listener belongs to us, not to the mux
	echoSrv.Shutdown() // close open echo connections and wait for their goroutines

	// Wait for every Serve call to return. Their errors are the expected
	// "closed" errors now, so they are not reported.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		return errors.Join(runErr, errors.New("timed out waiting for servers to stop"))
	}
	logger.Info("stopped")
	return runErr
}

// sentSomething matches a connection whose client has sent a byte. (After
// it, cmux.Silent matches the client that sent nothing until the match
// timeout; neither matches a client that closed without a byte.)
func sentSomething(r io.Reader) bool {
	var b [1]byte
	n, _ := r.Read(b[:])
	return n == 1
}

// printUsage prints the address and a command that exercises each protocol.
func printUsage(out io.Writer, addr net.Addr) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		fmt.Fprintf(out, "cmux demo listening on %s\n", addr)
		return
	}
	// If listening on all interfaces, point the commands at loopback.
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	hp := net.JoinHostPort(host, port)
	fmt.Fprintf(out, `cmux demo listening on %s: gRPC, HTTP/1.1, h2c and TCP echo on one port.
Try:
  curl --http1.1 http://%[2]s/hello
  curl --http2-prior-knowledge http://%[2]s/hello
  curl --http2-prior-knowledge --data 'ping' http://%[2]s/echo
  grpcurl -plaintext %[2]s grpc.health.v1.Health/Check
  grpcurl -plaintext %[2]s list
  printf 'hi\n' | nc -N %[3]s %[4]s    (netcat-openbsd; other netcats use -q 1)
What cmux did with each connection (matched, or dropped and why), and how long it took:
  curl http://%[2]s/metrics | grep cmux_
Stop with Ctrl-C.
`, addr, hp, host, port)
}

// newGRPCServer returns a gRPC server with the health service (reporting
// SERVING) and server reflection registered.
func newGRPCServer() (*grpc.Server, *health.Server) {
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s, hs
}

// stopGRPC stops s gracefully, or forcibly once timeout has passed (a
// client holding a stream open would otherwise block GracefulStop forever).
func stopGRPC(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
		<-done
	}
}

// newHTTPServer returns the REST server, which serves metrics at GET
// /metrics. It speaks HTTP/1.1 and unencrypted HTTP/2 (h2c with prior
// knowledge), so it can serve the connections of both the HTTP1Fast and the
// HTTP2 listener.
func newHTTPServer(logger *slog.Logger, metrics http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", handleHello)
	mux.HandleFunc("POST /echo", handleEcho)
	mux.Handle("GET /metrics", metrics)

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)

	return &http.Server{
		Handler:           mux,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

type helloResponse struct {
	Message string `json:"message"`
	Proto   string `json:"proto"`
}

// handleHello answers GET /hello with the protocol the request came over.
func handleHello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(helloResponse{Message: "hello", Proto: r.Proto})
}

// handleEcho answers POST /echo with the request body.
func handleEcho(w http.ResponseWriter, r *http.Request) {
	// Read the whole body before answering: an HTTP/1.x handler may not
	// read the body once it has started writing the response.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(body)
}

// echoServer writes every line it reads back to the sender. Lines longer
// than maxLine end the connection, and so does idleness longer than idle.
type echoServer struct {
	maxLine int
	idle    time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newEchoServer(maxLine int, idle time.Duration) *echoServer {
	return &echoServer{maxLine: maxLine, idle: idle, conns: make(map[net.Conn]struct{})}
}

// Serve accepts connections from l until its Accept fails, and returns that error.
func (e *echoServer) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		if !e.track(c) {
			c.Close() // shutting down
			continue
		}
		go func() {
			defer e.wg.Done()
			defer e.untrack(c)
			e.handle(c)
		}()
	}
}

func (e *echoServer) track(c net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.conns[c] = struct{}{}
	e.wg.Add(1)
	return true
}

func (e *echoServer) untrack(c net.Conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	c.Close()
}

func (e *echoServer) handle(c net.Conn) {
	r := bufio.NewReaderSize(c, e.maxLine)
	for {
		c.SetReadDeadline(time.Now().Add(e.idle))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			c.SetWriteDeadline(time.Now().Add(e.idle))
			fmt.Fprintf(c, "error: line longer than %d bytes\n", e.maxLine)
			return
		}
		if len(line) > 0 { // a whole line, or what came before EOF
			c.SetWriteDeadline(time.Now().Add(e.idle))
			if _, werr := c.Write(line); werr != nil {
				return
			}
		}
		if err != nil { // EOF, idle timeout, or closed by Shutdown
			return
		}
	}
}

// Shutdown closes every open connection and waits for their handlers to
// return. Connections accepted afterwards are closed at once. Closing the
// listener given to Serve is the caller's job.
func (e *echoServer) Shutdown() {
	e.mu.Lock()
	e.closed = true
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}
