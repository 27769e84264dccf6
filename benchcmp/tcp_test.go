package benchcmp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The TCP harness: a real root listener on 127.0.0.1 and clients that dial
// it. Unlike memConn, a TCP connection may already hold the client's first
// flight when the mux accepts it, and the mux may look at that without
// blocking; only a socket shows it. The client's work is the same for both
// libraries, and it is part of what the benchmark measures.

// listenTCP is a root listener on a free port of 127.0.0.1, as a server
// makes it (keep-alive on accepted connections included).
func listenTCP(tb testing.TB) (*net.TCPListener, netip.AddrPort) {
	tb.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	return l, l.Addr().(*net.TCPAddr).AddrPort()
}

// clientDialer dials without keep-alive, which saves the client four
// setsockopt calls per connection.
var clientDialer = &net.Dialer{KeepAlive: -1}

// dial is a client's connection to addr.
func dial(addr netip.AddrPort) (*net.TCPConn, error) {
	return clientDialer.DialTCP(context.Background(), "tcp", netip.AddrPort{}, addr)
}

// tcpClient is one connection of the benchmark, from the client's side: it
// dials addr, writes flight, reads (into buf) until the server has closed
// the connection, and closes its end. Only the dial's error counts: the
// server closes without reading, so the client's Write may find the
// connection reset, and its Read ends with EOF or a reset alike.
func tcpClient(addr netip.AddrPort, flight, buf []byte) error {
	c, err := dial(addr)
	if err != nil {
		return err
	}
	c.Write(flight)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	c.Close()
	return nil
}

// tcpClients is how many clients dial at once in BenchmarkTCPPath, so that
// the mux has a connection to accept while a client waits for its
// handshake or its close.
const tcpClients = 4

// dialTCP makes n connections to addr from tcpClients goroutines, each
// sending flight as tcpClient does. It returns the first dial error, after
// every client has stopped; on an error the other clients stop dialing.
func dialTCP(addr netip.AddrPort, flight []byte, n int) error {
	var (
		next   atomic.Int64 // connections claimed
		failed atomic.Bool
		mu     sync.Mutex
		first  error
		wg     sync.WaitGroup
	)
	wg.Add(tcpClients)
	for range tcpClients {
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for next.Add(1) <= int64(n) && !failed.Load() {
				if err := tcpClient(addr, flight, buf); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// readAll reads c until it fails and returns what it read and the error
// that ended it (io.EOF at the end of the stream).
func readAll(c net.Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// cpuTime is the user and system CPU time of the whole process so far.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// netCounter is the counter name of the lines starting with prefix in
// file (/proc/net/snmp or /proc/net/netstat: a line of names, then a line
// of values), for the whole network namespace, or -1 where it cannot be
// read.
func netCounter(file, prefix, name string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				if v, err := strconv.ParseInt(f[i], 10, 64); err == nil {
					return v
				}
			}
		}
		return -1
	}
	return -1
}

// tcpCounters are the kernel's TCP counters BenchmarkTCPPath reports per
// connection: the resets sent, and the sockets that closed without
// TIME_WAIT because its table (net.ipv4.tcp_max_tw_buckets) was full.
type tcpCounters struct{ rsts, twOverflows int64 }

func readTCPCounters() tcpCounters {
	return tcpCounters{
		rsts:        netCounter("/proc/net/snmp", "Tcp:", "OutRsts"),
		twOverflows: netCounter("/proc/net/netstat", "TcpExt:", "TCPTimeWaitOverflow"),
	}
}

// report reports the counters from c0 to c per iteration of b.
func (c tcpCounters) report(b *testing.B, c0 tcpCounters) {
	if c0.rsts >= 0 && c.rsts >= 0 {
		b.ReportMetric(float64(c.rsts-c0.rsts)/float64(b.N), "rst/op")
	}
	if c0.twOverflows >= 0 && c.twOverflows >= 0 {
		b.ReportMetric(float64(c.twOverflows-c0.twOverflows)/float64(b.N), "twovf/op")
	}
}
