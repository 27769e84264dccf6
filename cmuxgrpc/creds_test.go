package cmuxgrpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// selfSigned returns a certificate for "test" with the URI SANs.
func selfSigned(t *testing.T, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		DNSNames:     []string{"test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// handshake runs a TLS handshake over a pipe and returns the server's
// *tls.Conn.
func handshake(t *testing.T, serverProtos, clientProtos []string, clientCert tls.Certificate) *tls.Conn {
	t.Helper()
	cert := selfSigned(t)
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: serverProtos, ClientAuth: tls.RequireAnyClientCert})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, NextProtos: clientProtos, Certificates: []tls.Certificate{clientCert}})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestTerminatedTLS(t *testing.T) {
	creds := TerminatedTLS()
	client := selfSigned(t, "spiffe://example.org/ns/a/sa/b", "https://example.org/x")
	c := handshake(t, []string{"h2"}, []string{"h2"}, client)
	got, auth, err := creds.ServerHandshake(c)
	if err != nil {
		t.Fatal(err)
	}
	if got != net.Conn(c) {
		t.Errorf("ServerHandshake returned %T, not the connection", got)
	}
	ti, ok := auth.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("AuthInfo is %T", auth)
	}
	if ti.AuthType() != "tls" || ti.SecurityLevel != credentials.PrivacyAndIntegrity {
		t.Errorf("AuthInfo %q, level %v", ti.AuthType(), ti.SecurityLevel)
	}
	if n := len(ti.State.PeerCertificates); n != 1 || ti.State.PeerCertificates[0].Subject.CommonName != "test" {
		t.Errorf("peer certificates: %d", n)
	}
	if ti.SPIFFEID == nil || ti.SPIFFEID.String() != "spiffe://example.org/ns/a/sa/b" {
		t.Errorf("SPIFFE ID %v", ti.SPIFFEID)
	}
	if creds.Info().SecurityProtocol != "tls" || creds.Clone() == nil {
		t.Error("Info or Clone")
	}
	if _, _, err := creds.ClientHandshake(context.Background(), "x", c); err == nil {
		t.Error("ClientHandshake succeeded")
	}
}

func TestTerminatedTLSRefuses(t *testing.T) {
	creds := TerminatedTLS()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, _, err := creds.ServerHandshake(a); !errors.Is(err, ErrNoTLSState) {
		t.Errorf("plain connection: %v", err)
	}
	if _, _, err := creds.ServerHandshake(tls.Server(a, &tls.Config{})); !errors.Is(err, ErrNoTLSState) {
		t.Errorf("handshake not done: %v", err)
	}
	c := handshake(t, []string{"h2", "http/1.1"}, []string{"http/1.1"}, selfSigned(t))
	if _, _, err := creds.ServerHandshake(c); !errors.Is(err, ErrNotH2) {
		t.Errorf("ALPN http/1.1: %v", err)
	}
	c = handshake(t, nil, nil, selfSigned(t))
	if _, _, err := creds.ServerHandshake(c); !errors.Is(err, ErrNotH2) {
		t.Errorf("no ALPN: %v", err)
	}
	two := selfSigned(t, "spiffe://a/x", "spiffe://a/y")
	if id := spiffeID(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{two.Leaf}}); id != nil {
		t.Errorf("SPIFFE ID of two: %v", id)
	}
	if id := spiffeID(&tls.ConnectionState{}); id != nil {
		t.Errorf("SPIFFE ID without certificate: %v", id)
	}
}
