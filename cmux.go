package cmux

import (
	"io"
	"net"
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
//
// The value New and NewWithOptions return also has a method
// Shutdown(context.Context) error, reached through an interface assertion
// (see the Shutdown example).
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
	// the error handler returns false, or Close or Shutdown is called. It
	// returns the error that stopped it (see "Errors and shutdown" in the
	// package documentation). Serve may be called once; later calls return
	// an error at once.
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
	return newMux(l, &cfg)
}
