// Package hpack decodes the first HTTP/2 header block of a connection
// (RFC 7541) without allocating once its buffers have grown, with Huffman
// tables derived from golang.org/x/net/http2/hpack's encoder.
package hpack

import (
	"errors"
	"fmt"
	"math"
)

// errHPACK is returned, possibly wrapped, by Decoder.Decode for any
// malformed header block.
var errHPACK = errors.New("cmux: malformed HPACK header block")

// Specific causes reported by Decoder.Decode; each wraps errHPACK.
var (
	errHPACKTruncated      = fmt.Errorf("%w: truncated integer or string", errHPACK)
	errHPACKInteger        = fmt.Errorf("%w: integer overflow", errHPACK)
	errHPACKHuffman        = fmt.Errorf("%w: invalid Huffman string", errHPACK)
	errHPACKIndex          = fmt.Errorf("%w: invalid table index", errHPACK)
	errHPACKTableSize      = fmt.Errorf("%w: dynamic table size update above %d", errHPACK, hpackMaxTableSize)
	errHPACKLateSizeUpdate = fmt.Errorf("%w: dynamic table size update after a header field", errHPACK)
	ErrTooManyFields       = fmt.Errorf("%w: more than %d header fields", errHPACK, MaxFields)
)

const (
	// hpackMaxTableSize is the maximum dynamic table size: the default
	// SETTINGS_HEADER_TABLE_SIZE (RFC 7540 §6.5.2), which is in force for the
	// first header block of a connection.
	hpackMaxTableSize = 4096
	// MaxFields bounds the number of fields in one header block.
	MaxFields = 256
	// hpackEntryOverhead is the per-entry overhead of RFC 7541 §4.1.
	hpackEntryOverhead = 32
	// hpackMaxRetainedArena is the largest arena capacity that reset keeps,
	// so that one oversized block does not pin memory in a pooled decoder.
	hpackMaxRetainedArena = 64 << 10
)

// hpackSpan locates a byte string in an Decoder's arena.
type hpackSpan struct{ off, end int }

func (s hpackSpan) len() int { return s.end - s.off }

// hpackField is a decoded header field or a dynamic table entry.
type hpackField struct{ name, value hpackSpan }

// size returns the size of f as a dynamic table entry (RFC 7541 §4.1).
func (f hpackField) size() int { return f.name.len() + f.value.len() + hpackEntryOverhead }

// hpackArena holds decoded strings. Its pointer is the io.Writer that
// xhpack.HuffmanDecode appends to; as a pointer it converts to an interface
// without allocating.
type hpackArena []byte

// Write appends p to the arena. It never fails.
func (a *hpackArena) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}

// Decoder decodes a single HTTP/2 header block (RFC 7541), the first
// one of a connection, without allocating once its buffers have grown:
// decoded names and values are copied into an arena and fields, as well as
// dynamic table entries, refer to it by offset. Fields that share bytes (a
// dynamic table entry and the fields referring to it) share arena space.
//
// The zero value is ready to use. A decoder is not safe for concurrent use;
// it is meant to be reused through a sync.Pool.
type Decoder struct {
	arena  hpackArena   // decoded names and values
	fields []hpackField // decoded fields, in block order
	// dyn holds the dynamic table entries added during this block, oldest
	// first; dyn[dynOldest:] are the live (not evicted) ones.
	dyn       []hpackField
	dynOldest int
	dynSize   int // sum of the sizes of the live entries
	dynMax    int // current maximum dynamic table size
}

// Reset empties the decoder for a new connection, keeping its capacity
// (except for an arena above hpackMaxRetainedArena, which is released).
func (d *Decoder) Reset() {
	if cap(d.arena) > hpackMaxRetainedArena {
		d.arena = nil
	}
	d.arena = d.arena[:0]
	d.fields = d.fields[:0]
	d.dyn = d.dyn[:0]
	d.dynOldest, d.dynSize, d.dynMax = 0, 0, hpackMaxTableSize
}

// Decode decodes block, a complete header block (all HEADERS and
// CONTINUATION fragments concatenated), as the first block of a connection:
// the dynamic table starts empty with a maximum size of 4096. Previously
// decoded fields are discarded.
//
// Any malformed input yields an error wrapping errHPACK; the fields decoded
// before the malformed representation are then still available.
func (d *Decoder) Decode(block []byte) error {
	d.Reset()
	for p := block; len(p) > 0; {
		var err error
		switch b := p[0]; {
		case b&0xe0 == 0x20: // Dynamic Table Size Update, §6.3.
			p, err = d.sizeUpdate(p)
		case len(d.fields) == MaxFields:
			return ErrTooManyFields
		case b&0x80 != 0: // Indexed Header Field, §6.1.
			p, err = d.indexed(p)
		case b&0x40 != 0: // Literal with Incremental Indexing, §6.2.1.
			p, err = d.literal(p, 6, true)
		default: // Literal without Indexing or Never Indexed, §6.2.2, §6.2.3.
			p, err = d.literal(p, 4, false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// NumFields returns the number of decoded fields.
func (d *Decoder) NumFields() int { return len(d.fields) }

// FieldAt returns the name and value of the i-th decoded field. The slices
// alias the decoder's arena: they are valid until the next decode or reset
// and must not be modified.
func (d *Decoder) FieldAt(i int) (name, value []byte) {
	f := d.fields[i]
	return d.bytes(f.name), d.bytes(f.value)
}

// Field returns the value of the first decoded field named name (compared
// byte for byte, so callers pass lower-case names) and whether there is one.
// The value is valid until the next decode or reset and must not be modified.
func (d *Decoder) Field(name string) ([]byte, bool) {
	for _, f := range d.fields {
		if string(d.bytes(f.name)) == name {
			return d.bytes(f.value), true
		}
	}
	return nil, false
}

// bytes returns the arena bytes of s, with capacity clipped so that appends
// by the caller cannot overwrite the arena.
func (d *Decoder) bytes(s hpackSpan) []byte { return d.arena[s.off:s.end:s.end] }

// sizeUpdate decodes a Dynamic Table Size Update (§6.3), which RFC 7541 §4.2
// allows only at the beginning of a block.
func (d *Decoder) sizeUpdate(p []byte) ([]byte, error) {
	if len(d.fields) > 0 {
		return nil, errHPACKLateSizeUpdate
	}
	size, p, err := hpackInt(p, 5)
	if err != nil {
		return nil, err
	}
	if size > hpackMaxTableSize {
		return nil, errHPACKTableSize
	}
	d.dynMax = int(size)
	d.evict()
	return p, nil
}

// indexed decodes an Indexed Header Field (§6.1).
func (d *Decoder) indexed(p []byte) ([]byte, error) {
	i, p, err := hpackInt(p, 7)
	if err != nil {
		return nil, err
	}
	f, err := d.lookup(i, true)
	if err != nil {
		return nil, err
	}
	d.fields = append(d.fields, f)
	return p, nil
}

// literal decodes a Literal Header Field (§6.2) whose name index has an
// n-bit prefix, adding it to the dynamic table if index is set.
func (d *Decoder) literal(p []byte, n uint, index bool) ([]byte, error) {
	i, p, err := hpackInt(p, n)
	if err != nil {
		return nil, err
	}
	var f hpackField
	if i == 0 {
		f.name, p, err = d.str(p)
	} else {
		f, err = d.lookup(i, false)
	}
	if err != nil {
		return nil, err
	}
	if f.value, p, err = d.str(p); err != nil {
		return nil, err
	}
	d.fields = append(d.fields, f)
	if index {
		d.dyn = append(d.dyn, f)
		d.dynSize += f.size()
		d.evict()
	}
	return p, nil
}

// evict drops the oldest dynamic table entries until the table fits its
// maximum size (§4.3, §4.4).
func (d *Decoder) evict() {
	for d.dynSize > d.dynMax {
		d.dynSize -= d.dyn[d.dynOldest].size()
		d.dynOldest++
	}
}

// lookup returns the entry at index i of the combined static and dynamic
// table (§2.3.3). A static entry's name, and its value if withValue is set,
// are copied into the arena.
func (d *Decoder) lookup(i uint64, withValue bool) (hpackField, error) {
	live := d.dyn[d.dynOldest:]
	switch {
	case i == 0 || i > uint64(len(hpackStaticTable)+len(live)):
		return hpackField{}, errHPACKIndex
	case i > uint64(len(hpackStaticTable)):
		// The newest entry has the lowest index.
		return live[len(live)-int(i-uint64(len(hpackStaticTable)))], nil
	}
	e := &hpackStaticTable[i-1]
	var f hpackField
	f.name = d.appendString(e.name)
	if withValue {
		f.value = d.appendString(e.value)
	}
	return f, nil
}

// appendString copies s into the arena.
func (d *Decoder) appendString(s string) hpackSpan {
	off := len(d.arena)
	d.arena = append(d.arena, s...)
	return hpackSpan{off, len(d.arena)}
}

// str decodes a string literal (§5.2) into the arena.
func (d *Decoder) str(p []byte) (hpackSpan, []byte, error) {
	if len(p) == 0 {
		return hpackSpan{}, nil, errHPACKTruncated
	}
	huffman := p[0]&0x80 != 0
	n, p, err := hpackInt(p, 7)
	if err != nil {
		return hpackSpan{}, nil, err
	}
	if n > uint64(len(p)) {
		return hpackSpan{}, nil, errHPACKTruncated
	}
	s, p := p[:n], p[n:]
	off := len(d.arena)
	if huffman {
		var ok bool
		if d.arena, ok = huffmanDecode(d.arena, s); !ok {
			return hpackSpan{}, nil, errHPACKHuffman
		}
	} else {
		d.arena = append(d.arena, s...)
	}
	return hpackSpan{off, len(d.arena)}, p, nil
}

// hpackInt decodes an integer with an n-bit prefix (RFC 7541 §5.1) from the
// start of p and returns it with the rest of p. Values above math.MaxUint32
// are rejected, as are encodings with more than 9 continuation octets, the
// same length limit as golang.org/x/net/http2/hpack applies (§5.1 leaves
// such limits to the implementation).
func hpackInt(p []byte, n uint) (uint64, []byte, error) {
	if len(p) == 0 {
		return 0, nil, errHPACKTruncated
	}
	mask := uint64(1)<<n - 1
	v := uint64(p[0]) & mask
	p = p[1:]
	if v < mask {
		return v, p, nil
	}
	for shift := uint(0); shift < 63; shift += 7 {
		if len(p) == 0 {
			return 0, nil, errHPACKTruncated
		}
		b := p[0]
		p = p[1:]
		v += uint64(b&0x7f) << shift
		if v > math.MaxUint32 {
			return 0, nil, errHPACKInteger
		}
		if b&0x80 == 0 {
			return v, p, nil
		}
	}
	return 0, nil, errHPACKInteger
}

// hpackStaticTable is the static table of RFC 7541 Appendix A; index i
// refers to hpackStaticTable[i-1].
var hpackStaticTable = [61]struct{ name, value string }{
	{":authority", ""},
	{":method", "GET"},
	{":method", "POST"},
	{":path", "/"},
	{":path", "/index.html"},
	{":scheme", "http"},
	{":scheme", "https"},
	{":status", "200"},
	{":status", "204"},
	{":status", "206"},
	{":status", "304"},
	{":status", "400"},
	{":status", "404"},
	{":status", "500"},
	{"accept-charset", ""},
	{"accept-encoding", "gzip, deflate"},
	{"accept-language", ""},
	{"accept-ranges", ""},
	{"accept", ""},
	{"access-control-allow-origin", ""},
	{"age", ""},
	{"allow", ""},
	{"authorization", ""},
	{"cache-control", ""},
	{"content-disposition", ""},
	{"content-encoding", ""},
	{"content-language", ""},
	{"content-length", ""},
	{"content-location", ""},
	{"content-range", ""},
	{"content-type", ""},
	{"cookie", ""},
	{"date", ""},
	{"etag", ""},
	{"expect", ""},
	{"expires", ""},
	{"from", ""},
	{"host", ""},
	{"if-match", ""},
	{"if-modified-since", ""},
	{"if-none-match", ""},
	{"if-range", ""},
	{"if-unmodified-since", ""},
	{"last-modified", ""},
	{"link", ""},
	{"location", ""},
	{"max-forwards", ""},
	{"proxy-authenticate", ""},
	{"proxy-authorization", ""},
	{"range", ""},
	{"referer", ""},
	{"refresh", ""},
	{"retry-after", ""},
	{"server", ""},
	{"set-cookie", ""},
	{"strict-transport-security", ""},
	{"transfer-encoding", ""},
	{"user-agent", ""},
	{"vary", ""},
	{"via", ""},
	{"www-authenticate", ""},
}
