//go:build !unix

package h2split

import "net"

// socketPair falls back to net.Pipe where unix socket pairs do not exist.
func socketPair() (net.Conn, net.Conn, error) {
	a, b := net.Pipe()
	return a, b, nil
}
