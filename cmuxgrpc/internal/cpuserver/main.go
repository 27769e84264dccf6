// Command cpuserver serves like BenchmarkNewConnCPU's server (see
// cpuserve) on a loopback port it prints, until it is killed: a server to
// run under valgrind or strace with its clients outside it (see
// cpucount.sh and cpupair.sh). A setup followed by "+defer" ("mux+defer")
// serves on a listener with TCP_DEFER_ACCEPT (Linux only).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"slices"
	"strings"

	"github.com/cmux-go/cmux/cmuxgrpc"
	"github.com/cmux-go/cmux/cmuxgrpc/internal/cpuserve"
	"github.com/cmux-go/cmux/internal/sockopt"
)

func main() {
	proto := flag.String("proto", "http1", "http1 or grpc")
	setupFlag := flag.String("setup", "bare", "bare, mux or mux+Listener, or a probe of cpuserve.Probes; with \"+defer\" after it, on a listener with TCP_DEFER_ACCEPT (Linux)")
	flag.Parse()
	setup, deferred := strings.CutSuffix(*setupFlag, "+defer")
	setups := append(slices.Clip(cpuserve.Setups), cpuserve.Probes...)
	if *proto != "http1" && *proto != "grpc" || !slices.Contains(setups, setup) ||
		*proto == "grpc" && slices.Contains(cpuserve.Probes, setup) {
		log.Fatalf("cpuserver: -proto %q -setup %q: want http1 or grpc, and one of %q (probes: http1 only), with +defer or not", *proto, *setupFlag, setups)
	}
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if deferred {
		if err := sockopt.DeferAccept(root, 5); err != nil {
			log.Fatal(err)
		}
	}
	cpuserve.Start(root, *proto, setup, cmuxgrpc.Listener)
	fmt.Println(root.Addr())
	select {}
}
