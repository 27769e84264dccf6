package hpack

import (
	"bytes"
	"math/rand/v2"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

// TestHuffmanRoundTrip: every byte value, and random strings, decode to
// what x/net's encoder encoded.
func TestHuffmanRoundTrip(t *testing.T) {
	var all []byte
	for b := range 256 {
		all = append(all, byte(b))
	}
	inputs := [][]byte{nil, all, []byte("application/grpc"), []byte("/grpc.health.v1.Health/Check")}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		s := make([]byte, r.IntN(64))
		for i := range s {
			s[i] = byte(r.IntN(256))
		}
		inputs = append(inputs, s)
	}
	for _, in := range inputs {
		enc := xhpack.AppendHuffmanString(nil, string(in))
		got, ok := huffmanDecode(nil, enc)
		if !ok || !bytes.Equal(got, in) {
			t.Fatalf("decode(encode(%q)) = %q, %v", in, got, ok)
		}
	}
}

// FuzzHuffman checks the decoder against x/net's on any input, valid or
// not: both accept the same strings and decode them alike.
func FuzzHuffman(f *testing.F) {
	f.Add([]byte{})
	f.Add(xhpack.AppendHuffmanString(nil, "www.example.com"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}) // EOS
	f.Add([]byte{0x1f, 0xff})             // 'a'-ish then long padding
	f.Add([]byte{0xfe})                   // padding with a zero bit
	f.Add([]byte{0xff, 0xff, 0xff, 0xfc}) // a 30-bit code cut short
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := huffmanDecode(nil, in)
		var want bytes.Buffer
		_, err := xhpack.HuffmanDecode(&want, in)
		if ok != (err == nil) {
			t.Fatalf("%x: ok=%v, x/net err=%v", in, ok, err)
		}
		if ok && !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%x: decoded %q, x/net %q", in, got, want.Bytes())
		}
	})
}
