package cmux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cmux-go/cmux/internal/peek"
)

// TLS termination (TerminateTLS): the mux performs the TLS handshake of
// every connection once, on the goroutine that matches it, then matches
// and delivers the decrypted stream.
//
// Goroutines: the handshake and the matching run on the goroutine that
// matches the connection: a worker, or for a connection that is not a
// socket the acceptor that accepted it, from which a worker takes the turn
// to accept should it wait (see acceptors). The expirer bounds both
// (MatchTimeout) by setting a past deadline on the connection; abort
// closes it. Both reach the connection through MuxConn.Conn under the
// mux's connMu, which is why that goroutine swaps the raw connection for
// the *tls.Conn under that lock.

// TerminateTLS makes the mux terminate TLS with cfg on every connection
// before its matchers run: the handshake (certificates, client
// certificates, ALPN) is done once, by the mux, and matchers read the
// decrypted stream. Pass a cfg with NextProtos such as {"h2",
// "http/1.1"} to negotiate ALPN; the mux does not modify cfg.
//
// The handshake never holds up the accepting of other connections, and
// counts against the matching bound (MatchTimeout): a slow handshake is cut
// off there and delays no other connection (without a bound, it may last as
// long as the client keeps the connection open). With the PROXY protocol, the
// header is read first, in the clear. A connection whose handshake fails,
// including one that sends plaintext to the port, is closed and reported
// with an error matching ErrTLSHandshake (to the error handler, the
// NotMatched hook and the logger); a client that sent plaintext HTTP gets
// a 400 response first, as from net/http's TLS server.
//
// On a terminated connection:
//
//   - NegotiatedProtocol matches by the protocol ALPN selected, and
//     TLSServerName by the server name (SNI) of the handshake, without
//     reading; the other ClientHello matchers say no;
//   - the HTTP/2 matchers (HTTP2, HTTP2HeaderField and the like) say no
//     without reading unless ALPN selected "h2", since HTTP/2 over TLS
//     requires it (RFC 9113, section 3.2), and the HTTP/1 matchers (HTTP1,
//     HTTP1Fast, HTTP1HeaderField and the like) say no without reading when
//     it did;
//   - the other matchers read the decrypted stream.
//
// The delivered connection is the *tls.Conn itself when the matchers read
// nothing from it (and so a plain http.Server.Serve fills Request.TLS and
// serves HTTP/2 after ALPN "h2"); otherwise it replays what they read and
// has a ConnectionState method, whatever ExposeConnectionState says. Use
// ServeHTTPS to serve both kinds with an http.Server, and
// github.com/cmux-go/cmux/cmuxgrpc for a grpc.Server that sees the TLS
// state in peer.AuthInfo. ProxyHeader accepts either kind. Hooks see the
// *tls.Conn as ConnEvent.Conn once the handshake is done.
//
// Do not combine TerminateTLS with a root listener made by tls.NewListener:
// that would terminate TLS twice. A nil cfg turns termination off.
func TerminateTLS(cfg *tls.Config) Option {
	return func(c *config) { c.terminate = cfg }
}

// NegotiatedProtocol matches a connection whose TLS handshake, done by the
// mux (TerminateTLS) or by a root listener made by tls.NewListener, selected
// one of protos with ALPN; "" stands for a handshake without ALPN. It reads
// nothing from the connection. On a root listener made by tls.NewListener,
// it completes the handshake first (within the matching bound). On a
// connection without TLS, or a reader that is not the mux's, it says no.
//
//go:noinline
func NegotiatedProtocol(protos ...string) Matcher {
	return func(r io.Reader) bool {
		s, ok := r.(*sniffer)
		if !ok || s.conn == nil {
			return false
		}
		s.builtin = true
		p, ok := s.negotiated()
		if !ok {
			return false
		}
		for _, q := range protos {
			if p == q {
				return true
			}
		}
		return false
	}
}

// negotiated returns the ALPN protocol of s's connection, completing a
// handshake a tls.NewListener root left to the first read. It reports false
// if the connection has no TLS, the handshake fails, or the accept loop
// would have to wait for it (then s.blocked is set).
func (s *sniffer) negotiated() (string, bool) {
	c := s.conn
	if c.terminatedTLS() != nil {
		return c.ext.alpn, true
	}
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		return "", false
	}
	if !tc.ConnectionState().HandshakeComplete {
		if s.now != nil {
			s.blocked, s.deferred = true, true
			return "", false
		}
		if tc.Handshake() != nil {
			return "", false
		}
	}
	return tc.ConnectionState().NegotiatedProtocol, true
}

// termALPN returns the ALPN protocol of the connection read through r if
// the mux terminated its TLS; ok is false otherwise.
func termALPN(r io.Reader) (proto string, ok bool) {
	s, isSniffer := r.(*sniffer)
	if !isSniffer || s.conn == nil || s.conn.terminatedTLS() == nil {
		return "", false
	}
	return s.conn.ext.alpn, true
}

// termServerName returns the server name (SNI) of the connection read
// through r if the mux terminated its TLS; ok is false otherwise.
func termServerName(r io.Reader) (name string, ok bool) {
	s, isSniffer := r.(*sniffer)
	if !isSniffer || s.conn == nil || s.conn.terminatedTLS() == nil {
		return "", false
	}
	s.builtin = true
	return s.conn.ext.term.ConnectionState().ServerName, true
}

// notH2 reports whether r reads a terminated connection that did not
// negotiate "h2": HTTP/2 matchers say no without reading.
func notH2(r io.Reader) bool {
	p, ok := termALPN(r)
	if ok {
		r.(*sniffer).builtin = true
	}
	return ok && p != "h2"
}

// isH2 reports whether r reads a terminated connection that negotiated
// "h2": HTTP/1 matchers say no without reading.
func isH2(r io.Reader) bool {
	p, ok := termALPN(r)
	if ok {
		r.(*sniffer).builtin = true
	}
	return ok && p == "h2"
}

// ErrTLSHandshake is matched (errors.Is) by the error the handler, the
// NotMatched hook and the logger get when a mux made with TerminateTLS
// closes a connection whose TLS handshake failed. The error also matches
// the cause: ErrMatchTimeout if the handshake outlasted the matching bound,
// ErrNoBytes if the client closed without sending anything, and the error
// of crypto/tls (such as a tls.RecordHeaderError for plaintext).
var ErrTLSHandshake = errors.New("cmux: TLS handshake failed")

type tlsHandshakeError struct {
	remote    any
	why       error // ErrMatchTimeout, ErrNoBytes or nil
	plaintext bool  // the client spoke plaintext HTTP
	err       error // crypto/tls's error
}

func (e *tlsHandshakeError) Error() string {
	s := fmt.Sprintf("cmux: TLS handshake with %v failed", e.remote)
	switch {
	case e.plaintext:
		s += " (plaintext HTTP sent to the TLS port)"
	case e.why != nil:
		s += " (" + e.why.Error() + ")"
	}
	return s + ": " + e.err.Error()
}

func (e *tlsHandshakeError) Unwrap() []error {
	if e.why != nil {
		return []error{ErrTLSHandshake, e.why, e.err}
	}
	return []error{ErrTLSHandshake, e.err}
}

// terminate performs the TLS handshake of c on the goroutine matching it
// and makes c read and write through the *tls.Conn.
func (m *cMux) terminate(c *MuxConn) error {
	s := c.sniff
	raw := &termConn{Conn: c.Conn, mc: c}
	if len(s.buf) > 0 {
		// Read past a PROXY header: the start of the handshake.
		raw.pre = append([]byte(nil), s.buf...)
		raw.got = true
	}
	// Matchers read the decrypted stream from its first byte.
	s.release()
	s.off, s.err, s.limited, s.guard = 0, nil, false, peek.Guard{}
	tc := tls.Server(raw, m.terminateCfg)
	m.connMu.Lock()
	x := c.extState()
	c.Conn, x.term = tc, tc
	m.connMu.Unlock()
	err := tc.Handshake()
	if err == nil {
		x.alpn = tc.ConnectionState().NegotiatedProtocol
		return nil
	}
	e := &tlsHandshakeError{remote: remoteAddr(c), err: err}
	switch {
	case isTimeoutErr(err):
		e.why = ErrMatchTimeout
	case !raw.got:
		e.why = ErrNoBytes
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
		e.plaintext = true
		_ = rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to a TLS port.\n")
	}
	return e
}

// looksLikeHTTP reports whether the first five bytes of a connection start
// an HTTP/1 request or the HTTP/2 preface.
func looksLikeHTTP(b []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "DELET", "OPTIO", "PATCH", "TRACE", "CONNE", "PRI *"} {
		if string(b) == m {
			return true
		}
	}
	return false
}

// termConn is the raw connection under the *tls.Conn of a terminated
// connection. It replays the bytes read before the handshake (after a PROXY
// header), notes whether the client sent anything, reports the PROXY
// header's addresses, and leads muxConnOf from the *tls.Conn to its
// MuxConn.
type termConn struct {
	net.Conn
	mc  *MuxConn
	pre []byte
	got bool // some byte was read; only written before delivery
}

func (c *termConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		if c.pre = c.pre[n:]; len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.got {
		c.got = true
	}
	return n, err
}

// RemoteAddr returns the client's address of a PROXY header, or the raw
// connection's.
func (c *termConn) RemoteAddr() net.Addr {
	if p := c.mc.proxyInfo(); p != nil && p.Source != nil {
		return p.Source
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the destination address of a PROXY header, or the raw
// connection's.
func (c *termConn) LocalAddr() net.Addr {
	if p := c.mc.proxyInfo(); p != nil && p.Destination != nil {
		return p.Destination
	}
	return c.Conn.LocalAddr()
}

// CloseWrite half-closes the raw connection, for tls.Conn.CloseWrite.
func (c *termConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("cmux: %T has no CloseWrite: %w", c.Conn, errors.ErrUnsupported)
}

// NetConn returns the raw connection.
func (c *termConn) NetConn() net.Conn { return c.Conn }

// terminated returns what to deliver of c, a terminated connection whose
// matching ended: the *tls.Conn if the matchers read nothing and the mux
// wrote nothing (c.replay is empty, no SETTINGS fix-up is pending), c with
// its TLS state otherwise.
func (c *MuxConn) terminated() net.Conn {
	if len(c.replay) == 0 && !c.wroteSettings() {
		return c.ext.term
	}
	return &tlsMuxConn{c}
}
