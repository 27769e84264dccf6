//go:build !linux

package main

import (
	"errors"
	"net"
)

// deferAccept reports an error: TCP_DEFER_ACCEPT is Linux's.
func deferAccept(net.Listener) error {
	return errors.New("cpuserver: TCP_DEFER_ACCEPT is Linux only")
}
