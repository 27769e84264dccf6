package cmux

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Tests of the defaults a soheilhy/cmux v0.1.5 program observes, and of the
// bad uses it crashed or hung on. The side-by-side suite against v0.1.5 is
// the nested module compat/.

// TestNewNil: a mux of a nil listener reports it from Serve instead of
// crashing the process, and its children report closed.
func TestNewNil(t *testing.T) {
	checkLeaks(t)
	m := New(nil)
	l := m.Match(Any())
	if a := l.Addr(); a != nil {
		t.Errorf("Addr() = %v, want nil", a)
	}
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "nil") {
			t.Errorf("Serve() = %v, want an error naming the nil listener", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve of a nil listener did not return")
	}
	if _, err := acceptWithin(t, l); !errors.Is(err, ErrListenerClosed) {
		t.Errorf("Accept() = %v, want ErrListenerClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("child Close() = %v", err)
	}
	m.Close()
}

// TestWriterBoundedByMatchTimeout: a writer matcher writing to a client that
// never reads is cut off by the matching deadline, and the connection falls
// through to the next listener, which can still write to it.
func TestWriterBoundedByMatchTimeout(t *testing.T) {
	checkLeaks(t)
	const timeout = 300 * time.Millisecond
	x := newServedMux(t, MatchTimeout(timeout))
	wrote := make(chan error, 1)
	x.MatchWithWriters(func(w io.Writer, r io.Reader) bool {
		// Far more than the socket buffers hold.
		chunk := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return false
			}
		}
		wrote <- nil
		return true
	})
	anyCh := acceptChan(t, x.Match(Any()))
	x.start(t)

	c := dialTCP(t, x.addr())
	defer c.Close()
	if err := c.SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case err := <-wrote:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("writer matcher's Write returned %v, want a timeout", err)
		}
	case <-time.After(10 * timeout):
		t.Fatalf("writer matcher still blocked after %v", 10*timeout)
	}
	if d := time.Since(start); d > 5*timeout {
		t.Errorf("write cut off after %v, want about %v", d, timeout)
	}
	sc := takeConn(t, anyCh)
	defer sc.Close()
	// The deadline the mux set is cleared on delivery: the server's write
	// waits for the client instead of failing at once.
	if err := sc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Write([]byte("x")); err != nil {
		t.Errorf("write after delivery: %v", err)
	}
}

// TestErrorValues: the error values keep v0.1.5's texts and net.Error
// behaviour, and match net.ErrClosed.
func TestErrorValues(t *testing.T) {
	for _, tc := range []struct {
		err  error
		text string
	}{
		{ErrListenerClosed, "mux: listener closed"},
		{ErrServerClosed, "mux: server closed"},
	} {
		if tc.err.Error() != tc.text {
			t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.text)
		}
		if !errors.Is(tc.err, net.ErrClosed) {
			t.Errorf("errors.Is(%q, net.ErrClosed) = false", tc.text)
		}
	}
	var ne net.Error = ErrListenerClosed
	//lint:ignore SA1019 v0.1.5's callers call Temporary; the drop-in must answer it
	if ne.Temporary() || ne.Timeout() {
		t.Error("ErrListenerClosed is temporary or a timeout")
	}
}
