package compat

//lint:file-ignore SA1019 the h2c client is x/net/http2's on purpose: programs use it.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// h2cClient returns an HTTP/2 client with prior knowledge over plain TCP.
func h2cClient(dials *atomic.Int32) (*http.Client, func()) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: waitFor}, tr.CloseIdleConnections
}

// h2cGets makes n requests, which should all go on one h2c connection, and
// returns the first error, or one saying how many connections the client
// dialled if that was more than one: the client retries a request whose
// connection the server failed on a new connection, and that request then
// succeeds.
func h2cGets(addr string, n int) error {
	var dials atomic.Int32
	c, done := h2cClient(&dials)
	defer done()
	for i := range n {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != "ok" {
			return fmt.Errorf("request %d: %d HTTP/%d %q %v", i, resp.StatusCode, resp.ProtoMajor, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := dials.Load(); d > 1 {
		return fmt.Errorf("%d requests took %d connections", n, d)
	}
	return nil
}

// realServers serves gRPC and an h2c-capable net/http server behind the
// listeners grpcL and httpL, until cleanup.
func realServers(t *testing.T, root net.Listener, m Mux, grpcL, httpL net.Listener) {
	t.Helper()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	gDone := goWait(func() error { return gs.Serve(grpcL) })
	hDone := goWait(func() error { return hs.Serve(httpL) })
	served := serve(m)
	t.Cleanup(func() {
		gs.Stop()
		hs.Close()
		root.Close()
		for _, w := range []*waiter{gDone, hDone, served} {
			w.wait(t, waitFor, "a server at cleanup")
		}
	})
}

// TestRealClients: real clients of the routing setups programs use.
func TestRealClients(t *testing.T) {
	// etcd's: HTTP1() for HTTP, HTTP2() for gRPC.
	t.Run("EtcdMatchers", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			p := startProgram(t, lib, func(l net.Listener) Mux {
				return &matcherOverride{Mux: lib.New(l), grpc: lib.HTTP2(), http: lib.HTTP1()}
			})
			for range 3 {
				if got := p.healthCheck(t, ""); got != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("health = %v", got)
				}
				if got := p.get(t); got != "http ok" {
					t.Errorf("GET = %q", got)
				}
			}
		})
	})
	// gRPC routed by HTTP2MatchHeaderFieldSendSettings, everything else to
	// an h2c-capable HTTP server: v0.1.5 writes its SETTINGS to the h2c
	// client too, whose ACK of it reaches net/http's HTTP/2 server as an
	// ACK of SETTINGS it never sent.
	t.Run("H2CBehindGRPCSendSettings", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			root := listen(t)
			m := lib.New(root)
			grpcL := m.MatchWithWriters(lib.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			httpL := m.Match(lib.Any())
			realServers(t, root, m, grpcL, httpL)
			err := h2cGets(root.Addr().String(), 30)
			switch lib.Name {
			case libV015:
				if err == nil {
					t.Errorf("30 h2c requests succeeded on one connection; %s", d.V015)
				} else {
					t.Logf("v0.1.5: %v", err)
				}
			case libOurs:
				if err != nil {
					t.Errorf("h2c: %v; %s", err, d.Ours)
				}
			}
		})
	})
}

// matcherOverride registers program's two listeners with other matchers.
type matcherOverride struct {
	Mux
	grpc, http Matcher
}

func (o *matcherOverride) MatchWithWriters(...MatchWriter) net.Listener {
	return o.Mux.Match(o.grpc)
}

func (o *matcherOverride) Match(...Matcher) net.Listener {
	return o.Mux.Match(o.http)
}
