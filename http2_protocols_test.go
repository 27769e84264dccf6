//go:build go1.24

package cmux

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"testing"
)

// The tests' HTTP/2 servers and clients without TLS are net/http's
// (http.Protocols, Go 1.24), whose HTTP/2 is x/net/http2's, bundled: the
// tests import no golang.org/x/net/http2, whose x/net/idna would make every
// module that requires this library download golang.org/x/text (see
// scripts/check-deps). The e2e module runs x/net/http2's own h2c handler,
// Server.ServeConn and Transport behind the mux.

// h2ProtocolsServer returns a net/http server for HTTP/1 and HTTP/2 without
// TLS: HTTP/2 starts when an HTTP/1 read finds the preface, as with x/net's
// h2c.NewHandler.
func h2ProtocolsServer(t testing.TB, h http.Handler, errLog *log.Logger) *http.Server {
	hs := &http.Server{Handler: h, ErrorLog: errLog}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	return hs
}

// h2OnlyServer returns a net/http server for HTTP/2 without TLS alone
// (prior knowledge): it serves each connection as HTTP/2 from its first
// byte, as x/net's http2.Server.ServeConn does.
func h2OnlyServer(t testing.TB, h http.Handler, errLog *log.Logger) *http.Server {
	hs := &http.Server{Handler: h, ErrorLog: errLog}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetUnencryptedHTTP2(true)
	return hs
}

// h2cTransport returns a net/http transport that speaks HTTP/2 without TLS
// (prior knowledge) on connections it dials with dial, as x/net's
// http2.Transport with AllowHTTP does.
func h2cTransport(t testing.TB, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	tr := &http.Transport{DialContext: dial}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return tr
}

// h2TLSTransport returns a net/http transport that speaks HTTP/2 alone over
// TLS with cfg: it offers ALPN "h2" alone, as x/net's http2.Transport and
// gRPC clients do.
func h2TLSTransport(t testing.TB, cfg *tls.Config) *http.Transport {
	tr := &http.Transport{TLSClientConfig: cfg}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	return tr
}
