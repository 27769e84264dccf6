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
// Serve's return (m.served), or at registration once the mux has finished
// its listeners; connc is closed right after it, so that
// Accept waits on connc alone (a receive, cheaper than a select) and,
// once connc is closed and empty, tells the reasons apart by those flags.
// A send on connc happens only under sendMu's read lock and while shut is
// false; finish sets shut and closes connc under the write lock, after
// closing done, which wakes any send blocked for room (enqueue).
type muxListener struct {
	m        *cMux
	matchers []MatchWriter
	kinds    []atomic.Uint32 // a matcherKind for each matcher
	index    int             // place in registration order
	name     atomic.Pointer[string]
	connc    chan net.Conn
	done     chan struct{}
	doneOnce sync.Once
	sendMu   sync.RWMutex
	shut     bool        // connc is closed; under sendMu
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

// finish closes done, then connc.
func (l *muxListener) finish() {
	l.doneOnce.Do(func() {
		close(l.done)
		l.sendMu.Lock()
		l.shut = true
		close(l.connc)
		l.sendMu.Unlock()
	})
}

// lockSend takes sendMu's read lock, which a send on connc holds, and
// reports true if l is not finished; if it is, it releases the lock and
// reports false.
func (l *muxListener) lockSend() bool {
	l.sendMu.RLock()
	if l.shut {
		l.sendMu.RUnlock()
		return false
	}
	return true
}

// send queues c for l's Accept if there is room and l is not finished,
// and reports whether it did; ok is false if l is finished.
func (l *muxListener) send(c net.Conn) (sent, ok bool) {
	if !l.lockSend() {
		return false, false
	}
	defer l.sendMu.RUnlock()
	select {
	case l.connc <- c:
		return true, true
	default:
		return false, true
	}
}

// Accept waits for and returns the next connection matched for l.
func (l *muxListener) Accept() (net.Conn, error) {
	c, ok := <-l.connc
	if !ok {
		return l.acceptDone()
	}
	// A Close of l or of the mux, or Serve's return, may have run while
	// we received: what it would have drained is closed, not handed out.
	if l.closed.Load() {
		l.m.closedUndelivered(c, l, ErrListenerClosed)
		return nil, ErrListenerClosed
	}
	if l.m.closed.Load() && !l.m.drainedOK.Load() {
		l.m.closedUndelivered(c, l, ErrServerClosed)
		return nil, ErrServerClosed
	}
	if l.m.served.Load() && !l.m.draining.Load() {
		l.m.closedUndelivered(c, l, ErrListenerClosed)
		return nil, ErrListenerClosed
	}
	if o := l.m.obs; o != nil && o.hooks.Delivered != nil {
		l.m.hookDelivered(l, c)
	}
	return c, nil
}

// acceptDone is Accept once connc is closed and empty.
func (l *muxListener) acceptDone() (net.Conn, error) {
	switch {
	case l.closed.Load():
		return nil, ErrListenerClosed
	case l.m.closed.Load():
		return nil, ErrServerClosed
	case l.m.draining.Load():
		// Shutdown kept what was queued for the servers, and Accept has
		// taken it all.
		return nil, ErrServerClosed
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

// drain closes the connections queued for l. Called after finish, as it
// always is, it empties the queue for good: connc is closed, and no send
// comes after.
func (l *muxListener) drain() {
	why := l.finishedWhy()
	for {
		select {
		case c, ok := <-l.connc:
			if !ok {
				return
			}
			l.m.closedUndelivered(c, l, why)
		default:
			return
		}
	}
}

// finishedWhy is why a connection matched for l once it is finished is
// closed instead of delivered.
func (l *muxListener) finishedWhy() error {
	if !l.closed.Load() && l.m.closed.Load() {
		return ErrServerClosed
	}
	return ErrListenerClosed
}

// Addr returns the root listener's address.
func (l *muxListener) Addr() net.Addr {
	if l.m.root == nil {
		return nil
	}
	return l.m.root.Addr()
}
