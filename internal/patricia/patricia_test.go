package patricia

import (
	"strings"
	"testing"

	"github.com/cmux-go/cmux/internal/peek"
)

// matchBytes reports whether data, all there is, starts with one of the
// tree's strings.
func (t *Tree) matchBytes(data []byte) bool { return t.Match(peek.Bytes(data)) }

func naive(set []string, in string) bool {
	for _, p := range set {
		if strings.HasPrefix(in, p) {
			return true
		}
	}
	return false
}

func TestPatriciaNaive(t *testing.T) {
	sets := [][]string{
		{""}, {"a"}, {"ab", "abc"}, {"abc", "ab"}, {"GET", "GETX", "POST", "PUT", "PATCH"},
		{"\x16\x03\x00", "\x16\x03\x01", "\x16\x03\x03"}, {"x", "x"}, {"abcd", "abce", "abd", "b"},
	}
	inputs := []string{"", "a", "ab", "abc", "abcd", "abce", "abd", "b", "GE", "GET", "GETX", "PAT", "PATCH /",
		"PU", "PUT", "POST", "\x16\x03", "\x16\x03\x01", "\x16\x03\x02", "x", "y", "\x00"}
	for _, set := range sets {
		tree := New(set...)
		for _, in := range inputs {
			if got, want := tree.matchBytes([]byte(in)), naive(set, in); got != want {
				t.Errorf("%q on %q: got %v, want %v", set, in, got, want)
			}
		}
	}
}

// countPeeker records the most bytes a tree asked for.
type countPeeker struct {
	b    peek.Bytes
	most int
	at   int // bytes at hand before any Peek
}

func (c *countPeeker) Buffered() []byte { return c.b[:min(max(c.most, c.at), len(c.b))] }

func (c *countPeeker) Peek(n int) ([]byte, error) {
	c.most = max(c.most, min(n, len(c.b)))
	return c.b.Peek(n)
}

// need returns how many bytes of in decide a prefix match on set: up to the
// first that rules every string out, or to the end of the shortest string
// that matches.
func need(set []string, in string) int {
	for i := 0; i <= len(in); i++ {
		alive := false
		for _, p := range set {
			if len(p) <= i && strings.HasPrefix(in, p) {
				return i
			}
			if len(p) > i && i < len(in) && strings.HasPrefix(p, in[:i+1]) {
				alive = true
			}
		}
		if !alive {
			return min(i+1, len(in))
		}
	}
	return len(in)
}

// FuzzTree checks the tree against a naive prefix match, and that it asks
// for no byte past the one that decides, whatever bytes are at hand
// already (at: Buffered has them before any Peek).
func FuzzTree(f *testing.F) {
	f.Add("GET\nGETX", "GETX / HTTP/1.1", uint8(0))
	f.Add("ab\nabcd", "ab", uint8(1))
	f.Add("", "x", uint8(0))
	f.Add("abc\nabd\nb", "abe", uint8(3))
	f.Add("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00", uint8(40))
	f.Fuzz(func(t *testing.T, set, in string, at uint8) {
		strs := strings.Split(set, "\n")
		if set == "" {
			strs = nil
		}
		want := naive(strs, in)
		cp := &countPeeker{b: peek.Bytes(in), at: int(at)}
		if got := New(strs...).Match(cp); got != want {
			t.Fatalf("%q on %q = %v, want %v", strs, in, got, want)
		}
		// With bytes at hand it may ask for fewer; never for more.
		if n := need(strs, in); len(strs) > 0 && (cp.most > n || at == 0 && cp.most != n) {
			t.Fatalf("%q on %q (%d at hand) asked for %d bytes, needs %d", strs, in, at, cp.most, n)
		}
	})
}
