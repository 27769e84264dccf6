// Command cpuserver serves like BenchmarkNewConnCPU's server (see
// cpuserve) on a loopback port it prints, until it is killed: a server to
// run under valgrind or strace with its clients outside it (see
// cpucount.sh and cpupair.sh).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"slices"

	"github.com/cmux-go/cmux/cmuxgrpc"
	"github.com/cmux-go/cmux/cmuxgrpc/internal/cpuserve"
)

func main() {
	proto := flag.String("proto", "http1", "http1 or grpc")
	setup := flag.String("setup", "bare", "bare, mux or mux+Listener, or a probe of cpuserve.Probes")
	flag.Parse()
	setups := append(slices.Clip(cpuserve.Setups), cpuserve.Probes...)
	if *proto != "http1" && *proto != "grpc" || !slices.Contains(setups, *setup) ||
		*proto == "grpc" && slices.Contains(cpuserve.Probes, *setup) {
		log.Fatalf("cpuserver: -proto %q -setup %q: want http1 or grpc, and one of %q (probes: http1 only)", *proto, *setup, setups)
	}
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	cpuserve.Start(root, *proto, *setup, cmuxgrpc.Listener)
	fmt.Println(root.Addr())
	select {}
}
