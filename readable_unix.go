//go:build unix

package cmux

import (
	"net"
	"syscall"
)

// waitReadable waits until c has a byte to read, has reached its end, or
// fails (its read deadline passed, it was closed), when c is a socket the
// runtime's poller can wait on; otherwise it returns at once. It reads
// nothing: it lets the mux take a sniff buffer only once bytes are there,
// so that a connection that is silent while it is matched holds no buffer.
// What the wait ended on is left for the next Read to report.
func waitReadable(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(peekReadable)
}

// peekReadable is the callback of waitReadable: true once a byte, the end
// of the stream or an error is there. It captures nothing, so passing it
// allocates nothing.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
