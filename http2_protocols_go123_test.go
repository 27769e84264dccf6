//go:build !go1.24

package cmux

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"testing"
)

// Before Go 1.24, net/http has no HTTP/2 without TLS (http.Protocols), and
// the tests import no golang.org/x/net/http2 (see http2_protocols_test.go):
// the tests that need it are skipped. CI runs a newer Go.

const h2NeedsGo124 = "needs Go 1.24's net/http HTTP/2 without TLS (http.Protocols)"

func h2ProtocolsServer(t testing.TB, h http.Handler, errLog *log.Logger) *http.Server {
	t.Skip(h2NeedsGo124)
	return nil
}

func h2OnlyServer(t testing.TB, h http.Handler, errLog *log.Logger) *http.Server {
	t.Skip(h2NeedsGo124)
	return nil
}

func h2cTransport(t testing.TB, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	t.Skip(h2NeedsGo124)
	return nil
}

func h2TLSTransport(t testing.TB, cfg *tls.Config) *http.Transport {
	t.Skip(h2NeedsGo124)
	return nil
}
