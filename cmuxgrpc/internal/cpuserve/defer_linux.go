package cpuserve

import (
	"net"
	"syscall"
)

// DeferAccept sets TCP_DEFER_ACCEPT on l, a TCP listener: its Accept then
// returns a connection once its first bytes are there (or after 5 s).
func DeferAccept(l net.Listener) error {
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 5)
	}); err != nil {
		return err
	}
	return serr
}
