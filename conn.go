package cmux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmux-go/cmux/internal/h2"
)

// MuxConn is the connection a child listener's Accept returns (but see
// below for ExposeConnectionState). Its reads yield every byte the
// client sent, from the first one: first those the mux read while matching,
// then the live stream, straight from the underlying connection. Writes go
// straight to the peer, but on an HTTP/2 connection where the mux wrote its
// SETTINGS (see Write).
//
// The embedded Conn is the underlying connection. Reading from it directly
// skips the bytes the mux buffered; writing to it directly, before the
// first Write of such an HTTP/2 connection has gone out, puts bytes before
// those of that Write.
//
// MuxConn passes through what the underlying connection can do:
// ReadFrom and WriteTo use the underlying connection's, so sendfile and
// splice still work; CloseRead and CloseWrite half-close it, and return an
// error matching errors.ErrUnsupported when it has no such method.
//
// MuxConn has no ConnectionState method, even when the underlying
// connection is a *tls.Conn. With ExposeConnectionState, when the underlying
// connection has a ConnectionState() tls.ConnectionState method, Accept
// returns instead a value that embeds *MuxConn and adds that method, so that
// net/http fills Request.TLS; use NetConn or interface assertions, not a
// type assertion to *MuxConn, to reach the underlying connection of such a
// mux. A mux made with TerminateTLS delivers the *tls.Conn, or such a value
// whose underlying connection is the *tls.Conn (see TerminateTLS).
type MuxConn struct {
	net.Conn

	// sniff holds what matching needs, then the buffer behind replay; it
	// goes back to its pool, and sniff is nil, once no replayed byte is
	// left. Before delivery one goroutine owns it; after, rmu guards it.
	sniff *sniffer
	// h2 is the HTTP/2 state: the parse HTTP/2 matchers share while
	// matching, and after it the fix-ups of the SETTINGS frame the mux
	// wrote; nil if there is none (see connH2).
	h2 *connH2
	// ext is what only some connections have: a PROXY protocol header, a
	// TLS connection the mux terminated; nil if none.
	ext *connExt

	replay []byte // sniffed bytes not yet read, under rmu

	// direct is set once reads need nothing but the underlying connection:
	// the replay buffer is drained and no HTTP/2 fix-up is pending.
	direct atomic.Bool
	rmu    sync.Mutex // guards replay and h2.ack

	// wdirect is set while writes need nothing but the underlying conn.
	wdirect atomic.Bool
	wmu     sync.Mutex // guards h2.settings

	// h2Ends counts the directions, reads and writes, still using c.h2
	// after delivery when the mux wrote SETTINGS (see h2Done).
	h2Ends atomic.Int32

	// The matching phase, for the mux, under its connMu: slot is 1 + the
	// index of c in the mux's inflight list, 0 if it is not in it.
	// deadline ends the phase (Unix nanoseconds; 0: no bound): the mux's
	// expirer sets a past deadline on the connection once it has passed
	// (expired); until then the connection has no deadline of the mux's.
	// These are here, not in the sniffer, because a connection that has
	// sent nothing waits for its first bytes without a sniffer.
	slot     int32
	deadline int64
	// For Hooks only: hookAt (Unix nanoseconds) is when the mux accepted
	// c, and once it matched (queued), when it queued c.
	hookAt  int64
	expired bool
	queued  bool
	// first takes the first read of a connection that is not a socket, so
	// that one silent while it is matched holds no sniff buffer, and one
	// whose matchers decide on its first bytes (an HTTP/2 preface is 24)
	// needs none at all (see sniffer.took). Its length fills the struct
	// up to its allocation size class (TestMuxConnSize).
	first [30]byte
}

// h2Done is called once by each direction of a delivered connection whose
// HTTP/2 fix-ups it ended: by Read as it sets direct, under rmu, and by
// Write as it sets wdirect, under wmu. The second returns c.h2 to its pool.
// Neither direction reads c.h2 once its flag is set (each checks it again
// under its lock), so nothing else holds c.h2 then.
func (c *MuxConn) h2Done() {
	if c.h2Ends.Load() > 0 && c.h2Ends.Add(-1) == 0 {
		st := c.h2
		c.h2 = nil
		putH2State(st)
	}
}

// connExt is what the mux keeps of a connection only when there is some,
// apart from MuxConn so that other connections pay nothing for it.
type connExt struct {
	proxy *ProxyInfo // the PROXY protocol header the mux consumed; nil if none
	// term is the TLS connection the mux terminated (TerminateTLS), nil if
	// none; the MuxConn's Conn is then term. alpn is the protocol its ALPN
	// selected.
	term *tls.Conn
	alpn string
}

// extState returns c.ext, made on first use. c's goroutine owns c then.
func (c *MuxConn) extState() *connExt {
	if c.ext == nil {
		c.ext = new(connExt)
	}
	return c.ext
}

// proxyInfo returns the PROXY protocol header the mux consumed from c, or
// nil.
func (c *MuxConn) proxyInfo() *ProxyInfo {
	if c.ext == nil {
		return nil
	}
	return c.ext.proxy
}

// terminatedTLS returns the TLS connection the mux terminated for c, or
// nil.
func (c *MuxConn) terminatedTLS() *tls.Conn {
	if c.ext == nil {
		return nil
	}
	return c.ext.term
}

// forgetParses drops the parses the matchers shared, which a matching
// stopped for lack of bytes leaves incomplete.
func (c *MuxConn) forgetParses() {
	c.forgetH2()
	if s := c.sniff; s != nil {
		s.route = routeParse{}
	}
	if s := c.sniff; s != nil && s.hello != nil {
		putHelloParse(s.hello)
		s.hello = nil
	}
}

// dropSniffer returns c's sniffer and its buffers to their pools. Before
// delivery c's goroutine calls it; after, with rmu held.
func (c *MuxConn) dropSniffer() {
	if s := c.sniff; s != nil {
		c.sniff = nil
		s.free()
	}
}

// endMatching ends the matching phase of c. If c is to be delivered, it
// makes the sniffed bytes the start of what c reads; otherwise it returns
// every buffer.
func (c *MuxConn) endMatching(delivered bool) {
	c.forgetParses()
	if !delivered {
		c.dropSniffer()
		return
	}
	c.sniff.releaseOld()
	c.replay = c.sniff.buf
	if len(c.replay) == 0 {
		c.replay = nil
		c.dropSniffer()
	} else {
		c.sniff.spare = nil // the server's goroutine frees it
	}
	if c.wroteSettings() {
		c.h2.ack.Start(c.h2.ackNotBefore)
		c.h2.settings.Start()
		c.h2Ends.Store(2)
	} else {
		c.wdirect.Store(true)
	}
	c.direct.Store(len(c.replay) == 0 && !c.filtersAck())
}

// filtersAck reports whether reads still look for the client's ACK of the
// mux's SETTINGS. c.rmu is held, or c is not delivered yet.
func (c *MuxConn) filtersAck() bool { return c.h2 != nil && c.h2.ack.Active() }

// deliverable returns the connection to hand to the child listener: c, or,
// with ExposeConnectionState, c with the underlying connection's TLS state.
func (c *MuxConn) deliverable(exposeTLS bool) net.Conn {
	if c.terminatedTLS() != nil {
		return c.terminated()
	}
	if exposeTLS {
		if _, ok := c.Conn.(connectionStater); ok {
			return &tlsMuxConn{c}
		}
	}
	return c
}

// Read reads the bytes the mux buffered while matching, then from the
// underlying connection.
func (c *MuxConn) Read(p []byte) (int, error) {
	if c.direct.Load() {
		return c.Conn.Read(p)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.direct.Load() {
		// Another Read ended the mux's part meanwhile; c.h2 may be gone.
		return c.Conn.Read(p)
	}
	var n int
	var err error
	if c.filtersAck() {
		n, err = c.h2.ack.Read(p, c.readReplay)
	} else {
		n, err = c.readReplay(p)
	}
	if len(c.replay) == 0 && !c.filtersAck() {
		c.direct.Store(true)
		c.h2Done()
	}
	return n, err
}

// Direct reports whether reads of c go straight to the underlying
// connection (NetConn) now: every byte the mux read while matching has been
// read, and the mux has nothing left to take out of what the client sends
// (such as the acknowledgement of a SETTINGS frame the mux wrote for an
// HTTP/2 writer matcher). Once Direct reports true it always does. From
// then on, reading NetConn is the same as reading c: code that reads the
// socket its own way, for example taking a buffer only once bytes have
// arrived, may switch to it.
func (c *MuxConn) Direct() bool { return c.direct.Load() }

// readReplay reads the buffered bytes, then the underlying connection.
// c.rmu is held.
func (c *MuxConn) readReplay(p []byte) (int, error) {
	if len(c.replay) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.replay)
	c.replay = c.replay[n:]
	if len(c.replay) == 0 {
		c.replay = nil
		c.dropSniffer()
	}
	return n, nil
}

// Close closes the underlying connection. The bytes buffered while
// matching and not read yet go back to the mux's pool: a server that closes
// without reading costs no buffer. A server preface that Write holds back
// is written first, within 5 seconds, unless a Write is in progress.
func (c *MuxConn) Close() error {
	var err error
	if c.wdirect.Load() {
		err = c.Conn.Close()
	} else {
		err = c.endWrites(c.Conn.Close)
	}
	if !c.direct.Load() {
		// A Read blocked on the underlying connection holds rmu: it
		// returns now that the connection is closed.
		c.rmu.Lock()
		if c.replay != nil {
			c.replay = nil
			c.dropSniffer()
		}
		c.rmu.Unlock()
	}
	return err
}

// Write writes p to the peer. On an HTTP/2 connection where the mux wrote
// its SETTINGS, a first write that holds the server's connection preface
// alone is held back and goes out with the next write (see "HTTP/2" in the
// package documentation): Write then returns at once, whatever the write
// deadline.
func (c *MuxConn) Write(p []byte) (int, error) {
	if c.wdirect.Load() {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wdirect.Load() {
		// Another Write ended the mux's part meanwhile; c.h2 may be gone.
		return c.Conn.Write(p)
	}
	if c.h2 == nil {
		// A MuxConn the mux did not deliver (made by hand).
		return c.Conn.Write(p)
	}
	st := c.h2
	switch {
	case st.settings.Untouched() && len(p) <= len(st.held) && h2.ServerPrefaceOnly(p):
		// Held until the next write (see connH2.held).
		return st.settings.Write(heldWriter{st}, p)
	case st.heldN > 0 && int(st.heldN)+len(p) <= len(st.held) && h2.WindowUpdatesOnly(p):
		// More of the preface, written on its own.
		st.heldN += uint8(copy(st.held[st.heldN:], p))
		return len(p), nil
	}
	var n int
	var err error
	if st.heldN > 0 {
		n, err = c.writeHeld(p)
	} else {
		n, err = st.settings.Write(c.Conn, p)
	}
	if !st.settings.Active() && st.heldN == 0 {
		c.wdirect.Store(true)
		c.h2Done()
	}
	return n, err
}

// writeBatchMax bounds the write that writeHeld copies into one buffer with
// the held preface: a copy and a write cost less than a writev (whose
// iovec slice the runtime allocates per connection).
const writeBatchMax = 4 << 10

// writeHeld writes the held server preface, then p, in one system call
// where it can, and returns how much of p it wrote. What a failed write
// leaves of the preface stays held, for a retry (after a deadline the
// server moved, say) to write first. c.wmu is held.
func (c *MuxConn) writeHeld(p []byte) (int, error) {
	st := c.h2
	held := st.held[:st.heldN]
	var n int
	var err error
	if len(p) <= writeBatchMax {
		// One write (for a *tls.Conn, one record while it fits in one).
		n, err = c.Conn.Write(append(append(make([]byte, 0, len(held)+len(p)), held...), p...))
	} else {
		// One writev on the net package's connections, two writes on others.
		bufs := net.Buffers{held, p}
		var m int64
		m, err = bufs.WriteTo(c.Conn)
		n = int(m)
	}
	if n < len(held) {
		st.heldN = uint8(copy(st.held[:], held[n:]))
		return 0, err
	}
	st.heldN = 0
	return n - len(held), err
}

// flushTimeout bounds the write of a held server preface as c closes, as
// crypto/tls bounds the close_notify alert's: a peer that reads nothing
// does not keep Close waiting.
var flushTimeout = 5 * time.Second

// endWrites ends the mux's part in writes as c closes with close (its
// Close or CloseWrite): it writes the held server preface, if any, then
// has later writes go straight to the underlying connection, which fails
// them. A Write in progress holds c.wmu, and may be blocked in the kernel:
// then endWrites closes first, which ends that Write, and what is held is
// lost with the connection.
func (c *MuxConn) endWrites(close func() error) error {
	if c.wdirect.Load() {
		return close()
	}
	var err error
	if c.wmu.TryLock() {
		if !c.wdirect.Load() && c.h2 != nil && c.h2.heldN > 0 {
			held := c.h2.held[:c.h2.heldN]
			c.h2.heldN = 0
			_ = c.Conn.SetWriteDeadline(time.Now().Add(flushTimeout))
			_, _ = c.Conn.Write(held)
		}
		err = close()
	} else {
		err = close()
		c.wmu.Lock()
	}
	if !c.wdirect.Load() {
		c.wdirect.Store(true)
		c.h2Done()
	}
	c.wmu.Unlock()
	return err
}

// ReadFrom copies r to the peer, with the underlying connection's ReadFrom
// (sendfile, splice) when it has one.
func (c *MuxConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok && c.wdirect.Load() {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c}, r)
}

// WriteTo copies what the peer sends to w: the buffered bytes first, then
// with the underlying connection's WriteTo (splice) when it has one.
func (c *MuxConn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if !c.direct.Load() {
		buf := make([]byte, 32<<10)
		for !c.direct.Load() {
			m, err := c.Read(buf)
			if m > 0 {
				wm, werr := w.Write(buf[:m])
				n += int64(wm)
				if werr != nil {
					return n, werr
				}
				if wm != m {
					return n, io.ErrShortWrite
				}
			}
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
		}
	}
	var m int64
	var err error
	if wt, ok := c.Conn.(io.WriterTo); ok {
		m, err = wt.WriteTo(w)
	} else {
		m, err = io.Copy(w, readerOnly{c.Conn})
	}
	return n + m, err
}

// CloseWrite shuts down the writing side of the underlying connection,
// after writing a server preface that Write holds back, as Close does.
func (c *MuxConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("cmux: %T has no CloseWrite: %w", c.Conn, errors.ErrUnsupported)
	}
	return c.endWrites(cw.CloseWrite)
}

// CloseRead shuts down the reading side of the underlying connection.
func (c *MuxConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return fmt.Errorf("cmux: %T has no CloseRead: %w", c.Conn, errors.ErrUnsupported)
}

// NetConn returns the underlying connection.
func (c *MuxConn) NetConn() net.Conn { return c.Conn }

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// muxConnOf returns the *MuxConn behind c, a connection the mux delivers
// (a *MuxConn, a *tlsMuxConn, or the *tls.Conn of TerminateTLS), or nil.
func muxConnOf(c net.Conn) *MuxConn {
	switch c := c.(type) {
	case *MuxConn:
		return c
	case *tlsMuxConn:
		return c.MuxConn
	case *tls.Conn:
		// Delivered by a mux that terminated TLS (TerminateTLS).
		if t, ok := c.NetConn().(*termConn); ok {
			return t.mc
		}
	}
	return nil
}

// tlsMuxConn is the delivered connection when the underlying one has TLS
// state.
type tlsMuxConn struct{ *MuxConn }

// ConnectionState returns the underlying connection's TLS state.
func (c *tlsMuxConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(connectionStater).ConnectionState()
}

type writerOnly struct{ io.Writer }

type readerOnly struct{ io.Reader }
