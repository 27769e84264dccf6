//go:build !unix

package cpuserve

import "net"

// peekOver is the "peek" probe, which peeks at sockets with MSG_PEEK: off
// Unix it hands connections over as "hand" does.
func peekOver(root net.Listener) net.Listener { return handOver(root) }

// waitListener is the "wait" probe: off Unix, the listener itself.
type waitListener struct{ net.Listener }
