//go:build unix

package h2split

import (
	"net"
	"os"
	"syscall"
)

// socketPair returns the two ends of a connected unix stream socket pair:
// kernel-buffered in both directions, so neither side's writes wait for
// the other's reads until the socket buffer fills.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	a, err := fileConn(fds[0], "h2split-a")
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1], "h2split-b")
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // net.FileConn duplicates the descriptor
	return net.FileConn(f)
}
