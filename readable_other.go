//go:build !unix

package cmux

import "net"

// waitReadable returns at once where the mux has no way to wait for
// readability without reading.
func waitReadable(net.Conn) {}
