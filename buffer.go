package cmux

import (
	"errors"
	"io"
	"sync"

	"github.com/cmux-go/cmux/internal/peek"
)

// DefaultMaxSniffBytes is the default number of bytes the mux reads from a
// connection while matching it. See MaxSniffBytes.
const DefaultMaxSniffBytes = 64 << 10

// minSniffBuffer is the size of the first buffer a connection gets. Most first
// flights (an HTTP/1 request header, a gRPC preface and HEADERS, a TLS
// ClientHello) fit; larger ones move to bigger pooled buffers.
const minSniffBuffer = 2 << 10

// ErrSniffLimit is the error matchers read once a connection has sent more
// bytes than the mux may buffer while matching it (see MaxSniffBytes).
var ErrSniffLimit = peek.ErrLimit

// maxClasses bounds the number of buffer size classes.
const maxClasses = 6

// bufferPools hands out sniff buffers in size classes growing eightfold
// from minSniffBuffer to the sniff limit. A connection starts in the
// smallest class and moves one class up each time its buffer is full, so
// the memory it holds follows the bytes it has sent.
type bufferPools struct {
	sniffers sync.Pool // of *sniffer
	n        int       // classes in use
	sizes    [maxClasses]int
	pools    [maxClasses]sync.Pool
}

func newBufferPools(max int) *bufferPools {
	bp := &bufferPools{}
	for s := minSniffBuffer; bp.n < maxClasses; s *= 8 {
		if s >= max || bp.n == maxClasses-1 {
			s = max
		}
		size := s
		bp.sizes[bp.n] = size
		bp.pools[bp.n].New = func() any {
			b := make([]byte, size)
			return &b
		}
		bp.n++
		if size == max {
			break
		}
	}
	return bp
}

// get returns a buffer of class i.
func (bp *bufferPools) get(i int) *[]byte { return bp.pools[i].Get().(*[]byte) }

// put returns a buffer of class i to its pool.
func (bp *bufferPools) put(i int, b *[]byte) { bp.pools[i].Put(b) }

// sniffer holds the bytes a connection has sent while it is being matched,
// so that every matcher and finally the delivered connection see them from
// the first byte. A sniffer is used by one goroutine at a time.
//
// Matchers get the sniffer as their io.Reader (and io.Writer). Read starts at
// the first byte for each matcher (the mux calls rewind between matchers)
// and reads from the connection only when the buffered bytes are used up.
// Built-in matchers use it as their peek.Peeker instead, whose Peek never
// reads more than they ask for when that many bytes are already buffered.
type sniffer struct {
	conn *MuxConn
	mux  *cMux // nil for a sniffer of tests
	// resumeL and resumeM are where matching goes on after the accept
	// loop stopped (the listener, and its matcher), or the matcher that
	// said yes. (The rest of the matching phase's state is the MuxConn's.)
	resumeL, resumeM int32
	hello            *helloParse // shared TLS ClientHello parse; nil if none
	route            routeParse  // shared parse of the first HTTP request (hostpath.go)

	pools *bufferPools
	class int     // size class of bufp
	bufp  *[]byte // pooled backing array, nil before the first read
	buf   []byte  // (*bufp)[:n]: the bytes read so far
	max   int     // bound on len(buf)
	off   int     // Read cursor of the current matcher
	err   error   // sticky error of the connection's Read
	// old[i] is the buffer of class i once outgrown; it goes back to its
	// pool only when matching ends, since a matcher may still hold a slice
	// of it.
	old [maxClasses - 1]*[]byte
	// guard stops a connection that returns nothing and no error again and
	// again from making the mux spin.
	guard peek.Guard
	// now is set while the accept loop matches the connection itself:
	// reads must not wait, and writes are not made. A read that would wait
	// or a write sets blocked, and the connection goes to a worker, which
	// matches it again from the first byte with what was read.
	now     *nowReader
	nowSock bool // the connection is a socket readNow can read
	// spare is set while the accept loop owns the sniffer, from its
	// matching until the connection leaves it with the sniffer: free
	// then leaves the sniffer in *spare, the accept loop's, rather than
	// in the pool. Whoever hands the sniffer to another goroutine clears
	// spare first.
	spare **sniffer
	// readable is set when the worker has just waited for the socket to
	// be readable (see serveConn): the first fill reads without waiting
	// again, which would cost a system call. (A worker waits with a peek
	// that holds nothing, rather than reading in the poller's callback,
	// which would need per-worker state on the heap while it waits: an
	// idle connection holds no more than its MuxConn.)
	readable bool
	// blocked is set, while the accept loop matches, by a read that would
	// wait: later reads block without trying again.
	blocked bool
	// deferred is set with blocked when the accept loop stops for a
	// matcher that must run on a worker, or for a write, rather than for
	// bytes.
	deferred bool
	// timed is set by a matcher that waits on time (Silent): its decision
	// is not a function of the bytes alone.
	timed bool
	// builtin is set by the matchers of this package when they are given
	// the sniffer: see matcherKind.
	builtin bool
	limited bool // a matcher wanted more than the sniff limit
}

// reason says why no matcher matched the connection.
func (s *sniffer) reason() error {
	switch {
	case s.limited:
		return ErrSniffLimit
	case s.err != nil && isTimeoutErr(s.err):
		return ErrMatchTimeout
	case s.err != nil && len(s.buf) == 0:
		return ErrNoBytes
	}
	return ErrNoMatch
}

// errWouldBlock is what matchers read when the accept loop's matching
// stops for lack of bytes; they never see it on a worker.
var errWouldBlock = errors.New("cmux: no bytes yet")

func (s *sniffer) init(c *MuxConn, pools *bufferPools, max int) {
	s.conn = c
	s.pools = pools
	s.max = max
}

// newSniffer returns a sniffer for c from the pools.
func (bp *bufferPools) newSniffer(c *MuxConn, max int) *sniffer {
	s, _ := bp.sniffers.Get().(*sniffer)
	if s == nil {
		s = new(sniffer)
	}
	s.init(c, bp, max)
	return s
}

// free returns the buffers and s to their pools.
func (s *sniffer) free() {
	s.release()
	pools, spare := s.pools, s.spare
	*s = sniffer{}
	if spare != nil && *spare == nil {
		*spare = s
		return
	}
	if pools != nil {
		pools.sniffers.Put(s)
	}
}

// rewind makes the next Read start again at the first byte.
func (s *sniffer) rewind() { s.off = 0 }

// consume drops the first n buffered bytes (a PROXY protocol header, before
// any matcher ran): matchers and the delivered connection see the bytes
// after them, and they no longer count against the sniff limit.
func (s *sniffer) consume(n int) {
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	s.off = 0
}

// Read implements io.Reader for matchers.
func (s *sniffer) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.off == len(s.buf) {
		if err := s.fill(s.off + 1); s.off == len(s.buf) {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

// Write implements io.Writer for writer matchers: it writes to the peer.
func (s *sniffer) Write(p []byte) (int, error) {
	if s.now != nil {
		s.blocked, s.deferred = true, true
		return 0, errWouldBlock
	}
	return s.conn.Conn.Write(p)
}

// Peek returns the first n bytes of the connection, reading from it as
// needed. If fewer than n bytes can be had, it returns all there are and the
// error that stopped it (io.EOF, a timeout, ErrSniffLimit, ...).
func (s *sniffer) Peek(n int) ([]byte, error) {
	if n <= len(s.buf) {
		return s.buf[:n], nil
	}
	err := s.fill(n)
	if n > len(s.buf) {
		return s.buf, err
	}
	return s.buf[:n], nil
}

// Buffered returns the bytes read so far without reading.
func (s *sniffer) Buffered() []byte { return s.buf }

// fill reads from the connection until at least n bytes are buffered. It
// reads whatever the connection has in one call, so one Read usually brings
// a whole first flight.
func (s *sniffer) fill(n int) error {
	for len(s.buf) < n {
		if s.err != nil {
			return s.err
		}
		if len(s.buf) >= s.max {
			s.limited = true
			return ErrSniffLimit
		}
		if s.now != nil {
			if s.blocked || !s.fillNow() {
				s.blocked = true
				return errWouldBlock
			}
			continue
		}
		if len(s.buf) == 0 && s.bufp == nil {
			// No buffer before the first byte is there: wait for it on
			// a socket; read it into first on anything else. (A buffer
			// emptied by consume, after a PROXY header, takes what
			// follows.)
			if !isSocket(s.conn.Conn) {
				m, err := s.conn.Conn.Read(s.conn.first[:])
				s.took(m, err)
				continue
			}
			if !s.readable {
				waitReadable(s.conn.Conn)
			}
			s.readable = false
		}
		if len(s.buf) == cap(s.buf) {
			s.grow()
		}
		m, err := s.conn.Conn.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+m]
		s.err = s.guard.Check(m, err)
	}
	return nil
}

// took takes the result of a read of the connection into s.conn.first,
// the first read of a connection that is not a socket. The bytes stay
// there, and s.buf is a slice of s.conn.first, until a matcher wants more:
// grow then moves them to a pooled buffer. A matcher that decides on them
// (a prefix, an HTTP/1 method) costs no buffer, and the delivered
// connection replays them from first.
func (s *sniffer) took(m int, err error) {
	if m > 0 {
		s.buf = s.conn.first[:m]
	}
	s.err = s.guard.Check(m, err)
}

// fillNow reads what the connection has without waiting; it reports
// false if that is nothing.
func (s *sniffer) fillNow() bool {
	if !s.nowSock {
		return false
	}
	empty := s.bufp == nil
	if empty && !s.now.tryFirst() {
		return false
	}
	if len(s.buf) == cap(s.buf) {
		s.grow()
	}
	m, err, ok := s.now.readNow(s.conn.Conn, s.buf[len(s.buf):cap(s.buf)])
	if empty {
		s.now.firstRead(ok)
	}
	if !ok {
		if empty {
			s.release()
		}
		return false
	}
	s.buf = s.buf[:len(s.buf)+m]
	if err != nil {
		s.err = err
	}
	return true
}

// grow moves the buffered bytes to a pooled buffer of the next class up.
// It is called only when the buffer is full and below the sniff limit, so
// there is a next class.
func (s *sniffer) grow() {
	if s.bufp == nil {
		// s.buf is empty or in s.conn.first (see took).
		s.bufp, s.class = s.pools.get(0), 0
		s.buf = (*s.bufp)[:copy(*s.bufp, s.buf)]
		return
	}
	nb := s.pools.get(s.class + 1)
	copy(*nb, s.buf)
	s.old[s.class] = s.bufp
	s.buf = (*nb)[:len(s.buf)]
	s.bufp = nb
	s.class++
}

// releaseOld returns the buffers outgrown while matching to their pools.
func (s *sniffer) releaseOld() {
	// Only the classes below the current one can have been outgrown.
	for i := range s.old[:s.class] {
		if b := s.old[i]; b != nil {
			s.pools.put(i, b)
			s.old[i] = nil
		}
	}
}

// release returns every buffer to its pool. The sniffer holds no bytes
// afterwards.
func (s *sniffer) release() {
	s.releaseOld()
	if s.bufp != nil {
		s.pools.put(s.class, s.bufp)
		s.bufp = nil
	}
	s.buf = nil
}

// asPeeker returns the peek.Peeker behind r: the mux's own sniffer, or for
// a reader that is not the mux's (a matcher called by user code) one that
// reads r into a private buffer of at most DefaultMaxSniffBytes.
func asPeeker(r io.Reader) peek.Peeker {
	if s, ok := r.(*sniffer); ok {
		s.builtin = true
		return s
	}
	return peek.NewReader(r, DefaultMaxSniffBytes)
}
