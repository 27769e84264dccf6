package compat

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestShutdown: the ways real programs stop a mux that serves gRPC and
// HTTP on one port.
func TestShutdown(t *testing.T) {
	// (a) http.Server.Shutdown closes the HTTP child listener, which
	// closes the root listener: Serve returns, the gRPC server's Serve
	// returns, and the port is closed.
	t.Run("HTTPServerShutdown", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			p := startProgram(t, lib, lib.New)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := p.hs.Shutdown(ctx); err != nil {
				t.Errorf("http.Server.Shutdown = %v", err)
			}
			requireRootAcceptError(t, p.serveErr.wait(t, waitFor, "mux Serve"), p.root.Addr(), "mux Serve")
			if err := p.httpErr.wait(t, waitFor, "http.Server.Serve"); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("http.Server.Serve = %v, want http.ErrServerClosed", err)
			}
			if err := p.grpcErr.wait(t, waitFor, "grpc.Server.Serve"); !isChildClosed(lib, err) {
				t.Errorf("grpc.Server.Serve = %v, want the child's ErrListenerClosed or ErrServerClosed", err)
			}
			requirePortClosed(t, p.addr)
		})
	})

	// (b) grpc.Server.GracefulStop closes the gRPC child listener: the
	// same, and GracefulStop itself returns.
	t.Run("GRPCGracefulStop", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			p := startProgram(t, lib, lib.New)
			stopped := goWait(func() error { p.gs.GracefulStop(); return nil })
			requireRootAcceptError(t, p.serveErr.wait(t, waitFor, "mux Serve"), p.root.Addr(), "mux Serve")
			if err := p.grpcErr.wait(t, waitFor, "grpc.Server.Serve"); err != nil {
				t.Errorf("grpc.Server.Serve after GracefulStop = %v, want nil", err)
			}
			if err := p.httpErr.wait(t, waitFor, "http.Server.Serve"); !isChildClosed(lib, err) {
				t.Errorf("http.Server.Serve = %v, want the child's ErrListenerClosed or ErrServerClosed", err)
			}
			stopped.wait(t, waitFor, "GracefulStop")
			requirePortClosed(t, p.addr)
		})
	})

	// (b') GracefulStop with a unary call in flight: the port closes at
	// once, the call completes, then GracefulStop returns.
	t.Run("GRPCGracefulStopInFlight", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			p := startProgram(t, lib, lib.New)
			cc := p.grpcClient(t)
			call := async(func() (*healthpb.HealthCheckResponse, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
				defer cancel()
				return healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "slow"})
			})
			within(t, p.health.started, waitFor, "the slow call to start")
			stopped := goWait(func() error { p.gs.GracefulStop(); return nil })
			requireRootAcceptError(t, p.serveErr.wait(t, waitFor, "mux Serve"), p.root.Addr(), "mux Serve")
			if err := p.httpErr.wait(t, waitFor, "http.Server.Serve"); !isChildClosed(lib, err) {
				t.Errorf("http.Server.Serve = %v, want the child's ErrListenerClosed or ErrServerClosed", err)
			}
			requirePortClosed(t, p.addr)
			if stopped.returnsWithin(quiet) {
				t.Fatal("GracefulStop returned with a call in flight")
			}
			close(p.health.release)
			r := within(t, call, waitFor, "the in-flight call")
			if r.err != nil || r.v.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("in-flight call = %v, %v; want SERVING", r.v, r.err)
			}
			stopped.wait(t, waitFor, "GracefulStop")
			if err := p.grpcErr.wait(t, waitFor, "grpc.Server.Serve"); err != nil {
				t.Errorf("grpc.Server.Serve after GracefulStop = %v, want nil", err)
			}
		})
	})

	// (c) Closing the root listener ends Serve and both servers.
	t.Run("RootClose", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			p := startProgram(t, lib, lib.New)
			if err := p.root.Close(); err != nil {
				t.Errorf("root Close = %v", err)
			}
			requireRootAcceptError(t, p.serveErr.wait(t, waitFor, "mux Serve"), p.root.Addr(), "mux Serve")
			if err := p.httpErr.wait(t, waitFor, "http.Server.Serve"); !isChildClosed(lib, err) {
				t.Errorf("http.Server.Serve = %v, want the child's ErrListenerClosed or ErrServerClosed", err)
			}
			if err := p.grpcErr.wait(t, waitFor, "grpc.Server.Serve"); !isChildClosed(lib, err) {
				t.Errorf("grpc.Server.Serve = %v, want the child's ErrListenerClosed or ErrServerClosed", err)
			}
			requirePortClosed(t, p.addr)
		})
	})

	// (d) etcd's embed.Etcd.Close: stop the servers (etcd v3.7.3's
	// stopServers shuts the http.Server down first, then GracefulStops
	// gRPC, falling back to Stop when its context expires), then wait for
	// the goroutine that runs the mux's Serve. A client connection stays
	// open meanwhile, as etcd's clients' do. Both orders are tried.
	for _, order := range []string{"httpFirst", "grpcFirst"} {
		t.Run("EtcdCloser/"+order, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				p := startProgram(t, lib, lib.New)
				cc := p.grpcClient(t)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					t.Fatalf("health check: %v", err)
				}
				stopGRPC := func() {
					ch := make(chan struct{})
					go func() { p.gs.GracefulStop(); close(ch) }()
					select {
					case <-ch:
					case <-ctx.Done():
						p.gs.Stop()
						<-ch
					}
				}
				closer := goWait(func() error {
					if order == "httpFirst" {
						p.hs.Shutdown(ctx)
						stopGRPC()
					} else {
						stopGRPC()
						p.hs.Shutdown(ctx)
					}
					// etcd: e.wg.Wait() for the serving goroutines.
					<-p.serveErr.c
					return nil
				})
				closer.wait(t, 10*time.Second, "the etcd-style closer")
				requireRootAcceptError(t, p.serveErr.err, p.root.Addr(), "mux Serve")
				requirePortClosed(t, p.addr)
			})
		})
	}

	// (e) CMux.Close with real servers: their Accept returns
	// ErrServerClosed, so their Serve returns and closes its listener,
	// which closes the root listener (children embed it in v0.1.5): Serve
	// returns and the port closes in both. Serve's error differs: v0.1.5
	// returns the root's accept error, ours says the mux was closed.
	t.Run("CMuxClose/RealServers", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			p := startProgram(t, lib, lib.New)
			p.mux.Close()
			if err := p.httpErr.wait(t, waitFor, "http.Server.Serve"); !errors.Is(err, lib.ErrServerClosed) {
				t.Errorf("http.Server.Serve = %v, want the child's ErrServerClosed", err)
			}
			if err := p.grpcErr.wait(t, waitFor, "grpc.Server.Serve"); !errors.Is(err, lib.ErrServerClosed) {
				t.Errorf("grpc.Server.Serve = %v, want the child's ErrServerClosed", err)
			}
			err := p.serveErr.wait(t, waitFor, "mux Serve")
			requireClosedError(t, err, "Serve after Close")
			switch lib.Name {
			case libV015:
				requireRootAcceptError(t, err, p.root.Addr(), "Serve after Close")
			case libOurs:
				if !errors.Is(err, lib.ErrServerClosed) {
					t.Errorf("Serve after Close = %q, want errors.Is(err, ErrServerClosed): %s", err, d.Ours)
				}
			}
			requirePortClosed(t, p.addr)
		})
	})

	// (e') CMux.Close with children nobody closes (servers that do not
	// close their listener, or none yet): v0.1.5's Serve goes on until
	// the root listener is closed; ours returns at once. Both make the
	// children's Accept return ErrServerClosed and leave the root listener
	// to its owner, who may close it without error.
	t.Run("CMuxClose/ChildrenLeftOpen", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			root := listen(t)
			m := lib.New(root)
			a, b := m.Match(lib.HTTP1Fast()), m.Match(lib.Any())
			served := serve(m)
			acceptA := accept(t, a)
			m.Close()
			if r := within(t, acceptA, waitFor, "a blocked Accept after Close"); !errors.Is(r.err, lib.ErrServerClosed) {
				t.Errorf("blocked child Accept after Close = %v, %v; want ErrServerClosed", r.v, r.err)
			}
			if r := within(t, accept(t, b), waitFor, "Accept after Close"); !errors.Is(r.err, lib.ErrServerClosed) {
				t.Errorf("child Accept after Close = %v, %v; want ErrServerClosed", r.v, r.err)
			}
			switch lib.Name {
			case libV015:
				if served.returnsWithin(quiet) {
					t.Errorf("Serve returned after Close (%v); %s", served.err, d.V015)
				}
				requirePortOpen(t, root.Addr().String())
				if err := root.Close(); err != nil {
					t.Errorf("root Close after Close = %v, want nil", err)
				}
				requireRootAcceptError(t, served.wait(t, waitFor, "Serve after the root closed"), root.Addr(), "Serve")
			case libOurs:
				err := served.wait(t, waitFor, "Serve after Close")
				requireClosedError(t, err, "Serve after Close")
				if !errors.Is(err, lib.ErrServerClosed) {
					t.Errorf("Serve after Close = %v, want errors.Is(err, ErrServerClosed)", err)
				}
				if err := root.Close(); err != nil {
					t.Errorf("root Close after Close = %v, want nil", err)
				}
			}
			requirePortClosed(t, root.Addr().String())
		})
	})

	// (f) Connections matched to a child whose server never calls Accept
	// are closed when Serve stops, whatever stopped it.
	for _, stop := range []string{"RootClose", "OtherChildClose", "HandlerStops"} {
		t.Run("QueuedConnections/"+stop, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				root := listen(t)
				m := lib.New(root)
				matched := make(chan struct{}, 8)
				prefix := lib.PrefixMatcher("QUEUE")
				m.Match(func(r io.Reader) bool {
					ok := prefix(r)
					if ok {
						matched <- struct{}{}
					}
					return ok
				}) // never accepted
				other := m.Match(lib.PrefixMatcher("OTHER"))
				m.HandleError(func(err error) bool { return !lib.IsErrNotMatched(err) || stop != "HandlerStops" })
				served := serve(m)
				var queued []net.Conn
				for range 3 {
					queued = append(queued, send(t, root.Addr().String(), []byte("QUEUE-ME\r\n")))
					within(t, matched, waitFor, "the match")
				}
				time.Sleep(100 * time.Millisecond) // let the mux queue them
				for _, c := range queued {
					requireStillOpen(t, c, 50*time.Millisecond, "queued connection before the stop")
				}
				switch stop {
				case "RootClose":
					root.Close()
				case "OtherChildClose":
					other.Close()
				case "HandlerStops":
					send(t, root.Addr().String(), []byte("UNMATCHED\r\n"))
				}
				requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
				for i, c := range queued {
					requirePeerClosed(t, c, "queued connection "+string(rune('0'+i)))
				}
				requirePortClosed(t, root.Addr().String())
			})
		})
	}

	// (f') After CMux.Close, v0.1.5 keeps the queued connections open
	// until the root listener is closed (their clients hang); ours closes
	// them at once.
	t.Run("QueuedConnections/CMuxClose", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			root := listen(t)
			m := lib.New(root)
			matched := make(chan struct{}, 1)
			prefix := lib.PrefixMatcher("QUEUE")
			m.Match(func(r io.Reader) bool {
				ok := prefix(r)
				if ok {
					matched <- struct{}{}
				}
				return ok
			})
			served := serve(m)
			c := send(t, root.Addr().String(), []byte("QUEUE-ME\r\n"))
			within(t, matched, waitFor, "the match")
			time.Sleep(100 * time.Millisecond)
			m.Close()
			switch lib.Name {
			case libV015:
				if closed, _, err := peerClosed(c, quiet); closed {
					t.Errorf("queued connection closed by Close (%v); %s", err, d.V015)
				}
				root.Close()
				requirePeerClosed(t, c, "queued connection after the root closed")
			case libOurs:
				requirePeerClosed(t, c, "queued connection after Close")
				root.Close()
			}
			served.wait(t, waitFor, "Serve")
		})
	})

	// A connection still being matched when the root listener closes:
	// v0.1.5's Serve waits for it to finish matching (forever, if the
	// client stays silent); ours closes it and returns.
	t.Run("RootCloseWhileMatching", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			root := listen(t)
			m := lib.New(root)
			reading := make(chan struct{}, 1)
			prefix := lib.PrefixMatcher("X")
			m.Match(func(r io.Reader) bool {
				reading <- struct{}{}
				return prefix(r)
			})
			served := serve(m)
			c := dial(t, root.Addr().String())
			within(t, reading, waitFor, "the matcher")
			root.Close()
			switch lib.Name {
			case libV015:
				if served.returnsWithin(quiet) {
					t.Errorf("Serve returned (%v) while a connection was matched; %s", served.err, d.V015)
				}
				requireStillOpen(t, c, 50*time.Millisecond, "the connection being matched")
				c.Close() // the matcher reads EOF and Serve can return
				requireRootAcceptError(t, served.wait(t, waitFor, "Serve after the client left"), root.Addr(), "Serve")
			case libOurs:
				requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
				requirePeerClosed(t, c, "the connection being matched")
			}
		})
	})
}
