package cmuxgrpc

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc/mem"
)

// readyConn is a connection of the mux that grpc-go reads through
// ReadOnReady, the optional method its transport looks for (see grpc-go's
// internal/transport/readyreader): wait until the socket is readable, then
// take a buffer from grpc-go's pool and read into it.
//
// While the mux still has bytes to give (those it read while matching, or
// the SETTINGS acknowledgement it takes out of the stream), reads go
// through the MuxConn: the sniffed bytes are there at once, so the buffer
// is held only for the moment of the copy, except while the mux waits for
// that acknowledgement, which a client sends as soon as it reads the
// SETTINGS. Once the MuxConn is direct, reads go to the socket's raw
// connection.
//
// grpc-go's reader goroutine is the only caller of ReadOnReady and owns
// the fields below; every other method is the MuxConn's.
type readyConn struct {
	*cmux.MuxConn
	raw syscall.RawConn

	// The read in progress, kept here so that a read allocates nothing:
	// what rawRead asks of read, and what read did.
	bufSize int
	pool    mem.BufferPool
	buf     *[]byte
	n       int
	err     error
	read    func(fd uintptr) bool
}

func readyConnOf(mc *cmux.MuxConn) net.Conn {
	var sc syscall.Conn
	switch nc := mc.NetConn().(type) {
	case *net.TCPConn:
		sc = nc
	case *net.UnixConn:
		sc = nc
	default:
		return mc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return mc
	}
	c := &readyConn{MuxConn: mc, raw: raw}
	c.read = c.readFD
	return c
}

// NetConn returns the MuxConn, so that cmux.ProxyHeader and code looking
// for the connection the mux delivered find it.
func (c *readyConn) NetConn() net.Conn { return c.MuxConn }

// testHookReadOnReady, if set, is called at each ReadOnReady; the tests
// use it to see that grpc-go still reads through it.
var testHookReadOnReady func()

// ReadOnReady waits until c has bytes to read, takes a buffer of bufSize
// bytes from pool, and reads into it. It returns the buffer, which the
// caller puts back into pool, and the number of bytes read; on error, it
// has put the buffer back and returns nil, 0.
func (c *readyConn) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	if testHookReadOnReady != nil {
		testHookReadOnReady()
	}
	if !c.MuxConn.Direct() {
		buf := pool.Get(bufSize)
		n, err := c.MuxConn.Read(*buf)
		if n == 0 {
			pool.Put(buf)
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, 0, err
		}
		return buf, n, err
	}
	c.bufSize, c.pool = bufSize, pool
	err := c.raw.Read(c.read)
	buf, n, rerr := c.buf, c.n, c.err
	c.pool, c.buf, c.n, c.err = nil, nil, 0, nil
	if err == nil {
		err = rerr
	}
	if err != nil {
		if buf != nil {
			pool.Put(buf)
		}
		return nil, 0, err
	}
	if n == 0 {
		pool.Put(buf)
		return nil, 0, io.EOF
	}
	return buf, n, nil
}

// readFD is the function the raw connection's Read calls: it returns false
// to wait for the socket to become readable.
func (c *readyConn) readFD(fd uintptr) bool {
	c.buf = c.pool.Get(c.bufSize)
	var n int
	var err error
	for {
		// syscall, not x/sys/unix: the race detector's view of the buffer
		// must be the net package's.
		n, err = syscall.Read(int(fd), *c.buf)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK {
		c.pool.Put(c.buf)
		c.buf = nil
		return false
	}
	if err != nil {
		c.pool.Put(c.buf)
		c.buf = nil
		c.err = os.NewSyscallError("read", err)
		return true
	}
	c.n = n
	return true
}
