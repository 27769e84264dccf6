// Package cmuxgrpc connects grpc-go servers to the listeners of
// github.com/cmux-go/cmux. It lives in a module of its own so that the cmux
// module itself does not depend on grpc-go.
package cmuxgrpc
