//go:build !unix

package cmux

import "net"

// waitReadable returns at once where the mux has no way to wait for
// readability without reading.
func waitReadable(net.Conn) {}

// isSocket reports whether readNow can read from c: never here.
func isSocket(net.Conn) bool { return false }

// nowReader is the state of readNow.
type nowReader struct{}

// tryFirst is never called here (no connection is a socket readNow reads).
func (r *nowReader) tryFirst() bool { return false }

// firstRead is never called here.
func (r *nowReader) firstRead(bool) {}

// readNow reports that it cannot read without waiting here.
func (r *nowReader) readNow(net.Conn, []byte) (int, error, bool) { return 0, nil, false }
