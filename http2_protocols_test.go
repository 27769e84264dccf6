//go:build go1.24

package cmux

import (
	"log"
	"net/http"
)

// h2ProtocolsServer returns a net/http server for HTTP/1 and HTTP/2 without
// TLS (http.Protocols, Go 1.24).
func h2ProtocolsServer(h http.Handler, errLog *log.Logger) *http.Server {
	hs := &http.Server{Handler: h, ErrorLog: errLog}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	return hs
}
