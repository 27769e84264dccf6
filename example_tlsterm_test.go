package cmux_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/cmux-go/cmux"
)

// Terminate TLS once in the mux, with one tls.Config, and serve HTTP/1.1
// and HTTP/2 with net/http: Request.TLS is set on both. A gRPC server would
// take the first listener, with the credentials of
// github.com/cmux-go/cmux/cmuxgrpc.
func ExampleTerminateTLS() {
	issue, roots := exampleCA()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.NewWithOptions(l, cmux.TerminateTLS(&tls.Config{
		Certificates: []tls.Certificate{issue("example.com")},
		NextProtos:   []string{"h2", "http/1.1"},
	}))
	grpcL := m.Match(cmux.HTTP2HeaderFieldPrefix("content-type", "application/grpc"))
	restL := m.Match(cmux.Any())
	serve := func(l net.Listener, name string) *http.Server {
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s: %s, ALPN %q, SNI %s", name, r.Proto, r.TLS.NegotiatedProtocol, r.TLS.ServerName)
		})}
		go cmux.ServeHTTPS(hs, l)
		return hs
	}
	grpcS, restS := serve(grpcL, "grpc"), serve(restL, "rest")
	go m.Serve()

	for _, h2 := range []bool{false, true} {
		cfg := &tls.Config{RootCAs: roots, ServerName: "example.com", NextProtos: []string{"http/1.1"}}
		tr := &http.Transport{TLSClientConfig: cfg}
		if h2 {
			cfg.NextProtos = []string{"h2"}
			tr.ForceAttemptHTTP2 = true
		} else {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + l.Addr().String() + "/")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		fmt.Println(string(body))
	}
	m.Close()
	grpcS.Close()
	restS.Close()
	l.Close()
	// Output:
	// rest: HTTP/1.1, ALPN "http/1.1", SNI example.com
	// rest: HTTP/2.0, ALPN "h2", SNI example.com
}
