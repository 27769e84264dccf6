package cmux

import (
	"net"
	"sync/atomic"
)

// Acceptors are the goroutines that run acceptLoop. While Serve runs there
// is at least one. By default the root listener's Accept is called from
// one goroutine at a time, as v0.1.5 does.
//
// A connection that is not a socket (a *tls.Conn, an in-memory pipe, a
// wrapper of the program's) cannot be read without the risk of waiting,
// so its matching cannot be decided on the spot as a socket's can. By
// default the acceptor that accepted it matches it itself, and hands its
// turn to accept to a worker if that matching may hold it up (the turn,
// below). With ConcurrentAccept, it matches it once it has made sure that
// another acceptor is, or will be, in the root's Accept (standBy). Either
// way a connection whose bytes have not arrived holds up only the
// goroutine matching it, never the next connection, and one whose bytes
// are there goes from the root's Accept to the child's without a
// goroutine in between.
//
// The turn. By default exactly one acceptor may call Accept: the one
// holding the turn, whose generation is turn's upper bits. Before it
// matches a connection that is not a socket, it sets turnMatching, and
// unless turnSummoned is set already it sets that too and hands
// summonConn to a worker (beginMatch). That worker, when it runs (on
// another processor, or on this one once the acceptor waits or yields),
// takes the turn if turnMatching is still set, by making a new
// generation, and becomes the acceptor (takeTurn); otherwise it clears
// turnSummoned and goes idle. An acceptor done matching keeps the turn
// if its generation is still the current one, clearing turnMatching;
// otherwise it has lost it and, never calling Accept again, goes on as a
// worker (endMatch). So the goroutine in Accept changes only while its
// predecessor is matching, not accepting, and Accept is never called by
// two at once. turnSummoned stays set until the worker runs, so that on a
// busy processor one summons covers every connection the acceptor
// matches before the worker gets to run.
//
// Sockets still go to workers, which wait for a silent socket without a
// buffer; so do all connections under MaxMatching, whose slots an acceptor
// takes before Accept: standing acceptors would hold slots no connection
// uses. Nor would a second goroutine in the Accept of a TCP listener save
// a wake-up: internal/poll's FD.Accept holds the descriptor's read lock
// while it waits for a connection, so the second goroutine waits for the
// lock, and each return of the first wakes it (from the code of
// internal/poll; not measured).
//
// With ConcurrentAccept, Serve starts maxReady acceptors, or one for a
// listener of the net package, whose connections are sockets. An acceptor
// done with a connection goes back to Accept unless maxReady others are
// there already (rejoin), or, if the connection was a socket, unless
// another is: otherwise it exits. An acceptor exits only while another is
// counted in ready, so some acceptor is always on its way to Accept, and a
// burst of slow connections leaves no more acceptors behind than there
// were before it, each blocked in Accept, which holds no buffer.
type acceptors struct {
	// live counts the goroutines running acceptLoop; the last to exit
	// closes done.
	live atomic.Int32
	// turn is, by default, the acceptor's generation and state; see the
	// type's doc.
	turn atomic.Uint64
	// ready counts, with ConcurrentAccept only, those between the top of
	// their loop and the return of the root's Accept: in Accept, or about
	// to be (an acceptor being started).
	ready atomic.Int32
	// parked holds the state an acceptor left when it went to match a
	// connection, for the next acceptor that needs one.
	parked atomic.Pointer[acceptState]
	// Set by start before the first acceptor starts.
	errc chan<- error    // the first error that ends an acceptor
	done chan<- struct{} // closed when the last acceptor exits
}

// maxReady is how many acceptors may wait in Accept at once; see acceptors.
const maxReady = 2

// acceptState is what an acceptor keeps from one connection to the next:
// the state of its reads without waiting, and a sniffer for the next
// connection. One acceptor at a time owns it.
type acceptState struct {
	now   nowReader
	spare *sniffer
}

// start starts the acceptors of Serve; errc gets the first error that
// ends one, and done is closed when the last exits.
func (a *acceptors) start(m *cMux, errc chan<- error, done chan<- struct{}) {
	a.errc, a.done = errc, done
	n := int32(1)
	switch m.root.(type) {
	case *net.TCPListener, *net.UnixListener:
	default:
		if m.concurrent {
			n = maxReady
		}
	}
	a.live.Add(n)
	if m.concurrent {
		a.ready.Add(n)
	}
	for range n {
		go m.lead()
	}
}

// lead is an acceptor started as one; if it loses its turn (see
// acceptors), it goes on as a worker.
func (m *cMux) lead() {
	if m.acceptLoop() && m.workers.adopt() {
		m.work(nil)
	}
}

// standBy makes sure that some acceptor other than the caller is in, or
// on its way to, the root's Accept, starting one if none is.
func (a *acceptors) standBy(m *cMux) {
	if a.ready.Load() > 0 || m.acceptStopped() {
		return
	}
	a.live.Add(1)
	a.ready.Add(1)
	go m.lead()
}

// rejoin counts an acceptor that is done with a connection (or with an
// Accept error) in ready again, unless maxReady others are counted: then
// it reports false, and the acceptor exits.
func (a *acceptors) rejoin() bool {
	for {
		n := a.ready.Load()
		if n >= maxReady {
			return false
		}
		if a.ready.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// exit ends an acceptor. Since an acceptor starts another only while it
// runs itself, and enter counts one only while another is counted, live
// reaches 0 once, after which no acceptor starts again.
func (a *acceptors) exit() {
	if a.live.Add(-1) == 0 {
		close(a.done)
	}
}

// fail passes err, which ended an acceptor, to Serve, unless another
// acceptor passed one first.
func (a *acceptors) fail(err error) {
	select {
	case a.errc <- err:
	default:
	}
}

// park leaves st for the next acceptor that takes one.
func (a *acceptors) park(st *acceptState) { a.parked.Store(st) }

// take returns the parked state, or a new one.
func (a *acceptors) take() *acceptState {
	if st := a.parked.Swap(nil); st != nil {
		return st
	}
	return new(acceptState)
}

// The bits of acceptors.turn below the generation.
const (
	turnMatching = 1 << iota // the acceptor is matching a connection
	turnSummoned             // a worker is on its way to takeTurn
	turnGenShift = iota
)

// summonConn, handed to a worker, makes it call takeTurn.
var summonConn = new(MuxConn)

// beginMatch is called by the acceptor before it matches a connection that
// may hold it up; it returns the acceptor's generation, for endMatch.
func (a *acceptors) beginMatch(m *cMux) uint64 {
	for {
		s := a.turn.Load()
		if a.turn.CompareAndSwap(s, s|turnMatching|turnSummoned) {
			if s&turnSummoned == 0 {
				m.dispatch(summonConn)
			}
			return s >> turnGenShift
		}
	}
}

// endMatch is called by an acceptor of generation gen done matching; it
// reports whether it still has the turn to accept.
func (a *acceptors) endMatch(gen uint64) bool {
	for {
		s := a.turn.Load()
		if s>>turnGenShift != gen {
			return false
		}
		if a.turn.CompareAndSwap(s, s&^turnMatching) {
			return true
		}
	}
}

// takeTurn is called by a summoned worker. If the acceptor is matching,
// and accepting has not stopped, it gives the turn to the caller, counted
// as an acceptor, and reports true.
func (a *acceptors) takeTurn(m *cMux) bool {
	for {
		s := a.turn.Load()
		if s&turnMatching == 0 || m.acceptStopped() || !a.enter() {
			if a.turn.CompareAndSwap(s, s&^turnSummoned) {
				return false
			}
			continue
		}
		if a.turn.CompareAndSwap(s, (s>>turnGenShift+1)<<turnGenShift) {
			return true
		}
		a.exit()
	}
}

// enter counts one more acceptor, unless none is left: then accepting has
// ended for good, and it reports false.
func (a *acceptors) enter() bool {
	for {
		n := a.live.Load()
		if n == 0 {
			return false
		}
		if a.live.CompareAndSwap(n, n+1) {
			return true
		}
	}
}
