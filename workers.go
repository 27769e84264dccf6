package cmux

import (
	"sync"
	"time"
)

// Matching runs on worker goroutines. A worker matches the connection it was
// started for, then waits on its own channel for another one for up to
// workerIdle; the accept loop hands a new connection to the worker that
// went idle last, or starts a worker. Reusing goroutines spares each
// connection a goroutine start and, above all, the growth of a fresh
// goroutine's stack on the deeper matchers (HTTP/2 header blocks, TLS
// ClientHellos, HTTP/1 headers).
//
// A worker handed summonConn instead looks whether the acceptor is still
// matching a connection that is not a socket, and if so takes over
// accepting (the turn, see acceptors): it leaves the pool while it
// accepts, and comes back to it, idle, once it has lost the turn.
//
// A cleaner goroutine runs while some worker is idle: every workerIdle it
// counts a tick (workerPool.gen) and stops the workers that went idle
// idleTicks (two) or more ticks ago, that is idle for workerIdle to
// 2*workerIdle, so that nothing the mux started outlives a burst of
// connections by more than 2*workerIdle. Ticks, rather than clock
// readings, spare a worker reading the clock each time it goes idle. Each
// tick wakes the process (its thread in the poller and the runtime's
// monitor): under a trickle of connections that leaves workers idle, the
// cleaner ticks for as long as the trickle lasts, so ticks are few.
const (
	workerIdle = 300 * time.Millisecond
	idleTicks  = 2
)

type worker struct {
	connc chan *MuxConn // a connection to match, or nil: exit
	gen   uint64        // workerPool.gen when the worker went idle
}

// workerPool is the mux's set of idle workers.
type workerPool struct {
	mu       sync.Mutex
	idle     []*worker     // last idle at the end
	gen      uint64        // ticks of the cleaner
	cleaning bool          // the cleaner runs
	closed   bool          // no worker may go idle any more
	quit     chan struct{} // closed with closed; nil until the cleaner first runs
	wg       sync.WaitGroup
}

// dispatch has c matched by m.serveConn on an idle worker, or a new one.
func (m *cMux) dispatch(c *MuxConn) {
	p := &m.workers
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.connc <- c
		return
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go m.work(c)
}

// work is a worker: it matches c, then what dispatch hands it. Given
// summonConn, it may take the turn to accept (see acceptors): it then
// leaves the pool, so that close never waits for a root's Accept, and
// comes back to it once it has lost the turn. Given nil, it starts idle.
func (m *cMux) work(c *MuxConn) {
	p := &m.workers
	// counted tells whether this goroutine is counted in p.wg: not while it
	// holds the turn. Done is deferred, so that a matcher that ends its
	// goroutine (runtime.Goexit) does not leave close waiting.
	counted := true
	defer func() {
		if counted {
			p.wg.Done()
		}
	}()
	var w *worker
	for {
		switch {
		case c == summonConn:
			if m.acc.takeTurn(m) {
				counted = false
				p.wg.Done()
				if !m.acceptLoop() || !p.adopt() {
					return
				}
				counted = true
			}
		case c != nil:
			m.serveConn(c)
		}
		if w == nil {
			w = &worker{connc: make(chan *MuxConn)}
		}
		if !p.putIdle(m, w) {
			return
		}
		if c = <-w.connc; c == nil {
			return
		}
	}
}

// adopt counts in the pool a goroutine that becomes a worker; it reports
// false if the pool is closed.
func (p *workerPool) adopt() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// putIdle lists w as idle; it reports false if the pool is closed.
func (p *workerPool) putIdle(m *cMux, w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	w.gen = p.gen
	p.idle = append(p.idle, w)
	if !p.cleaning {
		p.cleaning = true
		if p.quit == nil {
			p.quit = make(chan struct{})
		}
		p.wg.Add(1)
		go p.clean(p.quit)
	}
	return true
}

// clean stops the workers idle for workerIdle, until none is idle.
func (p *workerPool) clean(quit <-chan struct{}) {
	defer p.wg.Done()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-quit:
			return
		}
		p.mu.Lock()
		// The oldest idle workers are first.
		p.gen++
		n := 0
		for n < len(p.idle) && p.idle[n].gen+idleTicks <= p.gen {
			close(p.idle[n].connc)
			n++
		}
		p.idle = append(p.idle[:0], p.idle[n:]...)
		clear(p.idle[len(p.idle):cap(p.idle)])
		if len(p.idle) == 0 || p.closed {
			p.cleaning = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		t.Reset(workerIdle)
	}
}

// close stops every idle worker and keeps the others from going idle, and
// waits for every worker and the cleaner to exit. No connection may be
// being matched: a worker holding the turn to accept is not waited for.
func (p *workerPool) close() {
	p.mu.Lock()
	p.closed = true
	if p.quit != nil {
		close(p.quit)
	}
	for _, w := range p.idle {
		close(w.connc)
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	p.mu.Unlock()
	p.wg.Wait()
}
