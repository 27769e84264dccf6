//go:build unix

package cpuserve

import (
	"net"
	"syscall"
)

// peekOver is the "peek" probe: a mux reduced to waiting for each
// connection's first byte and handing the connection over. The accept loop
// peeks at each connection without waiting (unlike the mux's accept loop,
// which stops trying after misses, see nowReader.tryFirst) and hands it
// over at once if a byte is there; otherwise a goroutine of its own waits
// in the runtime's poller until one is (peeking again first), and hands it
// over then. The connection handed over is the *net.TCPConn itself:
// nothing is read, buffered or wrapped.
func peekOver(root net.Listener) net.Listener {
	l := &peekListener{Listener: root, conns: make(chan net.Conn, 1024), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			c, err := root.Accept()
			if err != nil {
				return
			}
			tc, ok := c.(*net.TCPConn)
			if !ok {
				c.Close()
				continue
			}
			rc, err := tc.SyscallConn()
			if err != nil {
				c.Close()
				continue
			}
			ready := false
			rc.Read(func(fd uintptr) bool { ready = peekByte(fd); return true })
			if ready {
				l.conns <- c
				continue
			}
			go func() {
				rc.Read(peekByte)
				select {
				case l.conns <- c:
				case <-l.done:
					c.Close()
				}
			}()
		}
	}()
	return l
}

// peekListener is the "peek" probe's listener: Accept receives what the
// accept loop or a waiting goroutine hands over on conns; done is closed
// when the root's Accept has failed.
type peekListener struct {
	net.Listener
	conns chan net.Conn
	done  chan struct{}
}

func (l *peekListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// peekByte reports whether fd has a byte to read, its end, or an error,
// as the mux's peekReadable does (readable_unix.go in the root module).
func peekByte(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}

// waitListener is the "wait" probe: its Accept returns a connection once a
// byte is there to read (a peek, then the poller), waiting on the server's
// own accepting goroutine, with no hand-off at all. It holds every later
// connection up behind one whose bytes are late, as no mux may; it shows
// what such a wait costs without a goroutine to hand over from.
type waitListener struct{ net.Listener }

func (l waitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			rc.Read(peekByte)
		}
	}
	return c, nil
}
