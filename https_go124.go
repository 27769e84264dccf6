//go:build go1.24

package cmux

import "net/http"

// sniffedH2OK says whether net/http can serve HTTP/2 on a connection that
// is not a *tls.Conn: with Go 1.24's http.Protocols it can.
const sniffedH2OK = true

// enableSniffedH2 adds UnencryptedHTTP2 to srv.Protocols (see ServeHTTPS).
func enableSniffedH2(srv *http.Server) {
	if srv.Protocols != nil && srv.Protocols.UnencryptedHTTP2() {
		return
	}
	var p http.Protocols
	if srv.Protocols != nil {
		p = *srv.Protocols
	} else {
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p
}
