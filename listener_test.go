package cmux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestDeliverAfterFinish: once a child listener is finished (its Close,
// the mux's, or Serve's return), its queue is closed, and a connection
// matched for it, whether handed over at once (send) or after waiting for
// room (enqueue), is closed instead of sent on the closed queue, which
// would panic.
func TestDeliverAfterFinish(t *testing.T) {
	checkLeaks(t)
	m := New(newMemListener()).(*cMux)
	l := m.Match(Any()).(*muxListener)
	if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	// enqueue picks at random among its ready cases: a send on the closed
	// queue would be one of them.
	for range 20 {
		client, server := net.Pipe()
		if sent, ok := l.send(server); sent || ok {
			t.Fatalf("send on a finished listener: sent %v, ok %v", sent, ok)
		}
		m.enqueue(server, l)
		client.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the connection enqueued after finish: read %v, want EOF", err)
		}
		client.Close()
	}
	if _, err := l.Accept(); !errors.Is(err, ErrListenerClosed) {
		t.Errorf("Accept: %v, want ErrListenerClosed", err)
	}
}

// TestCloseWithFullQueue: a listener whose queue is full has a connection
// waiting for room (enqueue); its Close returns, and closes that
// connection and every queued one.
func TestCloseWithFullQueue(t *testing.T) {
	checkLeaks(t)
	m := NewWithOptions(newMemListener(), IndependentListeners()).(*cMux)
	l := m.Match(Any()).(*muxListener)
	var clients []net.Conn
	pipe := func() net.Conn {
		client, server := net.Pipe()
		clients = append(clients, client)
		return server
	}
	for range listenerQueue {
		if sent, ok := l.send(pipe()); !sent || !ok {
			t.Fatalf("send to a listener with room: sent %v, ok %v", sent, ok)
		}
	}
	if sent, ok := l.send(pipe()); sent || !ok {
		t.Fatalf("send to a full listener: sent %v, ok %v", sent, ok)
	}
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		m.enqueue(pipe(), l)
	}()
	waitUntil(t, "enqueue to wait for room", func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range bytes.Split(buf, []byte("\n\n")) {
			if bytes.Contains(g, []byte("[select")) && bytes.Contains(g, []byte("(*cMux).enqueue(")) {
				return true
			}
		}
		return false
	})
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Close did not return while a connection waited for room")
	}
	<-waiting
	for i, c := range clients {
		if i == listenerQueue {
			c.Close() // refused by the full queue, not sent
			continue
		}
		c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("connection %d: read %v, want EOF", i, err)
		}
		c.Close()
	}
}

// TestAcceptAfterServeReturned: once Serve has returned (not for
// Shutdown), a connection still queued is closed rather than handed out,
// even to an Accept that takes it before Serve's own drain does.
func TestAcceptAfterServeReturned(t *testing.T) {
	checkLeaks(t)
	m := New(newMemListener()).(*cMux)
	l := m.Match(Any()).(*muxListener)
	client, server := net.Pipe()
	defer client.Close()
	if sent, ok := l.send(server); !sent || !ok {
		t.Fatalf("send: sent %v, ok %v", sent, ok)
	}
	// What finishServe does before it drains.
	m.served.Store(true)
	m.finishListeners()
	if c, err := l.Accept(); !errors.Is(err, ErrListenerClosed) {
		t.Errorf("Accept: %v, %v; want ErrListenerClosed", c, err)
	}
	client.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the queued connection: read %v, want EOF", err)
	}
}

// TestAcceptAfterClose: a connection Accept takes from the queue after the
// listener's Close, or the mux's Close outside Shutdown, is closed rather
// than handed out, with the error of that Close.
func TestAcceptAfterClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(m *cMux, l *muxListener)
		want  error
	}{
		{"listener", func(m *cMux, l *muxListener) { l.closed.Store(true); l.finish() }, ErrListenerClosed},
		{"mux", func(m *cMux, l *muxListener) { m.closed.Store(true); m.finishListeners() }, ErrServerClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			m := NewWithOptions(newMemListener(), IndependentListeners()).(*cMux)
			l := m.Match(Any()).(*muxListener)
			client, server := net.Pipe()
			defer client.Close()
			if sent, ok := l.send(server); !sent || !ok {
				t.Fatalf("send: sent %v, ok %v", sent, ok)
			}
			// What Close does before it drains the queue.
			tc.close(m, l)
			if c, err := l.Accept(); !errors.Is(err, tc.want) {
				t.Errorf("Accept: %v, %v; want %v", c, err, tc.want)
			}
			client.SetReadDeadline(time.Now().Add(waitFor))
			if _, err := client.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("the queued connection: read %v, want EOF", err)
			}
		})
	}
}

// TestRefusedAfterMuxClose: a connection that waits for room in a full
// queue when the mux closes is closed, and the NotMatched hook says the
// mux closed (ErrServerClosed), as for the connections drained from the
// queue.
func TestRefusedAfterMuxClose(t *testing.T) {
	checkLeaks(t)
	errs := make(chan error, 4)
	m := NewWithOptions(newMemListener(), WithHooks(Hooks{NotMatched: func(e ConnEvent) { errs <- e.Err }})).(*cMux)
	l := m.Match(Any()).(*muxListener)
	m.Close()
	for range 20 { // enqueue picks at random among its ready cases
		client, server := net.Pipe()
		m.enqueue(m.newConn(server), l)
		select {
		case err := <-errs:
			if !errors.Is(err, ErrServerClosed) {
				t.Fatalf("NotMatched: %v, want ErrServerClosed", err)
			}
		case <-time.After(waitFor):
			t.Fatal("no NotMatched event")
		}
		client.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read %v, want EOF", err)
		}
		client.Close()
	}
}
