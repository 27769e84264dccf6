package cmux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Matcher reports whether a connection, read from its first byte through r,
// belongs to a listener. Matchers must not keep r after they return.
type Matcher func(io.Reader) bool

// MatchWriter is a Matcher that may also write to the peer through w, for
// protocols whose client waits for the server before it says enough to be
// matched.
type MatchWriter func(io.Writer, io.Reader) bool

// ErrorHandler handles an error of the mux: an error of the root listener's
// Accept, an ErrNotMatched, or a matcher's panic (see ErrMatcherPanic). If it
// returns false, Serve stops and returns that error.
type ErrorHandler func(error) bool

// CMux is a multiplexer of connections from one listener.
type CMux interface {
	// Match returns a listener that receives the connections for which any
	// of the matchers returns true. Listeners are tried in the order Match
	// and MatchWithWriters were called, the matchers of one call in
	// argument order.
	Match(...Matcher) net.Listener
	// MatchWithWriters is Match for matchers that may write to the peer.
	MatchWithWriters(...MatchWriter) net.Listener
	// Serve accepts connections from the root listener and dispatches them
	// until the root's Accept fails with an error that is not temporary,
	// the error handler returns false, or Close is called. It returns the
	// error that stopped it (see "Errors and shutdown" in the package
	// documentation). Serve may be called once; later calls return an
	// error at once.
	Serve() error
	// Close stops Serve, aborts the connections still being matched, closes
	// the connections queued for child listeners and makes every child's
	// Accept return ErrServerClosed. It does not close the root listener.
	Close()
	// HandleError sets the handler of the mux's errors. The default handler
	// returns true: keep serving.
	HandleError(ErrorHandler)
	// SetReadTimeout bounds the time a connection may take to be matched,
	// as the MatchTimeout option does. Zero means no bound.
	SetReadTimeout(time.Duration)
}

// DefaultMatchTimeout is how long a connection may take to be matched unless
// MatchTimeout or SetReadTimeout says otherwise.
const DefaultMatchTimeout = 30 * time.Second

// An Option configures a mux made by New.
type Option func(*config)

type config struct {
	maxSniff     int
	matchTimeout time.Duration
	proxy        *proxyConfig // nil: no PROXY protocol
	independent  bool         // IndependentListeners
	exposeTLS    bool         // ExposeConnectionState
}

// MaxSniffBytes bounds the bytes the mux reads from a connection while
// matching it (DefaultMaxSniffBytes unless set). Once a connection has sent
// that many, matchers that want more read ErrSniffLimit and say no; the
// connection can still match a matcher that needs no more bytes, such as
// Any(). n below 64 is taken as 64.
func MaxSniffBytes(n int) Option {
	return func(c *config) { c.maxSniff = max(n, 64) }
}

// MatchTimeout bounds the time from accepting a connection to the decision
// of its matchers (DefaultMatchTimeout unless set; zero means no bound).
// When it expires, matchers that read read a timeout error and say no, so
// the connection can still match Any(). The mux clears the read deadline it
// set before it delivers the connection. SetReadTimeout sets the same
// bound. A matched connection then waits for room in its listener's queue
// (1024 connections) until the listener accepts it, is closed, or the mux
// stops.
func MatchTimeout(d time.Duration) Option {
	return func(c *config) { c.matchTimeout = max(d, 0) }
}

// IndependentListeners makes child listeners independent of each other and
// of the root listener: closing one stops deliveries to it alone (its
// Accept returns ErrListenerClosed, the connections queued for it are
// closed, and later connections that match it are closed), while the root
// listener and the other children go on.
//
// Without this option a child's Close closes the root listener, as in
// github.com/soheilhy/cmux v0.1.5: Serve then returns, and every child's
// Accept returns ErrListenerClosed. Programs rely on that to shut down:
// stopping one server (http.Server.Shutdown, grpc.Server.GracefulStop)
// closes its listener and so ends Serve.
func IndependentListeners() Option {
	return func(c *config) { c.independent = true }
}

// ExposeConnectionState makes the delivered connection of a mux whose
// underlying connections have a ConnectionState() tls.ConnectionState
// method (a root listener made by tls.NewListener) have that method too.
// net/http then fills Request.TLS and serves HTTP/2 only after ALPN "h2".
//
// Without this option the delivered connection is a *MuxConn, which has
// no ConnectionState method, as in github.com/soheilhy/cmux v0.1.5: net/http
// treats it as a plain connection (so h2c works inside the decrypted stream)
// and Request.TLS is nil.
func ExposeConnectionState() Option {
	return func(c *config) { c.exposeTLS = true }
}

// New returns a mux of the connections l accepts, with the defaults of
// github.com/soheilhy/cmux v0.1.5 where a program can observe them. Use
// NewWithOptions to configure it.
func New(l net.Listener) CMux { return NewWithOptions(l) }

// NewWithOptions returns a mux of the connections l accepts, configured by
// opts. NewWithOptions(l) is New(l).
//
// A nil l is reported by Serve, which returns an error at once.
func NewWithOptions(l net.Listener, opts ...Option) CMux {
	cfg := config{maxSniff: DefaultMaxSniffBytes, matchTimeout: DefaultMatchTimeout}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	m := &cMux{
		root:        l,
		pools:       newBufferPools(cfg.maxSniff),
		maxSniff:    cfg.maxSniff,
		independent: cfg.independent,
		exposeTLS:   cfg.exposeTLS,
		donec:       make(chan struct{}),
		quit:        make(chan struct{}),
		servedone:   make(chan struct{}),
		stopc:       make(chan error, 1),
		proxy:       cfg.proxy,
	}
	m.timeout.Store(int64(cfg.matchTimeout))
	m.lst.Store(&[]*muxListener{})
	return m
}

// Any matches every connection without reading from it.
func Any() Matcher {
	return func(io.Reader) bool { return true }
}

type cMux struct {
	root     net.Listener
	pools    *bufferPools
	maxSniff int
	proxy    *proxyConfig // nil: no PROXY protocol
	timeout  atomic.Int64 // time.Duration
	// independent: a child's Close is local (IndependentListeners);
	// otherwise it closes the root listener.
	independent bool
	exposeTLS   bool // ExposeConnectionState
	errh        atomic.Pointer[ErrorHandler]

	regMu sync.Mutex                     // serializes registrations
	lst   atomic.Pointer[[]*muxListener] // copy on write

	serving   atomic.Bool
	donec     chan struct{} // closed by Close
	closed    atomic.Bool   // donec is closed
	closeOnce sync.Once
	quit      chan struct{} // closed when Serve stops
	quitOnce  sync.Once
	servedone chan struct{} // closed when Serve has returned
	stopc     chan error    // an error the handler refused, if the root could not be closed

	// Connections being matched, so that stopping can abort them: each
	// c in inflight has inflight[c.slot-1] == c; a connection not in it has
	// slot 0. Once stopping is set, nothing is added.
	connMu   sync.Mutex
	inflight []*MuxConn
	stopping bool
	wg       sync.WaitGroup // connections being matched or delivered
}

func (m *cMux) Match(matchers ...Matcher) net.Listener {
	ws := make([]MatchWriter, len(matchers))
	for i, mt := range matchers {
		ws[i] = func(_ io.Writer, r io.Reader) bool { return mt(r) }
	}
	return m.MatchWithWriters(ws...)
}

func (m *cMux) MatchWithWriters(matchers ...MatchWriter) net.Listener {
	l := &muxListener{
		m:        m,
		matchers: matchers,
		connc:    make(chan net.Conn, 1024),
		closec:   make(chan struct{}),
	}
	m.regMu.Lock()
	old := *m.lst.Load()
	lst := make([]*muxListener, len(old), len(old)+1)
	copy(lst, old)
	lst = append(lst, l)
	m.lst.Store(&lst)
	m.regMu.Unlock()
	return l
}

func (m *cMux) HandleError(h ErrorHandler) { m.errh.Store(&h) }

func (m *cMux) SetReadTimeout(d time.Duration) { m.timeout.Store(int64(max(d, 0))) }

// handleErr reports err to the error handler and says whether to go on.
func (m *cMux) handleErr(err error) bool {
	if h := m.errh.Load(); h != nil && *h != nil {
		return (*h)(err)
	}
	return true
}

// errServeTwice is returned by a second call of Serve.
var errServeTwice = errors.New("cmux: Serve called more than once")

// errNilListener is returned by Serve of a mux made with a nil listener.
var errNilListener = errors.New("cmux: nil root listener")

func (m *cMux) Serve() error {
	if !m.serving.CompareAndSwap(false, true) {
		return errServeTwice
	}
	if m.root == nil {
		close(m.servedone)
		return errNilListener
	}
	select {
	case <-m.donec:
		close(m.servedone)
		return m.closedError()
	default:
	}
	acceptErr := make(chan error, 1)
	acceptDone := make(chan struct{})
	go m.acceptLoop(acceptErr, acceptDone)

	var err error
	select {
	case err = <-acceptErr:
	case err = <-m.stopc:
	case <-m.donec:
		err = m.closedError()
	}
	m.stop()
	// Interrupt an Accept still blocked, where the root listener allows it,
	// so that no goroutine of the mux outlives Serve.
	if d, ok := m.root.(interface{ SetDeadline(time.Time) error }); ok {
		select {
		case <-acceptDone:
		default:
			if d.SetDeadline(aLongTimeAgo) == nil {
				// A listener whose Accept ignores the deadline must not
				// hold Serve: its accept loop ends when it is closed.
				t := time.NewTimer(time.Second)
				select {
				case <-acceptDone:
				case <-t.C:
				}
				t.Stop()
				_ = d.SetDeadline(time.Time{})
			}
		}
	}
	m.wg.Wait()
	// Nothing is delivered any more: what is queued and was not accepted
	// is closed, never leaked.
	close(m.servedone)
	m.drainAll()
	return err
}

var aLongTimeAgo = time.Unix(1, 0)

// errNilConn stands for a connection the root listener returned as nil
// without an error: a bug of that listener, reported and retried like a
// temporary error.
var errNilConn error = &tempError{"cmux: root listener returned a nil connection"}

type tempError struct{ msg string }

func (e *tempError) Error() string   { return e.msg }
func (e *tempError) Timeout() bool   { return false }
func (e *tempError) Temporary() bool { return true }

// acceptLoop accepts connections and starts matching each in its own
// goroutine until the root listener fails or the mux stops.
func (m *cMux) acceptLoop(errc chan<- error, done chan<- struct{}) {
	defer close(done)
	var delay time.Duration
	for {
		c, err := m.root.Accept()
		if err == nil && c == nil {
			err = errNilConn
		}
		if err != nil {
			if m.stopped() {
				return
			}
			if !m.handleErr(err) || !isTemporary(err) {
				errc <- err
				return
			}
			// Back off on errors such as EMFILE instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.quit:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		mc := m.newConn(c)
		if !m.track(mc) {
			c.Close()
			return
		}
		go m.serveConn(mc)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (m *cMux) stopped() bool {
	select {
	case <-m.quit:
		return true
	default:
		return false
	}
}

// track registers a connection being matched; it reports false once the
// mux has stopped.
func (m *cMux) track(c *MuxConn) bool {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if m.stopping {
		return false
	}
	m.inflight = append(m.inflight, c)
	c.slot = len(m.inflight)
	m.wg.Add(1)
	return true
}

// untrack ends the matching of c; it reports false if the mux aborted c,
// which is then closed.
func (m *cMux) untrack(c *MuxConn) bool {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if c.slot == 0 {
		return false
	}
	i, last := c.slot-1, len(m.inflight)-1
	m.inflight[i] = m.inflight[last]
	m.inflight[i].slot = i + 1
	m.inflight[last] = nil
	m.inflight = m.inflight[:last]
	c.slot = 0
	return true
}

// stop makes the accept loop quit and aborts every connection being matched.
func (m *cMux) stop() {
	m.quitOnce.Do(func() { close(m.quit) })
	m.connMu.Lock()
	m.stopping = true
	for i, c := range m.inflight {
		c.slot = 0
		c.Conn.Close()
		m.inflight[i] = nil
	}
	m.inflight = nil
	m.connMu.Unlock()
}

func (m *cMux) Close() {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.donec)
		m.stop()
		m.drainAll()
	})
}

func (m *cMux) drainAll() {
	for _, l := range *m.lst.Load() {
		l.drain()
	}
}

// closedError is what Serve returns after Close.
func (m *cMux) closedError() error {
	op := &net.OpError{Op: "accept", Err: errMuxClosed{}}
	if m.root == nil {
		return op
	}
	if a := m.root.Addr(); a != nil {
		op.Net, op.Addr = a.Network(), a
	}
	return op
}

// errMuxClosed is the cause of the error Serve returns after Close: it reads
// like the standard library's error for a closed listener and matches both
// net.ErrClosed and ErrServerClosed.
type errMuxClosed struct{}

func (errMuxClosed) Error() string   { return "mux: server closed: use of closed network connection" }
func (errMuxClosed) Unwrap() []error { return []error{ErrServerClosed, net.ErrClosed} }

// newConn returns the mux's wrapper of a connection about to be matched.
func (m *cMux) newConn(c net.Conn) *MuxConn {
	mc := &MuxConn{Conn: c}
	mc.sniff.init(mc, m.pools, m.maxSniff)
	return mc
}

// serveConn matches c and delivers it, or closes it.
func (m *cMux) serveConn(c *MuxConn) {
	defer m.wg.Done()
	timeout := time.Duration(m.timeout.Load())
	if timeout > 0 {
		// The bound covers writes too: a writer matcher must not block on
		// a client that does not read.
		c.sniff.deadline = time.Now().Add(timeout)
		_ = c.Conn.SetDeadline(c.sniff.deadline)
	}
	if m.proxy != nil {
		if err := m.readProxyHeader(c); err != nil {
			m.drop(c, err)
			return
		}
	}
	if l, err := m.match(c); l != nil {
		m.deliver(c, l, timeout > 0)
	} else {
		m.drop(c, err)
	}
}

// drop closes c, which is not to be delivered, and reports err, unless the
// mux stopped and closed c already: then there is nothing to report.
func (m *cMux) drop(c *MuxConn, err error) {
	if m.untrack(c) {
		c.Conn.Close()
		c.endMatching(false)
		m.report(err)
		return
	}
	c.endMatching(false)
}

// match runs the matchers on c and returns the listener of the first that
// says yes; if none does, it returns ErrNotMatched, or the panic of a
// matcher.
func (m *cMux) match(c *MuxConn) (l *muxListener, err error) {
	defer func() {
		if v := recover(); v != nil {
			buf := make([]byte, 4<<10)
			buf = buf[:runtime.Stack(buf, false)]
			l, err = nil, &matcherPanic{remote: remoteAddr(c), value: v, stack: buf}
		}
	}()
	for _, l := range *m.lst.Load() {
		for _, mt := range l.matchers {
			c.sniff.rewind()
			if mt(&c.sniff, &c.sniff) {
				return l, nil
			}
		}
	}
	return nil, ErrNotMatched{c: c}
}

// report gives err, the error of one connection, to the error handler. If
// the handler returns false, report closes the root listener, as v0.1.5
// does, so that Serve returns the root's Accept error; if the root cannot be
// closed, Serve returns err.
func (m *cMux) report(err error) {
	if m.handleErr(err) {
		return
	}
	if m.root.Close() != nil {
		select {
		case m.stopc <- err:
		default:
		}
	}
}

// deliver hands c, matched by l, to l's Accept.
func (m *cMux) deliver(c *MuxConn, l *muxListener, clearDeadline bool) {
	if !m.untrack(c) {
		// The mux stopped while c was matched, and closed it.
		c.endMatching(false)
		return
	}
	if clearDeadline {
		_ = c.Conn.SetDeadline(time.Time{})
	}
	c.endMatching(true)
	dc := c.deliverable(m.exposeTLS)
	select {
	case l.connc <- dc:
	default:
		// The queue is full: wait for room, unless the listener or the
		// mux stops first.
		select {
		case l.connc <- dc:
		case <-l.closec:
			dc.Close()
			return
		case <-m.quit:
			dc.Close()
			return
		}
	}
	// The listener or the mux may have closed while we sent; whoever closed
	// it drains what was queued before, and we drain what came after.
	if l.closed.Load() || m.closed.Load() {
		l.drain()
	}
}

// muxListener is a child listener: it accepts the connections its matchers
// chose.
type muxListener struct {
	m         *cMux
	matchers  []MatchWriter
	connc     chan net.Conn
	closec    chan struct{}
	closed    atomic.Bool // closec is closed
	closeOnce sync.Once
}

// Accept waits for and returns the next connection matched for l.
func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case <-l.m.donec:
		return nil, ErrServerClosed
	case <-l.closec:
		return nil, ErrListenerClosed
	default:
	}
	select {
	case c := <-l.connc:
		// Close may have run while we received: what it would have
		// drained is closed, not handed out.
		if l.closed.Load() {
			c.Close()
			return nil, ErrListenerClosed
		}
		return c, nil
	case <-l.closec:
		return nil, ErrListenerClosed
	case <-l.m.donec:
		return nil, ErrServerClosed
	case <-l.m.servedone:
		// Serve has returned and closes what was queued.
		return nil, ErrListenerClosed
	}
}

// Close stops deliveries to l: its Accept returns ErrListenerClosed, the
// connections queued for it are closed and later ones that match it are
// closed. Unless the mux has IndependentListeners, Close then closes the
// root listener, which ends Serve, and returns the root's Close error.
func (l *muxListener) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.closec)
	})
	l.drain()
	if l.m.independent || l.m.root == nil {
		return nil
	}
	return l.m.root.Close()
}

// drain closes the connections queued for l.
func (l *muxListener) drain() {
	for {
		select {
		case c := <-l.connc:
			c.Close()
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

// ErrNotMatched is the error the handler gets for a connection that no
// matcher wanted; the mux closes such a connection.
type ErrNotMatched struct {
	c net.Conn
}

// Error names the connection's remote address.
func (e ErrNotMatched) Error() string {
	return fmt.Sprintf("mux: connection from %v not matched by any matcher", remoteAddr(e.c))
}

// Temporary reports true: the mux goes on serving other connections.
func (e ErrNotMatched) Temporary() bool { return true }

// Timeout reports false.
func (e ErrNotMatched) Timeout() bool { return false }

func remoteAddr(c net.Conn) any {
	if c == nil {
		return "unknown"
	}
	if a := c.RemoteAddr(); a != nil {
		return a
	}
	return "unknown"
}

// errListenerClosed is the type of ErrListenerClosed: a net.Error that is
// neither temporary nor a timeout, as in github.com/soheilhy/cmux v0.1.5.
type errListenerClosed string

func (e errListenerClosed) Error() string   { return string(e) }
func (e errListenerClosed) Temporary() bool { return false }
func (e errListenerClosed) Timeout() bool   { return false }

// Is makes errors.Is(err, net.ErrClosed) hold.
func (e errListenerClosed) Is(target error) bool { return target == net.ErrClosed }

// ErrListenerClosed is returned by a child listener's Accept once the
// listener was closed, or once Serve has returned (the connections that were
// queued for the listener are then closed). errors.Is(ErrListenerClosed,
// net.ErrClosed) holds.
var ErrListenerClosed = errListenerClosed("mux: listener closed")

// serverClosedErr is the type of ErrServerClosed.
type serverClosedErr struct{}

func (serverClosedErr) Error() string   { return "mux: server closed" }
func (serverClosedErr) Timeout() bool   { return false }
func (serverClosedErr) Temporary() bool { return false }

// Is makes errors.Is(err, net.ErrClosed) hold.
func (serverClosedErr) Is(target error) bool { return target == net.ErrClosed }

// ErrServerClosed is returned by every child listener's Accept after Close,
// and wrapped by the error Serve returns after Close.
// errors.Is(ErrServerClosed, net.ErrClosed) holds.
var ErrServerClosed error = serverClosedErr{}

// ErrMatcherPanic is matched (errors.Is) by the error the handler gets when
// a matcher panics; the mux then closes that connection and goes on.
var ErrMatcherPanic = errors.New("cmux: matcher panicked")

type matcherPanic struct {
	remote any
	value  any
	stack  []byte
}

func (e *matcherPanic) Error() string {
	return fmt.Sprintf("cmux: matcher panicked on connection from %v: %v\n%s", e.remote, e.value, e.stack)
}

func (e *matcherPanic) Unwrap() error { return ErrMatcherPanic }
