package cmux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

const acceptorsFlight = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// With ConcurrentAccept, a connection that is not a socket and whose
// bytes are there is matched by the acceptor that accepted it: no worker
// starts.
func TestAcceptorMatchesNonSocket(t *testing.T) {
	testcheck.CheckLeaks(t)
	ml := newMemListener()
	m := NewWithOptions(ml, ConcurrentAccept())
	l := m.Match(HTTP1Fast())
	serveMux(t, m, ml)
	accepted := acceptChan(t, l)
	for range 50 {
		ml.connc <- &memConn{flight: []byte(acceptorsFlight)}
		c := takeConn(t, accepted)
		b, err := io.ReadAll(c)
		if err != nil || string(b) != acceptorsFlight {
			t.Fatalf("delivered connection read %q, %v", b, err)
		}
		c.Close()
	}
	time.Sleep(20 * time.Millisecond) // for a worker to go idle, if one ran
	p := &m.(*cMux).workers
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d workers started for connections whose bytes were there", idle)
	}
}

// With ConcurrentAccept, connections that are not sockets and send nothing
// hold up only the acceptors matching them: one that sends is delivered at
// once, and once the silent ones end, the acceptors left are those there
// were before.
func TestSilentNonSocketsDelayNoOne(t *testing.T) {
	testcheck.CheckLeaks(t)
	ml := newMemListener()
	m := NewWithOptions(ml, ConcurrentAccept())
	errs := errorChan(m, 16)
	l := m.Match(HTTP1Fast())
	serveMux(t, m, ml)
	accepted := acceptChan(t, l)
	time.Sleep(20 * time.Millisecond)
	base := runtime.NumGoroutine()

	const silent = 10
	clients := make([]net.Conn, silent)
	for i := range clients {
		var server net.Conn
		clients[i], server = net.Pipe()
		sendConn(t, ml, server)
	}
	sendConn(t, ml, &memConn{flight: []byte(acceptorsFlight)})
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("a connection that sent its bytes waited behind silent ones")
	}
	if n := runtime.NumGoroutine(); n < base+silent {
		t.Errorf("%d goroutines with %d silent connections, %d before", n, silent, base)
	}
	for _, c := range clients {
		c.Close()
	}
	for range silent {
		if err := nextErr(t, errs); !errors.Is(err, ErrNoBytes) {
			t.Errorf("silent connection: %v, want ErrNoBytes", err)
		}
	}
	waitUntil(t, "the goroutines there were before the silent connections", func() bool {
		return runtime.NumGoroutine() <= base
	})
}

// sendConn hands c to ml's Accept, failing t if no one accepts it.
func sendConn(t *testing.T, ml *memListener, c net.Conn) {
	t.Helper()
	select {
	case ml.connc <- c:
	case <-time.After(2 * time.Second):
		t.Fatal("no one accepted a connection for 2s")
	}
}

// socketsListener hides the type of a listener of sockets.
type socketsListener struct{ net.Listener }

// With ConcurrentAccept, a listener the mux does not know gets two
// acceptors; once it turns out to hand out sockets, one is left.
func TestAcceptorsTrimForSockets(t *testing.T) {
	testcheck.CheckLeaks(t)
	tl := listenLoopback(t)
	m := NewWithOptions(socketsListener{tl}, ConcurrentAccept())
	l := m.Match(HTTP1Fast())
	serveMux(t, m, socketsListener{tl})
	accepted := acceptChan(t, l)
	acc := &m.(*cMux).acc
	waitUntil(t, "two acceptors before any connection", func() bool { return acc.live.Load() == maxReady })
	c := dialTCP(t, tl.Addr().String())
	defer c.Close()
	if _, err := io.WriteString(c, acceptorsFlight); err != nil {
		t.Fatal(err)
	}
	takeConn(t, accepted).Close()
	waitUntil(t, "one acceptor after a socket", func() bool { return acc.live.Load() == 1 })
}

// errListener is a memListener whose Accept returns the error sent on
// errc to the one caller that takes it, and err to every caller once errc
// is closed.
type errListener struct {
	*memListener
	errc chan error
	err  error
}

func newErrListener(err error) *errListener {
	return &errListener{memListener: newMemListener(), errc: make(chan error), err: err}
}

func (l *errListener) Accept() (net.Conn, error) {
	select {
	case err, ok := <-l.errc:
		if !ok {
			err = l.err
		}
		return nil, err
	case c := <-l.connc:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// serveUntil serves m and returns a function that waits for Serve to
// return want, failing t otherwise.
func serveUntil(t *testing.T, m CMux, want error) (wait func()) {
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Fatalf("Serve: %v, want %v", err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return")
		}
	}
}

// Every acceptor fails at once: Serve returns the error, and no acceptor
// is left waiting to pass on its own.
func TestAcceptorsFailTogether(t *testing.T) {
	testcheck.CheckLeaks(t)
	boom := errors.New("boom")
	fl := newErrListener(boom)
	m := NewWithOptions(fl, ConcurrentAccept())
	m.Match(Any())
	wait := serveUntil(t, m, boom)
	acc := &m.(*cMux).acc
	waitUntil(t, "two acceptors in Accept", func() bool { return acc.ready.Load() == maxReady })
	close(fl.errc)
	wait()
	waitUntil(t, "no acceptor left", func() bool { return acc.live.Load() == 0 })
}

// oneAtATime is a memListener that records whether its Accept was ever
// called from two goroutines at once.
type oneAtATime struct {
	*memListener
	in, overlapped atomic.Int32
}

func (l *oneAtATime) Accept() (net.Conn, error) {
	if l.in.Add(1) > 1 {
		l.overlapped.Store(1)
	}
	defer l.in.Add(-1)
	return l.memListener.Accept()
}

// By default the root's Accept is called from one goroutine at a time, as
// v0.1.5 does, whatever the connections do (silent ones among them);
// ConcurrentAccept calls it from two.
func TestRootAcceptOneAtATime(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("ConcurrentAccept=%v", concurrent), func(t *testing.T) {
			testcheck.CheckLeaks(t)
			ml := &oneAtATime{memListener: newMemListener()}
			var opts []Option
			if concurrent {
				opts = append(opts, ConcurrentAccept())
			}
			m := NewWithOptions(ml, opts...)
			m.HandleError(func(error) bool { return true })
			l := m.Match(HTTP1Fast())
			serveMux(t, m, ml)
			accepted := acceptChan(t, l)
			var clients []net.Conn
			for range 5 {
				client, server := net.Pipe()
				clients = append(clients, client)
				sendConn(t, ml.memListener, server)
			}
			for range 20 {
				sendConn(t, ml.memListener, &memConn{flight: []byte(acceptorsFlight)})
				takeConn(t, accepted).Close()
			}
			for _, c := range clients {
				c.Close()
			}
			time.Sleep(20 * time.Millisecond)
			if got := ml.overlapped.Load() == 1; got != concurrent {
				t.Errorf("Accept called from two goroutines at once: %v, want %v", got, concurrent)
			}
		})
	}
}

// By default, once Serve has returned on an Accept error the handler
// refused, with the root still open, no goroutine of the mux is in the
// root's Accept: a connection that comes then waits for the program, as
// with v0.1.5, rather than being accepted and closed.
func TestServeRefusedErrorLeavesNoAcceptor(t *testing.T) {
	testcheck.CheckLeaks(t)
	boom := errors.New("boom")
	ml := newErrListener(nil)
	defer ml.Close()
	m := New(ml)
	m.HandleError(func(error) bool { return false })
	m.Match(Any())
	wait := serveUntil(t, m, boom)
	ml.errc <- boom
	wait()
	select {
	case ml.connc <- &memConn{}:
		t.Error("a connection was accepted after Serve returned")
	case <-time.After(100 * time.Millisecond):
	}
}

// With ConcurrentAccept on a crypto/tls root listener, the goroutine that
// accepted a connection makes its handshake: clients that connect and
// send no ClientHello hold up only their own goroutines, and an HTTPS
// client is served meanwhile.
func TestConcurrentAcceptTLSRoot(t *testing.T) {
	testcheck.CheckLeaks(t)
	cert, roots := selfSignedCert(t)
	x := newServedMuxOn(t, tls.NewListener(listenLoopback(t), serverTLS(cert)), ConcurrentAccept())
	serveHTTP(t, x.Match(HTTP1Fast()), &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})})
	x.start(t)

	for range 3 {
		defer dialTCP(t, x.addr()).Close() // silent: no ClientHello
	}
	time.Sleep(50 * time.Millisecond) // for the silent ones to be accepted first
	tr := &http.Transport{TLSClientConfig: clientTLS(roots)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get("https://" + x.addr() + "/")
	if err != nil {
		t.Fatalf("an HTTPS client behind silent ones: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "HTTP/1.1" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// With ConcurrentAccept, no more than maxReady acceptors wait in Accept,
// however they come back to it: here one held up after Accept (by its
// Accepted hook) while two others, done with slow connections, went back
// to Accept, then matching its connection on the spot.
func TestConcurrentAcceptAtMostTwoWait(t *testing.T) {
	testcheck.CheckLeaks(t)
	ml := newMemListener()
	w := &memConn{flight: []byte(acceptorsFlight)}
	release := make(chan struct{})
	m := NewWithOptions(ml, ConcurrentAccept(), WithHooks(Hooks{Accepted: func(ev ConnEvent) {
		if ev.Conn == w {
			<-release
		}
	}}))
	// A memConn's address matches at once; a pipe's does not, and waits
	// for its bytes on the acceptor that took it.
	addrCh := acceptChan(t, m.Match(RemoteAddrIn(netip.MustParsePrefix("192.0.2.0/24"))))
	httpCh := acceptChan(t, m.Match(HTTP1Fast()))
	serveMux(t, m, ml)
	acc := &m.(*cMux).acc
	var clients []net.Conn
	for range 2 {
		client, server := net.Pipe()
		defer client.Close()
		clients = append(clients, client)
		sendConn(t, ml, server)
	}
	sendConn(t, ml, w) // held by the hook
	for _, c := range clients {
		go io.WriteString(c, acceptorsFlight)
		takeConn(t, httpCh).Close()
	}
	waitUntil(t, "the two that matched pipes back in Accept", func() bool { return acc.ready.Load() == maxReady })
	close(release)
	takeConn(t, addrCh).Close()
	waitUntil(t, "two acceptors left", func() bool { return acc.live.Load() <= maxReady })
	if n := acc.ready.Load(); n != maxReady {
		t.Errorf("%d acceptors in Accept, want %d", n, maxReady)
	}
}
