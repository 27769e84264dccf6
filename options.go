package cmux

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// DefaultMatchTimeout is how long a connection may take to be matched unless
// MatchTimeout or SetReadTimeout says otherwise.
const DefaultMatchTimeout = 30 * time.Second

// An Option configures a mux made by NewWithOptions.
type Option func(*config)

type config struct {
	maxSniff     int
	matchTimeout time.Duration
	proxy        *proxyConfig // nil: no PROXY protocol
	independent  bool         // IndependentListeners
	exposeTLS    bool         // ExposeConnectionState
	maxMatching  int          // MaxMatching; 0: no cap
	maxPerSource int          // MaxMatchingPerSource; 0: no cap
	hooks        *Hooks       // WithHooks
	logger       *slog.Logger // WithLogger
	terminate    *tls.Config  // TerminateTLS; nil: no termination
	concurrent   bool         // ConcurrentAccept
}

// MaxSniffBytes bounds the bytes the mux reads from a connection while
// matching it (DefaultMaxSniffBytes unless set). Once a connection has sent
// that many, matchers that want more read ErrSniffLimit and say no; the
// connection can still match a matcher that needs no more bytes, such as
// Any(). n below 64 is taken as 64.
func MaxSniffBytes(n int) Option {
	return func(c *config) { c.maxSniff = max(n, 64) }
}

// MatchTimeout bounds the time from accepting a connection to the decision
// of its matchers (DefaultMatchTimeout unless set; zero means no bound).
// When it expires, matchers that read read a timeout error and say no, so
// the connection can still match Any(); writes of writer matchers fail
// too. The mux clears the deadline it set before it delivers the
// connection. SetReadTimeout sets the same bound. A matched connection then
// waits for room in its listener's queue (1024 connections) until the
// listener accepts it, is closed, or the mux stops.
func MatchTimeout(d time.Duration) Option {
	return func(c *config) { c.matchTimeout = max(d, 0) }
}

// IndependentListeners makes child listeners independent of each other and
// of the root listener: closing one stops deliveries to it alone (its
// Accept returns ErrListenerClosed, the connections queued for it are
// closed, and later connections that match it are closed), while the root
// listener and the other children go on.
//
// Without this option a child's Close closes the root listener, as in
// github.com/soheilhy/cmux v0.1.5: Serve then returns, and every child's
// Accept returns ErrListenerClosed. Programs rely on that to shut down:
// stopping one server (http.Server.Shutdown, grpc.Server.GracefulStop)
// closes its listener and so ends Serve.
func IndependentListeners() Option {
	return func(c *config) { c.independent = true }
}

// ExposeConnectionState makes the delivered connection of a mux whose
// underlying connections have a ConnectionState() tls.ConnectionState
// method (a root listener made by tls.NewListener) have that method too.
// net/http then fills Request.TLS and serves HTTP/2 only after ALPN "h2".
//
// Without this option the delivered connection is a *MuxConn, which has
// no ConnectionState method, as in github.com/soheilhy/cmux v0.1.5: net/http
// treats it as a plain connection (so h2c works inside the decrypted stream)
// and Request.TLS is nil.
func ExposeConnectionState() Option {
	return func(c *config) { c.exposeTLS = true }
}

// MaxMatching caps the connections being matched at once at n (n <= 0: no
// cap, the default). At the cap the mux stops accepting until a connection
// is matched or dropped, so that the kernel's listen backlog pushes back on
// clients instead of the mux accepting and dropping; the error handler
// gets an error matching ErrMatchingLimit each time the cap is reached. A
// connection counts from its Accept until its matchers decide, not while
// it waits in a child's queue.
func MaxMatching(n int) Option {
	return func(c *config) { c.maxMatching = max(n, 0) }
}

// ConcurrentAccept lets the mux call the root listener's Accept from two
// goroutines at once, as net.Listener allows; v0.1.5 calls it from one.
// Use it only with a root whose Accept is safe for concurrent use. The
// Accepted hook and the error handler's calls for Accept errors may then
// come from two goroutines at once too.
//
// It matters only for roots whose connections are not sockets of the net
// package (a *tls.Conn, an in-memory connection), which the mux cannot
// read without the risk of waiting. By default the goroutine that
// accepted such a connection matches it (a TLS handshake included) after
// waking a worker that takes over the accepting if it gets to run before
// the matching is done (as it does once the matching waits); on a busy
// processor one wake-up covers many connections, and on an idle one the
// worker runs alongside. With ConcurrentAccept a second goroutine
// already waits in Accept instead, which spares that wake-up. Either way
// a silent connection delays no other. It changes nothing under
// MaxMatching, whose slots are taken before Accept, nor, on Unix-like
// systems, for a *net.TCPListener or *net.UnixListener root; a root of
// another type that hands out sockets has two goroutines in its Accept
// only until the first connection. Elsewhere the mux cannot read a socket
// without the risk of waiting either, and takes it for a connection that
// is not one.
//
// If Serve returns on an error of the root's Accept that leaves the root
// open (one that is not temporary, or that the error handler refused),
// the other goroutines may still be in Accept, unless the root has a
// SetDeadline method the mux can use to interrupt them: a connection one
// of them then accepts is closed, and they end when the root is closed.
func ConcurrentAccept() Option {
	return func(c *config) { c.concurrent = true }
}

// MaxMatchingPerSource caps the connections being matched at once from one
// source IP address (the root listener's remote address; with the PROXY
// protocol, the proxy's) at k (k <= 0: no cap, the default). A connection
// over the cap is closed at once and reported to the error handler with an
// error matching ErrMatchingLimit.
func MaxMatchingPerSource(k int) Option {
	return func(c *config) { c.maxPerSource = max(k, 0) }
}
