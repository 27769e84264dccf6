// Package cmux serves many protocols on one TCP port.
//
// Wrap a listener with New, ask for one child listener per protocol with
// Match or MatchWithWriters, hand the children to their servers (grpc-go,
// net/http, net/rpc, crypto/tls, anything that takes a net.Listener) and call
// Serve. The mux accepts each connection, reads its first bytes into a
// replay buffer, runs the matchers in registration order and delivers the
// connection, bytes intact, to the first listener whose matcher says yes.
//
// cmux is a drop-in replacement for github.com/soheilhy/cmux: every exported
// identifier of its v0.1.5 keeps its name and signature, and by default a
// v0.1.5 program observes the same behaviour, except where that version
// hangs, crashes, breaks a protocol exchange or grows without bound: HTTP/2
// connections survive any mix of writer matchers and HTTP/2 servers,
// sniffing is bounded in bytes (MaxSniffBytes) and time (MatchTimeout),
// Close aborts connections still being matched, and the delivered
// connection keeps what the underlying one can do (sendfile, splice,
// half-close). Other changes are options of NewWithOptions
// (IndependentListeners, ExposeConnectionState, ProxyProtocol, MaxMatching,
// MaxMatchingPerSource, ConcurrentAccept) or methods v0.1.5 did not have
// (Shutdown).
//
// # Matching
//
// Listeners are tried in the order Match and MatchWithWriters were called,
// the matchers of one call in argument order; the first matcher that says
// yes wins. Every matcher reads the connection from its first byte, whatever
// earlier matchers read. The built-in matchers decide as early as the bytes
// allow: they say no on the first byte that rules them out and never wait
// for a byte they do not need. A connection no matcher wants is closed and
// reported to the error handler as ErrNotMatched.
//
// Matchers run on the mux's accept loop when the bytes they need are
// already there (on sockets, the mux reads what has arrived, without
// waiting, once a matcher asks for bytes) or when they need none, and
// otherwise on a worker goroutine, so that a connection whose bytes have
// not arrived never delays another. A connection that is not a socket,
// which cannot be read without the risk of waiting, is matched by the
// goroutine that accepted it, which first wakes a worker that takes over
// the accepting if it gets to run before the matching is done (as it does
// once the matching waits): the root listener's Accept is still called by
// one goroutine at a time, as v0.1.5 does. (With
// ConcurrentAccept, another goroutine waits in Accept meanwhile instead.)
// Only the matchers of this package run on the accept loop while it
// accepts: a matcher of yours runs where the connection cannot hold up
// accepting, once per connection. A matcher of this package may run on
// the accept loop and again elsewhere when the first bytes arrive in
// pieces; wrapping one in a function of yours makes that function run
// twice then.
//
// The child listener's Accept returns a *MuxConn (see its documentation for
// connections with TLS state) that reads exactly what the client sent, from
// the first byte; once the bytes read while matching are consumed, reads go
// straight to the underlying connection.
//
// # HTTP/2
//
// The HTTP/2 header matchers (HTTP2HeaderField, HTTP2HeaderFieldPrefix and
// their SendSettings variants) need the client's first HEADERS frame, but
// gRPC clients send only the connection preface and their SETTINGS, then
// wait for the server's SETTINGS before they send HEADERS. So, when such a
// matcher has read a valid preface and a client SETTINGS frame that is not
// an ACK, and would otherwise wait for more bytes, the mux writes one
// SETTINGS frame of its own, declaring SETTINGS_NO_RFC7540_PRIORITIES = 1.
// That is the only thing the mux ever writes, at most once per connection,
// however many matchers run; a client whose first flight already holds its
// HEADERS gets nothing.
//
// That frame would upset the server that finally gets the connection: the
// client ACKs it, and a server that receives an ACK of SETTINGS it never
// sent fails the connection (golang.org/x/net/http2 answers PROTOCOL_ERROR).
// So on a connection where the mux wrote SETTINGS:
//
//   - reads of the delivered connection drop the client's first SETTINGS
//     ACK frame sent after the mux's SETTINGS, wherever it falls and however
//     it is split across reads, and pass every other byte on untouched;
//   - the server's first SETTINGS frame, which the client sees after the
//     mux's, is kept consistent with it: any value of
//     SETTINGS_NO_RFC7540_PRIORITIES, which RFC 9218 forbids to change after
//     the first SETTINGS frame, is written as the 1 the mux declared;
//   - when the server's first write holds its connection preface alone (its
//     SETTINGS frame, and WINDOW_UPDATE frames if any, up to 88 bytes), the
//     mux holds it back, with any writes of WINDOW_UPDATE frames alone that
//     follow, and writes it with the server's next write: in one system
//     call on a TCP or Unix socket, and on any connection when that write
//     is up to 4 KiB. The client needs it no sooner: it has the mux's
//     SETTINGS. And the server writes again at once, since it owes an ACK
//     of the client's SETTINGS, which came before the HEADERS the mux
//     matched. Close and CloseWrite write what is held first, unless a
//     Write is in progress.
//
// Delivery never waits for the ACK. The mux declares nothing else, so the
// client keeps the RFC 9113 defaults until the real server's SETTINGS
// arrive. It does not declare SETTINGS_ENABLE_CONNECT_PROTOCOL: clients that
// look for it only in the first SETTINGS frame (such as Go's) do not use
// extended CONNECT (RFC 8441) on connections where the mux wrote SETTINGS.
// Any server may get the connection afterwards: grpc-go,
// golang.org/x/net/http2, net/http with unencrypted HTTP/2, or a byte proxy
// to one of them.
//
// # TLS
//
// TLS matches the record layer of a TLS handshake. TLSServerName, TLSALPN,
// TLSVersion and TLSClientHello read the whole ClientHello without
// terminating TLS: each server behind the mux performs the handshake with
// its own configuration. To terminate TLS once for every protocol instead,
// use the option TerminateTLS: the mux performs the handshake on a worker,
// within the matching bound, and matchers read the decrypted stream;
// NegotiatedProtocol routes by ALPN, and ServeHTTPS serves HTTP/1.1 and
// HTTP/2 with Request.TLS set (github.com/cmux-go/cmux/cmuxgrpc does the
// same for grpc-go). Wrapping the root listener with tls.NewListener also
// works: the delivered connection then has a ConnectionState method, so
// that net/http fills Request.TLS, only with ExposeConnectionState.
//
// # Routing
//
// HTTPHost and HTTPPathPrefix route on the host and path of a connection's
// first request, HTTP/1.x or h2c alike. RemoteAddrIn and LocalAddrIn route
// on addresses (with the PROXY protocol, those the header carries), and
// ProxyHeaderTLV, ProxyAWSVPCEndpoint and ProxyHeaderFunc on the PROXY
// header itself; they read nothing. All and AllWriters combine matchers
// into one that wants every one of them ("gRPC from 10.0.0.0/8").
//
// # Errors and shutdown
//
// Serve returns when the root listener's Accept fails with an error that is
// not temporary (temporary ones are retried with a back-off), when the error
// handler returns false, or after Close. Every error it returns because the
// root listener or the mux was closed satisfies errors.Is(err,
// net.ErrClosed) and contains "use of closed network connection"; after
// Close it also satisfies errors.Is(err, ErrServerClosed).
//
// Close makes Serve return at once, closes the connections still being
// matched and those queued for child listeners, and makes every child's
// Accept return ErrServerClosed; it does not close the root listener.
// Shutdown, on the value New returns (through an interface assertion),
// stops gracefully instead: it closes the root listener, lets every
// connection already accepted be matched and handed to its server, and
// returns once the servers have accepted them (see its documentation and
// the Shutdown example).
// Closing a child listener closes the root listener (as in v0.1.5, whose
// children embedded it), so stopping any one server ends Serve; with
// IndependentListeners it stops deliveries to that child alone. When Serve
// returns, whatever stopped it, the connections queued for children and not
// accepted are closed, and every child's Accept returns ErrListenerClosed
// (ErrServerClosed after Close). Once Serve has returned, every goroutine the
// mux started has exited (where the root listener's Accept can be
// interrupted with SetDeadline, as TCP and Unix listeners' can; otherwise
// once the root listener is closed).
//
// # Limits
//
// A connection may send at most MaxSniffBytes while it is matched, and must
// be matched within MatchTimeout. Past either bound matchers read an error
// and say no, so the connection can still go to Any(). A matcher that panics
// has its connection closed and the panic reported as an error matching
// ErrMatcherPanic.
package cmux
