package wiretest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// NewCert returns a certificate made from tmpl, valid from an hour ago to
// an hour from now, for a new P-256 key and signed by issuer (self-signed
// if issuer is nil). Its Leaf is set.
func NewCert(t testing.TB, tmpl *x509.Certificate, issuer *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	parent, parentKey := tmpl, any(key)
	if issuer != nil {
		parent, parentKey = issuer.Leaf, issuer.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// SelfSigned returns a certificate for 127.0.0.1 and a pool that trusts
// it.
func SelfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	cert := NewCert(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cmux test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool
}

// PKI is a test CA.
type PKI struct {
	Roots *x509.CertPool // trusts the CA
	CA    tls.Certificate
}

// NewPKI returns a new CA.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	ca := NewCert(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cmux test CA"},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	return &PKI{Roots: roots, CA: ca}
}

// leafSerial numbers the certificates Leaf issues.
var leafSerial atomic.Int64

// Leaf returns a certificate named cn for the DNS names, for servers and
// clients.
func (p *PKI) Leaf(t testing.TB, cn string, names ...string) tls.Certificate {
	t.Helper()
	return NewCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(leafSerial.Add(1) + 1),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, &p.CA)
}
