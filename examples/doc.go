// Package examples holds runnable examples of cmux with grpc-go (go test
// checks their output); in examples/cmuxmetrics, adapters from cmux's hooks
// to Prometheus and OpenTelemetry metrics, with examples; and, in
// examples/demo, a program that serves gRPC, REST over HTTP/1.1 and h2c, a
// TCP echo and its own metrics on one port:
//
//	go -C examples run ./demo
//
// In examples/tls, a program that terminates TLS once in the mux (one
// tls.Config, client certificates, ALPN) and serves grpc-go natively, with
// the client's identity in AuthInfo, and REST over HTTP/1.1 and HTTP/2 with
// Request.TLS:
//
//	go -C examples run ./tls
//
// It is a module of its own so that the cmux module, which its users
// download, requires golang.org/x/net alone (not grpc-go, client_golang or
// OpenTelemetry); its go.mod points
// github.com/cmux-go/cmux at the repository's copy.
package examples
