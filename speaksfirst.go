package cmux

import (
	"errors"
	"io"
	"net"
	"time"
)

// Silent matches a connection whose client sends nothing for d: a client of
// a protocol where the server speaks first (SMTP, FTP, POP3, IMAP, MySQL,
// SSH clients that wait for the server's banner). It is sslh's "on-timeout".
//
// Silent waits for the client's first byte until d has passed, or until the
// matching deadline (MatchTimeout) if that comes first, and matches if no
// byte came. It does not match a connection that sent a byte or that the
// client closed without sending. Afterwards the mux's matching deadline is
// back in force and the matchers that follow read the connection as if
// Silent had not run: its own timeout is not theirs.
//
// Where it is registered decides the trade-off:
//
//   - First (the usual place): every connection waits for its first byte in
//     Silent, which returns as soon as the byte comes, so clients that speak
//     first are matched as quickly as without it. Clients that wait for the
//     server get its greeting d after they connect. A client whose first
//     byte takes longer than d to come (a slow link, a client that connects
//     before it has something to say) is taken for a silent one and goes to
//     Silent's listener, so d must be well above the talkers' delays; a
//     second or two suits most networks.
//   - Last: the matchers before it wait for the first byte until the
//     matching deadline, so silent clients reach Silent only then and get
//     their greeting MatchTimeout after they connect; no talker slower than
//     d is mis-routed. A MatchTimeout short enough for greetings also bounds
//     the matching of every other protocol.
//
// On a TLS root listener the wait includes the TLS handshake, and a
// handshake interrupted by the timeout fails the connection (crypto/tls
// keeps the error), so leave d well above handshake times there. With
// TerminateTLS the handshake comes first, and Silent waits for the first
// byte after it.
//
// On a reader that is not the mux's, Silent cannot set a deadline: it reads
// once and matches if that read fails with a timeout without a byte.
//
// Silent panics if d is not positive.
//
//go:noinline
func Silent(d time.Duration) Matcher {
	if d <= 0 {
		panic("cmux: Silent needs a positive duration")
	}
	return func(r io.Reader) bool {
		if s, ok := r.(*sniffer); ok {
			s.builtin = true
			return s.silentFor(d)
		}
		b, err := asPeeker(r).Peek(1)
		return len(b) == 0 && isTimeoutErr(err)
	}
}

// silentFor reports whether the client sends nothing within d (or before
// the matching deadline, if sooner). A timeout of its own does not stick:
// it restores the matching deadline and clears the error.
func (s *sniffer) silentFor(d time.Duration) bool {
	s.timed = true
	if s.now != nil && len(s.buf) == 0 && s.err == nil {
		// Waiting is for a worker.
		if _ = s.fill(1); s.blocked {
			return false
		}
	}
	if len(s.buf) > 0 {
		return false
	}
	if s.err != nil {
		return isTimeoutErr(s.err)
	}
	until := time.Now().Add(d)
	own := true
	if dl := s.conn.deadline; dl != 0 && dl < until.UnixNano() {
		until, own = time.Unix(0, dl), false
	}
	if s.conn.Conn.SetReadDeadline(until) != nil {
		// No way to bound the wait: the client is not known to be silent.
		return false
	}
	err := s.fill(1)
	s.restoreDeadline()
	if own && isTimeoutErr(s.err) {
		s.err = nil
	}
	return len(s.buf) == 0 && isTimeoutErr(err)
}

// restoreDeadline gives the connection back the mux's bound after Silent
// set a deadline of its own: none, unless the mux's expirer has set its past
// one already (under the mux's connMu, so that the expirer cannot set one
// in between that this would wipe). If the matching deadline passed during
// Silent's wait, the timeout error sticks in s.err, so later matchers read
// nothing more, and the delivered connection has no deadline left.
func (s *sniffer) restoreDeadline() {
	if m := s.mux; m != nil {
		m.connMu.Lock()
		defer m.connMu.Unlock()
		if s.conn.expired {
			_ = s.conn.Conn.SetReadDeadline(aLongTimeAgo)
			return
		}
	}
	_ = s.conn.Conn.SetReadDeadline(time.Time{})
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
