package cmux_test

import (
	"log"
	"net"
	"net/http"
	"net/netip"

	"github.com/cmux-go/cmux"
)

// Route on addresses, hosts and paths: gRPC from the internal network, an
// API host, static files under any subdomain, and the rest.
func ExampleAll() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	internal := cmux.RemoteAddrIn(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"))
	grpcL := m.MatchWithWriters(cmux.AllWriters(
		cmux.ReadOnly(internal), // reads nothing: put it first
		cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")))
	apiL := m.Match(cmux.HTTPHost("api.example.com"))
	staticL := m.Match(cmux.All(cmux.HTTPHost("*.example.com"), cmux.HTTPPathPrefix("/static/")))
	restL := m.Match(cmux.Any())

	_ = grpcL // grpcServer.Serve(grpcL)
	go http.Serve(apiL, http.NotFoundHandler())
	go http.Serve(staticL, http.FileServer(http.Dir("/srv")))
	go http.Serve(restL, http.NotFoundHandler())
	go m.Serve()
	m.Close()
}

// A load balancer sends a PROXY header on every connection but its health
// checks, which come from their own network; clients reached through one
// AWS VPC endpoint get their own listener.
func ExampleProxySourcePolicy() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.NewWithOptions(l, cmux.ProxyProtocol(cmux.ProxyConfig{
		Trusted:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
		Required: true,
		Policies: []cmux.ProxySourcePolicy{
			{Source: netip.MustParsePrefix("10.0.9.0/24"), Header: cmux.ProxyOptional},
		},
	}))
	partnerL := m.Match(cmux.ProxyAWSVPCEndpoint("vpce-0123456789abcdef0"))
	restL := m.Match(cmux.Any())
	go http.Serve(partnerL, http.NotFoundHandler())
	go http.Serve(restL, http.NotFoundHandler())
	go m.Serve()
	m.Close()
}
