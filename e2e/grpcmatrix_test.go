package e2e

//lint:file-ignore SA1019 the tests drive the x/net/http2 server and client on purpose: users run them, and the mux must work with them.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const h2CT = "content-type"

// grpcChains are the matcher chains of the root module's TestH2Matrix:
// each returns the gRPC listener and the others.
var grpcChains = []struct {
	name  string
	build func(m cmux.CMux) (grpcL net.Listener, rest []net.Listener)
}{
	{"writer-grpc,any", func(m cmux.CMux) (net.Listener, []net.Listener) {
		g := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(h2CT, "application/grpc"))
		return g, []net.Listener{m.Match(cmux.Any())}
	}},
	{"writer-grpc,writer-other,http2", func(m cmux.CMux) (net.Listener, []net.Listener) {
		g := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(h2CT, "application/grpc"))
		o := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(h2CT, "application/other"))
		return g, []net.Listener{o, m.Match(cmux.HTTP2())}
	}},
	{"plain-grpc,http1fast,any", func(m cmux.CMux) (net.Listener, []net.Listener) {
		g := m.Match(cmux.HTTP2HeaderField(h2CT, "application/grpc"))
		return g, []net.Listener{m.Match(cmux.HTTP1Fast()), m.Match(cmux.Any())}
	}},
	{"writer-grpc,http1fast,any", func(m cmux.CMux) (net.Listener, []net.Listener) {
		g := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(h2CT, "application/grpc"))
		return g, []net.Listener{m.Match(cmux.HTTP1Fast()), m.Match(cmux.Any())}
	}},
}

// TestGRPCMatrix is the "grpc" row of the root module's TestH2Matrix, with
// grpc-go's client and server: on every matcher chain, three health checks
// on one connection reach grpc-go's server (grpc-go's client waits for the
// server's SETTINGS before it sends HEADERS, and grpc-go's server must not
// see the ACK of the mux's SETTINGS). The other listeners get an HTTP/1.1
// and h2c server; the gRPC client never reaches them, so which REST server
// they run (the other axis of TestH2Matrix) does not matter here.
func TestGRPCMatrix(t *testing.T) {
	checkLeaks(t)
	for _, ch := range grpcChains {
		t.Run(ch.name, func(t *testing.T) {
			checkLeaks(t)
			m, start, addr := newMux(t, cmux.MatchTimeout(20*time.Second))
			gl, rest := ch.build(m)
			start()
			serveHealth(t, gl)
			for i, l := range rest {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "rest%d %s %s\n", i, r.Proto, r.URL.Path)
				})
				serveHTTP(t, l, &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})})
			}

			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
			require.NoError(t, err)
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			hc := healthpb.NewHealthClient(cc)
			for range 3 {
				resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				require.NoError(t, err)
				require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
			}
		})
	}
}
