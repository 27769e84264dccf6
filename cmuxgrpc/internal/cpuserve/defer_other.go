//go:build !linux

package cpuserve

import (
	"errors"
	"net"
)

// DeferAccept reports an error: TCP_DEFER_ACCEPT is Linux's.
func DeferAccept(net.Listener) error {
	return errors.New("cpuserve: TCP_DEFER_ACCEPT is Linux only")
}
