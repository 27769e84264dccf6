package cmux

import (
	"io"
	"sync/atomic"

	"github.com/cmux-go/cmux/internal/peek"
)

// All matches a connection that every one of ms matches. They run in
// argument order, each from the first byte, and All says no at the first
// that does: put the matchers that read nothing (RemoteAddrIn,
// LocalAddrIn, the PROXY header matchers) first, so that a connection they
// rule out is not read. All() with no matchers matches every connection.
//
// Through the mux, each of ms runs where it would run alone: this
// package's matchers on the accept loop when the bytes are there, yours
// off it, once per connection. On another io.Reader, All buffers what
// the matchers read (at most DefaultMaxSniffBytes) so that each reads it
// from the first byte.
func All(ms ...Matcher) Matcher {
	ws := make([]MatchWriter, len(ms))
	for i, m := range ms {
		ws[i] = ReadOnly(m)
	}
	a := newAllOf(ws)
	return func(r io.Reader) bool { return a.match(nil, r) }
}

// AllWriters is All for matchers that may write to the peer, for
// MatchWithWriters: for one, gRPC clients from 10.0.0.0/8,
//
//	m.MatchWithWriters(cmux.AllWriters(
//		cmux.ReadOnly(cmux.RemoteAddrIn(netip.MustParsePrefix("10.0.0.0/8"))),
//		cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")))
//
// Each of ms gets the writer AllWriters gets.
func AllWriters(ms ...MatchWriter) MatchWriter {
	a := newAllOf(append([]MatchWriter(nil), ms...))
	return a.match
}

// ReadOnly returns m as a MatchWriter that never writes, to combine it
// with writer matchers in AllWriters.
func ReadOnly(m Matcher) MatchWriter {
	return func(_ io.Writer, r io.Reader) bool { return m(r) }
}

// allOf is the matcher All and AllWriters return. kinds says, for each
// matcher, what the mux knows of it (kindUnknown, kindBuiltin,
// kindOther), as muxListener.kinds does for the listener's matchers.
type allOf struct {
	ms    []MatchWriter
	kinds []atomic.Uint32
}

func newAllOf(ms []MatchWriter) *allOf {
	return &allOf{ms: ms, kinds: make([]atomic.Uint32, len(ms))}
}

// match runs the matchers. Given the mux's sniffer, it keeps the mux's
// contract: it rewinds the sniffer before each matcher, and on the
// accept loop it runs only the matchers known to be this package's,
// stopping as the mux does (blocked) before any other, which then runs on
// the worker that matches the connection again. All is itself taken for
// one of this package's matchers: whatever it runs again on a worker is a
// function of the bytes alone.
func (a *allOf) match(w io.Writer, r io.Reader) bool {
	s, ok := r.(*sniffer)
	if !ok {
		return a.matchReader(w, r)
	}
	ok = true
	for i, m := range a.ms {
		kind := &a.kinds[i]
		if s.now != nil && kind.Load() != kindBuiltin {
			s.blocked, s.deferred = true, true
			ok = false
			break
		}
		s.rewind()
		s.builtin = false
		got := m(w, s)
		if k := kindOf(s.builtin); kind.Load() != k {
			kind.Store(k)
		}
		if !got || s.blocked {
			ok = false
			break
		}
	}
	s.rewind()
	s.builtin = true
	return ok
}

// matchReader runs the matchers on a reader that is not the mux's: each
// reads, from the first byte, what the reader gave the ones before and
// then the reader itself.
func (a *allOf) matchReader(w io.Writer, r io.Reader) bool {
	rr := &replayReader{src: r}
	for _, m := range a.ms {
		if !m(w, &replayCursor{r: rr}) {
			return false
		}
	}
	return true
}

// replayReader keeps what it read from src for every replayCursor.
type replayReader struct {
	src io.Reader
	buf []byte
	err error
}

// replayCursor reads a replayReader from its first byte.
type replayCursor struct {
	r   *replayReader
	off int
}

func (c *replayCursor) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	rr := c.r
	if c.off == len(rr.buf) {
		if rr.err != nil {
			return 0, rr.err
		}
		if len(rr.buf) >= DefaultMaxSniffBytes {
			rr.err = peek.ErrLimit
			return 0, rr.err
		}
		if len(rr.buf) == cap(rr.buf) {
			nb := make([]byte, len(rr.buf), min(max(2*cap(rr.buf), 512), DefaultMaxSniffBytes))
			copy(nb, rr.buf)
			rr.buf = nb
		}
		n, err := rr.src.Read(rr.buf[len(rr.buf):cap(rr.buf)])
		rr.buf = rr.buf[:len(rr.buf)+n]
		rr.err = err
		if c.off == len(rr.buf) {
			return 0, rr.err
		}
	}
	n := copy(p, rr.buf[c.off:])
	c.off += n
	return n, nil
}
