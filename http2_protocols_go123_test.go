//go:build !go1.24

package cmux

//lint:file-ignore SA1019 the tests drive the x/net/http2 server on purpose: users run it, and the mux must work with it.

import (
	"log"
	"net/http"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// h2ProtocolsServer returns a net/http server for HTTP/1 and HTTP/2 without
// TLS. The module's go directive is below Go 1.24, whose net/http serves
// HTTP/2 without TLS (http.Protocols; http2_protocols_test.go); built by an
// older Go, the tests get x/net's h2c.NewHandler instead, so their
// nethttp-protocols cases repeat the h2c-handler ones.
func h2ProtocolsServer(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ErrorLog: errLog}
}
