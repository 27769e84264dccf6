//go:build !linux

package sockopt

import (
	"errors"
	"net"
)

// DeferAccept returns an error: TCP_DEFER_ACCEPT is Linux's.
func DeferAccept(net.Listener, int) error {
	return errors.New("sockopt: TCP_DEFER_ACCEPT is Linux only")
}
