package compat

//lint:file-ignore SA1019 x/net/http2's client and h2c are used on purpose: v0.1.5 programs use them.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	ours "github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// seen is what a handler saw of a request.
type seen struct {
	protoMajor int
	tls        bool
}

// tlsRootServer serves h on a mux of a TLS root listener (tls.NewListener,
// no ALPN), with one Any() child, and returns the port's address.
func tlsRootServer(t *testing.T, newMux func(net.Listener) Mux, any Matcher, srv *http.Server) string {
	t.Helper()
	tcp := listen(t)
	root := tls.NewListener(tcp, serverTLSConfig())
	m := newMux(root)
	l := m.Match(any)
	served := serve(m)
	httpDone := goWait(func() error { return srv.Serve(l) })
	t.Cleanup(func() {
		srv.Close()
		root.Close()
		m.Close()
		served.wait(t, waitFor, "mux Serve at cleanup")
		httpDone.wait(t, waitFor, "http.Server.Serve at cleanup")
	})
	return tcp.Addr().String()
}

// recordingHandler answers "ok" and sends what it saw on c.
func recordingHandler(c chan<- seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case c <- seen{r.ProtoMajor, r.TLS != nil}:
		default:
		}
		io.WriteString(w, "ok")
	})
}

// h2PriorKnowledgeOverTLS makes an HTTP/2 request with prior knowledge
// over a TLS connection that negotiated no ALPN protocol.
func h2PriorKnowledgeOverTLS(addr string) (int, string, error) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
			d := tls.Dialer{Config: clientTLSConfig()} // no NextProtos: no "h2"
			return d.DialContext(ctx, network, a)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitFor}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 {
		return resp.StatusCode, string(b), fmt.Errorf("response over HTTP/%d", resp.ProtoMajor)
	}
	return resp.StatusCode, string(b), err
}

// h1OverTLS makes an HTTP/1.1 request over TLS.
func h1OverTLS(addr string) (int, error) {
	tr := &http.Transport{TLSClientConfig: clientTLSConfig(), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitFor}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// h2cServers are the two ways to serve h2c with net/http.
var h2cServers = []struct {
	name string
	new  func(h http.Handler) *http.Server
}{
	{"Protocols", func(h http.Handler) *http.Server {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		return &http.Server{Handler: h, Protocols: &p}
	}},
	{"H2CHandler", func(h http.Handler) *http.Server {
		return &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})}
	}},
}

// TestTLSRoot: a TLS root listener whose decrypted stream carries h2c or
// HTTP/1.1. The delivered connection has no ConnectionState in either
// library, so net/http treats it as plain: h2c works and r.TLS is nil.
func TestTLSRoot(t *testing.T) {
	for _, s := range h2cServers {
		t.Run(s.name, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				saw := make(chan seen, 1)
				addr := tlsRootServer(t, lib.New, lib.Any(), s.new(recordingHandler(saw)))
				code, body, err := h2PriorKnowledgeOverTLS(addr)
				if err != nil || code != http.StatusOK || body != "ok" {
					t.Fatalf("h2c over TLS: %d %q %v; want 200 \"ok\"", code, body, err)
				}
				if got := within(t, saw, waitFor, "the handler"); got.protoMajor != 2 || got.tls {
					t.Errorf("handler saw HTTP/%d, r.TLS != nil: %v; want HTTP/2 and r.TLS == nil", got.protoMajor, got.tls)
				}
				code, err = h1OverTLS(addr)
				if err != nil || code != http.StatusOK {
					t.Fatalf("HTTP/1.1 over TLS: %d %v", code, err)
				}
				if got := within(t, saw, waitFor, "the handler"); got.protoMajor != 1 || got.tls {
					t.Errorf("handler saw HTTP/%d, r.TLS != nil: %v; want HTTP/1 and r.TLS == nil", got.protoMajor, got.tls)
				}
			})
		})
	}
}

// TestExposeConnectionState: with the option, the delivered connection
// has the TLS state, so r.TLS is set on HTTP/1 requests, and net/http's own
// h2c (http.Protocols) is no longer served inside TLS: net/http serves
// HTTP/2 on a TLS connection only after ALPN "h2". h2c.NewHandler, which
// hijacks the HTTP/1 "PRI" request whatever the connection, still serves it.
func TestExposeConnectionState(t *testing.T) {
	for _, s := range h2cServers {
		t.Run(s.name, func(t *testing.T) {
			checkLeaks(t)
			d := expectDifference(t)
			saw := make(chan seen, 1)
			newMux := func(l net.Listener) Mux { return newOurs(l, ours.ExposeConnectionState()) }
			addr := tlsRootServer(t, newMux, ours.Any(), s.new(recordingHandler(saw)))
			code, body, err := h2PriorKnowledgeOverTLS(addr)
			h2ok := err == nil && code == http.StatusOK && body == "ok"
			t.Logf("h2c over TLS with ExposeConnectionState: %d %q %v", code, body, err)
			switch s.name {
			case "Protocols":
				if h2ok {
					t.Errorf("h2c over TLS answered 200; want a failure: %s", d.Ours)
				}
			case "H2CHandler":
				if !h2ok {
					t.Errorf("h2c over TLS: %d %q %v; want 200: %s", code, body, err, d.Ours)
				}
				if got := within(t, saw, waitFor, "the handler"); got.protoMajor != 2 {
					t.Errorf("handler saw HTTP/%d, want 2", got.protoMajor)
				}
			}
			code, err = h1OverTLS(addr)
			if err != nil || code != http.StatusOK {
				t.Fatalf("HTTP/1.1 over TLS: %d %v", code, err)
			}
			if got := within(t, saw, waitFor, "the handler"); !got.tls {
				t.Errorf("handler saw r.TLS == nil with ExposeConnectionState; %s", d.Ours)
			}
		})
	}
}
