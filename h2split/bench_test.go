//go:build linux

//lint:file-ignore SA1019 the x/net HTTP/2 client is one of the clients the splitter must serve.

package h2split

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The server CPU benchmark behind bench.sh: server-side CPU time
// (getrusage of this process, which runs only the servers) per operation,
// with the clients in a child process, for three ways of serving gRPC and
// REST: bare servers on ports of their own, the splitter on one port, and
// grpc.Server.ServeHTTP behind net/http's h2c server on one port.

type benchServer struct {
	name     string
	grpcAddr string
	restAddr string
	stop     func()
}

func listen(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

func h2cServer(h http.Handler) *http.Server {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, Protocols: &p}
}

func newGRPCServer() *grpc.Server {
	g := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	g.RegisterService(&echoDesc, nil)
	return g
}

func startBare(t *testing.T) *benchServer {
	gl, rl := listen(t), listen(t)
	g := newGRPCServer()
	h := h2cServer(http.HandlerFunc(restHandler))
	go g.Serve(gl) //nolint:errcheck
	go h.Serve(rl) //nolint:errcheck
	return &benchServer{"bare", gl.Addr().String(), rl.Addr().String(), func() { g.Stop(); h.Close() }}
}

func startSplit(t *testing.T) *benchServer {
	l := listen(t)
	s := New(Config{})
	g := newGRPCServer()
	h := h2cServer(http.HandlerFunc(restHandler))
	go g.Serve(s.Listener(GRPC))  //nolint:errcheck
	go h.Serve(s.Listener(Other)) //nolint:errcheck
	go s.Serve(l)                 //nolint:errcheck
	return &benchServer{"h2split", l.Addr().String(), l.Addr().String(), func() { s.Close(); g.Stop(); h.Close() }}
}

func startServeHTTP(t *testing.T) *benchServer {
	l := listen(t)
	g := newGRPCServer()
	h := h2cServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("content-type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		restHandler(w, r)
	}))
	go h.Serve(l) //nolint:errcheck
	return &benchServer{"ServeHTTP", l.Addr().String(), l.Addr().String(), func() { h.Close(); g.Stop() }}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type workload struct {
	name string
	ops  int // operations per run (calls, messages, requests)
	conc int
}

var workloads = []workload{
	{"grpc-unary", 20000, 16},
	{"grpc-stream-msg", 200000, 4},
	{"rest", 20000, 16},
}

// runClient runs one workload in a child process; it returns the server
// CPU time it cost.
func runClient(t *testing.T, srv *benchServer, w workload, ops int) time.Duration {
	addr := srv.grpcAddr
	if w.name == "rest" {
		addr = srv.restAddr
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("H2SPLIT_BENCH_CLIENT=%s %s %d %d", w.name, addr, ops, w.conc))
	before := cpuNow()
	out, err := cmd.CombinedOutput()
	spent := cpuNow() - before
	require.NoError(t, err, "client: %s", out)
	return spent
}

func TestBenchTable(t *testing.T) {
	if os.Getenv("H2SPLIT_BENCH") == "" {
		t.Skip("run by bench.sh (H2SPLIT_BENCH=1)")
	}
	scale, _ := strconv.ParseFloat(os.Getenv("H2SPLIT_BENCH_SCALE"), 64)
	if scale <= 0 {
		scale = 1
	}
	reps := 7
	// All three run at once and take turns, run by run, so that drift in
	// the machine's load falls on each alike.
	var servers []*benchServer
	for _, start := range []func(*testing.T) *benchServer{startBare, startSplit, startServeHTTP} {
		srv := start(t)
		defer srv.stop()
		if only := os.Getenv("H2SPLIT_BENCH_ONLY"); only == "" || only == srv.name {
			servers = append(servers, srv)
		}
	}
	perOp := map[string]map[string]time.Duration{}
	var names []string
	for _, srv := range servers {
		names = append(names, srv.name)
		perOp[srv.name] = map[string]time.Duration{}
	}
	for _, w := range workloads {
		if only := os.Getenv("H2SPLIT_BENCH_WORKLOAD"); only != "" && only != w.name {
			continue
		}
		ops := int(float64(w.ops) * scale)
		runs := map[string][]time.Duration{}
		for _, srv := range servers {
			runClient(t, srv, w, ops/10) // warm up
		}
		for rep := range reps {
			for k := range servers {
				srv := servers[(rep+k)%len(servers)] // each goes first in turn
				runs[srv.name] = append(runs[srv.name], runClient(t, srv, w, ops)/time.Duration(ops))
			}
		}
		for name, r := range runs {
			sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
			perOp[name][w.name] = r[len(r)/2]
		}
	}
	if len(servers) < 3 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| server CPU per op (median of %d) | %s | h2split / bare | ServeHTTP / bare |\n", reps, strings.Join(names, " | "))
	fmt.Fprintf(&b, "|---|%s---|---|\n", strings.Repeat("---|", len(names)))
	for _, w := range workloads {
		bare := perOp["bare"][w.name]
		fmt.Fprintf(&b, "| %s |", w.name)
		for _, n := range names {
			fmt.Fprintf(&b, " %.2f µs |", float64(perOp[n][w.name])/1e3)
		}
		fmt.Fprintf(&b, " %.2fx | %.2fx |\n", float64(perOp["h2split"][w.name])/float64(bare), float64(perOp["ServeHTTP"][w.name])/float64(bare))
	}
	fmt.Print(b.String())
	if f := os.Getenv("H2SPLIT_BENCH_OUT"); f != "" {
		require.NoError(t, os.WriteFile(f, []byte(b.String()), 0o644))
	}
}

// TestBenchClient is the client side of TestBenchTable, run in a child
// process.
func TestBenchClient(t *testing.T) {
	spec := os.Getenv("H2SPLIT_BENCH_CLIENT")
	if spec == "" {
		t.Skip("child process of TestBenchTable")
	}
	var mode, addr string
	var ops, conc int
	_, err := fmt.Sscanf(spec, "%s %s %d %d", &mode, &addr, &ops, &conc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	switch mode {
	case "grpc-unary", "grpc-stream-msg":
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		require.NoError(t, err)
		defer cc.Close()
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if mode == "grpc-unary" {
					in := numbered(1, 100)
					for range ops / conc {
						var out []byte
						if err := cc.Invoke(ctx, unaryMethod, &in, &out); err != nil {
							errs <- err
							return
						}
					}
					return
				}
				st, err := cc.NewStream(ctx, serverDesc, serverMethod)
				if err != nil {
					errs <- err
					return
				}
				req := []byte(fmt.Sprintf("%d:64", ops/conc))
				if err := st.SendMsg(&req); err != nil {
					errs <- err
					return
				}
				st.CloseSend() //nolint:errcheck
				for {
					var m []byte
					if err := st.RecvMsg(&m); err == io.EOF {
						return
					} else if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	case "rest":
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range ops / conc {
					resp, err := client.Get("http://" + addr + "/")
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body) //nolint:errcheck
					resp.Body.Close()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
