package cmux

import (
	"io"
	"sync"

	"github.com/cmux-go/cmux/internal/h2"
)

// The HTTP/2 behaviour is described in the package documentation (doc.go).
// The wire format is internal/h2's; this file holds the matchers and what
// the mux keeps per connection.

// HTTP2 matches the HTTP/2 client connection preface. It says no on the
// first byte that differs from the preface.
//
//go:noinline
func HTTP2() Matcher {
	return func(r io.Reader) bool { return !notH2(r) && h2.MatchPreface(asPeeker(r)) }
}

// HTTP2HeaderField matches an HTTP/2 connection whose first request has the
// header field name with exactly value. It reads the preface and the
// frames that follow, up to the end of the first header block. Names are
// compared byte for byte, as in github.com/soheilhy/cmux v0.1.5: HTTP/2
// sends them in lower case, so pass a lower-case name ("content-type").
// If the field appears more than once, any occurrence may match.
//
// Through the mux, when the client has sent its SETTINGS and waits, the mux
// writes its SETTINGS frame so that clients that wait for it (gRPC) go on;
// see "HTTP/2" in the package documentation. So HTTP2HeaderField and
// HTTP2MatchHeaderFieldSendSettings behave alike on a mux; they differ only
// when called on a reader that is not the mux's, where this one never
// writes.
//
//go:noinline
func HTTP2HeaderField(name, value string) Matcher {
	return func(r io.Reader) bool { return matchH2Field(nil, r, name, value, false) }
}

// HTTP2HeaderFieldPrefix is HTTP2HeaderField for a field whose value starts
// with valuePrefix.
//
//go:noinline
func HTTP2HeaderFieldPrefix(name, valuePrefix string) Matcher {
	return func(r io.Reader) bool { return matchH2Field(nil, r, name, valuePrefix, true) }
}

// HTTP2MatchHeaderFieldSendSettings is HTTP2HeaderField as a MatchWriter:
// it answers the client's SETTINGS with a SETTINGS frame, so that clients
// that wait for the server's SETTINGS before they send HEADERS (grpc-go,
// grpc-java and others) can be matched. Through the mux the frame is written
// at most once per connection, however many such matchers run, and its ACK
// never reaches the server that gets the connection, so any HTTP/2 server
// can follow it in the chain.
//
//go:noinline
func HTTP2MatchHeaderFieldSendSettings(name, value string) MatchWriter {
	return func(w io.Writer, r io.Reader) bool { return matchH2Field(w, r, name, value, false) }
}

// HTTP2MatchHeaderFieldPrefixSendSettings is
// HTTP2MatchHeaderFieldSendSettings for a field whose value starts with
// valuePrefix.
//
//go:noinline
func HTTP2MatchHeaderFieldPrefixSendSettings(name, valuePrefix string) MatchWriter {
	return func(w io.Writer, r io.Reader) bool { return matchH2Field(w, r, name, valuePrefix, true) }
}

// matchH2Field reports whether the first header block of the connection
// read through r has field name with value (or a value starting with it).
// w, if not nil, receives a SETTINGS frame when r is not the mux's.
func matchH2Field(w io.Writer, r io.Reader, name, value string, prefix bool) bool {
	if notH2(r) {
		return false
	}
	var f *h2.Flight
	if s, ok := r.(*sniffer); ok {
		s.builtin = true
		if len(s.Buffered()) == 0 {
			// The state is taken once bytes are there: a connection that
			// sends nothing holds none.
			if _, err := s.Peek(1); err != nil {
				return false
			}
		}
		if b := s.Buffered(); b[0] != 'P' || len(b) > 1 && b[1] != 'R' {
			// Not a preface ("PRI * HTTP/2.0..."): decided without the
			// state, which an HTTP/1 request or a TLS ClientHello would
			// take from its pool and give back for nothing.
			return false
		}
		// One parse per connection, shared by every HTTP/2 matcher.
		st := s.conn.h2State()
		if !st.parsed {
			st.parsed = true
			st.flight.Run(s, h2SettingsWriter{s.conn})
		}
		f = &st.flight
	} else {
		st := getH2State()
		defer putH2State(st)
		var sw h2.SettingsWriter
		if ws, ok := w.(*sniffer); ok {
			// The mux's writer with a wrapped reader: write through the
			// connection, so that the frame is written once and its ACK
			// filtered.
			sw = h2SettingsWriter{ws.conn}
		} else if w != nil {
			sw = &onceWriter{w: w}
		}
		st.flight.Run(asPeeker(r), sw)
		f = &st.flight
	}
	if f.Err != nil {
		return false
	}
	for i := range f.Fields.NumFields() {
		n, v := f.Fields.FieldAt(i)
		if string(n) != name {
			continue
		}
		if prefix && len(v) >= len(value) && string(v[:len(value)]) == value ||
			!prefix && string(v) == value {
			return true
		}
	}
	return false
}

// connH2 is what the mux keeps of a connection's HTTP/2 first flight. While
// the connection is matched, it holds the parse its HTTP/2 matchers share;
// it goes back to its pool when matching ends, unless the mux wrote its
// SETTINGS frame: then the delivered connection keeps it for the two
// fix-ups that frame calls for, in each direction.
type connH2 struct {
	flight h2.Flight
	parsed bool // flight holds the parse of this connection
	// wroteSettings is set once the mux has written its SETTINGS frame,
	// after ackNotBefore bytes had arrived.
	wroteSettings bool
	ackNotBefore  int
	ack           h2.AckFilter        // drops the client's ACK of the mux's SETTINGS; under MuxConn.rmu
	settings      h2.SettingsRewriter // fixes the server's first SETTINGS; under MuxConn.wmu
	// held[:heldN] is the server's first write, rewritten, when it was its
	// connection preface alone (h2.ServerPrefaceOnly), with any later
	// writes of WINDOW_UPDATE frames alone, up to heldMax bytes: the mux
	// holds them back to send them with the server's next write, which
	// is due at once, since the server owes an ACK of the client's
	// SETTINGS (RFC 9113 §6.5.3), which the mux has seen. The client
	// needs no SETTINGS of the server's to go on: it has the mux's. So
	// both ends make one system call fewer for them. MuxConn.endWrites
	// writes what is held as the connection closes. Under MuxConn.wmu.
	held  [heldMax]byte
	heldN uint8
}

// heldMax bounds the server preface the mux holds back: room for a
// SETTINGS frame of 11 settings and a WINDOW_UPDATE frame.
const heldMax = 88

// heldWriter writes into st.held, which has room (see MuxConn.Write).
type heldWriter struct{ st *connH2 }

func (w heldWriter) Write(p []byte) (int, error) {
	w.st.heldN = uint8(copy(w.st.held[:], p))
	return len(p), nil
}

var h2Pool = sync.Pool{New: func() any { return new(connH2) }}

func getH2State() *connH2 { return h2Pool.Get().(*connH2) }

func putH2State(st *connH2) {
	st.flight.Reset()
	flight := st.flight
	*st = connH2{flight: flight}
	h2Pool.Put(st)
}

// h2State returns c's HTTP/2 state, from the pool on first use.
func (c *MuxConn) h2State() *connH2 {
	if c.h2 == nil {
		c.h2 = getH2State()
	}
	return c.h2
}

// forgetH2 drops the shared parse, which a matching stopped for lack of
// bytes leaves incomplete, and which is of no use once matching ends. The
// state goes back to its pool unless the mux wrote SETTINGS.
func (c *MuxConn) forgetH2() {
	switch {
	case c.h2 == nil:
	case c.h2.wroteSettings:
		// Kept for the fix-ups; the parse's buffers go.
		c.h2.flight, c.h2.parsed = h2.Flight{}, false
	default:
		putH2State(c.h2)
		c.h2 = nil
	}
}

// wroteSettings reports whether the mux wrote its SETTINGS frame to c.
func (c *MuxConn) wroteSettings() bool { return c.h2 != nil && c.h2.wroteSettings }

// writeSettings writes the mux's SETTINGS frame once per connection.
func (c *MuxConn) writeSettings() {
	if c.wroteSettings() {
		return
	}
	if c.sniff.now != nil {
		// The client waits: not for the accept loop.
		c.sniff.blocked, c.sniff.deferred = true, true
		return
	}
	st := c.h2State()
	st.wroteSettings = true
	// An ACK that began before this write cannot be of it.
	st.ackNotBefore = len(c.sniff.Buffered())
	_, _ = c.Conn.Write(h2.MuxSettings)
}

// h2SettingsWriter is the h2.SettingsWriter of a connection of the mux.
type h2SettingsWriter struct{ c *MuxConn }

func (w h2SettingsWriter) WriteSettings() { w.c.writeSettings() }

// onceWriter writes the SETTINGS frame to a writer that is not the mux's.
type onceWriter struct {
	w     io.Writer
	wrote bool
}

func (o *onceWriter) WriteSettings() {
	if !o.wrote {
		o.wrote = true
		_, _ = o.w.Write(h2.MuxSettings)
	}
}
