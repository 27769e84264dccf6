package sockopt

import (
	"net"
	"syscall"
	"testing"
)

// DeferAccept sets the option on a TCP listener (the kernel reports it
// back, rounded, as non-zero) and refuses a listener that is not TCP.
func TestDeferAccept(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := DeferAccept(l, 5); err != nil {
		t.Fatal(err)
	}
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT)
	})
	if gerr != nil || v == 0 {
		t.Fatalf("TCP_DEFER_ACCEPT after DeferAccept: %d, %v; want non-zero", v, gerr)
	}

	ul, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if err := DeferAccept(ul, 5); err == nil {
		t.Fatal("DeferAccept on a unix listener: no error")
	}
}
