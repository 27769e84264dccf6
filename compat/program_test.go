package compat

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// program is what real programs build on the mux: a gRPC server with the
// health service and an HTTP/1 server, each on its child listener.
type program struct {
	lib    *Lib
	root   net.Listener
	addr   string
	mux    Mux
	grpcL  net.Listener
	httpL  net.Listener
	gs     *grpc.Server
	hs     *http.Server
	health *slowHealth

	serveErr *waiter // the mux's Serve
	grpcErr  *waiter // gs.Serve
	httpErr  *waiter // hs.Serve
}

// slowHealth is the standard health service, except that a Check of the
// service "slow" waits until release is closed: an in-flight call.
type slowHealth struct {
	*health.Server
	started chan struct{}
	release chan struct{}
}

func (h *slowHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() == "slow" {
		close(h.started)
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return h.Server.Check(ctx, req)
}

// startProgram serves gRPC (routed by its content-type, with SETTINGS sent
// to the client, the usual recipe for grpc-go clients) and HTTP/1 on one
// port, and checks that both answer. Cleanup stops everything.
func startProgram(t *testing.T, lib *Lib, newMux func(net.Listener) Mux) *program {
	t.Helper()
	p := &program{lib: lib, root: listen(t)}
	p.addr = p.root.Addr().String()
	p.mux = newMux(p.root)
	p.grpcL = p.mux.MatchWithWriters(lib.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	p.httpL = p.mux.Match(lib.HTTP1Fast())

	p.health = &slowHealth{Server: health.NewServer(), started: make(chan struct{}), release: make(chan struct{})}
	p.gs = grpc.NewServer()
	healthpb.RegisterHealthServer(p.gs, p.health)
	p.hs = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "http ok")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	p.grpcErr = goWait(func() error { return p.gs.Serve(p.grpcL) })
	p.httpErr = goWait(func() error { return p.hs.Serve(p.httpL) })
	p.serveErr = serve(p.mux)

	t.Cleanup(func() {
		select {
		case <-p.health.release:
		default:
			close(p.health.release)
		}
		p.gs.Stop()
		p.hs.Close()
		p.root.Close()
		p.mux.Close()
		// Every goroutine started here must end; v0.1.5's Serve ends
		// once the root listener is closed.
		for _, w := range []*waiter{p.serveErr, p.grpcErr, p.httpErr} {
			if !w.returnsWithin(waitFor) {
				t.Errorf("a server did not return at cleanup")
			}
		}
	})

	if got := p.healthCheck(t, ""); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health check = %v, want SERVING", got)
	}
	if got := p.get(t); got != "http ok" {
		t.Fatalf("HTTP GET = %q", got)
	}
	return p
}

// grpcClient returns a client connection to p, closed at the end of t.
func (p *program) grpcClient(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// healthCheck makes one unary call on a new client connection.
func (p *program) healthCheck(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	cc := p.grpcClient(t)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("gRPC health check: %v", err)
	}
	return resp.GetStatus()
}

// get makes one HTTP/1.1 request on a new connection.
func (p *program) get(t *testing.T) string {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitFor}
	resp, err := c.Get("http://" + p.addr + "/")
	if err != nil {
		t.Fatalf("HTTP GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
