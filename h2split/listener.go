package h2split

import (
	"net"
	"sync"
	"sync/atomic"
)

// listener hands the backend ends of backend connections to a backend
// server's Accept.
type listener struct {
	s    *Splitter
	b    Backend
	used atomic.Bool
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close makes Accept fail and refuses new streams for the backend; the
// backend connections already accepted go on.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *listener) Addr() net.Addr { return splitAddr(l.b) }

// splitAddr is the address of a backend listener.
type splitAddr Backend

func (a splitAddr) Network() string { return "h2split" }
func (a splitAddr) String() string  { return "h2split:" + Backend(a).String() }

// backendConn is the backend's end of a backend connection: it reports the
// client connection's addresses, so that the backend's peer information
// (grpc peer.FromContext, http.Request.RemoteAddr) names the real client.
type backendConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *backendConn) LocalAddr() net.Addr  { return c.local }
func (c *backendConn) RemoteAddr() net.Addr { return c.remote }
