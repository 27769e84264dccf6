// Package cpuserve starts the servers whose CPU per new connection
// BenchmarkNewConnCPU (cpu.sh) and cpuserver (cpucount.sh) measure: a
// gRPC or an HTTP/1 server on a bare listener, or both behind a mux with a
// gRPC, an HTTP/1 and a catch-all listener, as a typical program registers
// them.
package cpuserve

import (
	"io"
	"net"
	"net/http"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Setups are the setups Start knows.
var Setups = []string{"bare", "mux", "mux+Listener"}

// Start serves on root: with setup "bare", proto's server alone ("grpc"
// or "http1"); with "mux", both behind a mux; with "mux+Listener", the
// same with the gRPC server's listener passed through wrap
// (cmuxgrpc.Listener). stop stops the servers and the mux, and closes
// root.
func Start(root net.Listener, proto, setup string, wrap func(net.Listener) net.Listener) (stop func()) {
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	if setup == "bare" {
		if proto == "grpc" {
			go gs.Serve(root)
		} else {
			go hs.Serve(root)
		}
		return func() {
			gs.Stop()
			hs.Close()
			root.Close()
		}
	}
	m := cmux.New(root)
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.HTTP1Fast())
	otherL := m.Match(cmux.Any())
	if setup == "mux+Listener" {
		grpcL = wrap(grpcL)
	}
	go gs.Serve(grpcL)
	go hs.Serve(httpL)
	go func() {
		for {
			c, err := otherL.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	go m.Serve()
	return func() {
		gs.Stop()
		hs.Close()
		m.Close()
		root.Close()
	}
}
