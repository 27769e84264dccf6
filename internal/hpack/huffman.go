package hpack

import (
	"encoding/binary"
	"strings"
	"sync"

	xhpack "golang.org/x/net/http2/hpack"
)

// The HPACK Huffman code (RFC 7541 Appendix B), decoded eight bits at a
// time. The code is not written out here: huffmanTables derives it from
// golang.org/x/net/http2/hpack's encoder, once.
//
// Decoding walks a tree of 256-entry tables. An entry of a table is either
// a symbol whose code ends within the eight bits that index the table
// (huffLeaf set: the symbol in bits 8-15, the code bits it takes from those
// eight in bits 0-7) or the index of the table that the next eight bits
// index (bits 17-31). A zero entry is no code (only EOS starts there).
const huffLeaf = 1 << 16

var (
	huffOnce   sync.Once
	huffTables [][256]uint32
)

func huffmanTables() [][256]uint32 {
	huffOnce.Do(func() {
		huffTables = make([][256]uint32, 1, 64)
		for sym := range 256 {
			// Eight copies of a symbol take exactly its code length in
			// bytes, and start with its code.
			eight := strings.Repeat(string([]byte{byte(sym)}), 8)
			n := int(xhpack.HuffmanEncodeLength(eight)) // bits of the code
			enc := xhpack.AppendHuffmanString(nil, eight)
			var b [8]byte
			copy(b[:], enc)
			code := binary.BigEndian.Uint64(b[:]) >> (64 - n)
			huffInsert(uint32(code), n, byte(sym))
		}
	})
	return huffTables
}

// huffInsert adds the symbol of an n-bit code to the tables.
func huffInsert(code uint32, n int, sym byte) {
	t := 0
	for n > 8 {
		n -= 8
		i := byte(code >> n)
		e := huffTables[t][i]
		if e == 0 {
			huffTables = append(huffTables, [256]uint32{})
			e = uint32(len(huffTables)-1) << 17
			huffTables[t][i] = e
		}
		t = int(e >> 17)
	}
	first := int(code&(1<<n-1)) << (8 - n)
	for j := range 1 << (8 - n) {
		huffTables[t][first+j] = huffLeaf | uint32(sym)<<8 | uint32(n)
	}
}

// huffmanDecode appends the decoding of the Huffman-coded string src to
// dst. It fails on a code that is not in the table (EOS included) and on
// padding that is longer than seven bits or not all ones (§5.2).
func huffmanDecode(dst, src []byte) ([]byte, bool) {
	tables := huffmanTables()
	var (
		cur   uint64 // bits not decoded yet, in the low nbits
		nbits uint
		t     int  // table of the code being decoded
		deep  uint // bits of that code already consumed by tables above t
	)
	for _, b := range src {
		cur = cur<<8 | uint64(b)
		nbits += 8
		for nbits >= 8 {
			e := tables[t][byte(cur>>(nbits-8))]
			if e&huffLeaf == 0 {
				if e == 0 {
					return dst, false // EOS or a code that does not exist
				}
				t = int(e >> 17)
				deep += 8
				nbits -= 8
				continue
			}
			dst = append(dst, byte(e>>8))
			nbits -= uint(e & 0xff)
			t, deep = 0, 0
		}
	}
	// Fewer than eight bits are left: symbols whose codes end in them, then
	// padding.
	for nbits > 0 {
		e := tables[t][byte(cur<<(8-nbits))]
		if e&huffLeaf == 0 || uint(e&0xff) > nbits {
			break
		}
		dst = append(dst, byte(e>>8))
		nbits -= uint(e & 0xff)
		t, deep = 0, 0
	}
	if deep+nbits > 7 {
		return dst, false
	}
	mask := uint64(1)<<nbits - 1
	return dst, cur&mask == mask
}
