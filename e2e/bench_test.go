package e2e

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The root module's bench_test.go has the other benchmarks; this one needs
// grpc-go. serveBareOrMux, cpuTime and reportCPU are copies of its helpers.

// serveBareOrMux starts srv on a fresh loopback listener, directly or
// behind a mux whose listener for srv is made by match, and returns the
// address and a stop function.
func serveBareOrMux(tb testing.TB, viaMux bool, match func(cmux.CMux) net.Listener, serve func(net.Listener)) (string, func()) {
	tb.Helper()
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if !viaMux {
		go serve(root)
		return root.Addr().String(), func() { root.Close() }
	}
	m := cmux.New(root)
	l := match(m)
	go serve(l)
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	return root.Addr().String(), func() {
		m.Close()
		root.Close()
		<-done
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkGRPCNewConn measures a gRPC health check on a new connection
// each time, bare and through the mux.
func BenchmarkGRPCNewConn(b *testing.B) {
	for _, viaMux := range []bool{false, true} {
		b.Run(map[bool]string{false: "bare", true: "mux"}[viaMux], func(b *testing.B) {
			gs := grpc.NewServer()
			healthpb.RegisterHealthServer(gs, health.NewServer())
			addr, stop := serveBareOrMux(b, viaMux,
				func(m cmux.CMux) net.Listener {
					return m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
				},
				func(l net.Listener) { gs.Serve(l) })
			defer stop()
			defer gs.Stop()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					b.Fatal(err)
				}
				cc.Close()
			}
			reportCPU(b, start)
		})
	}
}
