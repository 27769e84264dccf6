package compat

//lint:file-ignore SA1019 Temporary is what v0.1.5 programs call on these errors: the suite checks both libraries answer alike.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	ours "github.com/cmux-go/cmux"
	v015 "github.com/soheilhy/cmux"
)

// TestErrorValues: the exported error values.
func TestErrorValues(t *testing.T) {
	t.Run("ErrListenerClosed", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			err := lib.ErrListenerClosed
			if err.Error() != "mux: listener closed" {
				t.Errorf("Error() = %q", err.Error())
			}
			ne, ok := err.(net.Error)
			if !ok {
				t.Fatalf("%T is not a net.Error", err)
			}
			if ne.Temporary() || ne.Timeout() {
				t.Errorf("Temporary() = %v, Timeout() = %v; want false, false", ne.Temporary(), ne.Timeout())
			}
		})
	})
	t.Run("ErrServerClosed", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			err := lib.ErrServerClosed
			if err.Error() != "mux: server closed" {
				t.Errorf("Error() = %q", err.Error())
			}
			// v0.1.5's is errors.New: no net.Error, no Temporary method
			// (accept loops such as grpc-go's and net/http's ask for one).
			if _, ok := err.(net.Error); ok {
				t.Errorf("%T is a net.Error; v0.1.5's ErrServerClosed is not", err)
			}
			if _, ok := err.(interface{ Temporary() bool }); ok {
				t.Errorf("%T has a Temporary method; v0.1.5's ErrServerClosed has none", err)
			}
		})
	})
	for _, name := range []string{"ErrListenerClosed", "ErrServerClosed"} {
		t.Run("ErrorsIsNetErrClosed/"+name, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				d := expectDifference(t)
				err := map[string]error{"ErrListenerClosed": lib.ErrListenerClosed, "ErrServerClosed": lib.ErrServerClosed}[name]
				want := lib.Name == libOurs
				if got := errors.Is(err, net.ErrClosed); got != want {
					t.Errorf("errors.Is(%s, net.ErrClosed) = %v, want %v: %s", name, got, want, map[bool]string{false: d.V015, true: d.Ours}[want])
				}
				// Either way, errors.Is against the library's own value
				// holds, also wrapped.
				if !errors.Is(fmt.Errorf("wrapped: %w", err), err) {
					t.Errorf("errors.Is(wrapped %s, %s) = false", name, name)
				}
			})
		})
	}
	t.Run("ErrNotMatched", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			m.Match(lib.PrefixMatcher("XYZ"))
			errs := make(chan error, 4)
			m.HandleError(func(err error) bool { errs <- err; return true })
			served := serve(m)
			c := send(t, root.Addr().String(), []byte("HELLO\r\n"))
			err := within(t, errs, waitFor, "the error handler")
			if !lib.IsErrNotMatched(err) {
				t.Fatalf("handler got %T %v, want ErrNotMatched", err, err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Temporary() || ne.Timeout() {
				t.Errorf("ErrNotMatched as net.Error: %v; want Temporary() true, Timeout() false", ne)
			}
			if errors.Is(err, net.ErrClosed) {
				t.Errorf("errors.Is(ErrNotMatched, net.ErrClosed) = true")
			}
			want := fmt.Sprintf("mux: connection %v not matched by an matcher", c.LocalAddr())
			if err.Error() != want {
				t.Errorf("Error() = %q, want v0.1.5's %q", err.Error(), want)
			}
			requirePeerClosed(t, c, "the unmatched connection")
			root.Close()
			served.wait(t, waitFor, "Serve")
		})
	})
}

// TestChildListener: what a child listener answers.
func TestChildListener(t *testing.T) {
	t.Run("Addr", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			a, b := m.Match(lib.HTTP1Fast()), m.Match(lib.Any())
			for _, l := range []net.Listener{a, b} {
				if l.Addr() != root.Addr() && l.Addr().String() != root.Addr().String() {
					t.Errorf("child Addr() = %v, want the root's %v", l.Addr(), root.Addr())
				}
				if l.Addr().Network() != "tcp" {
					t.Errorf("child Addr().Network() = %q", l.Addr().Network())
				}
			}
			root.Close()
			if a.Addr().String() != root.Addr().String() {
				t.Errorf("child Addr() after the root closed = %v", a.Addr())
			}
		})
	})
	t.Run("CloseReturns", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			a, b := m.Match(lib.HTTP1Fast()), m.Match(lib.Any())
			served := serve(m)
			if err := a.Close(); err != nil {
				t.Errorf("first child Close = %v, want nil", err)
			}
			want := "close tcp " + root.Addr().String() + ": " + closedText
			if err := a.Close(); err == nil || err.Error() != want {
				t.Errorf("second Close of the child = %v, want %q", err, want)
			}
			if err := b.Close(); err == nil || err.Error() != want {
				t.Errorf("Close of the other child = %v, want %q", err, want)
			}
			if err := root.Close(); err == nil || err.Error() != want {
				t.Errorf("root Close = %v, want %q", err, want)
			}
			requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
		})
	})
	t.Run("AcceptAfterChildClose", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			a, b := m.Match(lib.HTTP1Fast()), m.Match(lib.Any())
			served := serve(m)
			blocked := accept(t, b)
			a.Close()
			requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
			if r := within(t, blocked, waitFor, "a blocked Accept"); !isChildClosed(lib, r.err) {
				t.Errorf("blocked Accept of the other child = %v, %v", r.v, r.err)
			}
			for i := range 4 {
				for name, l := range map[string]net.Listener{"closed child": a, "other child": b} {
					if r := within(t, accept(t, l), waitFor, "Accept"); !isChildClosed(lib, r.err) {
						t.Errorf("Accept #%d of the %s = %v, %v; want ErrListenerClosed or ErrServerClosed", i, name, r.v, r.err)
					}
				}
			}
			requirePortClosed(t, root.Addr().String())
		})
	})
	t.Run("DeliveredConn", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.Any())
			served := serve(m)
			c := send(t, root.Addr().String(), []byte("x"))
			r := within(t, accept(t, l), waitFor, "Accept")
			if r.err != nil {
				t.Fatal(r.err)
			}
			inner, ok := lib.IsMuxConn(r.v)
			if !ok {
				t.Errorf("Accept returned %T, want the library's *MuxConn", r.v)
			} else if _, ok := inner.(*net.TCPConn); !ok {
				t.Errorf("MuxConn.Conn is %T, want *net.TCPConn", inner)
			}
			if r.v.RemoteAddr().String() != c.LocalAddr().String() || r.v.LocalAddr().String() != c.RemoteAddr().String() {
				t.Errorf("addresses %v<-%v, want %v<-%v", r.v.LocalAddr(), r.v.RemoteAddr(), c.RemoteAddr(), c.LocalAddr())
			}
			if _, ok := r.v.(interface{ ConnectionState() tls.ConnectionState }); ok {
				t.Errorf("%T has ConnectionState", r.v)
			}
			root.Close()
			served.wait(t, waitFor, "Serve")
		})
	})
	t.Run("DeliveredConnTLSRoot", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			tcp := listen(t)
			root := tls.NewListener(tcp, serverTLSConfig())
			m := lib.New(root)
			l := m.Match(lib.PrefixMatcher("hello"))
			served := serve(m)
			client := async(func() (string, error) {
				c, err := tls.Dial("tcp", tcp.Addr().String(), clientTLSConfig())
				if err != nil {
					return "", err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitFor))
				if _, err := io.WriteString(c, "hello, mux"); err != nil {
					return "", err
				}
				b, err := io.ReadAll(c)
				return string(b), err
			})
			r := within(t, accept(t, l), waitFor, "Accept")
			if r.err != nil {
				t.Fatal(r.err)
			}
			inner, ok := lib.IsMuxConn(r.v)
			if !ok {
				t.Errorf("Accept returned %T, want the library's *MuxConn", r.v)
			} else if _, ok := inner.(*tls.Conn); !ok {
				t.Errorf("MuxConn.Conn is %T, want *tls.Conn", inner)
			}
			if _, ok := r.v.(interface{ ConnectionState() tls.ConnectionState }); ok {
				t.Errorf("%T has ConnectionState", r.v)
			}
			if got := readN(t, r.v, len("hello, mux")); string(got) != "hello, mux" {
				t.Errorf("child read %q", got)
			}
			io.WriteString(r.v, "bye")
			r.v.Close()
			if res := within(t, client, waitFor, "the client"); res.err != nil || res.v != "bye" {
				t.Errorf("client read %q, %v", res.v, res.err)
			}
			root.Close()
			served.wait(t, waitFor, "Serve")
		})
	})
}

// tempErr is a temporary accept error.
type tempErr struct{}

func (tempErr) Error() string   { return "compat: temporary accept error" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

// flakyListener fails its first Accepts with errs, then accepts from the
// embedded listener.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestErrorHandler: what the error handler sees and what its answer does.
func TestErrorHandler(t *testing.T) {
	t.Run("NotMatchedKeepServing", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.PrefixMatcher("XYZ"))
			errs := make(chan error, 8)
			m.HandleError(func(err error) bool { errs <- err; return true })
			served := serve(m)
			for i := range 3 {
				c := send(t, root.Addr().String(), []byte("NOPE\r\n"))
				if err := within(t, errs, waitFor, "the error handler"); !lib.IsErrNotMatched(err) {
					t.Errorf("handler got %v, want ErrNotMatched", err)
				}
				requirePeerClosed(t, c, fmt.Sprintf("unmatched connection %d", i))
			}
			send(t, root.Addr().String(), []byte("XYZ and more"))
			if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
				t.Errorf("Accept after unmatched connections = %v", r.err)
			}
			root.Close()
			requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
			// The handler also saw the root's accept error.
			if err := within(t, errs, waitFor, "the handler's accept error"); !strings.Contains(err.Error(), closedText) {
				t.Errorf("handler got %v, want the root's accept error", err)
			}
		})
	})
	t.Run("NotMatchedStop", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.PrefixMatcher("XYZ"))
			errs := make(chan error, 8)
			m.HandleError(func(err error) bool { errs <- err; return false })
			served := serve(m)
			c := send(t, root.Addr().String(), []byte("NOPE\r\n"))
			requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), root.Addr(), "Serve")
			if err := within(t, errs, waitFor, "the error handler"); !lib.IsErrNotMatched(err) {
				t.Errorf("handler's first error = %v, want ErrNotMatched", err)
			}
			if err := within(t, errs, waitFor, "the handler's second error"); !strings.Contains(err.Error(), closedText) || !errors.Is(err, net.ErrClosed) {
				t.Errorf("handler's second error = %v, want the root's accept error", err)
			}
			requirePeerClosed(t, c, "the unmatched connection")
			requirePortClosed(t, root.Addr().String())
			if r := within(t, accept(t, l), waitFor, "Accept"); !isChildClosed(lib, r.err) {
				t.Errorf("child Accept = %v, %v", r.v, r.err)
			}
			if err := root.Close(); err == nil {
				t.Errorf("root Close = nil; the handler's false should have closed it")
			}
		})
	})
	t.Run("TemporaryAcceptError", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			tcp := listen(t)
			root := &flakyListener{Listener: tcp, errs: []error{tempErr{}, tempErr{}}}
			m := lib.New(root)
			l := m.Match(lib.Any())
			errs := make(chan error, 8)
			m.HandleError(func(err error) bool { errs <- err; return true })
			served := serve(m)
			for range 2 {
				if err := within(t, errs, waitFor, "the error handler"); !errors.Is(err, tempErr{}) {
					t.Errorf("handler got %v, want the temporary error", err)
				}
			}
			send(t, tcp.Addr().String(), []byte("x"))
			if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
				t.Errorf("Accept after temporary errors = %v", r.err)
			}
			tcp.Close()
			requireRootAcceptError(t, served.wait(t, waitFor, "Serve"), tcp.Addr(), "Serve")
		})
	})
	t.Run("FatalAcceptError", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			tcp := listen(t)
			boom := errors.New("compat: fatal accept error")
			root := &flakyListener{Listener: tcp, errs: []error{boom}}
			m := lib.New(root)
			l := m.Match(lib.Any())
			errs := make(chan error, 8)
			m.HandleError(func(err error) bool { errs <- err; return true })
			served := serve(m)
			if err := served.wait(t, waitFor, "Serve"); err != boom {
				t.Errorf("Serve = %v, want the fatal accept error itself", err)
			}
			if err := within(t, errs, waitFor, "the error handler"); err != boom {
				t.Errorf("handler got %v", err)
			}
			if r := within(t, accept(t, l), waitFor, "Accept"); !isChildClosed(lib, r.err) {
				t.Errorf("child Accept after Serve returned = %v, %v", r.v, r.err)
			}
			// The root listener was not closed: it is the caller's.
			requirePortOpen(t, tcp.Addr().String())
		})
	})
	t.Run("HandlerFalseOnTemporary", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			tcp := listen(t)
			root := &flakyListener{Listener: tcp, errs: []error{tempErr{}}}
			m := lib.New(root)
			m.Match(lib.Any())
			m.HandleError(func(err error) bool { return false })
			served := serve(m)
			if err := served.wait(t, waitFor, "Serve"); !errors.Is(err, tempErr{}) {
				t.Errorf("Serve = %v, want the temporary error the handler refused", err)
			}
		})
	})
}

// TestCrash: bad uses that crash the process with v0.1.5 (shown in a child
// process) and that ours reports instead.
func TestCrash(t *testing.T) {
	t.Run("NewNil", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			if lib.Name == libV015 {
				requireCrash(t, "NewNil", d)
				return
			}
			m := lib.New(nil)
			l := m.Match(lib.Any())
			if err := goWait(m.Serve).wait(t, waitFor, "Serve"); err == nil {
				t.Errorf("Serve of New(nil) = nil, want an error: %s", d.Ours)
			}
			if r := within(t, accept(t, l), waitFor, "Accept"); !isChildClosed(lib, r.err) {
				t.Errorf("child Accept = %v, %v", r.v, r.err)
			}
		})
	})
	t.Run("ServeTwice", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			if lib.Name == libV015 {
				requireCrash(t, "ServeTwice", d)
				return
			}
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.Any())
			first := serve(m)
			send(t, root.Addr().String(), []byte("x"))
			if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
				t.Fatalf("Accept = %v", r.err)
			}
			if err := serve(m).wait(t, waitFor, "the second Serve"); err == nil {
				t.Errorf("second Serve = nil, want an error: %s", d.Ours)
			}
			send(t, root.Addr().String(), []byte("y"))
			if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
				t.Errorf("Accept = %v; the first Serve must go on", r.err)
			}
			root.Close()
			requireRootAcceptError(t, first.wait(t, waitFor, "the first Serve"), root.Addr(), "Serve")
		})
	})
	t.Run("MatcherPanics", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			if lib.Name == libV015 {
				requireCrash(t, "MatcherPanics", d)
				return
			}
			root := listen(t)
			m := lib.New(root)
			m.Match(func(r io.Reader) bool {
				var b [1]byte
				if _, err := r.Read(b[:]); err == nil && b[0] == '!' {
					panic("compat: a matcher's bug")
				}
				return false
			})
			l := m.Match(lib.Any())
			errs := make(chan error, 8)
			m.HandleError(func(err error) bool { errs <- err; return true })
			served := serve(m)
			c := send(t, root.Addr().String(), []byte("!boom"))
			if err := within(t, errs, waitFor, "the error handler"); !errors.Is(err, ours.ErrMatcherPanic) {
				t.Errorf("handler got %v, want ErrMatcherPanic: %s", err, d.Ours)
			}
			requirePeerClosed(t, c, "the connection whose matcher panicked")
			send(t, root.Addr().String(), []byte("fine"))
			if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
				t.Errorf("Accept after the panic = %v", r.err)
			}
			root.Close()
			served.wait(t, waitFor, "Serve")
		})
	})
	t.Run("HandleErrorNil", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			if lib.Name == libV015 {
				requireCrash(t, "HandleErrorNil", d)
				return
			}
			root := listen(t)
			m := lib.New(root)
			l := m.Match(lib.PrefixMatcher("XYZ"))
			m.HandleError(nil)
			served := serve(m)
			c := send(t, root.Addr().String(), []byte("NOPE\r\n"))
			requirePeerClosed(t, c, "the unmatched connection")
			send(t, root.Addr().String(), []byte("XYZ!"))
			if r := within(t, accept(t, l), waitFor, "Accept"); r.err != nil {
				t.Errorf("Accept = %v; Serve must go on: %s", r.err, d.Ours)
			}
			root.Close()
			served.wait(t, waitFor, "Serve")
		})
	})
}

// crashCauses is what each crash scenario's panic says.
var crashCauses = map[string]string{
	"NewNil":         "nil pointer dereference",
	"ServeTwice":     "close of closed channel",
	"MatcherPanics":  "compat: a matcher's bug",
	"HandleErrorNil": "nil pointer dereference",
}

// requireCrash fails t unless the crash scenario name crashes its process
// with the panic it is about.
func requireCrash(t *testing.T, name string, d difference) {
	t.Helper()
	crashed, out := crashes(t, name)
	if !crashed || !strings.Contains(out, crashCauses[name]) || !strings.Contains(out, "soheilhy/cmux") {
		t.Errorf("v0.1.5 did not crash in soheilhy/cmux with %q (%s); output:\n%s", crashCauses[name], d.V015, out)
	}
}

func init() {
	// v0.1.5 crash scenarios, run in a child process by crashes. Each
	// returns normally if v0.1.5 does not crash.
	crashScenarios["NewNil"] = func() {
		m := v015.New(nil)
		m.Match(v015.Any())
		done := make(chan struct{})
		go func() { m.Serve(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitFor):
		}
	}
	crashScenarios["ServeTwice"] = func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		m := v015.New(l)
		m.Match(v015.Any())
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); m.Serve() }()
		}
		time.Sleep(100 * time.Millisecond)
		l.Close()
		wg.Wait()
		time.Sleep(100 * time.Millisecond)
	}
	crashScenarios["MatcherPanics"] = func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer l.Close()
		m := v015.New(l)
		m.Match(func(io.Reader) bool { panic("compat: a matcher's bug") })
		go m.Serve()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			panic(err)
		}
		defer c.Close()
		c.Write([]byte("!boom"))
		time.Sleep(waitFor)
	}
	crashScenarios["HandleErrorNil"] = func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer l.Close()
		m := v015.New(l)
		m.Match(v015.PrefixMatcher("XYZ"))
		m.HandleError(nil)
		go m.Serve()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			panic(err)
		}
		defer c.Close()
		c.Write([]byte("NOPE\r\n"))
		time.Sleep(waitFor)
	}
}
