package cmux_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Serve gRPC and REST on one port and on one HTTP/2 connection. Proxies
// such as Envoy, Istio and Cloud Run send gRPC and other requests to a
// backend over the same pooled HTTP/2 connections, so no connection-level
// matcher can split them: an http.Handler splits them per request, handing
// gRPC requests to grpc.Server.ServeHTTP. That path is slower than grpc-go's
// own transport and lacks some of its features (see the README).
func Example_grpcAndREST() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	// HTTP/2 in the clear (h2c) and HTTP/1 go to one server. Other
	// protocols can share the port: m.Match(cmux.TLS()), m.Match(cmux.SSH())...
	httpL := m.Match(cmux.HTTP2(), cmux.HTTP1Fast())

	grpcServer := grpc.NewServer()
	healthpb.RegisterHealthServer(grpcServer, health.NewServer())
	rest := http.NewServeMux()
	rest.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Protocols: &protocols,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				grpcServer.ServeHTTP(w, r)
				return
			}
			rest.ServeHTTP(w, r)
		}),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(httpL)
	}()
	muxDone := make(chan struct{})
	go func() {
		defer close(muxDone)
		m.Serve()
	}()
	addr := l.Addr().String()

	// A gRPC client.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gRPC:", resp.GetStatus())
	cc.Close()

	// REST clients, over HTTP/2 (h2c) and HTTP/1.1.
	for _, h2c := range []bool{true, false} {
		var p http.Protocols
		p.SetUnencryptedHTTP2(h2c)
		p.SetHTTP1(!h2c)
		tr := &http.Transport{Protocols: &p}
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/hello")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		tr.CloseIdleConnections()
		fmt.Println("REST:", string(body))
	}

	// Stop the HTTP server first: Shutdown waits for the handlers, gRPC
	// calls included. grpcServer.GracefulStop would not wait for the calls
	// ServeHTTP serves; it cancels them.
	srv.Shutdown(ctx)
	<-served
	grpcServer.Stop()
	m.Close()
	l.Close()
	<-muxDone

	// Output:
	// gRPC: SERVING
	// REST: hello over HTTP/2.0
	// REST: hello over HTTP/1.1
}
