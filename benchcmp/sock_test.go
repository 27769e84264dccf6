//go:build unix

package benchcmp

import (
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
)

// BenchmarkSockPath is BenchmarkFullPath over in-memory sockets: each
// connection is one end of a Unix socketpair whose other end, the client's,
// has written the case's whole flight before the root's Accept returns it.
// The server side is BenchmarkFullPath's: the child's Accept, then Close
// without reading. The client's end is closed sockLag connections later,
// so that no server sees the client gone while it matches.
//
// A socket is what a program's root listener hands out (TCP, Unix): unlike
// a memConn, it can be read without waiting, so that cmux decides in its
// accept loop when the first flight is there. ns/op, B/op and allocs/op
// include the harness's socketpair and net.FileConn per connection, alike
// for both libraries; their kernel time is in ns/op, not in the
// instruction counts (callgrind counts user space only).
func BenchmarkSockPath(b *testing.B) {
	eachCase(b, benchSockPath)
}

// sockLag is how many connections later the client closes its end.
const sockLag = 64

func benchSockPath(b *testing.B, lib library, c benchCase) {
	skipUnsupported(b, lib, c)
	if c.name == "RemoteAddrInAndHTTP1Fast" {
		b.Skip("a Unix socket has no IP address to match")
	}
	base := runtime.NumGoroutine()
	root := newMemListener()
	r := lib.start(root, c.children)
	done := make(chan error, 1)
	go acceptAndClose(r.children[c.want], b.N, done)

	var clients [sockLag]int
	for i := range clients {
		clients[i] = -1
	}
	closeClients := func() {
		for i, fd := range clients {
			if fd >= 0 {
				syscall.Close(fd)
				clients[i] = -1
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, client, err := sockConn(c.flight)
		if err != nil {
			b.Fatal(err)
		}
		if old := clients[i%sockLag]; old >= 0 {
			syscall.Close(old)
		}
		clients[i%sockLag] = client
		if !root.dial(conn) {
			b.Fatal("root listener closed")
		}
	}
	err := <-done
	b.StopTimer()
	closeClients()

	if err != nil {
		b.Errorf("child Accept: %v", err)
	}
	if err := stop(r, root, nil); err != nil {
		b.Fatal(err)
	}
	waitGoroutines(b, base)
}

// sockConn makes a socketpair, writes flight into the client's end and
// returns the server's end as a net.Conn and the client's descriptor.
func sockConn(flight []byte) (net.Conn, int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, os.NewSyscallError("socketpair", err)
	}
	if n, err := syscall.Write(fds[1], flight); err != nil || n != len(flight) {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		if err == nil {
			err = syscall.EAGAIN
		}
		return nil, -1, os.NewSyscallError("write", err)
	}
	f := os.NewFile(uintptr(fds[0]), "sock")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, -1, err
	}
	return conn, fds[1], nil
}
