// Package examples holds runnable examples of cmux with grpc-go (go test
// checks their output), and, in examples/demo, a program that serves gRPC,
// REST over HTTP/1.1 and h2c, and a TCP echo on one port:
//
//	go -C examples run ./demo
//
// It is a module of its own so that the cmux module, which its users
// download, requires golang.org/x/net alone; its go.mod points
// github.com/cmux-go/cmux at the repository's copy.
package examples
