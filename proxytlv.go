package cmux

import (
	"io"

	"github.com/cmux-go/cmux/internal/proxyhdr"
)

// This file holds the matchers on the PROXY protocol header the mux
// consumed (see ProxyProtocol). They read nothing from the connection:
// the header was read before any matcher ran. Called on an io.Reader
// that is not the mux's, or for a connection without a header, they say
// no.

// ProxyHeaderTLV matches a connection whose PROXY version 2 header has a
// TLV of type typ whose value is one of values; without values, any TLV
// of that type. Of several TLVs of that type, the first counts (as with
// ProxyInfo.TLV). For TLVs whose value has a structure, see
// ProxyAWSVPCEndpoint, ProxyInfo.SSL and ProxyHeaderFunc.
//
//go:noinline
func ProxyHeaderTLV(typ byte, values ...string) Matcher {
	return ProxyHeaderFunc(func(p *ProxyInfo) bool {
		v, ok := p.TLV(typ)
		if !ok {
			return false
		}
		if len(values) == 0 {
			return true
		}
		for _, want := range values {
			if string(v) == want {
				return true
			}
		}
		return false
	})
}

// ProxyAWSVPCEndpoint matches a connection whose PROXY version 2 header,
// from an AWS Network Load Balancer behind a PrivateLink endpoint
// service, carries the ID of the VPC endpoint the client came through
// (TLV 0xEA, subtype 0x01) and that ID is one of ids ("vpce-0123abcd...");
// without ids, any such TLV.
//
//go:noinline
func ProxyAWSVPCEndpoint(ids ...string) Matcher {
	return ProxyHeaderFunc(func(p *ProxyInfo) bool {
		v, ok := p.TLV(proxyhdr.TLVAWS)
		if !ok || len(v) == 0 || v[0] != proxyhdr.AWSVPCEID {
			return false
		}
		if len(ids) == 0 {
			return true
		}
		for _, id := range ids {
			if string(v[1:]) == id {
				return true
			}
		}
		return false
	})
}

// ProxyHeaderFunc matches a connection whose PROXY header makes fn return
// true. fn must not modify the ProxyInfo; it may keep it. For instance,
// the clients that connected to the proxy over TLS with a verified
// certificate:
//
//	cmux.ProxyHeaderFunc(func(p *cmux.ProxyInfo) bool {
//		ssl, ok := p.SSL()
//		return ok && ssl.Client&cmux.ProxySSLClientCertConn != 0 && ssl.Verify == 0
//	})
func ProxyHeaderFunc(fn func(*ProxyInfo) bool) Matcher {
	return func(r io.Reader) bool {
		s, ok := r.(*sniffer)
		if !ok || s.conn == nil {
			return false
		}
		s.builtin = true
		p := s.conn.proxyInfo()
		return p != nil && fn(p)
	}
}

// Bits of ProxySSL.Client.
const (
	// ProxySSLClientSSL: the client connected to the proxy over TLS.
	ProxySSLClientSSL = 0x01
	// ProxySSLClientCertConn: the client presented a certificate on this
	// connection.
	ProxySSLClientCertConn = 0x02
	// ProxySSLClientCertSess: the client presented a certificate at least
	// once in the TLS session this connection belongs to.
	ProxySSLClientCertSess = 0x04
)

// ProxySSL is the SSL TLV (0x20) of a PROXY version 2 header: what the
// proxy knows of the client's TLS connection to it. The strings are empty
// when the proxy did not send them.
type ProxySSL struct {
	// Client holds ProxySSLClient* bits.
	Client byte
	// Verify is 0 if the client presented a certificate and it was
	// verified, nonzero otherwise.
	Verify uint32
	// Version is the TLS version ("TLSv1.3"), CommonName the subject
	// common name of the client's certificate, Cipher the cipher suite
	// ("TLS_AES_128_GCM_SHA256"), SigAlg and KeyAlg the algorithms of the
	// certificate's signature and key ("SHA256", "RSA2048").
	Version, CommonName, Cipher, SigAlg, KeyAlg string
}

// SSL returns the header's SSL TLV (0x20), the first if there are
// several. It reports false if the header has none, or if its value is
// malformed.
func (p *ProxyInfo) SSL() (ProxySSL, bool) {
	v, ok := p.TLV(proxyhdr.TLVSSL)
	if !ok {
		return ProxySSL{}, false
	}
	s, err := proxyhdr.ParseSSL(v)
	if err != nil {
		return ProxySSL{}, false
	}
	return ProxySSL{
		Client: s.Client, Verify: s.Verify,
		Version: string(s.Version), CommonName: string(s.CN), Cipher: string(s.Cipher),
		SigAlg: string(s.SigAlg), KeyAlg: string(s.KeyAlg),
	}, true
}
