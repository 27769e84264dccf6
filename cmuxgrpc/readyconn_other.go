//go:build !linux

package cmuxgrpc

import (
	"net"

	"github.com/cmux-go/cmux"
)

// readyConnOf returns mc: grpc-go reads without pinning a buffer only on
// Linux.
func readyConnOf(mc *cmux.MuxConn) net.Conn { return mc }
