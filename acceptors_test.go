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
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

const acceptorsFlight = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// goid returns the calling goroutine's number.
func goid() uint64 {
	var b [64]byte
	s := strings.TrimPrefix(string(b[:runtime.Stack(b[:], false)]), "goroutine ")
	id, err := strconv.ParseUint(s[:max(strings.IndexByte(s, ' '), 0)], 10, 64)
	if err != nil {
		panic("goid: " + err.Error())
	}
	return id
}

// goidListener is a memListener that records the goroutine whose Accept
// returned a connection last.
type goidListener struct {
	*memListener
	last atomic.Uint64
}

func (l *goidListener) Accept() (net.Conn, error) {
	c, err := l.memListener.Accept()
	l.last.Store(goid())
	return c, err
}

// A connection that is not a socket is matched by the goroutine that
// accepted it, by default and with ConcurrentAccept: when its bytes are
// there, it reaches the child's Accept without a goroutine in between.
// (By default a worker matched it until the turn to accept could pass.)
func TestAcceptorMatchesNonSocket(t *testing.T) {
	acceptModes(t, func(t *testing.T, opts []Option) {
		testcheck.CheckLeaks(t)
		ml := &goidListener{memListener: newMemListener()}
		m := NewWithOptions(ml, opts...)
		var matchedOn atomic.Uint64
		l := m.Match(func(r io.Reader) bool {
			var b [4]byte
			_, err := io.ReadFull(r, b[:])
			matchedOn.Store(goid())
			return err == nil && string(b[:]) == acceptorsFlight[:4]
		})
		serveMux(t, m, ml)
		accepted := acceptChan(t, l)
		for i := range 50 {
			sendConn(t, ml.memListener, &memConn{flight: []byte(acceptorsFlight)})
			c := takeConn(t, accepted)
			if on, by := matchedOn.Load(), ml.last.Load(); on != by {
				t.Fatalf("connection %d: matched on goroutine %d, accepted on %d", i, on, by)
			}
			b, err := io.ReadAll(c)
			if err != nil || string(b) != acceptorsFlight {
				t.Fatalf("delivered connection read %q, %v", b, err)
			}
			c.Close()
		}
	})
}

// Connections that are not sockets and send nothing hold up only the
// goroutines matching them: one that sends is delivered at once, and once
// the silent ones end, the goroutines left are those there were before.
// By default the turn to accept passes to a worker each time; on one
// processor, the worker gets to run only once the acceptor waits.
func TestSilentNonSocketsDelayNoOne(t *testing.T) {
	for _, procs := range []int{1, 0} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			if procs > 0 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			}
			acceptModes(t, testSilentNonSockets)
		})
	}
}

func testSilentNonSockets(t *testing.T, opts []Option) {
	testcheck.CheckLeaks(t)
	ml := newMemListener()
	m := NewWithOptions(ml, opts...)
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

// acceptGauge counts the goroutines in a listener's Accept and records
// whether two ever were there at once.
type acceptGauge struct {
	in         atomic.Int32
	overlapped atomic.Bool
}

// enter counts a caller in Accept; it returns what counts it out.
func (g *acceptGauge) enter() (leave func()) {
	if g.in.Add(1) > 1 {
		g.overlapped.Store(true)
	}
	return func() { g.in.Add(-1) }
}

// oneAtATime is a memListener with an acceptGauge.
type oneAtATime struct {
	*memListener
	acceptGauge
}

func (l *oneAtATime) Accept() (net.Conn, error) {
	defer l.enter()()
	return l.memListener.Accept()
}

// acceptModes runs f as a subtest by default and with ConcurrentAccept,
// with the options of each.
func acceptModes(t *testing.T, f func(t *testing.T, opts []Option)) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("ConcurrentAccept=%v", concurrent), func(t *testing.T) {
			var opts []Option
			if concurrent {
				opts = append(opts, ConcurrentAccept())
			}
			f(t, opts)
		})
	}
}

// By default the root's Accept is called from one goroutine at a time, as
// v0.1.5 does, whatever the connections do (silent ones among them);
// ConcurrentAccept calls it from two.
func TestRootAcceptOneAtATime(t *testing.T) {
	acceptModes(t, func(t *testing.T, opts []Option) {
		testcheck.CheckLeaks(t)
		concurrent := len(opts) > 0
		ml := &oneAtATime{memListener: newMemListener()}
		m := NewWithOptions(ml, opts...)
		m.HandleError(func(error) bool { return true })
		l := m.Match(HTTP1Fast())
		serveMux(t, m, ml)
		accepted := acceptChan(t, l)
		var clients []net.Conn
		for i := range 30 {
			if i%3 == 0 {
				// Silent: by default the turn to accept passes on.
				client, server := net.Pipe()
				clients = append(clients, client)
				sendConn(t, ml.memListener, server)
				continue
			}
			sendConn(t, ml.memListener, &memConn{flight: []byte(acceptorsFlight)})
			takeConn(t, accepted).Close()
		}
		for _, c := range clients {
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
		if got := ml.overlapped.Load(); got != concurrent {
			t.Errorf("Accept called from two goroutines at once: %v, want %v", got, concurrent)
		}
	})
}

// turnTaken waits until a worker has taken the turn to accept from the
// acceptor Serve started (see acceptors).
func turnTaken(t *testing.T, m CMux) {
	t.Helper()
	acc := &m.(*cMux).acc
	waitUntil(t, "a worker taking the turn to accept", func() bool {
		return acc.turn.Load()>>turnGenShift >= 1 && acc.live.Load() == 2
	})
}

// Once a worker has taken the turn to accept from an acceptor held up by a
// silent connection, Close makes Serve return even though the root's
// Accept cannot be interrupted (it has no SetDeadline): Serve does not
// wait for the worker in Accept, which ends when the root is closed.
func TestCloseWithTurnTaken(t *testing.T) {
	testcheck.CheckLeaks(t)
	ml := newMemListener()
	m := New(ml)
	m.Match(HTTP1Fast())
	wait := serveUntil(t, m, ErrServerClosed)
	client, server := net.Pipe()
	defer client.Close()
	sendConn(t, ml, server)
	turnTaken(t, m)
	time.Sleep(20 * time.Millisecond) // for the worker to be in Accept
	m.Close()
	wait()
	ml.Close()
	acc := &m.(*cMux).acc
	waitUntil(t, "no acceptor left", func() bool { return acc.live.Load() == 0 })
}

// By default, once Serve has returned on an Accept error the handler
// refused, with the root still open, no goroutine of the mux is in the
// root's Accept: a connection that comes then waits for the program, as
// with v0.1.5, rather than being accepted and closed. So too when a worker
// took the turn to accept from an acceptor held up by a silent connection
// and got the error: that acceptor, once done, never calls Accept again.
func TestServeRefusedErrorLeavesNoAcceptor(t *testing.T) {
	for _, turnPassed := range []bool{false, true} {
		t.Run(fmt.Sprintf("turnPassed=%v", turnPassed), func(t *testing.T) {
			testcheck.CheckLeaks(t)
			boom := errors.New("boom")
			ml := newErrListener(nil)
			defer ml.Close()
			m := New(ml)
			m.HandleError(func(error) bool { return false })
			m.Match(HTTP1Fast())
			wait := serveUntil(t, m, boom)
			if turnPassed {
				client, server := net.Pipe()
				defer client.Close()
				sendConn(t, ml.memListener, server)
				turnTaken(t, m)
			}
			ml.errc <- boom
			wait()
			acc := &m.(*cMux).acc
			waitUntil(t, "no acceptor left", func() bool { return acc.live.Load() == 0 })
			acceptsNothing(t, ml.memListener)
		})
	}
}

// acceptsNothing fails t if a goroutine takes a connection from ml's
// Accept within 100ms.
func acceptsNothing(t *testing.T, ml *memListener) {
	t.Helper()
	select {
	case ml.connc <- &memConn{}:
		t.Error("a connection was accepted after Serve returned")
	case <-time.After(100 * time.Millisecond):
	}
}

// On a crypto/tls root listener, the goroutine that accepted a connection
// makes its handshake, by default and with ConcurrentAccept: clients that
// connect and send no ClientHello hold up only their own goroutines, and
// an HTTPS client is served meanwhile.
func TestTLSRootSilentClients(t *testing.T) {
	acceptModes(t, testTLSRootSilentClients)
}

func testTLSRootSilentClients(t *testing.T, opts []Option) {
	testcheck.CheckLeaks(t)
	cert, roots := selfSignedCert(t)
	tcp := hoListen(t)
	x := newServedMuxOn(t, tls.NewListener(tcp, serverTLS(cert)), opts...)
	serveHTTP(t, x.Match(HTTP1Fast()), &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})})
	x.start(t)

	for range 3 {
		defer dialTCP(t, x.addr()).Close() // silent: no ClientHello
	}
	hoEventually(t, "the silent clients accepted first", func() bool { return tcp.accepted.Load() == 3 })
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
