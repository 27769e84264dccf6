package cmux

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Hooks are functions the mux calls as it handles each connection, for
// metrics and tracing. Any of them may be nil. They run on the mux's
// goroutines (the accept loop among them): they must be quick and must not
// read from or write to the connection. With no hooks set (the default),
// the mux does none of the work of filling a ConnEvent.
type Hooks struct {
	// Accepted is called when the root listener returned a connection.
	Accepted func(ConnEvent)
	// Matched is called when a matcher said yes, before the connection is
	// queued for its listener.
	Matched func(ConnEvent)
	// NotMatched is called when the mux closes a connection it accepted
	// without delivering it; ConnEvent.Err says why.
	NotMatched func(ConnEvent)
	// Delivered is called when a child listener's Accept returns the
	// connection; ConnEvent.Elapsed is the time it spent queued.
	Delivered func(ConnEvent)
}

// A ConnEvent tells a hook about one connection.
type ConnEvent struct {
	// Conn is the connection the root listener returned (with
	// TerminateTLS, the *tls.Conn over it once the handshake is done).
	Conn net.Conn
	// Listener is the name of the listener the connection matched (see
	// Name), or "" if it has none or did not match; ListenerIndex is its
	// place in registration order, -1 if none.
	Listener      string
	ListenerIndex int
	// MatcherIndex is the place of the matcher that said yes among its
	// listener's matchers, -1 if none.
	MatcherIndex int
	// Sniffed is the number of bytes the mux read while matching.
	Sniffed int
	// Elapsed is, for Matched and NotMatched, the time from Accept to the
	// decision; for Delivered, the time spent in the listener's queue.
	Elapsed time.Duration
	// WroteSettings reports whether the mux wrote its HTTP/2 SETTINGS
	// frame to the client (see "HTTP/2" in the package documentation).
	WroteSettings bool
	// Err is, for NotMatched, why: an error matching (errors.Is) one of
	// ErrNoBytes, ErrMatchTimeout, ErrSniffLimit, ErrNoMatch,
	// ErrProxyHeader, ErrTLSHandshake, ErrMatcherPanic, ErrMatchingLimit
	// or ErrListenerClosed.
	Err error
}

// WithHooks has the mux call h's functions (see Hooks).
func WithHooks(h Hooks) Option {
	return func(c *config) { c.hooks = &h }
}

// WithLogger has the mux log to l what it drops: connections it closed
// without delivering them (closed before sending anything at Debug level;
// timed out at Info; not matched, over a limit or with a bad PROXY header
// at Warn; a matcher's panic at Error) and errors of the root listener's
// Accept (Warn if temporary, Error if not). It logs nothing for a
// connection it delivers. Without this option the mux logs nothing, as in
// github.com/soheilhy/cmux v0.1.5.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// Name gives l, a child listener of a mux, a name that ConnEvent.Listener
// and the mux's log messages use, and returns l. It does nothing to other
// listeners.
func Name(l net.Listener, name string) net.Listener {
	if ml, ok := l.(*muxListener); ok {
		ml.name.Store(&name)
	}
	return l
}

// The reasons a connection is not delivered, matched by errors.Is against
// ErrNotMatched and the errors hooks and the error handler get.
var (
	// ErrNoBytes: the client closed the connection before sending a
	// byte, as TCP health checks do.
	ErrNoBytes = errors.New("cmux: closed before sending anything")
	// ErrMatchTimeout: matching took longer than MatchTimeout.
	ErrMatchTimeout = errors.New("cmux: matching timed out")
	// ErrNoMatch: no matcher wanted what the client sent.
	ErrNoMatch = errors.New("cmux: no matcher matched")
)

// observe is the mux's hooks and logger; nil if it has neither.
type observe struct {
	hooks  Hooks
	logger *slog.Logger
}

func (m *cMux) hookAccepted(c *MuxConn) {
	if o := m.obs; o != nil {
		c.hookAt = time.Now().UnixNano()
		if o.hooks.Accepted != nil {
			o.hooks.Accepted(ConnEvent{Conn: c.Conn, ListenerIndex: -1, MatcherIndex: -1})
		}
	}
}

func (m *cMux) hookMatched(c *MuxConn, li, mi int) {
	o := m.obs
	now := time.Now().UnixNano()
	accepted := c.hookAt
	c.hookAt, c.queued = now, true
	if o.hooks.Matched != nil {
		l := (*m.lst.Load())[li]
		o.hooks.Matched(ConnEvent{
			Conn: c.Conn, Listener: l.nameOf(), ListenerIndex: li, MatcherIndex: mi,
			Sniffed: len(c.sniff.buf), Elapsed: time.Duration(now - accepted),
			WroteSettings: c.wroteSettings(),
		})
	}
}

// dropped tells the hooks and the logger that c was closed undelivered
// for err.
func (m *cMux) dropped(c *MuxConn, err error, listener string) {
	o := m.obs
	// Before delivery the time counts from Accept; after, from the match.
	sniffed, since := 0, c.hookAt
	if !c.queued {
		if s := c.sniff; s != nil {
			sniffed = len(s.buf)
		}
	}
	if o.hooks.NotMatched != nil {
		o.hooks.NotMatched(ConnEvent{
			Conn: c.Conn, Listener: listener, ListenerIndex: -1, MatcherIndex: -1,
			Sniffed: sniffed, Elapsed: time.Duration(time.Now().UnixNano() - since),
			WroteSettings: c.wroteSettings(), Err: err,
		})
	}
	if o.logger != nil {
		level := slog.LevelWarn
		switch {
		case errors.Is(err, ErrNoBytes):
			level = slog.LevelDebug
		case errors.Is(err, ErrMatchTimeout):
			level = slog.LevelInfo
		case errors.Is(err, ErrMatcherPanic):
			level = slog.LevelError
		}
		attrs := []slog.Attr{slog.Any("remote", remoteAddr(c.Conn)), slog.Int("sniffed", sniffed), slog.Any("err", err)}
		if listener != "" {
			attrs = append(attrs, slog.String("listener", listener))
		}
		o.logger.LogAttrs(context.Background(), level, "cmux: connection dropped", attrs...)
	}
}

// acceptFailed logs an error of the root listener's Accept.
func (m *cMux) acceptFailed(err error, temporary bool) {
	if o := m.obs; o != nil && o.logger != nil {
		level := slog.LevelError
		if temporary {
			level = slog.LevelWarn
		}
		o.logger.LogAttrs(context.Background(), level, "cmux: accept failed", slog.Any("err", err), slog.Bool("temporary", temporary))
	}
}

func (m *cMux) hookDelivered(l *muxListener, c net.Conn) {
	mc := muxConnOf(c)
	if mc == nil {
		return
	}
	m.obs.hooks.Delivered(ConnEvent{
		Conn: mc.Conn, Listener: l.nameOf(), ListenerIndex: l.index, MatcherIndex: -1,
		Elapsed: time.Duration(time.Now().UnixNano() - mc.hookAt), WroteSettings: mc.wroteSettings(),
	})
}
