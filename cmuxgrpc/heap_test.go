package cmuxgrpc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The idle-connection heap of a gRPC server: bare grpc-go on its own
// listener, behind the mux, and behind the mux through Listener. The
// clients run in a child process (this test binary, run again), so that
// the heap measured is the server's alone.
//
//	go test -run '^$' -bench IdleConnHeap -benchtime 1x ./cmuxgrpc
//
// reports heap-B/conn for each: the growth of the live heap, after a
// collection, per idle connection that has made one call.

const clientsEnv = "CMUXGRPC_HEAP_CLIENTS"

func BenchmarkIdleConnHeap(b *testing.B) {
	const conns = 500
	bare := func(srv *grpc.Server, root net.Listener) func() {
		go srv.Serve(root)
		return func() {}
	}
	// The process's first connections grow pools every variant then
	// shares: warm them up before measuring.
	idleHeap(b, 100, bare)
	for _, tc := range []struct {
		name  string
		serve func(srv *grpc.Server, root net.Listener) (stop func())
	}{
		{"bare", bare},
		{"mux", func(srv *grpc.Server, root net.Listener) func() {
			m := cmux.New(root)
			go srv.Serve(m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")))
			go m.Serve()
			return m.Close
		}},
		{"mux+Listener", func(srv *grpc.Server, root net.Listener) func() {
			m := cmux.New(root)
			go srv.Serve(Listener(m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))))
			go m.Serve()
			return m.Close
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var perConn float64
			for range b.N {
				perConn = idleHeap(b, conns, tc.serve)
			}
			b.ReportMetric(perConn, "heap-B/conn")
		})
	}
}

func idleHeap(b *testing.B, conns int, serve func(*grpc.Server, net.Listener) func()) float64 {
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	stop := serve(srv, root)
	defer func() {
		srv.Stop()
		stop()
	}()
	before := liveHeap()

	child := startChild(b, "TestHeapClients", clientsEnv+"="+root.Addr().String()+" "+strconv.Itoa(conns))
	defer child.stop()
	child.expect("READY")
	time.Sleep(200 * time.Millisecond) // let every server goroutine go idle
	return float64(liveHeap()-before) / float64(conns)
}

// child is this test binary run again as a client process: it is told what
// to do through an environment variable and its stdin, and says where it
// is with lines on its stdout.
type child struct {
	b     *testing.B
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startChild runs the test test of this binary in a child process with
// env (NAME=value) added to its environment.
func startChild(b *testing.B, test, env string) *child {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	if cpus := os.Getenv(childCPUsEnv); cpus != "" {
		// The clients on CPUs of their own (see cpu.sh).
		cmd = exec.Command("taskset", "-c", cpus, os.Args[0], "-test.run=^"+test+"$")
	}
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &child{b: b, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
}

// childCPUsEnv, if set, is the CPU list (taskset -c) the child process runs
// on.
const childCPUsEnv = "CMUXGRPC_CHILD_CPUS"

// expect waits for the child to print the line what.
func (c *child) expect(what string) {
	for c.lines.Scan() {
		if c.lines.Text() == what {
			return
		}
	}
	c.b.Fatalf("the child process did not say %s", what)
}

// stop closes the child's stdin, which ends it, and waits for it.
func (c *child) stop() {
	c.stdin.Close()
	c.cmd.Wait()
}

func liveHeap() int64 {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestHeapClients is the child process of BenchmarkIdleConnHeap: it opens
// the connections, makes one call on each, says READY and keeps them until
// its stdin closes.
func TestHeapClients(t *testing.T) {
	spec := os.Getenv(clientsEnv)
	if spec == "" {
		t.Skip("run by BenchmarkIdleConnHeap")
	}
	var addr string
	var n int
	if _, err := fmt.Sscan(spec, &addr, &n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range n {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
}
