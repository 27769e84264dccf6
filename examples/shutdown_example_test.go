package examples_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/cmux-go/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Shut down a server with grpc-go and net/http on one port without losing a
// connection, as on SIGTERM: first the mux, which stops accepting and hands
// every connection it accepted to its server, then the servers' graceful
// stops, all bounded by one deadline.
func Example_shutdown() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.HTTP1Fast())

	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // a request in flight at SIGTERM
		io.WriteString(w, "done")
	})}
	go gs.Serve(grpcL)
	go hs.Serve(httpL)
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()

	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	time.Sleep(50 * time.Millisecond)

	// SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// 1. The mux: no new connections (the root listener is closed), and
	//    every accepted one reaches its server's Accept.
	if err := m.(cmux.Shutdowner).Shutdown(ctx); err != nil {
		log.Print("mux: ", err) // ctx ended: what was still being matched was closed
	}
	// 2. The servers finish what they accepted.
	if err := hs.Shutdown(ctx); err != nil {
		log.Print("http: ", err)
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		gs.Stop()
	}

	fmt.Println("request in flight:", <-answer)
	fmt.Println("Serve:", errors.Is(<-served, cmux.ErrServerClosed))
	// Output:
	// request in flight: done
	// Serve: true
}
