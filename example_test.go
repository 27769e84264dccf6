package cmux_test

import (
	"bufio"
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
	"time"

	"github.com/cmux-go/cmux"
)

// Route TLS connections to a TLS server and the others to a plain HTTP
// server.
func Example_tls() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	tlsL := m.Match(cmux.TLS())
	httpL := m.Match(cmux.HTTP1Fast())

	cert, roots := selfSigned()
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "TLS: %v", r.TLS != nil)
	})
	httpsS := &http.Server{Handler: hello, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	httpS := &http.Server{Handler: hello}
	go httpsS.ServeTLS(tlsL, "", "") // crypto/tls terminates TLS
	go httpS.Serve(httpL)
	go m.Serve()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	client := &http.Client{Transport: tr}
	for _, scheme := range []string{"https", "http"} {
		resp, err := client.Get(scheme + "://" + l.Addr().String() + "/")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %s\n", scheme, body)
	}

	tr.CloseIdleConnections()
	httpsS.Close()
	httpS.Close()
	m.Close()
	l.Close()
	// Output:
	// https: TLS: true
	// http: TLS: false
}

// Terminate TLS on the root listener and mux the decrypted connections.
// With ExposeConnectionState the connections the mux delivers keep their
// TLS state, so net/http fills Request.TLS. The root's Accept, that of
// crypto/tls over a TCP listener, is safe for concurrent use: with
// ConcurrentAccept the goroutine that accepted a connection makes its
// handshake and matches it while another accepts, rather than handing it
// to a worker.
func Example_muxInsideTLS() {
	cert, roots := selfSigned()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.NewWithOptions(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}),
		cmux.ExposeConnectionState(), cmux.ConcurrentAccept())
	httpL := m.Match(cmux.HTTP1Fast())
	pingL := m.Match(cmux.PrefixMatcher("PING"))

	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s, TLS %v", r.Proto, r.TLS != nil)
	})}
	go hs.Serve(httpL)
	go func() { // a raw line protocol: PING -> PONG
		for {
			c, err := pingL.Accept()
			if err != nil {
				return
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				io.WriteString(c, "PONG\n")
			}
			c.Close()
		}
	}()
	go m.Serve()

	clientTLS := &tls.Config{RootCAs: roots}
	tr := &http.Transport{TLSClientConfig: clientTLS}
	resp, err := (&http.Client{Transport: tr}).Get("https://" + l.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	c, err := tls.Dial("tcp", l.Addr().String(), clientTLS)
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(c, "PING\n")
	pong, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	fmt.Print(pong)

	tr.CloseIdleConnections()
	hs.Close()
	m.Close()
	l.Close()
	// Output:
	// HTTP/1.1, TLS true
	// PONG
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}
