// Package e2e holds the end-to-end tests of cmux with grpc-go: gRPC clients
// and servers through the mux, next to HTTP/1.1, h2c, TLS and net/rpc. They
// use only cmux's public API.
//
// It is a module of its own so that the cmux module, which its users
// download, requires golang.org/x/net alone: grpc and its dependencies are
// needed only here and in the examples module. The root module's tests
// cover the same paths with a hand-written gRPC peer (grpcwire_test.go).
//
// Run the tests of every module from the repository root with
// scripts/test-all, or these with
//
//	go -C e2e test ./...
package e2e
