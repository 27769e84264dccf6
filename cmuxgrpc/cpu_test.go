package cmuxgrpc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cmux-go/cmux/cmuxgrpc/internal/cpuserve"
)

// The server's CPU time per new connection that makes one call and
// closes, over loopback TCP, with the clients in a child process (this
// test binary, run again): bare servers on their own listeners against the
// same servers behind a mux that has a gRPC, an HTTP/1 and a catch-all
// listener, as a typical program registers them.
//
//	go -C cmuxgrpc test -run '^$' -bench NewConnCPU -benchtime 1x -count 6 .
//
// reports server-cpu-ns/conn (user + system, getrusage of this process,
// which serves and does nothing else meanwhile).

const cpuClientsEnv = "CMUXGRPC_CPU_CLIENTS"

func BenchmarkNewConnCPU(b *testing.B) {
	const conns = 2000
	for _, proto := range []string{"http1", "grpc"} {
		for _, setup := range cpuserve.Setups {
			if proto == "http1" && setup == "mux+Listener" {
				continue
			}
			b.Run(proto+"/"+setup, func(b *testing.B) {
				var perConn float64
				for range b.N {
					perConn = newConnCPU(b, proto, setup, conns)
				}
				b.ReportMetric(perConn, "server-cpu-ns/conn")
			})
		}
	}
}

func newConnCPU(b *testing.B, proto, setup string, conns int) float64 {
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer cpuserve.Start(root, proto, setup, Listener)()

	child := startChild(b, "TestCPUClients", fmt.Sprintf("%s=%s %s %d", cpuClientsEnv, proto, root.Addr(), conns))
	defer child.stop()
	// The child warms up with a few connections, says GO, waits for a
	// line, runs, and says DONE.
	child.expect("GO")
	before := cpuNow()
	fmt.Fprintln(child.stdin, "run")
	child.expect("DONE")
	time.Sleep(50 * time.Millisecond) // the last closes
	return float64(cpuNow()-before) / float64(conns)
}

func cpuNow() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestCPUClients is the child process of BenchmarkNewConnCPU.
func TestCPUClients(t *testing.T) {
	spec := os.Getenv(cpuClientsEnv)
	if spec == "" {
		t.Skip("run by BenchmarkNewConnCPU")
	}
	var proto, addr, n string
	if _, err := fmt.Sscan(spec, &proto, &addr, &n); err != nil {
		t.Fatal(err)
	}
	conns, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	one := func() error { return cpuserve.Call(proto, addr) }
	for range 50 {
		if err := one(); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("GO")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	for range conns {
		if err := one(); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("DONE")
	io.Copy(io.Discard, os.Stdin)
}
