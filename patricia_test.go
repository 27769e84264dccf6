package cmux

import (
	"io"
	"strings"
	"testing"
)

// matchBytes is match over a byte slice that holds everything there is: it
// reports whether data starts with one of the tree's strings.
func (t *patricia) matchBytes(data []byte) bool {
	return t.match(bytesPeeker(data))
}

// bytesPeeker is a peeker over bytes that are all there is.
type bytesPeeker []byte

func (b bytesPeeker) buffered() []byte { return b }

func (b bytesPeeker) peek(n int) ([]byte, error) {
	if n > len(b) {
		return b, errShortBytes
	}
	return b[:n], nil
}

// errShortBytes is what a bytesPeeker says when asked for more than it has.
var errShortBytes = io.ErrUnexpectedEOF

func TestPatriciaNaive(t *testing.T) {
	sets := [][]string{
		{""}, {"a"}, {"ab", "abc"}, {"abc", "ab"}, {"GET", "GETX", "POST", "PUT", "PATCH"},
		{"\x16\x03\x00", "\x16\x03\x01", "\x16\x03\x03"}, {"x", "x"}, {"abcd", "abce", "abd", "b"},
	}
	inputs := []string{"", "a", "ab", "abc", "abcd", "abce", "abd", "b", "GE", "GET", "GETX", "PAT", "PATCH /",
		"PU", "PUT", "POST", "\x16\x03", "\x16\x03\x01", "\x16\x03\x02", "x", "y", "\x00"}
	for _, set := range sets {
		tree := newPatricia(set...)
		for _, in := range inputs {
			want := false
			for _, p := range set {
				want = want || strings.HasPrefix(in, p)
			}
			if got := tree.matchBytes([]byte(in)); got != want {
				t.Errorf("%q on %q: got %v, want %v", set, in, got, want)
			}
		}
	}
}
