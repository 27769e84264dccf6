package cmux

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A mux goes through these phases:
//
//   - registered: made by New; Match and MatchWithWriters add listeners
//     (they may still do so later).
//   - serving: Serve runs its accept loop on one or more acceptors (see
//     acceptors). Each accepted connection is matched on the spot or on a
//     goroutine of its own (a worker, or the acceptor that accepted it),
//     listed in inflight meanwhile, then queued for a child listener or
//     dropped.
//   - draining: Shutdown was called. The accept loop has stopped and the
//     root listener is closed; connections in flight finish matching and
//     are queued; children hand out their queues, then return
//     ErrServerClosed.
//   - served: Serve has returned; every goroutine it started has exited
//     or is on its way out, but for one in the Accept of a root the mux
//     cannot interrupt (no SetDeadline method), which ends when the root
//     is closed. Unless the mux is draining, what is still queued is
//     closed.
//
// Close may come in any phase: it stops accepting, aborts what is in flight,
// closes what is queued, and makes children return ErrServerClosed.
//
// Each phase change closes a channel, once, after setting its flag:
//
//   - acceptStop: the accept loop must stop (Close, Shutdown, end of Serve);
//   - abortc: connections in flight are abandoned, and deliveries waiting
//     for room in a queue give up (Close; end of Serve unless draining);
//     stopping is set with it, under connMu;
//   - closedc: Close was called (closed);
//   - drainc: Shutdown was called (draining);
//   - servedone: Serve has returned (served).
type cMux struct {
	root         net.Listener
	pools        *bufferPools
	maxSniff     int
	proxy        *proxyConfig  // nil: no PROXY protocol
	independent  bool          // a child's Close is local; otherwise it closes the root
	exposeTLS    bool          // ExposeConnectionState
	maxPerSource int           // MaxMatchingPerSource; 0: no cap
	terminateCfg *tls.Config   // TerminateTLS; nil: no termination
	concurrent   bool          // ConcurrentAccept, without MaxMatching
	sem          chan struct{} // a slot per connection being matched (MaxMatching); nil: no cap
	timeout      atomic.Int64  // time.Duration
	errh         atomic.Pointer[ErrorHandler]

	regMu    sync.Mutex                     // serializes registrations
	lst      atomic.Pointer[[]*muxListener] // copy on write
	finished bool                           // under regMu: listeners are finished; new ones start so

	serving        atomic.Bool // Serve was called
	closed         atomic.Bool
	closedc        chan struct{}
	closeOnce      sync.Once
	draining       atomic.Bool
	drainc         chan struct{}
	drainOnce      sync.Once
	served         atomic.Bool
	servedone      chan struct{}
	drainedOK      atomic.Bool // Shutdown found nothing queued: Close hands out what Accept took
	acceptStop     chan struct{}
	acceptStopOnce sync.Once
	abortc         chan struct{}
	stopc          chan error // an error the handler refused, if the root could not be closed

	// Connections being matched, so that aborting can close them: each c
	// in inflight has inflight[c.slot-1] == c; a connection not in it has
	// slot 0. Once stopping is set, nothing is added.
	connMu    sync.Mutex
	inflight  []*MuxConn
	stopping  bool
	perSource map[netip.Addr]int // MaxMatchingPerSource: connections in inflight by source
	expiring  bool               // the expirer runs
	coarseNow int64              // Unix nanoseconds, as of the expirer's last tick or start
	wg        sync.WaitGroup     // connections being matched or delivered

	acc     acceptors  // the goroutines that accept connections
	workers workerPool // the goroutines that match connections
	obs     *observe   // WithHooks, WithLogger; nil if neither
}

func newMux(l net.Listener, cfg *config) *cMux {
	m := &cMux{
		root:         l,
		pools:        newBufferPools(cfg.maxSniff),
		maxSniff:     cfg.maxSniff,
		proxy:        cfg.proxy,
		independent:  cfg.independent,
		exposeTLS:    cfg.exposeTLS,
		maxPerSource: cfg.maxPerSource,
		terminateCfg: cfg.terminate,
		concurrent:   cfg.concurrent && cfg.maxMatching <= 0,
		closedc:      make(chan struct{}),
		drainc:       make(chan struct{}),
		servedone:    make(chan struct{}),
		acceptStop:   make(chan struct{}),
		abortc:       make(chan struct{}),
		stopc:        make(chan error, 1),
	}
	if cfg.maxMatching > 0 {
		m.sem = make(chan struct{}, cfg.maxMatching)
	}
	if cfg.maxPerSource > 0 {
		m.perSource = make(map[netip.Addr]int)
	}
	if cfg.hooks != nil || cfg.logger != nil {
		m.obs = &observe{logger: cfg.logger}
		if cfg.hooks != nil {
			m.obs.hooks = *cfg.hooks
		}
	}
	m.timeout.Store(int64(cfg.matchTimeout))
	m.lst.Store(&[]*muxListener{})
	return m
}

func (m *cMux) Match(matchers ...Matcher) net.Listener {
	ws := make([]MatchWriter, len(matchers))
	for i, mt := range matchers {
		ws[i] = func(_ io.Writer, r io.Reader) bool { return mt(r) }
	}
	return m.register(ws, initialKinds(matchers))
}

func (m *cMux) MatchWithWriters(matchers ...MatchWriter) net.Listener {
	return m.register(matchers, initialKinds(matchers))
}

// register adds a listener with matchers, of which the mux knows kinds.
func (m *cMux) register(matchers []MatchWriter, kinds []atomic.Uint32) net.Listener {
	l := newMuxListener(m, matchers, kinds)
	m.regMu.Lock()
	old := *m.lst.Load()
	l.index = len(old)
	lst := make([]*muxListener, len(old), len(old)+1)
	copy(lst, old)
	lst = append(lst, l)
	m.lst.Store(&lst)
	if m.finished {
		l.finish()
	}
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

func (m *cMux) Serve() error {
	if !m.serving.CompareAndSwap(false, true) {
		return errServeTwice
	}
	if m.root == nil {
		m.finishServe()
		return errNilListener
	}
	if m.closed.Load() || m.draining.Load() {
		m.finishServe()
		return m.closedError()
	}
	acceptErr := make(chan error, 1)
	acceptDone := make(chan struct{})
	m.acc.start(m, acceptErr, acceptDone)

	var err error
	select {
	case err = <-acceptErr:
	case err = <-m.stopc:
	case <-m.closedc:
	case <-m.drainc:
	}
	if m.closed.Load() || m.draining.Load() {
		err = m.closedError()
	}
	m.stopAccepting()
	if m.draining.Load() {
		// Let what was accepted be matched and queued; Close aborts it.
		select {
		case <-acceptDone:
			m.wg.Wait()
		case <-m.closedc:
		}
	}
	m.abort()
	m.interruptAccept(acceptDone)
	m.wg.Wait()
	m.workers.close()
	m.finishServe()
	return err
}

// interruptAccept makes the Accepts still blocked in the acceptors return,
// where the root listener allows it, so that no goroutine of the mux
// outlives Serve. A listener whose Accept ignores the deadline does not
// hold Serve: its acceptors end when the listener is closed.
func (m *cMux) interruptAccept(acceptDone <-chan struct{}) {
	d, ok := m.root.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return
	}
	select {
	case <-acceptDone:
		return
	default:
	}
	if d.SetDeadline(aLongTimeAgo) != nil {
		return
	}
	t := time.NewTimer(time.Second)
	select {
	case <-acceptDone:
	case <-t.C:
	}
	t.Stop()
	_ = d.SetDeadline(time.Time{})
}

var aLongTimeAgo = time.Unix(1, 0)

// finishServe ends the serving phase: children's Accept stops waiting, and
// what is queued is closed unless Shutdown keeps it for the servers.
func (m *cMux) finishServe() {
	m.served.Store(true)
	close(m.servedone)
	m.finishListeners()
	if !m.draining.Load() || m.closed.Load() {
		m.drainAll()
	}
}

// finishListeners closes every child's done, and makes later children
// start finished.
func (m *cMux) finishListeners() {
	m.regMu.Lock()
	m.finished = true
	lst := *m.lst.Load()
	m.regMu.Unlock()
	for _, l := range lst {
		l.finish()
	}
}

func (m *cMux) drainAll() {
	for _, l := range *m.lst.Load() {
		l.drain()
	}
}

func (m *cMux) stopAccepting() {
	m.acceptStopOnce.Do(func() { close(m.acceptStop) })
}

func (m *cMux) acceptStopped() bool {
	select {
	case <-m.acceptStop:
		return true
	default:
		return false
	}
}

// abort closes every connection being matched, and makes the goroutines
// that match or deliver connections give up.
func (m *cMux) abort() {
	m.connMu.Lock()
	if !m.stopping {
		m.stopping = true
		close(m.abortc)
	}
	for i, c := range m.inflight {
		c.slot = 0
		c.Conn.Close()
		m.inflight[i] = nil
	}
	m.inflight = nil
	clear(m.perSource)
	m.connMu.Unlock()
}

func (m *cMux) Close() {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.closedc)
		m.stopAccepting()
		m.abort()
		m.finishListeners()
		m.drainAll()
	})
}

// Shutdown implements Shutdowner.
func (m *cMux) Shutdown(ctx context.Context) error {
	m.drainOnce.Do(func() {
		m.draining.Store(true)
		close(m.drainc)
		m.stopAccepting()
		if m.root != nil {
			_ = m.root.Close()
		}
	})
	delay := time.Millisecond
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		if m.drained() {
			// A child's Accept may hold a connection it took from its
			// queue: Close must not take it back.
			m.drainedOK.Store(true)
			m.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			m.Close()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
		t.Reset(delay)
	}
}

// drained reports whether nothing is being matched or queued: Serve is not
// running (a Serve called later returns at once), and every queue is empty.
func (m *cMux) drained() bool {
	if m.serving.Load() && !m.served.Load() {
		return false
	}
	for _, l := range *m.lst.Load() {
		if len(l.connc) > 0 {
			return false
		}
	}
	return true
}

// closedError is what Serve returns after Close or Shutdown.
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

// acceptLoop is an acceptor (see acceptors): it accepts connections and
// matches each on the spot when it can, or hands it to a worker, or
// matches it itself while another acceptor accepts or takes the turn to,
// until the root listener fails or the mux stops accepting, or until it
// lost the turn to accept: then it reports true. With ConcurrentAccept it
// starts counted in m.acc.ready.
func (m *cMux) acceptLoop() (lost bool) {
	a := &m.acc
	defer a.exit()
	var delay time.Duration
	// st is this acceptor's state between connections; nil while another
	// acceptor may have it (see acceptors.parked).
	var st *acceptState
	for {
		// Here this acceptor is counted in a.ready (with ConcurrentAccept).
		if m.sem != nil {
			if err := m.acquire(); err != nil {
				m.countReady(-1)
				if !m.acceptStopped() {
					a.fail(err)
				}
				return false
			}
		}
		c, err := m.root.Accept()
		m.countReady(-1)
		if err == nil && c == nil {
			err = errNilConn
		}
		if err != nil {
			m.release()
			if m.acceptStopped() {
				return false
			}
			m.acceptFailed(err, isTemporary(err))
			if !m.handleErr(err) || !isTemporary(err) {
				a.fail(err)
				return false
			}
			// Back off on errors such as EMFILE instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.acceptStop:
				t.Stop()
				return false
			}
			if !m.backToAccept() {
				return false
			}
			continue
		}
		delay = 0
		if st == nil {
			st = a.take()
		}
		mc := m.newConnSpare(c, &st.spare)
		if m.obs != nil {
			m.hookAccepted(mc)
		}
		switch m.track(mc) {
		case tracked:
			sock := isSocket(mc.Conn)
			switch {
			case m.matchNow(mc, sock, &st.now, &st.spare):
			case sock || m.sem != nil:
				// A socket waits for its bytes on a worker, without a
				// buffer; so does any connection under MaxMatching (see
				// acceptors).
				m.dispatch(mc)
			case !m.concurrent:
				// What c may wait for holds up no one: a worker takes the
				// turn to accept if it does (see acceptors). Nor does it
				// hold up the state, which the next acceptor may take.
				gen := a.beginMatch(m)
				a.park(st)
				st = nil
				m.serveConn(mc)
				if !a.endMatch(gen) {
					return true
				}
				if m.acceptStopped() {
					// Serve may have given up interrupting Accept
					// (interruptAccept) while c was matched.
					return false
				}
			default:
				// What c may wait for holds up no one; nor does it hold
				// up the state, which the next acceptor may take.
				a.standBy(m)
				a.park(st)
				st = nil
				m.serveConn(mc)
				if m.acceptStopped() || !a.rejoin() {
					return false
				}
				continue // counted by rejoin
			}
			if sock && m.concurrent && a.ready.Load() > 0 {
				return false // a socket needs no acceptor standing by
			}
		case overSource:
			m.release()
			c.Close()
			err := &limitError{remote: c.RemoteAddr(), limit: m.maxPerSource}
			if m.obs != nil {
				m.dropped(mc, err, "")
			}
			mc.dropSniffer()
			m.report(err)
		default: // aborted
			m.release()
			c.Close()
			if m.obs != nil {
				m.dropped(mc, ErrServerClosed, "")
			}
			mc.dropSniffer()
			return false
		}
		if !m.backToAccept() {
			return false
		}
	}
}

// countReady adds d to m.acc.ready, which only ConcurrentAccept uses.
func (m *cMux) countReady(d int32) {
	if m.concurrent {
		m.acc.ready.Add(d)
	}
}

// backToAccept reports whether an acceptor goes back to Accept; with
// ConcurrentAccept, not if maxReady others are there already (rejoin
// counts it if it goes).
func (m *cMux) backToAccept() bool {
	return !m.concurrent || m.acc.rejoin()
}

// acquire takes a MaxMatching slot, waiting for one if it must; it returns
// an error if the mux stops accepting first, or if the error handler
// refuses the error of the cap.
func (m *cMux) acquire() error {
	select {
	case m.sem <- struct{}{}:
		return nil
	default:
	}
	err := &limitError{limit: cap(m.sem)}
	m.acceptFailed(err, true)
	if !m.handleErr(err) {
		return err
	}
	select {
	case m.sem <- struct{}{}:
		return nil
	case <-m.acceptStop:
		return err
	}
}

// release frees a MaxMatching slot.
func (m *cMux) release() {
	if m.sem != nil {
		<-m.sem
	}
}

// Results of track.
const (
	tracked = iota
	overSource
	aborted
)

// track lists a connection being matched. It says aborted once the mux
// has aborted, and overSource if the connection's source has
// MaxMatchingPerSource connections being matched already.
func (m *cMux) track(c *MuxConn) int {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if m.stopping {
		return aborted
	}
	if m.perSource != nil {
		src, ok := sourceOf(c.Conn)
		if ok {
			if m.perSource[src] >= m.maxPerSource {
				return overSource
			}
			m.perSource[src]++
		}
	}
	m.inflight = append(m.inflight, c)
	c.slot = int32(len(m.inflight))
	m.wg.Add(1)
	if d := time.Duration(m.timeout.Load()); d > 0 {
		if !m.expiring {
			m.expiring = true
			m.coarseNow = time.Now().UnixNano()
			m.workers.wg.Add(1)
			go m.expire()
		}
		// coarseNow lags by up to a tick: the bound is d to d+2 ticks.
		c.deadline = m.coarseNow + int64(d+expiryTick(d))
	}
	return tracked
}

// expiryTick is how often the expirer looks for connections past a
// matching bound of d. It is at most a quarter of a second, so that the
// expirer, which stops at the first tick with nothing in flight, outlives
// a burst of connections by no more than that.
func expiryTick(d time.Duration) time.Duration {
	return min(max(d/8, 10*time.Millisecond), 250*time.Millisecond)
}

// expire runs while connections are being matched: every tick it sets a
// past deadline on those whose matching deadline has passed, so that their
// reads and writes fail with a timeout. Connections matched in time never
// get a deadline of the mux's: setting and clearing one costs more than
// the rest of their matching. It stops when nothing is in flight, or when
// the mux aborts.
func (m *cMux) expire() {
	defer m.workers.wg.Done()
	t := time.NewTimer(expiryTick(time.Duration(m.timeout.Load())))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-m.abortc:
			m.connMu.Lock()
			m.expiring = false
			m.connMu.Unlock()
			return
		}
		now := time.Now().UnixNano()
		m.connMu.Lock()
		m.coarseNow = now
		if m.stopping || len(m.inflight) == 0 {
			m.expiring = false
			m.connMu.Unlock()
			return
		}
		for _, c := range m.inflight {
			if !c.expired && c.deadline != 0 && now >= c.deadline {
				c.expired = true
				_ = c.Conn.SetDeadline(aLongTimeAgo)
			}
		}
		m.connMu.Unlock()
		t.Reset(expiryTick(time.Duration(m.timeout.Load())))
	}
}

// untrack ends the matching of c and frees its MaxMatching slot; it
// reports false if the mux aborted c, which is then closed. It clears the
// deadline the expirer set on c, if any.
func (m *cMux) untrack(c *MuxConn) bool {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if c.slot == 0 {
		return false
	}
	if c.expired {
		_ = c.Conn.SetDeadline(time.Time{})
	}
	i, last := int(c.slot-1), len(m.inflight)-1
	m.inflight[i] = m.inflight[last]
	m.inflight[i].slot = int32(i + 1)
	m.inflight[last] = nil
	m.inflight = m.inflight[:last]
	c.slot = 0
	if m.perSource != nil {
		if src, ok := sourceOf(c.acceptedConn()); ok {
			if m.perSource[src]--; m.perSource[src] <= 0 {
				delete(m.perSource, src)
			}
		}
	}
	m.release()
	return true
}

// sourceOf returns the IP address c comes from.
func sourceOf(c net.Conn) (netip.Addr, bool) { return ipOf(c.RemoteAddr()) }

// acceptedConn returns the connection the root listener accepted for c,
// whose address track counted c under: c.Conn, or the raw connection
// under the TLS connection the mux terminated, which reports the client's
// address of a PROXY header instead. c's goroutine owns c.
func (c *MuxConn) acceptedConn() net.Conn {
	if tc := c.terminatedTLS(); tc != nil {
		if raw, ok := tc.NetConn().(*termConn); ok {
			return raw.Conn
		}
	}
	return c.Conn
}

// newConn returns the mux's wrapper of a connection about to be matched.
func (m *cMux) newConn(c net.Conn) *MuxConn {
	mc := &MuxConn{Conn: c}
	m.attachSniffer(mc, nil)
	return mc
}

// newConnSpare is newConn on the accept loop: it takes *spare, if there is
// one, instead of a sniffer from the pool.
func (m *cMux) newConnSpare(c net.Conn, spare **sniffer) *MuxConn {
	mc := &MuxConn{Conn: c}
	m.attachSniffer(mc, *spare)
	*spare = nil
	return mc
}

// testHookIdleWait, if set, is called when a worker waits for the first
// bytes of a connection without a sniffer.
var testHookIdleWait func()

// attachSniffer gives c the sniffer spare, a free one, or one from the
// pool if spare is nil.
func (m *cMux) attachSniffer(c *MuxConn, spare *sniffer) {
	if spare == nil {
		c.sniff = m.pools.newSniffer(c, m.maxSniff)
	} else {
		spare.init(c, m.pools, m.maxSniff)
		c.sniff = spare
	}
	c.sniff.mux = m
}

// serveConn matches c and delivers it, or closes it.
func (m *cMux) serveConn(c *MuxConn) {
	defer m.wg.Done()
	if c.sniff == nil {
		// Nothing can be decided before c's first bytes: wait for them,
		// without a buffer on a socket, and only then take a sniffer.
		if testHookIdleWait != nil {
			testHookIdleWait()
		}
		if isSocket(c.Conn) {
			waitReadable(c.Conn)
			m.attachSniffer(c, nil)
			c.sniff.readable = true
		} else {
			n, err := c.Conn.Read(c.first[:])
			m.attachSniffer(c, nil)
			c.sniff.took(n, err)
		}
	}
	if m.proxy != nil {
		if err := m.readProxyHeader(c); err != nil {
			m.drop(c, err)
			return
		}
	}
	if m.terminateCfg != nil {
		if err := m.terminate(c); err != nil {
			m.drop(c, err)
			return
		}
	}
	if l, err := m.match(c); l != nil {
		m.deliver(c, l, false)
	} else {
		m.drop(c, err)
	}
}

// matchNow matches c on the accept loop when the bytes its matchers need
// are there already (read without waiting, on a socket), or when they
// need none, and delivers or drops it. It reports false, having read
// nothing it will not replay, if some matcher would have to wait or write:
// then a worker matches c, or, if c is not a socket, the acceptor that
// accepted it. sock says whether c is a socket (isSocket).
func (m *cMux) matchNow(c *MuxConn, sock bool, now *nowReader, spare **sniffer) bool {
	if m.proxy != nil || m.terminateCfg != nil {
		return false
	}
	s := c.sniff
	s.now = now
	s.spare = spare
	// A socket is read, without waiting, only when a matcher first asks
	// for bytes: a matcher that needs none (Any, RemoteAddrIn) decides
	// without a read, leaving the bytes in the socket for the server. While
	// such reads keep finding nothing, most connections go to a worker
	// without one (see nowReader.tryFirst).
	s.nowSock = sock
	l, err := m.match(c)
	s.now = nil
	if s.blocked {
		// The first matcher, a function of the bytes alone, asked for a
		// first byte: until one is there, matching can only wait, and
		// waits without a sniffer (see serveConn).
		idle := len(s.buf) == 0 && s.err == nil && !s.timed && !s.deferred &&
			s.resumeL == 0 && s.resumeM == 0 && (*m.lst.Load())[0].kinds[0].Load() == kindBuiltin
		s.blocked, s.deferred = false, false
		s.rewind()
		c.forgetParses()
		if idle {
			c.dropSniffer()
		} else {
			s.spare = nil // the sniffer goes to a worker with c
		}
		return false
	}
	if l != nil {
		m.deliver(c, l, true)
	} else {
		m.drop(c, err)
	}
	m.wg.Done()
	return true
}

// drop closes c, which is not to be delivered, and reports err, unless the
// mux aborted and closed c already: then there is nothing to report.
func (m *cMux) drop(c *MuxConn, err error) {
	if m.untrack(c) {
		c.Conn.Close()
		if m.obs != nil {
			m.dropped(c, err, "")
		}
		c.endMatching(false)
		m.report(err)
		return
	}
	c.endMatching(false)
}

// What the mux knows of a matcher. The accept loop runs only the matchers
// of this package, which are functions of the bytes alone and say so by
// setting sniffer.builtin when they run: running one again on a worker,
// when the bytes it needs are not all there yet, is then invisible. Other
// matchers run on workers alone, once per connection; the mux learns which
// are which by running them there.
const (
	kindUnknown = iota
	kindBuiltin
	kindOther
)

// builtinCode holds the code pointers of the matchers this package makes,
// so that a listener knows its built-in matchers from the start instead of
// learning them on its first connections. Every closure of one function
// literal shares one code pointer unless the function holding the literal
// is inlined, which copies the literal: the constructors listed here are
// marked go:noinline. A matcher missing here is learned as before.
// TLSClientHello and ProxyHeaderFunc are left out: they run a function of
// the program's.
var builtinCode = sync.OnceValue(func() map[uintptr]bool {
	code := make(map[uintptr]bool)
	for _, m := range []Matcher{
		Any(), PrefixMatcher("x"), HTTP1Fast(), HTTP1(), HTTP2(),
		HTTP1HeaderField("a", "b"), HTTP1HeaderFieldPrefix("a", "b"),
		HTTP2HeaderField("a", "b"), HTTP2HeaderFieldPrefix("a", "b"),
		TLSServerName("a"), TLSALPN("a"), TLSVersion(tls.VersionTLS13),
		SOCKS5(), PostgreSQL(), Regexp(regexp.MustCompile("a"), 1), Silent(time.Second),
		RemoteAddrIn(), LocalAddrIn(), HTTPHost("a"), HTTPPathPrefix("/"),
		ProxyHeaderTLV(1), ProxyAWSVPCEndpoint("a"), NegotiatedProtocol("h2"),
	} {
		code[reflect.ValueOf(m).Pointer()] = true
	}
	for _, w := range []MatchWriter{
		HTTP2MatchHeaderFieldSendSettings("a", "b"), HTTP2MatchHeaderFieldPrefixSendSettings("a", "b"),
	} {
		code[reflect.ValueOf(w).Pointer()] = true
	}
	return code
})

// initialKind is what the mux knows of fn, a Matcher or a MatchWriter,
// before running it.
func initialKind(fn any) uint32 {
	if builtinCode()[reflect.ValueOf(fn).Pointer()] {
		return kindBuiltin
	}
	return kindUnknown
}

// initialKinds is initialKind of each of fns.
func initialKinds[F Matcher | MatchWriter](fns []F) []atomic.Uint32 {
	kinds := make([]atomic.Uint32, len(fns))
	for i, fn := range fns {
		kinds[i].Store(initialKind(fn))
	}
	return kinds
}

func kindOf(builtin bool) uint32 {
	if builtin {
		return kindBuiltin
	}
	return kindOther
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
	s := c.sniff
	lst := *m.lst.Load()
	for i := int(c.sniff.resumeL); i < len(lst); i++ {
		l := lst[i]
		j := 0
		if i == int(c.sniff.resumeL) {
			j = int(c.sniff.resumeM)
		}
		for ; j < len(l.matchers); j++ {
			kind := &l.kinds[j]
			if s.now != nil && kind.Load() != kindBuiltin {
				s.blocked, s.deferred = true, true
			} else {
				s.rewind()
				s.builtin = false
				ok := l.matchers[j](s, s)
				if k := kindOf(s.builtin); kind.Load() != k {
					kind.Store(k)
				}
				if ok && !s.blocked {
					c.sniff.resumeL, c.sniff.resumeM = int32(i), int32(j)
					return l, nil
				}
			}
			if s.blocked {
				c.sniff.resumeL, c.sniff.resumeM = int32(i), int32(j)
				return nil, errWouldBlock
			}
		}
	}
	return nil, ErrNotMatched{c: c, reason: s.reason()}
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

// deliver hands c, matched by l, to l's Accept. On the accept loop (now),
// it does not wait for room in a full queue: a goroutine does.
func (m *cMux) deliver(c *MuxConn, l *muxListener, now bool) {
	if !m.untrack(c) {
		// The mux aborted while c was matched, and closed it.
		c.endMatching(false)
		return
	}
	if m.obs != nil {
		m.hookMatched(c, int(c.sniff.resumeL), int(c.sniff.resumeM))
	}
	c.endMatching(true)
	dc := c.deliverable(m.exposeTLS)
	switch sent, ok := l.send(dc); {
	case !ok:
		// l is finished and its queue closed: what was queued before goes
		// to Accept or to a drain; dc is closed here.
		m.closedUndelivered(dc, l, l.finishedWhy())
	case !sent:
		if now {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.enqueue(dc, l)
			}()
			return
		}
		m.enqueue(dc, l)
	}
}

// enqueue waits for room in l's full queue for dc, unless the listener or
// the mux stops first.
func (m *cMux) enqueue(dc net.Conn, l *muxListener) {
	if !l.lockSend() {
		m.closedUndelivered(dc, l, l.finishedWhy())
		return
	}
	// Blocked here, the read lock holds up finish only until it closes
	// done, which it does first.
	select {
	case l.connc <- dc:
		l.sendMu.RUnlock()
	case <-l.done:
		l.sendMu.RUnlock()
		m.closedUndelivered(dc, l, l.finishedWhy())
	case <-m.abortc:
		l.sendMu.RUnlock()
		m.closedUndelivered(dc, l, ErrServerClosed)
	}
}

// closedUndelivered closes dc, matched for l but not delivered because l
// or the mux stopped, and tells the hooks and the logger.
func (m *cMux) closedUndelivered(dc net.Conn, l *muxListener, why error) {
	dc.Close()
	if m.obs == nil {
		return
	}
	if c := muxConnOf(dc); c != nil {
		m.dropped(c, why, l.nameOf())
	}
}
