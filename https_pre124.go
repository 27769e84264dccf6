//go:build !go1.24

package cmux

import "net/http"

// sniffedH2OK says whether net/http can serve HTTP/2 on a connection that
// is not a *tls.Conn: before Go 1.24 it cannot.
const sniffedH2OK = false

func enableSniffedH2(*http.Server) {}
