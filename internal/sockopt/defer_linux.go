package sockopt

import (
	"fmt"
	"net"
	"syscall"
)

// DeferAccept sets TCP_DEFER_ACCEPT on l, a *net.TCPListener: its Accept
// then returns a connection once the connection's first bytes are there,
// or once at least secs seconds have passed (the kernel rounds them up to
// its SYN-ACK retransmissions).
func DeferAccept(l net.Listener, secs int) error {
	tl, ok := l.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("sockopt: TCP_DEFER_ACCEPT on a %T, not a *net.TCPListener", l)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, secs)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("sockopt: TCP_DEFER_ACCEPT: %w", serr)
	}
	return nil
}
