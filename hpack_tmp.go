package cmux

// TEMPORARY stand-in until hpack.go lands.

import (
	"errors"

	"golang.org/x/net/http2/hpack"
)

var errHPACK = errors.New("cmux: malformed HPACK header block")

type hpackDecoder struct {
	fields []hpack.HeaderField
}

func (d *hpackDecoder) reset() { d.fields = d.fields[:0] }

func (d *hpackDecoder) decode(block []byte) error {
	dec := hpack.NewDecoder(4096, nil)
	f, err := dec.DecodeFull(block)
	if err != nil {
		return errHPACK
	}
	d.fields = f
	return nil
}

func (d *hpackDecoder) field(name string) ([]byte, bool) {
	for _, f := range d.fields {
		if f.Name == name {
			return []byte(f.Value), true
		}
	}
	return nil, false
}
