//go:build unix

package cmux

import (
	"io"
	"net"
	"os"
	"syscall"
)

// waitReadable waits until c has a byte to read, has reached its end, or
// fails (its read deadline passed, it was closed), when c is a socket the
// runtime's poller can wait on; otherwise it returns at once. It reads
// nothing: it lets the mux take a sniff buffer only once bytes are there,
// so that a connection that is silent while it is matched holds no buffer.
// What the wait ended on is left for the next Read to report.
func waitReadable(c net.Conn) {
	if rc, ok := rawConn(c); ok {
		_ = rc.Read(peekReadable)
	}
}

// rawConn returns the RawConn of c if c is a socket of the net package
// itself. A type of the program's that embeds one (and so has
// SyscallConn) may have a Read of its own, with bytes of its own, which
// reading the socket would skip: it is read through its Read alone.
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	var rc syscall.RawConn
	var err error
	switch c := c.(type) {
	case *net.TCPConn:
		rc, err = c.SyscallConn()
	case *net.UnixConn:
		rc, err = c.SyscallConn()
	default:
		return nil, false
	}
	return rc, err == nil
}

// peekReadable is the callback of waitReadable: true once a byte, the end
// of the stream or an error is there. It captures nothing, so passing it
// allocates nothing.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}

// isSocket reports whether readNow can read from c.
func isSocket(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// readNow reads from c into p without waiting, when c is a socket: ok
// reports false if c is not one or has nothing to read yet. The accept loop
// owns r, whose callback is made once, so that a read allocates nothing but
// the socket's RawConn.
func (r *nowReader) readNow(c net.Conn, p []byte) (n int, err error, ok bool) {
	rc, isSock := rawConn(c)
	if !isSock {
		return 0, nil, false
	}
	if r.fn == nil {
		r.fn = r.read
	}
	r.p = p
	if err := rc.Read(r.fn); err != nil {
		// Closed: let a blocking read tell.
		return 0, nil, false
	}
	n, err = r.n, r.err
	r.p, r.err = nil, nil
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		return 0, nil, false
	case err != nil:
		return 0, os.NewSyscallError("read", err), true
	case n == 0 && len(p) > 0:
		return 0, io.EOF, true
	}
	return n, nil, true
}

// nowReader is the state of readNow.
type nowReader struct {
	p   []byte
	n   int
	err error
	fn  func(uintptr) bool
	// misses counts the first reads of connections in a row that found
	// nothing; probe counts the first reads skipped since (see tryFirst).
	misses, probe int
}

// Whether the accept loop tries to read a connection's first bytes: while
// clients are slow to send after connecting (a lightly loaded server), the
// bytes are seldom there when the accept loop gets to the connection, and
// a read that finds nothing is a system call for nothing; under load,
// they are there, and reading them saves the hand-off to a worker. After
// missMax misses in a row the accept loop tries only every probeEvery-th
// connection, until a try finds bytes.
const (
	missMax    = 2
	probeEvery = 16
)

// tryFirst reports whether the accept loop reads the first bytes of the
// connection it is matching, or leaves them to a worker at once.
func (r *nowReader) tryFirst() bool {
	if r.misses < missMax {
		return true
	}
	r.probe++
	return r.probe%probeEvery == 0
}

// firstRead counts the outcome of a first read: whether it found bytes
// (or the end of the stream, or an error).
func (r *nowReader) firstRead(found bool) {
	if found {
		r.misses, r.probe = 0, 0
	} else if r.misses < missMax {
		r.misses++
	}
}

func (r *nowReader) read(fd uintptr) bool {
	r.n, r.err = syscall.Read(int(fd), r.p)
	if r.n < 0 {
		r.n = 0
	}
	return true
}
