package e2e

//lint:file-ignore SA1019 the tests drive the x/net/http2 server and client on purpose: users run them, and the mux must work with them.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestAllProtocolsOnOnePort serves HTTP/1.1, net/rpc, TLS, gRPC (grpc-go)
// and h2c on one port at once and runs concurrent clients of all of them.
// The root module's test of that name runs it with a hand-written gRPC
// peer instead of grpc-go.
func TestAllProtocolsOnOnePort(t *testing.T) {
	checkLeaks(t)
	cert, roots := selfSignedCert(t)
	m, start, addr := newMux(t)
	var errMu sync.Mutex
	var muxErrs []error
	m.HandleError(func(err error) bool {
		errMu.Lock()
		muxErrs = append(muxErrs, err)
		errMu.Unlock()
		return true
	})
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	h2cL := m.Match(cmux.HTTP2())
	tlsL := m.Match(cmux.TLS())
	httpL := m.Match(cmux.HTTP1Fast())
	rpcL := m.Match(cmux.Any())

	// gRPC health service.
	serveHealth(t, grpcL)

	tagged := func(tag string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s tls=%v", tag, r.Proto, r.TLS != nil)
		})
	}
	// h2c through x/net/http2, HTTP/1.1, and HTTP/1.1 over crypto/tls.
	serveHTTP(t, h2cL, &http.Server{Handler: h2c.NewHandler(tagged("h2c"), &http2.Server{})})
	serveHTTP(t, httpL, &http.Server{Handler: tagged("http1")})
	serveHTTP(t, tls.NewListener(tlsL, &tls.Config{Certificates: []tls.Certificate{cert}}), &http.Server{Handler: tagged("https")})

	// net/rpc.
	rs := rpc.NewServer()
	require.NoError(t, rs.Register(Echo{}))
	serveConns(t, rpcL, func(c net.Conn) { rs.ServeConn(c) })

	start()

	// Clients. Every request opens a fresh connection, so each one goes
	// through the mux.
	httpGet := func(tr http.RoundTripper, url, want string) error {
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if string(b) != want {
			return fmt.Errorf("GET %s: %q, want %q", url, b, want)
		}
		return nil
	}
	clients := []func() error{
		func() error {
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			return httpGet(tr, "http://"+addr+"/", "http1 HTTP/1.1 tls=false")
		},
		func() error {
			tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots}}
			defer tr.CloseIdleConnections()
			return httpGet(tr, "https://"+addr+"/", "https HTTP/1.1 tls=true")
		},
		func() error {
			tr := &http2.Transport{
				AllowHTTP: true,
				DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				},
			}
			defer tr.CloseIdleConnections()
			return httpGet(tr, "http://"+addr+"/", "h2c HTTP/2.0 tls=false")
		},
		func() error {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("health: %v", resp.GetStatus())
			}
			return nil
		},
		func() error {
			c, err := net.DialTimeout("tcp", addr, waitFor)
			if err != nil {
				return err
			}
			rc := rpc.NewClient(c)
			defer rc.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var reply string
			if err := rc.Call("Echo.Upper", "abc", &reply); err != nil {
				return err
			}
			if reply != "ABC" {
				return fmt.Errorf("rpc: %q, want ABC", reply)
			}
			return nil
		},
	}
	names := []string{"http1", "https", "h2c", "grpc", "rpc"}

	const goroutines, requests = 8, 20
	errc := make(chan error, goroutines*requests)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				k := (g + i) % len(clients)
				if err := clients[k](); err != nil {
					errc <- fmt.Errorf("%s client %d request %d: %w", names[k], g, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	errMu.Lock()
	defer errMu.Unlock()
	assert.Empty(t, muxErrs, "errors reported to the handler")
}
