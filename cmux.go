package cmux

import (
	"context"
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
// The value New and NewWithOptions return is also a Shutdowner.
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

// Shutdowner is implemented by the CMux that New and NewWithOptions return
// (the CMux interface keeps the methods of github.com/soheilhy/cmux v0.1.5,
// so that programs implementing it still compile):
//
//	err := m.(cmux.Shutdowner).Shutdown(ctx)
type Shutdowner interface {
	// Shutdown stops the mux gracefully. It stops accepting and closes
	// the root listener (unlike Close), so that Serve returns (with an
	// error matching ErrServerClosed) once every connection already
	// accepted has been matched and queued for its child listener, or
	// dropped. Children hand out what was queued for them, then their
	// Accept returns ErrServerClosed. Shutdown never touches a connection
	// a child's Accept returned.
	//
	// Shutdown returns nil once Serve has returned and every queued
	// connection has been accepted by its server; the mux is then closed
	// (see Close). If ctx ends first, Shutdown closes the mux, which
	// closes the connections still being matched or queued, and returns
	// ctx.Err(). Shutdown may be called concurrently with Serve, Close and
	// itself.
	//
	// Call Shutdown first, then the servers' own graceful stops
	// (http.Server.Shutdown, grpc.Server.GracefulStop), which finish the
	// requests on the connections they accepted.
	Shutdown(ctx context.Context) error
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
