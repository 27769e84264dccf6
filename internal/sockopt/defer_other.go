//go:build !linux

package sockopt

import (
	"errors"
	"net"
)

// ErrUnsupported is DeferAccept's error off Linux.
var ErrUnsupported = errors.New("sockopt: TCP_DEFER_ACCEPT is Linux only")

// DeferAccept returns ErrUnsupported: TCP_DEFER_ACCEPT is Linux's.
func DeferAccept(net.Listener, int) error { return ErrUnsupported }
