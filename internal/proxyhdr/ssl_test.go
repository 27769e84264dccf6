package proxyhdr

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func sslTLV(client byte, verify uint32, subs ...[]byte) []byte {
	v := []byte{client, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(v[1:], verify)
	for i := 0; i+1 < len(subs); i += 2 {
		v = append(v, subs[i][0], byte(len(subs[i+1])>>8), byte(len(subs[i+1])))
		v = append(v, subs[i+1]...)
	}
	return v
}

func TestParseSSL(t *testing.T) {
	v := sslTLV(0x07, 0, []byte{sslVersion}, []byte("TLSv1.3"), []byte{0x99}, []byte("skip"),
		[]byte{sslCN}, []byte("client.example"), []byte{sslCN}, []byte("second"), []byte{sslCipher}, []byte("TLS_AES_128_GCM_SHA256"))
	s, err := ParseSSL(v)
	if err != nil {
		t.Fatal(err)
	}
	if s.Client != 7 || s.Verify != 0 || string(s.Version) != "TLSv1.3" || string(s.CN) != "client.example" ||
		string(s.Cipher) != "TLS_AES_128_GCM_SHA256" || s.SigAlg != nil || s.KeyAlg != nil {
		t.Fatalf("%+v", s)
	}
	if s, err := ParseSSL(sslTLV(1, 5)); err != nil || s.Client != 1 || s.Verify != 5 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0}, append(sslTLV(1, 0), sslCN, 0), append(sslTLV(1, 0), sslCN, 0, 5, 'a')} {
		if _, err := ParseSSL(bad); err != ErrSSL {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

// FuzzParseSSL: a value parses or not, never panics; the fields are
// subslices of the value, and re-encoding the parsed fields and parsing
// again gives them back.
func FuzzParseSSL(f *testing.F) {
	f.Add(sslTLV(0x07, 0, []byte{sslVersion}, []byte("TLSv1.3"), []byte{sslCN}, []byte("c")))
	f.Add(sslTLV(0x01, 1))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		s, err := ParseSSL(v)
		if err != nil {
			return
		}
		fields := [][]byte{s.Version, s.CN, s.Cipher, s.SigAlg, s.KeyAlg}
		types := []byte{sslVersion, sslCN, sslCipher, sslSigAlg, sslKeyAlg}
		var subs [][]byte
		for i, f := range fields {
			if f != nil && !bytes.Contains(v[5:], f) {
				t.Fatalf("%x: field %x not in the value", v, f)
			}
			if f != nil {
				subs = append(subs, []byte{types[i]}, f)
			}
		}
		s2, err := ParseSSL(sslTLV(s.Client, s.Verify, subs...))
		if err != nil || s2.Client != s.Client || s2.Verify != s.Verify {
			t.Fatalf("%x: round trip %v", v, err)
		}
		for i, f := range [][]byte{s2.Version, s2.CN, s2.Cipher, s2.SigAlg, s2.KeyAlg} {
			if !bytes.Equal(f, fields[i]) || (f == nil) != (fields[i] == nil) {
				t.Fatalf("%x: field %d %q, round trip %q", v, i, fields[i], f)
			}
		}
	})
}
