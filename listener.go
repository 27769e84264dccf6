package cmux

import (
	"net"
	"sync"
	"sync/atomic"
)

// listenerQueue is how many matched connections a child listener holds
// until its server accepts them.
const listenerQueue = 1024

// muxListener is a child listener: it accepts the connections its matchers
// chose.
//
// Deliveries go through connc. done is closed once, by the first of: the
// listener's Close (closed is then set), the mux's Close (m.closed), and
// Serve's return (m.served); Accept waits on connc and done alone, and
// tells the reasons apart by those flags.
type muxListener struct {
	m        *cMux
	matchers []MatchWriter
	kinds    []atomic.Uint32 // a matcherKind for each matcher
	index    int             // place in registration order
	name     atomic.Pointer[string]
	connc    chan net.Conn
	done     chan struct{}
	doneOnce sync.Once
	closed   atomic.Bool // Close was called
}

func newMuxListener(m *cMux, matchers []MatchWriter, kinds []atomic.Uint32) *muxListener {
	return &muxListener{
		m:        m,
		matchers: matchers,
		kinds:    kinds,
		connc:    make(chan net.Conn, listenerQueue),
		done:     make(chan struct{}),
	}
}

// nameOf returns the name Name gave l, or "".
func (l *muxListener) nameOf() string {
	if n := l.name.Load(); n != nil {
		return *n
	}
	return ""
}

// finish closes done.
func (l *muxListener) finish() { l.doneOnce.Do(func() { close(l.done) }) }

// Accept waits for and returns the next connection matched for l.
func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.connc:
		// A Close of l or of the mux may have run while we received:
		// what it would have drained is closed, not handed out.
		if l.closed.Load() {
			l.m.closedUndelivered(c, l, ErrListenerClosed)
			return nil, ErrListenerClosed
		}
		if l.m.closed.Load() && !l.m.drainedOK.Load() {
			l.m.closedUndelivered(c, l, ErrServerClosed)
			return nil, ErrServerClosed
		}
		if o := l.m.obs; o != nil && o.hooks.Delivered != nil {
			l.m.hookDelivered(l, c)
		}
		return c, nil
	case <-l.done:
		return l.acceptDone()
	}
}

// acceptDone is Accept once done is closed.
func (l *muxListener) acceptDone() (net.Conn, error) {
	switch {
	case l.closed.Load():
		return nil, ErrListenerClosed
	case l.m.closed.Load():
		return nil, ErrServerClosed
	case l.m.draining.Load():
		// Shutdown keeps what was queued for the servers.
		select {
		case c := <-l.connc:
			if o := l.m.obs; o != nil && o.hooks.Delivered != nil {
				l.m.hookDelivered(l, c)
			}
			return c, nil
		default:
			return nil, ErrServerClosed
		}
	default:
		// Serve has returned and closes what was queued.
		return nil, ErrListenerClosed
	}
}

// Close stops deliveries to l: its Accept returns ErrListenerClosed, the
// connections queued for it are closed and later ones that match it are
// closed. Unless the mux has IndependentListeners, Close then closes the
// root listener, which ends Serve, and returns the root's Close error.
func (l *muxListener) Close() error {
	l.closed.Store(true)
	l.finish()
	l.drain()
	if l.m.independent || l.m.root == nil {
		return nil
	}
	return l.m.root.Close()
}

// drain closes the connections queued for l.
func (l *muxListener) drain() {
	var why error = ErrListenerClosed
	if !l.closed.Load() && l.m.closed.Load() {
		why = ErrServerClosed
	}
	for {
		select {
		case c := <-l.connc:
			l.m.closedUndelivered(c, l, why)
		default:
			return
		}
	}
}

// Addr returns the root listener's address.
func (l *muxListener) Addr() net.Addr {
	if l.m.root == nil {
		return nil
	}
	return l.m.root.Addr()
}
