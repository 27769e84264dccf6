// Package peek is the contract between the mux and the wire-format parsers
// of this module: a parser reads the first bytes of a connection through a
// Peeker, which reads from the connection only when the parser asks for
// bytes that have not arrived yet.
package peek

import (
	"errors"
	"io"
)

// Peeker gives the first bytes of a connection, read on demand.
type Peeker interface {
	// Peek returns the first n bytes, reading as needed; if fewer can be
	// had, all there are and the error that stopped it (io.EOF, a timeout,
	// ErrLimit, ...).
	Peek(n int) ([]byte, error)
	// Buffered returns the bytes at hand, without reading.
	Buffered() []byte
}

// ErrLimit is the error a Peeker returns once it holds as many bytes as it
// may (the mux's sniff limit).
var ErrLimit = errors.New("cmux: sniff limit reached")

// maxEmptyReads is how many reads in a row may return nothing and no error
// before a reader is taken to make no progress.
const maxEmptyReads = 100

// Guard stops a reader that returns nothing and no error again and again
// from making its caller spin. The zero value is ready to use.
type Guard struct{ empty int }

// Check returns err for a read that returned m bytes and err, or
// io.ErrNoProgress once more than 100 reads in a row returned 0 bytes and
// no error.
func (g *Guard) Check(m int, err error) error {
	if m > 0 || err != nil {
		g.empty = 0
		return err
	}
	if g.empty++; g.empty > maxEmptyReads {
		return io.ErrNoProgress
	}
	return nil
}

// Reader is the Peeker of an io.Reader: it reads into a private buffer of
// at most limit bytes.
type Reader struct {
	r     io.Reader
	limit int
	buf   []byte
	err   error
	guard Guard
}

// NewReader returns a Peeker of r that holds at most limit bytes.
func NewReader(r io.Reader, limit int) *Reader { return &Reader{r: r, limit: limit} }

// Buffered returns the bytes read so far.
func (p *Reader) Buffered() []byte { return p.buf }

// Peek returns the first n bytes of r, n at most the limit (a larger n
// counts as the limit); if fewer can be had, all there are and the error
// that stopped the reads.
func (p *Reader) Peek(n int) ([]byte, error) {
	n = min(n, p.limit)
	for len(p.buf) < n && p.err == nil {
		if cap(p.buf)-len(p.buf) < n-len(p.buf) {
			nb := make([]byte, len(p.buf), max(n, 2*cap(p.buf), 512))
			copy(nb, p.buf)
			p.buf = nb
		}
		m, err := p.r.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+m]
		p.err = p.guard.Check(m, err)
	}
	if len(p.buf) >= n {
		return p.buf[:n], nil
	}
	err := p.err
	if err == nil {
		err = ErrLimit
	}
	return p.buf, err
}

// Bytes is the Peeker of a byte slice that holds the whole connection.
type Bytes []byte

// Buffered returns b.
func (b Bytes) Buffered() []byte { return b }

// Peek returns the first n bytes of b, or b and io.EOF if it is shorter.
func (b Bytes) Peek(n int) ([]byte, error) {
	if n > len(b) {
		return b, io.EOF
	}
	return b[:n], nil
}
