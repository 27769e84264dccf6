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
	eachCase(b, socketLibs, benchSockPath)
}

// sockLag is how many connections later the client closes its end.
const sockLag = 64

// clientEnds holds the clients' descriptors of the last sockLag
// connections; -1 is none.
type clientEnds [sockLag]int

func newClientEnds() *clientEnds {
	var e clientEnds
	for i := range e {
		e[i] = -1
	}
	return &e
}

// add keeps fd, the client's end of connection i, and closes that of
// connection i-sockLag.
func (e *clientEnds) add(i, fd int) {
	if old := e[i%sockLag]; old >= 0 {
		syscall.Close(old)
	}
	e[i%sockLag] = fd
}

// closeAll closes every end still held.
func (e *clientEnds) closeAll() {
	for i, fd := range e {
		if fd >= 0 {
			syscall.Close(fd)
			e[i] = -1
		}
	}
}

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

	err := dialAll(b, root, done, func() (net.Conn, int, error) { return sockConn(c.flight) })
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

// BenchmarkHarness measures a harness alone, with no mux: the root's
// connections go straight to the goroutine that accepts and closes them.
// case=FullPath is BenchmarkFullPath's harness (memConns), case=SockPath
// BenchmarkSockPath's (socketpairs). Subtracted from a library's
// instructions per connection, it leaves the mux's own (cmd/report).
func BenchmarkHarness(b *testing.B) {
	flight := []byte(httpGet)
	b.Run("case=FullPath", func(b *testing.B) {
		b.Run("lib=none", func(b *testing.B) {
			benchHarness(b, func() (net.Conn, int, error) { return newMemConn(flight, nil), -1, nil })
		})
	})
	b.Run("case=SockPath", func(b *testing.B) {
		b.Run("lib=none", func(b *testing.B) {
			benchHarness(b, func() (net.Conn, int, error) { return sockConn(flight) })
		})
	})
}

// benchHarness is the loop of benchFullPath and benchSockPath without a
// mux: newConn makes a connection and the client's descriptor (-1: none).
func benchHarness(b *testing.B, newConn func() (net.Conn, int, error)) {
	base := runtime.NumGoroutine()
	root := newMemListener()
	done := make(chan error, 1)
	go acceptAndClose(root, b.N, done)
	if err := dialAll(b, root, done, newConn); err != nil {
		b.Error(err)
	}
	root.Close()
	waitGoroutines(b, base)
}

// dialAll is the timed loop: it hands b.N connections made by newConn (the
// server's end, and the client's descriptor or -1) to root, closing each
// client's end sockLag connections later, and returns what done says once
// the server has accepted them all.
func dialAll(b *testing.B, root *memListener, done <-chan error, newConn func() (net.Conn, int, error)) error {
	clients := newClientEnds()
	defer clients.closeAll()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, client, err := newConn()
		if err != nil {
			b.Fatal(err)
		}
		clients.add(i, client)
		if !root.dial(conn) {
			b.Fatal("root listener closed")
		}
	}
	err := <-done
	b.StopTimer()
	return err
}
