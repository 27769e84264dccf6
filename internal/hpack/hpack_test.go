package hpack

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

// hf is shorthand for a header field in expectations.
func hf(name, value string) xhpack.HeaderField { return xhpack.HeaderField{Name: name, Value: value} }

// mustHex decodes hex, ignoring spaces.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// encodeBlock encodes fields as the first header block of a connection.
func encodeBlock(tb testing.TB, fields ...xhpack.HeaderField) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := xhpack.NewEncoder(&buf)
	for _, f := range fields {
		if err := enc.WriteField(f); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// decodedFields returns the fields held by d.
func decodedFields(d *Decoder) []xhpack.HeaderField {
	var fs []xhpack.HeaderField
	for i := range d.NumFields() {
		name, value := d.FieldAt(i)
		fs = append(fs, hf(string(name), string(value)))
	}
	return fs
}

// referenceDecode decodes block with a fresh x/net decoder, dropping the
// Sensitive flags, which Decoder does not report.
func referenceDecode(block []byte) ([]xhpack.HeaderField, error) {
	fs, err := xhpack.NewDecoder(hpackMaxTableSize, nil).DecodeFull(block)
	for i := range fs {
		fs[i].Sensitive = false
	}
	return fs, err
}

// grpcFields is a request header block as sent by grpc-go.
var grpcFields = []xhpack.HeaderField{
	hf(":method", "POST"),
	hf(":scheme", "http"),
	hf(":path", "/grpc.health.v1.Health/Check"),
	hf(":authority", "127.0.0.1:1234"),
	hf("content-type", "application/grpc"),
	hf("user-agent", "grpc-go/1.85.0"),
	hf("te", "trailers"),
	hf("grpc-timeout", "1S"),
}

// huffmanFields is a request whose literals are long and Huffman-coded.
var huffmanFields = []xhpack.HeaderField{
	hf(":method", "GET"),
	hf(":scheme", "https"),
	hf(":path", "/api/v2/organizations/example/repositories?page=3&per_page=100&sort=updated"),
	hf(":authority", "service.internal.example.com:8443"),
	hf("accept", "application/json, text/plain, */*"),
	hf("accept-language", "en-us,en;q=0.9,de;q=0.8,fr;q=0.7"),
	hf("user-agent", "mozilla/5.0 (x11; linux x86_64) applewebkit/537.36 (khtml, like gecko) chrome/126.0.0.0 safari/537.36"),
	hf("cookie", "session=abcdefghijklmnopqrstuvwxyz0123456789; theme=dark; locale=en-us; tracking=none"),
	hf("x-request-id", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
	hf("x-custom-metadata-with-a-long-name", "some lower case text that compresses well with the hpack huffman code"),
}

func TestHPACKStaticTable(t *testing.T) {
	for i, e := range hpackStaticTable {
		block := []byte{0x80 | byte(i+1)}
		want, err := referenceDecode(block)
		if err != nil || len(want) != 1 || want[0] != hf(e.name, e.value) {
			t.Errorf("static entry %d = %q: %q; reference decoder has %v, %v", i+1, e.name, e.value, want, err)
		}
	}
}

func TestHPACKDecode(t *testing.T) {
	c31 := "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"
	c32 := "8286 84be 5808 6e6f 2d63 6163 6865"
	c33 := "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"
	c31Fields := []xhpack.HeaderField{hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf(":authority", "www.example.com")}
	response := []xhpack.HeaderField{
		hf(":status", "302"),
		hf("cache-control", "private"),
		hf("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
		hf("location", "https://www.example.com"),
	}
	tests := []struct {
		name  string
		block string
		want  []xhpack.HeaderField
	}{
		{"empty", "", nil},
		{"C.2.1 literal with indexing", "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
			[]xhpack.HeaderField{hf("custom-key", "custom-header")}},
		{"C.2.2 literal without indexing", "040c 2f73 616d 706c 652f 7061 7468",
			[]xhpack.HeaderField{hf(":path", "/sample/path")}},
		{"C.2.3 literal never indexed", "1008 7061 7373 776f 7264 0673 6563 7265 74",
			[]xhpack.HeaderField{hf("password", "secret")}},
		{"C.2.4 indexed", "82", []xhpack.HeaderField{hf(":method", "GET")}},
		{"C.3.1 request", c31, c31Fields},
		{"C.4.1 request with Huffman", "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", c31Fields},
		{"C.5.1 response", "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
			response},
		{"C.6.1 response with Huffman", "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
			response},
		{"C.3.1-C.3.3 as one block, using entries added earlier in the block", c31 + c32 + c33,
			slices.Concat(c31Fields, c31Fields, []xhpack.HeaderField{hf("cache-control", "no-cache"),
				hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/index.html"), hf(":authority", "www.example.com"), hf("custom-key", "custom-value")})},
		{"size updates at start", "3fe11f 20 3f01", nil},                                                                    // 4096, 0, 32
		{"integer with 9 octets after the prefix", "3f 8080808080808080 00 82", []xhpack.HeaderField{hf(":method", "GET")}}, // 31
		{"empty Huffman string", "4080 80", []xhpack.HeaderField{hf("", "")}},
		{"literal with dynamic name", "4001 6101 62 7e01 63 be", // a: b, a: c (name 62), then index 62 (a: c)
			[]xhpack.HeaderField{hf("a", "b"), hf("a", "c"), hf("a", "c")}},
		{"table holds two entries", "3f27 4001 6101 62 4001 6301 64 bf", // size 70
			[]xhpack.HeaderField{hf("a", "b"), hf("c", "d"), hf("a", "b")}},
		{"eviction", "3f24 4001 6101 62 4001 6301 64 be", // size 67: a: b is evicted
			[]xhpack.HeaderField{hf("a", "b"), hf("c", "d"), hf("c", "d")}},
		{"entry larger than table empties it", "3f03 4001 6101 62 4002 6363 0164 82", // size 34
			[]xhpack.HeaderField{hf("a", "b"), hf("cc", "d"), hf(":method", "GET")}},
		{"grpc", hex.EncodeToString(encodeBlock(t, grpcFields...)), grpcFields},
		{"huffman", hex.EncodeToString(encodeBlock(t, huffmanFields...)), huffmanFields},
		{"256 fields", strings.Repeat("82", MaxFields), repeatField(hf(":method", "GET"), MaxFields)},
	}
	var d Decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := mustHex(t, tt.block)
			if err := d.Decode(block); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := decodedFields(&d); !slices.Equal(got, tt.want) {
				t.Errorf("decode = %v, want %v", got, tt.want)
			}
			if ref, err := referenceDecode(block); err != nil || !slices.Equal(ref, tt.want) {
				t.Errorf("reference decoder = %v, %v; want %v", ref, err, tt.want)
			}
		})
	}
}

func TestHPACKDecodeDynamicTableIndexes(t *testing.T) {
	// Size 100 holds two 34-byte entries: after adding a, b and c, index 62
	// is c, 63 is b and 64 (a, evicted) is invalid.
	var d Decoder
	prefix := "3f45 4001 6101 31 4001 6201 32 4001 6301 33"
	for _, tt := range []struct {
		index string
		want  string
	}{{"be", "c"}, {"bf", "b"}, {"c0", ""}} {
		err := d.Decode(mustHex(t, prefix+tt.index))
		if tt.want == "" {
			if !errors.Is(err, errHPACKIndex) {
				t.Errorf("index %s: err = %v, want %v", tt.index, err, errHPACKIndex)
			}
			continue
		}
		if name, _ := d.FieldAt(3); err != nil || string(name) != tt.want {
			t.Errorf("index %s: name %q, err %v; want %q", tt.index, name, err, tt.want)
		}
	}
}

func TestHPACKDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		block string
		want  error
	}{
		{"index 0", "80", errHPACKIndex},
		{"index beyond static table", "be", errHPACKIndex},
		{"name index beyond static table", "7f00 0161", errHPACKIndex},
		{"name index beyond dynamic table", "4001 6101 62 7f01 0163", errHPACKIndex},
		{"large index", "ff ffffff0f", errHPACKIndex},
		{"index of evicted entry", "3f24 4001 6101 62 4001 6301 64 bf", errHPACKIndex},
		{"index into table emptied by large entry", "3f03 4001 6101 62 4002 6363 0164 be", errHPACKIndex},
		{"truncated integer", "ff", errHPACKTruncated},
		{"truncated integer continuation", "ff 8080", errHPACKTruncated},
		{"integer above uint32", "ff ffffffff7f", errHPACKInteger},
		{"integer with 10 continuation octets", "3f 808080808080808080 00", errHPACKInteger},
		{"missing name length", "40", errHPACKTruncated},
		{"missing value", "4001 61", errHPACKTruncated},
		{"string runs off the end", "0005 6162", errHPACKTruncated},
		{"string length above uint32", "00 7f ffffffff0f", errHPACKInteger},
		{"Huffman padding not EOS prefix", "0081 00 00", errHPACKHuffman},
		{"Huffman EOS symbol", "0084 ffffffff 00", errHPACKHuffman},
		{"Huffman padding longer than 7 bits", "0082 1fff 00", errHPACKHuffman},
		{"table size above 4096", "3fe21f", errHPACKTableSize},
		{"size update after field", "82 20", errHPACKLateSizeUpdate},
		{"size update after literal", "4001 6101 62 3fe11f", errHPACKLateSizeUpdate},
		{"too many fields", strings.Repeat("82", MaxFields+1), ErrTooManyFields},
	}
	var d Decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Decode(mustHex(t, tt.block))
			if !errors.Is(err, tt.want) || !errors.Is(err, errHPACK) {
				t.Errorf("decode = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHPACKField(t *testing.T) {
	var d Decoder
	if err := d.Decode(encodeBlock(t, slices.Concat(grpcFields, []xhpack.HeaderField{hf("te", "other")})...)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{
		{":path", "/grpc.health.v1.Health/Check", true},
		{"content-type", "application/grpc", true},
		{"te", "trailers", true}, // the first of two
		{"Content-Type", "", false},
		{"missing", "", false},
	} {
		if v, ok := d.Field(tt.name); string(v) != tt.want || ok != tt.ok {
			t.Errorf("field(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.want, tt.ok)
		}
	}
	// Appending to a returned value must not clobber the next field.
	v, _ := d.Field(":method")
	_ = append(v, "XXXXXXXX"...)
	if name, _ := d.FieldAt(1); string(name) != ":scheme" {
		t.Errorf("field 1 name = %q after append to field 0 value", name)
	}
	// decode starts afresh: no fields or dynamic entries survive.
	if err := d.Decode(mustHex(t, "be")); !errors.Is(err, errHPACKIndex) {
		t.Errorf("decode of dynamic index on fresh table = %v, want %v", err, errHPACKIndex)
	}
	d.Reset()
	if _, ok := d.Field(":path"); ok || d.NumFields() != 0 {
		t.Errorf("fields remain after reset")
	}
}

// randomString returns a string of n bytes, mostly from Huffman-friendly
// characters.
func randomString(r *rand.Rand, n int) string {
	b := make([]byte, n)
	binary := r.IntN(5) == 0
	for i := range b {
		if binary {
			b[i] = byte(r.Uint32())
		} else {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789-/:. ;=ABC"[r.IntN(46)]
		}
	}
	return string(b)
}

// randomField returns a field that is often in the static table, often
// repeats an earlier one and is sometimes too large for the dynamic table.
func randomField(r *rand.Rand, prev []xhpack.HeaderField) xhpack.HeaderField {
	if len(prev) > 0 && r.IntN(4) == 0 {
		return prev[r.IntN(len(prev))]
	}
	var f xhpack.HeaderField
	switch r.IntN(4) {
	case 0:
		e := hpackStaticTable[r.IntN(len(hpackStaticTable))]
		f = hf(e.name, e.value)
	case 1:
		f.Name = hpackStaticTable[r.IntN(len(hpackStaticTable))].name
	case 2:
		f.Name = grpcFields[r.IntN(len(grpcFields))].Name
	default:
		f.Name = randomString(r, r.IntN(20))
	}
	if f.Value == "" && r.IntN(8) != 0 {
		n := r.IntN(40)
		if r.IntN(10) == 0 {
			n = r.IntN(5000)
		}
		f.Value = randomString(r, n)
	}
	f.Sensitive = r.IntN(10) == 0
	return f
}

// TestHPACKDifferential decodes many random blocks produced by the x/net
// encoder and compares the result with the fields encoded and with the
// reference decoder.
func TestHPACKDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []uint32{0, 32, 50, 100, 256, 1000, 4096, 5000}
	var d Decoder
	for iter := range 3000 {
		var buf bytes.Buffer
		enc := xhpack.NewEncoder(&buf)
		for range r.IntN(3) { // size updates at the start (5000 is clamped to 4096)
			enc.SetMaxDynamicTableSize(sizes[r.IntN(len(sizes))])
		}
		n := r.IntN(60)
		late := -1 // index of the field preceded by a size update, if any
		if n > 1 && r.IntN(5) == 0 {
			late = 1 + r.IntN(n-1)
		}
		var fields []xhpack.HeaderField
		for i := range n {
			if i == late {
				enc.SetMaxDynamicTableSize(sizes[r.IntN(len(sizes))])
			}
			f := randomField(r, fields)
			if err := enc.WriteField(f); err != nil {
				t.Fatal(err)
			}
			f.Sensitive = false
			fields = append(fields, f)
		}
		block := buf.Bytes()
		err := d.Decode(block)
		got := decodedFields(&d)
		if late >= 0 {
			if !errors.Is(err, errHPACKLateSizeUpdate) || !slices.Equal(got, fields[:late]) {
				t.Fatalf("block %d %x with late size update: got %v, %v; want %v, %v", iter, block, got, err, fields[:late], errHPACKLateSizeUpdate)
			}
			continue
		}
		if err != nil || !slices.Equal(got, fields) {
			t.Fatalf("block %d %x: got %v, %v; want %v", iter, block, got, err, fields)
		}
		if ref, err := referenceDecode(block); err != nil || !slices.Equal(got, ref) {
			t.Fatalf("block %d %x: got %v; reference decoder has %v, %v", iter, block, got, ref, err)
		}
	}
}

// raceEnabled reports whether the test binary was built with -race, under
// which sync.Pool (used by xhpack.HuffmanDecode) drops items at random.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"})
}

func TestHPACKDecodeAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocations are not meaningful under the race detector")
	}
	pool := sync.Pool{New: func() any { return new(Decoder) }}
	for _, tt := range []struct {
		name   string
		fields []xhpack.HeaderField
	}{{"grpc", grpcFields}, {"huffman", huffmanFields}} {
		block := encodeBlock(t, tt.fields...)
		decode := func() {
			d := pool.Get().(*Decoder)
			defer pool.Put(d)
			if err := d.Decode(block); err != nil || d.NumFields() != len(tt.fields) {
				t.Fatalf("decode: %v, %d fields", err, d.NumFields())
			}
			if v, ok := d.Field(tt.fields[2].Name); !ok || string(v) != tt.fields[2].Value {
				t.Fatalf("field(%q) = %q, %v", tt.fields[2].Name, v, ok)
			}
		}
		decode() // warm up
		if allocs := testing.AllocsPerRun(1000, decode); allocs != 0 {
			t.Errorf("%s: %v allocations per decode, want 0", tt.name, allocs)
		}
	}
}

// repeatField returns n copies of f.
func repeatField(f xhpack.HeaderField, n int) []xhpack.HeaderField {
	fs := make([]xhpack.HeaderField, n)
	for i := range fs {
		fs[i] = f
	}
	return fs
}

func BenchmarkHPACKDecodeGRPC(b *testing.B) {
	block := encodeBlock(b, grpcFields...)
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(block)))
	b.ResetTimer()
	for range b.N {
		if err := d.Decode(block); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzHPACKBlock checks that decode never panics, is repeatable, and agrees
// with the x/net reference decoder (fresh, maximum table size 4096) on
// whether a block is valid and on its exact field list.
//
// Divergences from the reference decoder, where ours rejects and it accepts:
//   - A dynamic table size update after a field representation. RFC 7541
//     §4.2 allows updates only at the beginning of a block; the reference
//     decoder only enforces that while its dynamic table is non-empty.
//   - More than MaxFields fields; the reference decoder has no limit.
//
// In both cases the fields decoded before the error must match the
// reference decoder's.
func FuzzHPACKBlock(f *testing.F) {
	f.Add(encodeBlock(f, grpcFields...))
	f.Add(encodeBlock(f, huffmanFields...))
	f.Fuzz(func(t *testing.T, block []byte) {
		var d Decoder
		err := d.Decode(block)
		got := decodedFields(&d)
		if err2 := d.Decode(block); err2 != err || !slices.Equal(decodedFields(&d), got) {
			t.Fatalf("second decode = %v, %v; first %v, %v", decodedFields(&d), err2, got, err)
		}
		if err != nil && !errors.Is(err, errHPACK) {
			t.Fatalf("error %v does not wrap errHPACK", err)
		}
		want, refErr := referenceDecode(block)
		switch {
		case err == nil && refErr == nil:
			if !slices.Equal(got, want) {
				t.Fatalf("decode = %v, reference decoder %v", got, want)
			}
		case err == nil:
			t.Fatalf("decode accepted %v; reference decoder: %v", got, refErr)
		case refErr == nil:
			allowed := errors.Is(err, errHPACKLateSizeUpdate) ||
				errors.Is(err, ErrTooManyFields) && len(want) > MaxFields
			if !allowed || len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
				t.Fatalf("decode = %v, %v; reference decoder accepted %v", got, err, want)
			}
		}
	})
}
