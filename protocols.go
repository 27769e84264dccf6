package cmux

import (
	"io"
	"regexp"
	"regexp/syntax"
	"unicode/utf8"

	"github.com/cmux-go/cmux/internal/peek"
)

// SSH matches an SSH client: a connection that starts with the
// identification string of SSH 2.0 (RFC 4253 §4.2), "SSH-2.0-", or of a
// client that also speaks SSH 1, "SSH-1.99-". It says no on the first byte
// that differs and yes once the whole prefix has arrived.
//
// OpenSSH and most clients send their identification string at once; the
// few that wait for the server's first can be caught with Silent.
func SSH() Matcher {
	return PrefixMatcher("SSH-2.0-", "SSH-1.99-")
}

// SOCKS4 matches a SOCKS4 or SOCKS4a request: version 4 followed by the
// command CONNECT (1) or BIND (2). It decides on those two bytes.
func SOCKS4() Matcher {
	return PrefixMatcher("\x04\x01", "\x04\x02")
}

// SOCKS5 matches a SOCKS5 greeting (RFC 1928 §3): version 5, the number of
// authentication methods (at least 1) and that many method identifiers, none
// of them 0xFF ("no acceptable methods", which only servers send). It says no
// on the first byte that rules the greeting out and yes as soon as the
// greeting is complete: a client offering one method is matched on its 3
// bytes, though it then waits for the server's answer.
//
//go:noinline
func SOCKS5() Matcher {
	return func(r io.Reader) bool {
		p := asPeeker(r)
		if b, _ := p.Peek(1); len(b) < 1 || b[0] != 5 {
			return false
		}
		b, _ := p.Peek(2)
		if len(b) < 2 || b[1] == 0 {
			return false
		}
		end := 2 + int(b[1])
		for i := 2; i < end; i++ {
			if b, _ = p.Peek(i + 1); len(b) <= i || b[i] == 0xff {
				return false
			}
		}
		return true
	}
}

// PostgreSQL frontend codes of the messages a connection can start with
// (https://www.postgresql.org/docs/current/protocol-message-formats.html).
const (
	pgProtocolMajor3 = 3 << 16 // StartupMessage, protocol 3.x
	pgCancelRequest  = 80877102
	pgSSLRequest     = 80877103
	pgGSSENCRequest  = 80877104
	// pgMaxStartup is the longest StartupMessage a PostgreSQL server accepts
	// (MAX_STARTUP_PACKET_LENGTH).
	pgMaxStartup = 10000
	// pgMaxCancel is the longest CancelRequest: protocol 3.2 allows secret
	// keys of up to 256 bytes.
	pgMaxCancel = 12 + 256
)

// PostgreSQL matches the first message of a PostgreSQL client: an
// SSLRequest, a GSSENCRequest, a CancelRequest, or a StartupMessage of
// protocol version 3.x (3.0, or a later minor version the server may
// negotiate down). It decides from the 8-byte header (length and code),
// saying no on the first byte that no such header can have.
//
// Clients with sslmode=prefer or require (libpq's default is prefer) start
// with an SSLRequest and wait for the server's one-byte answer, which the
// server behind the mux gives. Clients that start TLS directly
// (PostgreSQL 17's sslnegotiation=direct) send a TLS ClientHello, which
// TLS() matches.
//
//go:noinline
func PostgreSQL() Matcher {
	return func(r io.Reader) bool {
		p := asPeeker(r)
		for i := 1; i <= 8; i++ {
			b, _ := p.Peek(i)
			if len(b) < i || !pgHeaderPrefix(b) {
				return false
			}
		}
		return true
	}
}

// pgHeaderPrefix reports whether h, 1 to 8 bytes, begins the header of a
// message PostgreSQL accepts first: Int32 length (itself included), Int32
// code.
func pgHeaderPrefix(h []byte) bool {
	n := len(h)
	// The length is at most pgMaxStartup, so its first two bytes are 0 and
	// its third at most pgMaxStartup>>8.
	if h[0] != 0 || n > 1 && h[1] != 0 || n > 2 && h[2] > pgMaxStartup>>8 {
		return false
	}
	if n < 4 {
		return true
	}
	length := int(h[2])<<8 | int(h[3])
	if length < 8 || length > pgMaxStartup {
		return false
	}
	if n < 5 {
		return true
	}
	switch h[4] {
	case pgProtocolMajor3 >> 24:
		// StartupMessage: protocol major 3, any minor; it carries at least
		// the parameters' terminating zero byte.
		return length > 8 && (n < 6 || h[5] == pgProtocolMajor3>>16&0xff)
	case pgSSLRequest >> 24:
		// The request codes share their first three bytes.
		if n > 5 && h[5] != pgSSLRequest>>16&0xff || n > 6 && h[6] != pgSSLRequest>>8&0xff {
			return false
		}
		if n < 8 {
			return length == 8 || 16 <= length && length <= pgMaxCancel
		}
		code := pgSSLRequest&^0xff | int(h[7])
		switch code {
		case pgSSLRequest, pgGSSENCRequest:
			return length == 8
		case pgCancelRequest:
			return 16 <= length && length <= pgMaxCancel
		}
	}
	return false
}

// Regexp matches a connection whose first bytes match re: a match of re
// that starts at the connection's first byte (as if re began with \A; to
// search instead, begin re with (?s).*?) and ends within its first n bytes.
// re runs on those bytes as on any []byte, as UTF-8 text: an invalid byte
// reads as U+FFFD, and \xff in re means U+00FF, not the byte 0xFF.
//
// The text re is matched against is the connection's first n bytes; or all
// it sent, if the client ends the connection, the matching deadline (see
// MatchTimeout) expires or the sniff limit (MaxSniffBytes) is reached
// before n bytes arrived. Regexp says whether re has a match at the first
// byte of that text, and decides before the text is complete where it can:
//
//   - it says no as soon as a byte differs from re's literal prefix
//     (re.LiteralPrefix), the string every match starts with;
//   - each time bytes arrive it runs re on the bytes at hand (less an
//     incomplete UTF-8 sequence at their end) and says yes if a match starts
//     at the first byte, unless re has an assertion about what follows a
//     position ($, \z, \b or \B) and the match ends at the last byte at
//     hand: then the next byte could undo the match, and it reads on.
//
// To bound the work on a client that sends its bytes one by one, past the
// first 1 KiB it runs re again only when the bytes at hand have doubled, or
// when the text is complete: a match that ends after the first 1 KiB may be
// seen later than its last byte.
//
// Past its literal prefix it cannot tell that no further byte could make re
// match, so a connection that does not match costs n bytes, or waits until
// the client ends it or the matching deadline expires. A client that sends
// fewer than n bytes and then waits for the server therefore holds the
// matcher until the matching deadline unless re matches first. Keep n to
// what the client sends at once, give re a literal prefix, and register
// Regexp after the matchers that decide quickly.
//
// Regexp panics if re is nil or n < 1.
//
//go:noinline
func Regexp(re *regexp.Regexp, n int) Matcher {
	if re == nil || n < 1 {
		panic("cmux: Regexp needs a regexp and n >= 1")
	}
	prefix, _ := re.LiteralPrefix()
	m := &reMatcher{re: re, n: n, prefix: prefix, endSensitive: reLooksAhead(re.String())}
	// Anchored, re tries the first byte only, instead of every start.
	if anchored, err := regexp.Compile(`\A(?:` + re.String() + `)`); err == nil {
		m.re = anchored
	}
	return func(r io.Reader) bool { return m.match(asPeeker(r)) }
}

type reMatcher struct {
	re     *regexp.Regexp
	n      int
	prefix string
	// endSensitive is set when re asserts about what follows a position,
	// so that a match at the end of the bytes at hand may not last.
	endSensitive bool
}

// reEagerBytes is how much text Regexp runs re on each time bytes arrive;
// past it, only each time the text has doubled.
const reEagerBytes = 1 << 10

func (m *reMatcher) match(p peek.Peeker) bool {
	var err error
	ran := 0 // length of the text re last ran on
	for {
		b := p.Buffered()
		if len(b) > m.n {
			b = b[:m.n]
		}
		final := len(b) == m.n || err != nil
		k := min(len(b), len(m.prefix))
		if string(b[:k]) != m.prefix[:k] {
			return false
		}
		if final || len(b) >= len(m.prefix) && (len(b) <= reEagerBytes || len(b) >= 2*ran) {
			ran = len(b)
			text := b
			if !final {
				text = completeRunes(b)
			}
			loc := m.re.FindIndex(text)
			if loc != nil && loc[0] == 0 && (final || !m.endSensitive || loc[1] < len(text)) {
				return true
			}
		}
		if final {
			return false
		}
		_, err = p.Peek(len(b) + 1)
	}
}

// completeRunes returns b without an incomplete UTF-8 sequence at its end,
// one that more bytes could turn into a different rune.
func completeRunes(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// reLooksAhead reports whether the regular expression expr has an assertion
// that looks at the text after a position: $ (in any mode), \z, \b or \B.
// If expr does not parse as Perl syntax it says true, the safe answer.
func reLooksAhead(expr string) bool {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return true
	}
	var walk func(*syntax.Regexp) bool
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpEndLine, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
			return true
		}
		for _, s := range re.Sub {
			if walk(s) {
				return true
			}
		}
		return false
	}
	return walk(re)
}
