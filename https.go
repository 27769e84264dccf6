package cmux

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"sync"
)

// ServeHTTPS serves HTTP/1.1 and HTTP/2 with srv on l, a child listener of
// a mux made with TerminateTLS, so that every request has Request.TLS set,
// with no HTTP/2 wiring left to the caller. It returns srv.Serve's error.
//
// The mux delivers two kinds of connections (see TerminateTLS). A *tls.Conn,
// from which the matchers read nothing, is what net/http serves as TLS
// itself: it fills Request.TLS and serves HTTP/2 after ALPN "h2". A
// connection whose first bytes the matchers read (to tell gRPC from other
// HTTP/2 by content-type, say) is not a *tls.Conn, which is all net/http
// looks for to serve HTTP/2 over TLS; ServeHTTPS hands srv such a
// connection as a plain one, and has srv set Request.TLS from its
// ConnectionState method. To do so it configures srv before serving:
//
//   - it adds UnencryptedHTTP2 to srv.Protocols (HTTP1 and HTTP2 too if
//     srv.Protocols is nil), so that net/http's own HTTP/2 server serves
//     those that negotiated "h2" (Go 1.24 and later; before, such
//     connections are closed, and logged to srv.ErrorLog);
//   - it wraps srv.Handler and srv.ConnContext.
//
// Every connection is srv's: srv.Shutdown, srv.Close, srv.ConnState and
// the timeouts apply to all. Configure srv (Handler, Protocols, ConnContext,
// timeouts) before calling ServeHTTPS, leave srv.TLSNextProto nil, and
// serve only terminated connections with it: UnencryptedHTTP2 also lets a
// client without TLS use HTTP/2 with prior knowledge. ServeHTTPS may serve
// one srv on several listeners at once; do not serve srv otherwise
// meanwhile.
func ServeHTTPS(srv *http.Server, l net.Listener) error {
	configureHTTPS(srv)
	return srv.Serve(&httpsListener{Listener: l, srv: srv})
}

// httpsMu serializes configureHTTPS, so that ServeHTTPS may serve one
// server on several listeners at once.
var httpsMu sync.Mutex

// configureHTTPS configures srv for ServeHTTPS, once.
func configureHTTPS(srv *http.Server) {
	httpsMu.Lock()
	defer httpsMu.Unlock()
	if _, ok := srv.Handler.(tlsStateHandler); !ok {
		srv.Handler = tlsStateHandler{srv.Handler}
		cc := srv.ConnContext
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if cc != nil {
				ctx = cc(ctx, c)
			}
			if sc, ok := c.(*stateConn); ok {
				ctx = context.WithValue(ctx, tlsStateKey{}, sc.state)
			}
			return ctx
		}
	}
	enableSniffedH2(srv)
}

// httpsListener hands srv.Serve a *tls.Conn as it is, and a connection with
// TLS state that is not one (and so that net/http would not serve HTTP/2
// on) as a stateConn.
type httpsListener struct {
	net.Listener
	srv *http.Server
}

func (l *httpsListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if _, ok := c.(*tls.Conn); ok {
			return c, nil
		}
		cs, ok := c.(connectionStater)
		if !ok {
			return c, nil
		}
		st := cs.ConnectionState()
		if st.NegotiatedProtocol == "h2" && !sniffedH2OK {
			c.Close()
			logf := log.Printf
			if l.srv.ErrorLog != nil {
				logf = l.srv.ErrorLog.Printf
			}
			logf("cmux: ServeHTTPS: HTTP/2 connection from %v closed: serving it needs Go 1.24", c.RemoteAddr())
			continue
		}
		return &stateConn{Conn: c, state: &st}, nil
	}
}

// stateConn is a connection with TLS state whose ConnectionState method
// net/http must not see (it would then serve HTTP/1 alone); ConnContext
// passes the state on to tlsStateHandler.
type stateConn struct {
	net.Conn
	state *tls.ConnectionState
}

// NetConn returns the connection the mux delivered.
func (c *stateConn) NetConn() net.Conn { return c.Conn }

// CloseWrite sends the TLS close_notify alert, for net/http's closing of a
// connection.
func (c *stateConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tlsStateKey is the context key of the TLS state of a stateConn.
type tlsStateKey struct{}

// tlsStateHandler sets Request.TLS from the context when net/http left it
// nil, then calls the handler it wraps (http.DefaultServeMux if nil).
type tlsStateHandler struct{ h http.Handler }

func (h tlsStateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = st
		}
	}
	next := h.h
	if next == nil {
		next = http.DefaultServeMux
	}
	next.ServeHTTP(w, r)
}
