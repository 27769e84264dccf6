// Command cpuserver serves HTTP/1.1 or gRPC on a loopback port it prints,
// until it is killed, as cmuxgrpc's cpuserver does, but with a mux of this
// module or of github.com/soheilhy/cmux v0.1.5: the same servers and
// matchers behind either, so that cmuxgrpc/cpucount.sh can count the work
// per new connection of the two side by side, and of a bare listener. The
// gRPC server reads the delivered connections directly (v0.1.5 has no
// cmuxgrpc.Listener).
//
// A setup followed by "+defer" ("v015+defer") serves on a listener with
// TCP_DEFER_ACCEPT (Linux only), as cmuxgrpc's cpuserver does.
//
//	cpuserver -proto http1|grpc -setup bare|mux|v015[+defer]
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/internal/sockopt"
	v015 "github.com/soheilhy/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	proto := flag.String("proto", "http1", "http1 or grpc")
	setupFlag := flag.String("setup", "bare", "bare, mux (this module's) or v015; with \"+defer\" after it, on a listener with TCP_DEFER_ACCEPT (Linux)")
	flag.Parse()
	if *proto != "http1" && *proto != "grpc" {
		log.Fatalf("cpuserver: -proto %q: want http1 or grpc", *proto)
	}
	setup, deferred := strings.CutSuffix(*setupFlag, "+defer")
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if deferred {
		if err := sockopt.DeferAccept(root, 5); err != nil {
			log.Fatal(err)
		}
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	// The chain of cmuxgrpc's cpuserve: gRPC, HTTP/1, anything else.
	const ct, grpcCT = "content-type", "application/grpc"
	switch setup {
	case "bare":
		if *proto == "grpc" {
			go gs.Serve(root)
		} else {
			go hs.Serve(root)
		}
	case "mux":
		m := cmux.New(root)
		serve(gs, hs, m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(ct, grpcCT)), m.Match(cmux.HTTP1Fast()), m.Match(cmux.Any()), m.Serve)
	case "v015":
		m := v015.New(root)
		serve(gs, hs, m.MatchWithWriters(v015.HTTP2MatchHeaderFieldSendSettings(ct, grpcCT)), m.Match(v015.HTTP1Fast()), m.Match(v015.Any()), m.Serve)
	default:
		log.Fatalf("cpuserver: -setup %q: want bare, mux or v015, with +defer or not", *setupFlag)
	}
	fmt.Println(root.Addr())
	select {}
}

// serve serves grpcL with gs and httpL with hs, closes what otherL
// accepts, and runs the mux.
func serve(gs *grpc.Server, hs *http.Server, grpcL, httpL, otherL net.Listener, run func() error) {
	go gs.Serve(grpcL)
	go hs.Serve(httpL)
	go closeAll(otherL)
	go run()
}

func closeAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
