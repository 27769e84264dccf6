// Package http1 scans the head of an HTTP/1 request byte by byte from a
// peek.Peeker, reading from the connection only when it needs the next byte:
// the request line as github.com/soheilhy/cmux v0.1.5's HTTP1 matcher
// judged it, and a header field.
package http1

import (
	"net/url"
	"strings"

	"github.com/cmux-go/cmux/internal/peek"
)

// MaxLine is how much of a connection IsRequestLine reads at the most.
const MaxLine = 4096

// IsRequestLine reports whether the connection's first line, within its
// first MaxLine bytes, has two spaces and ends, after the second one, with
// the version HTTP/1.x (x a digit); the method and target are not checked,
// but for control bytes. A line cut short by the end of the bytes is judged
// as it is. It says no on the first byte that rules such a line out.
func IsRequestLine(p peek.Peeker) bool {
	s := lineScanner{p: p, limit: MaxLine}
	return s.http1Line()
}

// HeaderField reads an HTTP/1.x request line (HTTP/d.d) and the header up
// to the first field named name (compared without regard to ASCII case),
// and returns its value without surrounding white space, or the empty value
// if the header ends without it, and the request line. It reports false if
// the request line or the header is malformed or cut short.
func HeaderField(p peek.Peeker, name string) (value []byte, line RequestLine, ok bool) {
	s := lineScanner{p: p, limit: -1}
	if !s.requestLine() {
		return nil, RequestLine{}, false
	}
	value, ok = s.field(name)
	return value, RequestLine{Method: s.b[:s.targetStart-1], Target: s.b[s.targetStart:s.targetEnd]}, ok
}

// RequestLine is the method and target of a request line, as they are in
// the bytes at hand.
type RequestLine struct {
	Method, Target []byte
}

// TargetOK reports whether http.ReadRequest, with which
// github.com/soheilhy/cmux v0.1.5 parsed the head, takes the request
// target. It allocates.
func (l RequestLine) TargetOK() bool {
	target := string(l.Target)
	if string(l.Method) == "CONNECT" && !strings.HasPrefix(target, "/") {
		target = "http://" + target
	}
	_, err := url.ParseRequestURI(target)
	return err == nil
}

// lineScanner reads an HTTP/1 request head byte by byte from a peeker,
// reading from the connection only when it needs the next byte.
type lineScanner struct {
	p     peek.Peeker
	b     []byte // the bytes at hand
	off   int
	limit int // bytes it may read; -1 for the sniff limit alone
	// folded holds a field value that spans obs-fold lines.
	folded []byte
	// targetStart and targetEnd delimit the request target in b.
	targetStart, targetEnd int
}

// next returns the next byte.
func (s *lineScanner) next() (byte, bool) {
	c, ok := s.at(s.off)
	if ok {
		s.off++
	}
	return c, ok
}

// at returns byte i, reading as needed.
func (s *lineScanner) at(i int) (byte, bool) {
	if s.limit >= 0 && i >= s.limit {
		return 0, false
	}
	if i >= len(s.b) {
		s.b = s.p.Buffered()
		if i >= len(s.b) {
			s.p.Peek(i + 1)
			if s.b = s.p.Buffered(); i >= len(s.b) {
				return 0, false
			}
		}
	}
	return s.b[i], true
}

// http1Line reads a line as HTTP1 wants it.
func (s *lineScanner) http1Line() bool {
	const version = "HTTP/1."
	spaces, k := 0, 0 // spaces before the version; version bytes read
	for {
		c, ok := s.next()
		if !ok {
			// The end of the bytes: a line that has its version whole
			// counts; one cut at the 4096-byte limit does not.
			return spaces == 2 && k == len(version)+1 && (s.limit < 0 || s.off < s.limit)
		}
		switch {
		case spaces < 2:
			// A control byte rules out a request line at once, so that
			// binary protocols behind HTTP1 (TLS, SOCKS, PostgreSQL) do
			// not wait for a line end; v0.1.5 waited, for ever.
			if c < ' ' || c == 0x7f {
				return false
			}
			if c == ' ' {
				spaces++
			}
		case k < len(version):
			if c != version[k] {
				return false
			}
			k++
		case k == len(version):
			if c < '0' || c > '9' {
				return false
			}
			k++
		default:
			if c == '\r' {
				c, ok = s.next()
			}
			return ok && c == '\n'
		}
	}
}

// requestLine reads a request line, its line end included.
func (s *lineScanner) requestLine() bool {
	// method: one or more token characters, then SP.
	n := 0
	for {
		c, ok := s.next()
		if !ok {
			return false
		}
		if c == ' ' && n > 0 {
			break
		}
		if !isTokenChar(c) {
			return false
		}
		n++
	}
	// request-target: visible characters, then SP.
	n = 0
	s.targetStart = s.off
	for {
		c, ok := s.next()
		if !ok {
			return false
		}
		if c == ' ' && n > 0 {
			s.targetEnd = s.off - 1
			break
		}
		if c <= ' ' || c == 0x7f {
			return false
		}
		n++
	}
	// HTTP-version: HTTP/<digit>.<digit>, as http.ParseHTTPVersion (and
	// so http.ReadRequest, which v0.1.5 parsed the head with) wants it;
	// then CRLF or LF.
	const version = "HTTP/d."
	for i := 0; i < len(version); i++ {
		c, ok := s.next()
		if !ok || c != version[i] && (version[i] != 'd' || c < '0' || c > '9') {
			return false
		}
	}
	n = 0
	for {
		c, ok := s.next()
		if !ok {
			return false
		}
		switch {
		case '0' <= c && c <= '9' && n < 1:
			n++
			continue
		case c == '\r' && n > 0:
			c, ok = s.next()
			return ok && c == '\n'
		case c == '\n' && n > 0:
			return true
		}
		return false
	}
}

// field reads header lines up to the first field named name and returns
// its value without surrounding white space; the empty value if the header
// ends without it. It reports false for a malformed header.
func (s *lineScanner) field(name string) ([]byte, bool) {
	for {
		start := s.off
		c, ok := s.next()
		if !ok {
			return nil, false
		}
		// End of the header.
		if c == '\n' {
			return nil, true
		}
		if c == '\r' {
			c, ok = s.next()
			return nil, ok && c == '\n'
		}
		// field-name ":"
		for c != ':' {
			if !isTokenChar(c) {
				return nil, false
			}
			if c, ok = s.next(); !ok {
				return nil, false
			}
		}
		key := s.b[start : s.off-1]
		if len(key) == 0 {
			return nil, false
		}
		val, ok := s.value()
		if !ok {
			return nil, false
		}
		if equalFoldASCII(key, name) {
			return val, true
		}
	}
}

// value reads a field value and its line end, and any obs-fold lines that
// continue it, and returns it trimmed.
func (s *lineScanner) value() ([]byte, bool) {
	s.folded = s.folded[:0]
	var val []byte
	for line := 0; ; line++ {
		start := s.off
		for {
			c, ok := s.next()
			if !ok {
				return nil, false
			}
			if c == '\n' {
				break
			}
			if c == 0 || (c == '\r' && !s.peekIs('\n')) {
				return nil, false
			}
		}
		v := trimOWS(s.b[start : s.off-1])
		// Is the next line a continuation (obs-fold)? Knowing needs its
		// first byte.
		c, ok := s.at(s.off)
		if !ok {
			return nil, false
		}
		more := c == ' ' || c == '\t'
		if line == 0 && !more {
			return v, true
		}
		if line > 0 && len(v) > 0 && len(s.folded) > 0 {
			s.folded = append(s.folded, ' ')
		}
		s.folded = append(s.folded, v...)
		if !more {
			val = s.folded
			return val, true
		}
	}
}

func (s *lineScanner) peekIs(c byte) bool {
	b, ok := s.at(s.off)
	return ok && b == c
}

// trimOWS trims optional white space and a trailing CR.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110
// §5.6.2).
func isTokenChar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// equalFoldASCII reports whether b and s are equal without regard to ASCII
// case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
