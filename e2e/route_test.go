package e2e

//lint:file-ignore SA1019 the REST server is x/net/http2's h2c handler on purpose: programs use it behind the mux.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestRouteGRPC routes grpc-go clients, which wait for the server's
// SETTINGS before they send their first request, by source address ("gRPC
// from 127.0.0.2", AllWriters) and by :authority and :path (All of
// HTTPHost and HTTPPathPrefix); the other connections go to an h2c server.
func TestRouteGRPC(t *testing.T) {
	checkLeaks(t)
	m, start, addr := newMux(t)
	errs := make(chan error, 10)
	m.HandleError(func(err error) bool {
		select {
		case errs <- err:
		default:
		}
		return true
	})
	fromL := m.MatchWithWriters(cmux.AllWriters(
		cmux.ReadOnly(cmux.RemoteAddrIn(netip.MustParsePrefix("127.0.0.2/32"))),
		cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")))
	hostL := m.Match(cmux.All(cmux.HTTPHost("*.grpc.example"), cmux.HTTPPathPrefix("/grpc.health.v1.Health/")))
	restL := m.Match(cmux.Any())
	serveHealth(t, fromL)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	goServe(t, "grpc.Server.Serve", func() error { return gs.Serve(hostL) }, gs.Stop)
	serveHTTP(t, restL, &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "rest %s", r.Host)
	}), &http2.Server{})})
	start()

	check := func(from string, opts ...grpc.DialOption) string {
		t.Helper()
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
				return d.DialContext(ctx, "tcp", a)
			}))
		cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
		if err != nil {
			return "error: " + err.Error()
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return "error"
		}
		return resp.GetStatus().String()
	}
	if got := check("127.0.0.2"); got != "SERVING" {
		t.Errorf("from 127.0.0.2: %s, want SERVING", got)
	}
	if got := check("127.0.0.1", grpc.WithAuthority("b.grpc.example")); got != "NOT_SERVING" {
		t.Errorf("from 127.0.0.1 to b.grpc.example: %s, want NOT_SERVING", got)
	}
	if got := check("127.0.0.1", grpc.WithAuthority("a.b.grpc.example")); got != "error" {
		t.Errorf("from 127.0.0.1 to a.b.grpc.example: %s, want an error (the REST server)", got)
	}
	if got := check("127.0.0.1"); got != "error" {
		t.Errorf("from 127.0.0.1: %s, want an error (the REST server)", got)
	}
	select {
	case err := <-errs:
		t.Errorf("mux error: %v", err)
	default:
	}
}
