//lint:file-ignore SA1019 the x/net HTTP/2 client is one of the clients the splitter must serve.

package h2split_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/h2split"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// One port: HTTP/1 to net/http; HTTP/2 connections to the splitter, which
// sends each stream to grpc-go or to net/http's HTTP/2 server, so a proxy
// may pool gRPC and REST requests on the same connections.
func Example_withCmux() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	m := cmux.New(l)
	h2L := m.Match(cmux.HTTP2())
	h1L := m.Match(cmux.Any())

	grpcServer := grpc.NewServer()
	healthpb.RegisterHealthServer(grpcServer, health.NewServer())
	rest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "REST %s over %s", r.URL.Path, r.Proto)
	})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	httpServer := &http.Server{Handler: rest, Protocols: &protocols}

	split := h2split.New(h2split.Config{})             // routes application/grpc* to GRPC
	go grpcServer.Serve(split.Listener(h2split.GRPC))  //nolint:errcheck
	go httpServer.Serve(split.Listener(h2split.Other)) //nolint:errcheck
	go httpServer.Serve(h1L)                           //nolint:errcheck
	go split.Serve(h2L)                                //nolint:errcheck
	go m.Serve()                                       //nolint:errcheck

	// One client connection carries both, as a pooling proxy's would.
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return nil, fmt.Errorf("one connection only")
	}}
	cc, err := tr.NewClientConn(nc)
	if err != nil {
		panic(err)
	}
	// A gRPC health check by hand: an empty HealthCheckRequest.
	req, _ := http.NewRequest("POST", "http://"+l.Addr().String()+"/grpc.health.v1.Health/Check", bytes.NewReader(make([]byte, 5)))
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("gRPC: grpc-status %s, response % x\n", resp.Trailer.Get("grpc-status"), body)

	req, _ = http.NewRequest("GET", "http://"+l.Addr().String()+"/hello", nil)
	resp, err = cc.RoundTrip(req)
	if err != nil {
		panic(err)
	}
	body, _ = io.ReadAll(resp.Body)
	fmt.Println(string(body))
	cc.Close()

	// Shutdown order: the splitter (GOAWAY, streams finish), the servers,
	// the mux.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	split.Shutdown(ctx) //nolint:errcheck
	grpcServer.GracefulStop()
	httpServer.Shutdown(ctx) //nolint:errcheck
	m.Close()
	// Output:
	// gRPC: grpc-status 0, response 00 00 00 00 02 08 01
	// REST /hello over HTTP/2.0
}
