// Command cpuserver serves like BenchmarkNewConnCPU's server (bare, or
// behind a mux with a gRPC, an HTTP/1 and a catch-all listener) on a
// loopback port it prints, until its standard input ends: a server to run
// under valgrind with its clients outside it (see cpu-callgrind.sh).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/cmuxgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	proto := flag.String("proto", "http1", "http1 or grpc")
	setup := flag.String("setup", "bare", "bare, mux or mux+Listener")
	flag.Parse()
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	switch *setup {
	case "bare":
		if *proto == "grpc" {
			go gs.Serve(root)
		} else {
			go hs.Serve(root)
		}
	default:
		m := cmux.New(root)
		grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
		httpL := m.Match(cmux.HTTP1Fast())
		otherL := m.Match(cmux.Any())
		if *setup == "mux+Listener" {
			grpcL = cmuxgrpc.Listener(grpcL)
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
	}
	fmt.Println(root.Addr())
	io.Copy(io.Discard, os.Stdin)
}
