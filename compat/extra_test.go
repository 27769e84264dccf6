package compat

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	ours "github.com/cmux-go/cmux"
)

// TestMoreShutdown: further stop paths.
func TestMoreShutdown(t *testing.T) {
	// Close before Serve: v0.1.5's Serve runs an accept loop anyway until
	// the root listener is closed; ours returns at once.
	t.Run("CloseBeforeServe", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.Any())
			m.Close()
			served := serve(m)
			if r := within(t, accept(t, l), waitFor, "Accept"); !errors.Is(r.err, lib.ErrServerClosed) {
				t.Errorf("child Accept after Close = %v, %v; want ErrServerClosed", r.v, r.err)
			}
			switch lib.Name {
			case libV015:
				if served.returnsWithin(quiet) {
					t.Errorf("Serve after Close returned %v; %s", served.err, d.V015)
				}
				root.Close()
				requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
			case libOurs:
				err := served.wait(t, waitFor, "Serve after Close")
				requireClosedError(t, err, "Serve after Close")
				if !errors.Is(err, lib.ErrServerClosed) {
					t.Errorf("Serve after Close = %v, want errors.Is(err, ErrServerClosed)", err)
				}
			}
		})
	})

	// Serve returns promptly once the root listener is closed, also after
	// it has served connections (v0.1.5 returns within microseconds when
	// no connection is being matched).
	t.Run("ServeReturnsPromptly", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.Any())
			served := serve(m)
			for range 3 {
				send(t, root.Addr().String(), []byte("x"))
				if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
					t.Fatal(r.err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			root.Close()
			err := served.wait(t, waitFor, "Serve")
			if el := time.Since(start); el > 100*time.Millisecond {
				t.Errorf("Serve returned %v after the root closed, want within 100ms", el)
			}
			requireRootAcceptError(t, err, root.Addr(), "Serve")
		})
	})

	// IndependentListeners: closing one child leaves the root and the
	// other children serving.
	t.Run("IndependentListeners", func(t *testing.T) {
		checkLeaks(t)
		d := expectDifference(t)
		root := listen(t)
		m := newOurs(root, ours.IndependentListeners())
		a := m.Match(ours.PrefixMatcher("A"))
		b := m.Match(ours.PrefixMatcher("B"))
		served := serve(m)
		if err := a.Close(); err != nil {
			t.Errorf("child Close = %v", err)
		}
		if served.returnsWithin(quiet) {
			t.Fatalf("Serve returned %v after a child closed: %s", served.err, d.Ours)
		}
		if r := within(t, accept(t, a), waitFor, "Accept of the closed child"); !errors.Is(r.err, ours.ErrListenerClosed) {
			t.Errorf("closed child's Accept = %v, %v; want ErrListenerClosed", r.v, r.err)
		}
		send(t, root.Addr().String(), []byte("B, still served"))
		if r := within(t, accept(t, b), waitFor, "Accept of the other child"); r.err != nil {
			t.Errorf("other child's Accept = %v", r.err)
		}
		c := send(t, root.Addr().String(), []byte("A, closed"))
		requirePeerClosed(t, c, "a connection for the closed child")
		root.Close()
		requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
	})
}

// TestMoreMatching: further matching cases with the same outcome.
func TestMoreMatching(t *testing.T) {
	// Bytes that arrive one at a time are matched as if they came at once.
	t.Run("TrickledBytes", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			addr, routes := router(t, lib.New, func(m Mux) map[string]net.Listener {
				return map[string]net.Listener{
					"h1field": m.Match(lib.HTTP1HeaderField("X-Route", "v1")),
					"http1":   m.Match(lib.HTTP1Fast()),
					"any":     m.Match(lib.Any()),
				}
			})
			for _, c := range []struct{ in, want string }{
				{"GET / HTTP/1.1\r\nX-Route: v1\r\n\r\n", "h1field"},
				{"GET / HTTP/1.1\r\nX-Route: v2\r\n\r\n", "http1"},
			} {
				conn := dial(t, addr)
				for i := range len(c.in) {
					conn.Write([]byte{c.in[i]})
					time.Sleep(2 * time.Millisecond)
				}
				name, got := routeOf(t, routes)
				if name != c.want {
					t.Errorf("trickled %q went to %s, want %s", c.in, name, c.want)
				}
				if b := readN(t, got, len(c.in)); string(b) != c.in {
					t.Errorf("child read %q", b)
				}
			}
		})
	})
	// A client that connects and leaves without a byte is not matched.
	t.Run("ClientLeavesSilently", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			errs := make(chan error, 4)
			addr, routes := router(t, lib.New, func(m Mux) map[string]net.Listener {
				m.HandleError(func(err error) bool { errs <- err; return true })
				return map[string]net.Listener{"x": m.Match(lib.PrefixMatcher("X")), "http1": m.Match(lib.HTTP1())}
			})
			c := dial(t, addr)
			c.Close()
			if err := within(t, errs, waitFor, "the error handler"); !lib.IsErrNotMatched(err) {
				t.Errorf("handler got %v, want ErrNotMatched", err)
			}
			if r, ok := nothingWithin(routes, 100*time.Millisecond); !ok {
				t.Errorf("delivered to %s", r.name)
			}
		})
	})
	// A client that half-closes after a matching prefix is delivered, and
	// the child reads the bytes, then EOF.
	t.Run("HalfCloseAfterPrefix", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			addr, routes := router(t, lib.New, func(m Mux) map[string]net.Listener {
				return map[string]net.Listener{"x": m.Match(lib.PrefixMatcher("XY")), "any": m.Match(lib.Any())}
			})
			c := send(t, addr, []byte("XY"))
			c.(*net.TCPConn).CloseWrite()
			name, got := routeOf(t, routes)
			if name != "x" {
				t.Errorf("went to %s, want x", name)
			}
			got.SetReadDeadline(time.Now().Add(waitFor))
			if b, err := io.ReadAll(got); string(b) != "XY" || err != nil {
				t.Errorf("child read %q, %v; want \"XY\" then EOF", b, err)
			}
		})
	})
}
