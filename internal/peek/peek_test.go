package peek

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// emptyReader returns 0, nil n times, then its bytes.
type emptyReader struct {
	n int
	r io.Reader
}

func (e *emptyReader) Read(p []byte) (int, error) {
	if e.n > 0 {
		e.n--
		return 0, nil
	}
	return e.r.Read(p)
}

func TestGuard(t *testing.T) {
	var g Guard
	for i := range 100 {
		if err := g.Check(0, nil); err != nil {
			t.Fatalf("empty read %d: %v", i+1, err)
		}
	}
	if err := g.Check(1, nil); err != nil {
		t.Fatalf("a read with bytes: %v", err)
	}
	for range 100 {
		_ = g.Check(0, nil)
	}
	if err := g.Check(0, nil); err != io.ErrNoProgress {
		t.Fatalf("101st empty read in a row: %v, want io.ErrNoProgress", err)
	}
}

func TestReader(t *testing.T) {
	// Empty reads in a row are tolerated up to the guard's bound.
	p := NewReader(&emptyReader{n: 100, r: bytes.NewReader([]byte("abc"))}, 10)
	if b, err := p.Peek(2); string(b) != "ab" || err != nil {
		t.Fatalf("Peek(2) = %q, %v", b, err)
	}
	p = NewReader(&emptyReader{n: 1000}, 10)
	if _, err := p.Peek(1); err != io.ErrNoProgress {
		t.Fatalf("a reader of empty reads: %v, want io.ErrNoProgress", err)
	}
	// The limit: a larger n counts as the limit.
	p = NewReader(iotest.OneByteReader(bytes.NewReader([]byte("0123456789abc"))), 10)
	if b, err := p.Peek(12); string(b) != "0123456789" || err != nil {
		t.Fatalf("Peek past the limit = %q, %v", b, err)
	}
	if b := p.Buffered(); string(b) != "0123456789" {
		t.Fatalf("Buffered = %q", b)
	}
	// The end.
	p = NewReader(bytes.NewReader([]byte("ab")), 10)
	if b, err := p.Peek(3); string(b) != "ab" || err != io.EOF {
		t.Fatalf("Peek past the end = %q, %v", b, err)
	}
	if b, err := Bytes("ab").Peek(3); string(b) != "ab" || err != io.EOF {
		t.Fatalf("Bytes.Peek past the end = %q, %v", b, err)
	}
}
