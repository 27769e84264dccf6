package cmux

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmux-go/cmux/internal/wiretest"
)

func ptSSL(client byte, version string) []byte {
	v := []byte{client, 0, 0, 0, 0, 0x21, 0, byte(len(version))}
	return append(v, version...)
}

func ptTLSClient(p *ProxyInfo) bool {
	ssl, ok := p.SSL()
	return ok && ssl.Client&ProxySSLClientSSL != 0
}

// TestProxyTLVMatchers routes on the TLVs of version 2 headers.
func TestProxyTLVMatchers(t *testing.T) {
	checkLeaks(t)
	m, addr, errs := thServedMux(t, ProxyProtocol(ProxyConfig{Trusted: ppLoopback}))
	rtServeID(t, m.Match(ProxyAWSVPCEndpoint("vpce-1", "vpce-2")), "vpce")
	rtServeID(t, m.Match(All(ProxyHeaderTLV(0x02, "a.example.com", "b.example.com"), ProxyHeaderFunc(ptTLSClient))), "authority-tls")
	rtServeID(t, m.Match(ProxyHeaderTLV(0x05)), "unique-id")
	rtServeID(t, m.Match(ProxyAWSVPCEndpoint()), "any-vpce")
	rtServeID(t, m.Match(Any()), "other")
	inet := wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1000, 443)
	hdr := func(tlvs ...wiretest.TLV) []byte { return wiretest.ProxyV2(0x21, 0x11, inet, true, tlvs...) }
	aws := func(sub byte, id string) wiretest.TLV {
		return wiretest.TLV{Type: 0xEA, Value: append([]byte{sub}, id...)}
	}
	auth := func(h string) wiretest.TLV { return wiretest.TLV{Type: 0x02, Value: []byte(h)} }
	ssl := func(client byte) wiretest.TLV { return wiretest.TLV{Type: 0x20, Value: ptSSL(client, "TLSv1.3")} }
	cases := []struct {
		in   []byte
		want string
	}{
		{hdr(aws(1, "vpce-2")), "vpce"},
		{hdr(aws(1, "vpce-3")), "any-vpce"},
		{hdr(aws(2, "vpce-2")), "other"}, // another subtype
		{hdr(auth("b.example.com"), ssl(ProxySSLClientSSL|ProxySSLClientCertConn)), "authority-tls"},
		{hdr(auth("b.example.com"), ssl(0)), "other"},
		{hdr(auth("c.example.com"), ssl(1)), "other"},
		{hdr(auth("a.example.com"), wiretest.TLV{Type: 0x20, Value: []byte{1, 0}}), "other"}, // malformed SSL
		{hdr(wiretest.TLV{Type: 0x05, Value: nil}), "unique-id"},
		{hdr(), "other"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want+" 192.0.2.1", rtID(rtAsk(t, "127.0.0.1", addr, tc.in)), "%x", tc.in)
	}
	assert.Equal(t, "other 127.0.0.1", rtID(rtAsk(t, "127.0.0.1", addr, []byte("no header"))))
	ppNoErr(t, errs)
	// On a reader that is not the mux's they say no.
	r := strings.NewReader(string(hdr(aws(1, "vpce-2"))))
	assert.False(t, ProxyAWSVPCEndpoint()(r))
	assert.False(t, ProxyHeaderFunc(func(*ProxyInfo) bool { return true })(r))
}

func TestProxyInfoSSL(t *testing.T) {
	checkLeaks(t)
	p := &ProxyInfo{TLVs: []ProxyTLV{{Type: 0x20, Value: append(ptSSL(3, "TLSv1.2"), 0x22, 0, 1, 'c', 0x23, 0, 1, 'x', 0x24, 0, 1, 's', 0x25, 0, 1, 'k')}}}
	ssl, ok := p.SSL()
	assert.True(t, ok)
	assert.Equal(t, ProxySSL{Client: 3, Version: "TLSv1.2", CommonName: "c", Cipher: "x", SigAlg: "s", KeyAlg: "k"}, ssl)
	_, ok = (&ProxyInfo{}).SSL()
	assert.False(t, ok)
}

// TestProxyTLVHAProxy: haproxy terminates TLS and sends the SSL and
// authority TLVs (proxy-v2-options ssl,authority); the mux routes the
// clients that came over TLS, and by the server name they asked for.
func TestProxyTLVHAProxy(t *testing.T) {
	checkLeaks(t)
	thNeed(t, "haproxy")
	pki := newTestPKI(t)
	cert := pki.Leaf(t, "a", "a.example.com", "b.example.com")
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	require.NoError(t, err)
	pemPath := filepath.Join(t.TempDir(), "cert.pem")
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...)
	require.NoError(t, os.WriteFile(pemPath, pemData, 0o600))

	m, muxAddr, errs := thServedMux(t, ProxyProtocol(ProxyConfig{Trusted: ppLoopback, Required: true}))
	serve := func(id string, ms ...Matcher) {
		serveHTTP(t, m.Match(ms...), &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s %s", id, r.Context().Value(ppCtxKey{}))
			}),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				ssl := "-"
				if p, ok := ProxyHeader(c); ok {
					if s, ok := p.SSL(); ok {
						ssl = fmt.Sprintf("%d/%s", s.Client, s.Version)
					}
				}
				return context.WithValue(ctx, ppCtxKey{}, ssl)
			},
		})
	}
	serve("tls-a", All(ProxyHeaderTLV(0x02, "a.example.com"), ProxyHeaderFunc(ptTLSClient)))
	serve("tls", ProxyHeaderFunc(ptTLSClient))
	serve("plain", Any())

	ports := ppFreePorts(t, 3, false)
	fe := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	ppRunHAProxy(t, fmt.Sprintf(ppHAProxyDefaults+`frontend fe_ready
    bind %s
    tcp-request connection reject
frontend fe_tls
    bind %s ssl crt %s
    default_backend be
frontend fe_plain
    bind %s
    default_backend be
backend be
    server mux %s send-proxy-v2 proxy-v2-options ssl,authority
`, fe(0), fe(1), pemPath, fe(2), muxAddr), fe(0))

	get := func(url, via string) string {
		t.Helper()
		tr := &http.Transport{
			TLSClientConfig: clientTLS(pki.Roots),
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, via)
			},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: thWait}).Get(url)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	assert.Equal(t, "tls-a 1/TLSv1.3", get("https://a.example.com/", fe(1)))
	assert.Equal(t, "tls 1/TLSv1.3", get("https://b.example.com/", fe(1)))
	assert.True(t, strings.HasPrefix(get("http://a.example.com/", fe(2)), "plain "))
	ppNoErr(t, errs)
}
