package cmuxgrpc

import (
	"net"

	"github.com/cmux-go/cmux"
)

// Listener returns a listener whose Accept returns the connections of l, a
// child listener of a cmux mux, in a form grpc-go reads the way it reads a
// bare *net.TCPConn: it takes a read buffer from its pool only once bytes
// have arrived, and gives it back once they are used, so an idle connection
// holds no read buffer. Served directly, a connection from the mux keeps
// grpc-go's 32 KiB read buffer for as long as it is open.
//
// Pass the result to grpc.Server.Serve:
//
//	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
//	go grpcServer.Serve(cmuxgrpc.Listener(grpcL))
//
// Connections other than those of a cmux child listener over a TCP or Unix
// socket (a TLS root listener's, for one) are returned unchanged; so are all
// connections on systems other than Linux, where grpc-go reads every
// connection through a buffer of its own.
func Listener(l net.Listener) net.Listener { return listener{l} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Conn(c), nil
}

// Conn returns c in the form Listener's Accept returns it: c is a
// connection a cmux child listener delivered.
func Conn(c net.Conn) net.Conn {
	mc, ok := c.(*cmux.MuxConn)
	if !ok {
		return c
	}
	return readyConnOf(mc)
}
