package proxyhdr

import (
	"encoding/binary"
	"errors"
)

// TLV types of version 2 headers that the mux reads.
const (
	TLVSSL    = 0x20 // PP2_TYPE_SSL
	TLVAWS    = 0xEA // PP2_TYPE_AWS
	AWSVPCEID = 0x01 // PP2_SUBTYPE_AWS_VPCE_ID, the first byte of a TLVAWS value
)

// Sub-TLV types of the SSL TLV.
const (
	sslVersion = 0x21
	sslCN      = 0x22
	sslCipher  = 0x23
	sslSigAlg  = 0x24
	sslKeyAlg  = 0x25
)

// SSL is the value of an SSL TLV: what the proxy knows of the client's TLS
// connection to it.
type SSL struct {
	Client byte   // PP2_CLIENT_SSL (0x01), PP2_CLIENT_CERT_CONN (0x02), PP2_CLIENT_CERT_SESS (0x04)
	Verify uint32 // 0 if the client presented a certificate that was verified
	// The sub-TLVs' values; nil if absent.
	Version, CN, Cipher, SigAlg, KeyAlg []byte
}

// ErrSSL is returned by ParseSSL for a malformed value.
var ErrSSL = errors.New("proxyhdr: malformed SSL TLV")

// ParseSSL parses the value of an SSL TLV. The fields of the result share
// v's bytes. Sub-TLVs of other types are skipped; of a type seen twice,
// the first counts.
func ParseSSL(v []byte) (SSL, error) {
	var s SSL
	if len(v) < 5 {
		return SSL{}, ErrSSL
	}
	s.Client, s.Verify = v[0], binary.BigEndian.Uint32(v[1:5])
	for b := v[5:]; len(b) > 0; {
		if len(b) < 3 {
			return SSL{}, ErrSSL
		}
		typ, l := b[0], int(binary.BigEndian.Uint16(b[1:3]))
		if len(b)-3 < l {
			return SSL{}, ErrSSL
		}
		val := b[3 : 3+l : 3+l]
		b = b[3+l:]
		var f *[]byte
		switch typ {
		case sslVersion:
			f = &s.Version
		case sslCN:
			f = &s.CN
		case sslCipher:
			f = &s.Cipher
		case sslSigAlg:
			f = &s.SigAlg
		case sslKeyAlg:
			f = &s.KeyAlg
		default:
			continue
		}
		if *f == nil {
			*f = val
		}
	}
	return s, nil
}
