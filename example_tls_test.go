package cmux_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/cmux-go/cmux"
)

// Serve two HTTPS sites, each with its own certificate, on one port: the
// mux routes by the server name of the ClientHello (SNI) and leaves TLS to
// the servers.
func ExampleTLSServerName() {
	issue, roots := exampleCA()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	adminL := m.Match(cmux.TLSServerName("admin.example.com"))
	siteL := m.Match(cmux.TLSServerName("example.com", "*.example.com"))

	var servers []*http.Server
	for _, s := range []struct {
		l    net.Listener
		name string
	}{{adminL, "admin.example.com"}, {siteL, "example.com"}} {
		hs := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s: %s over %s", s.name, r.TLS.ServerName, r.Proto)
			}),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{issue(s.name, "*."+s.name)}},
		}
		servers = append(servers, hs)
		go hs.ServeTLS(s.l, "", "") // each server terminates its own TLS
	}
	go m.Serve()

	for _, host := range []string{"admin.example.com", "www.example.com"} {
		tr := &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + l.Addr().String() + "/")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		fmt.Println(string(body))
	}

	for _, hs := range servers {
		hs.Close()
	}
	m.Close()
	l.Close()
	// Output:
	// admin.example.com: admin.example.com over HTTP/2.0
	// example.com: www.example.com over HTTP/2.0
}

// Behind a proxy that sends the PROXY protocol (HAProxy's send-proxy or
// send-proxy-v2, AWS NLB, GCP), the mux consumes the header and the servers
// see the client's address.
func ExampleProxyProtocol() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.NewWithOptions(l, cmux.ProxyProtocol(cmux.ProxyConfig{
		// Believe headers from the proxies' network only.
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}))
	httpL := m.Match(cmux.HTTP1Fast())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client %s", r.RemoteAddr)
	})}
	go hs.Serve(httpL)
	go m.Serve()

	// What a proxy would send for a client at 192.0.2.1:56324.
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_, err = io.WriteString(c, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 80\r\n")
		}
		return c, err
	}}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + l.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	fmt.Println(string(body))

	hs.Close()
	m.Close()
	l.Close()
	// Output:
	// client 192.0.2.1:56324
}

// Read the TLVs of a version 2 PROXY header (here the authority: the host
// name the client asked the proxy for) on a delivered connection, or on a
// *tls.Conn over one.
func ExampleProxyHeader() {
	handle := func(c net.Conn) {
		if h, ok := cmux.ProxyHeader(c); ok {
			if authority, ok := h.TLV(0x02); ok {
				fmt.Printf("client %v asked for %s\n", c.RemoteAddr(), authority)
			}
		}
		c.Close()
	}
	_ = handle // call it on the connections a child listener accepts
}

// exampleCA returns a function that issues certificates for host names,
// and a pool that trusts them.
func exampleCA() (issue func(names ...string) tls.Certificate, roots *x509.CertPool) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	serial := int64(1)
	issue = func(names ...string) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			DNSNames:     names,
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			log.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return issue, roots
}
