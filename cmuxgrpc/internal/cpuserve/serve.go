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

// Probes are setups that take the mux's cost apart, for cpupair (HTTP/1.1
// only): "muxany", a mux whose one listener matches Any, so that it reads
// nothing; "muxhttp", a mux whose one listener matches HTTP1Fast; "hand",
// no mux, but a goroutine that accepts and hands each connection to the
// server over a channel, as the mux does; "wrap", no mux, but each
// connection wrapped in a struct, as a MuxConn wraps it; "peek", a mux
// reduced to waiting for each connection's first byte and handing the
// connection over, without reading, buffering or wrapping it; "wait", no
// hand-off, but a listener whose Accept returns each connection once a
// byte is there, as no mux may (it holds later connections up). "peek" and
// "wait" run on Unix only.
var Probes = []string{"muxany", "muxhttp", "hand", "wrap", "peek", "wait"}

// Start serves on root: with setup "bare", proto's server alone ("grpc"
// or "http1"); with "mux", both behind a mux; with "mux+Listener", the
// same with the gRPC server's listener passed through wrap
// (cmuxgrpc.Listener); with one of Probes, the HTTP/1 server as that
// probe says, whatever proto. stop stops the servers and the mux, and
// closes root.
func Start(root net.Listener, proto, setup string, wrap func(net.Listener) net.Listener) (stop func()) {
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	switch setup {
	case "muxany", "muxhttp":
		m := cmux.New(root)
		var l net.Listener
		if setup == "muxany" {
			l = m.Match(cmux.Any())
		} else {
			l = m.Match(cmux.HTTP1Fast())
		}
		go hs.Serve(l)
		go m.Serve()
		return func() {
			hs.Close()
			m.Close()
			root.Close()
		}
	case "hand", "wrap", "peek", "wait":
		var l net.Listener
		switch setup {
		case "hand":
			l = handOver(root)
		case "wrap":
			l = wrapListener{root}
		case "peek":
			l = peekOver(root)
		default:
			l = waitListener{root}
		}
		go hs.Serve(l)
		return func() {
			hs.Close()
			root.Close()
		}
	}
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

// handListener is the "hand" probe: a goroutine accepts from the root and
// hands each connection over conns, which Accept receives from.
type handListener struct {
	net.Listener
	conns chan net.Conn // closed when the root's Accept fails
}

func handOver(root net.Listener) *handListener {
	l := &handListener{Listener: root, conns: make(chan net.Conn, 1024)}
	go func() {
		defer close(l.conns)
		for {
			c, err := root.Accept()
			if err != nil {
				return
			}
			l.conns <- c
		}
	}()
	return l
}

func (l *handListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

// wrapListener is the "wrap" probe: its connections are wrapped.
type wrapListener struct{ net.Listener }

type wrappedConn struct{ net.Conn }

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &wrappedConn{c}, nil
}
