//go:build !unix

package cpuserve

import (
	"errors"
	"net"
)

// errUnixOnly is what the "peek" and "wait" probes' Accept returns off
// Unix, where they have no MSG_PEEK: their server stops at once, and the
// clients' failures say so, rather than measuring something else.
var errUnixOnly = errors.New("cpuserve: the peek and wait probes run on Unix only")

type unixOnlyListener struct{ net.Listener }

func (unixOnlyListener) Accept() (net.Conn, error) { return nil, errUnixOnly }

func peekOver(root net.Listener) net.Listener { return unixOnlyListener{root} }

type waitListener = unixOnlyListener
