// Package patricia is a prefix tree of byte strings that decides whether a
// connection starts with one of them while reading as few bytes as possible.
package patricia

import (
	"sort"

	"github.com/cmux-go/cmux/internal/peek"
)

// Tree is a compressed prefix tree (radix tree) of byte strings. It
// decides whether a connection starts with one of its strings while reading
// as few bytes as possible: it says no on the first byte that leaves every
// string behind, and yes as soon as one string has arrived whole.
//
// A Tree is immutable once built and safe for concurrent use.
type Tree struct {
	root *ptNode
}

type ptNode struct {
	label    []byte // bytes on the edge into this node
	terminal bool   // a whole string ends here
	// first[i] is the first byte of children[i]'s label; sorted.
	first    []byte
	children []*ptNode
}

// New builds a tree of strs. Duplicates are harmless; the empty
// string matches everything.
func New(strs ...string) *Tree {
	sorted := make([]string, 0, len(strs))
	sorted = append(sorted, strs...)
	sort.Strings(sorted)
	return &Tree{root: buildNode(nil, sorted)}
}

// buildNode builds the node whose edge label is label for the sorted,
// label-stripped strings strs.
func buildNode(label []byte, strs []string) *ptNode {
	n := &ptNode{label: label}
	for len(strs) > 0 && strs[0] == "" {
		n.terminal = true
		strs = strs[1:]
	}
	for len(strs) > 0 {
		// strs is sorted, so strings with the same first byte are adjacent.
		c := strs[0][0]
		j := 1
		for j < len(strs) && strs[j][0] == c {
			j++
		}
		group := strs[:j]
		strs = strs[j:]
		// The child's label is the longest prefix the group shares.
		l := len(group[0])
		for _, s := range group[1:] {
			l = min(l, commonPrefix(group[0], s))
		}
		rest := make([]string, len(group))
		for i, s := range group {
			rest[i] = s[l:]
		}
		n.first = append(n.first, c)
		n.children = append(n.children, buildNode([]byte(group[0][:l]), rest))
	}
	return n
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// Match reports whether the data p peeks starts with one of the tree's
// strings. It peeks one byte further only while a string may still match.
func (t *Tree) Match(p peek.Peeker) bool {
	n := t.root
	off := 0
	for {
		if n.terminal {
			return true
		}
		if len(n.children) == 0 {
			return false // no strings at all: no byte can match
		}
		// Find the child for the next byte.
		b, _ := p.Peek(off + 1)
		if len(b) <= off {
			return false
		}
		child := n.child(b[off])
		if child == nil {
			return false
		}
		// The whole label at hand (Buffered reads nothing): one comparison
		// decides it.
		end := off + len(child.label)
		if len(b) < end {
			if at := p.Buffered(); len(at) >= end {
				b = at
			}
		}
		if len(b) >= end {
			if string(b[off:end]) != string(child.label) {
				return false
			}
			off = end
			n = child
			continue
		}
		// Walk the child's label; bytes arrive as they come.
		for _, c := range child.label {
			if len(b) <= off {
				if b, _ = p.Peek(off + 1); len(b) <= off {
					return false
				}
			}
			if b[off] != c {
				return false
			}
			off++
		}
		n = child
	}
}

func (n *ptNode) child(c byte) *ptNode {
	// Few children: a linear scan beats a binary search.
	for i, f := range n.first {
		if f == c {
			return n.children[i]
		}
	}
	return nil
}
