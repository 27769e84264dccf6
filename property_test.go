package cmux

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/h2"
)

// This file checks, on random chains of matchers and random clients, that
// every connection is delivered to the listener whose matcher says yes,
// with its bytes intact.

// TestPropertyDelivered: random payloads (0 to 100 KiB), random chains of
// built-in and user matchers, random write splits: the connection goes to
// the listener whose matcher says yes on the same bytes read as a plain
// reader, and that listener reads exactly the bytes sent; if none says
// yes, the connection is closed and ErrNotMatched reported.
func TestPropertyDelivered(t *testing.T) {
	checkLeaks(t)
	seed := uint64(20240601)
	if s := os.Getenv("CMUX_PROPERTY_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (set CMUX_PROPERTY_SEED to repeat another)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	iterations := 200
	if testing.Short() {
		iterations = 40
	}
	start := time.Now()
	outcomes := map[string]int{}
	for i := range iterations {
		if time.Since(start) > 2*time.Minute {
			t.Logf("stopped after %d iterations: time bound", i)
			break
		}
		outcome, ok := hoProperty(t, rng, i)
		if !ok {
			break
		}
		outcomes[outcome]++
	}
	t.Logf("outcomes: %v", outcomes)
}

// hoMatcher is a matcher of the property test and its description.
type hoMatcher struct {
	name string
	m    MatchWriter
}

func hoRandMatcher(rng *rand.Rand) hoMatcher {
	val := []string{"a", "b", ""}[rng.IntN(3)]
	switch rng.IntN(15) {
	case 0:
		strs := []string{"GET ", "\x16\x03", "PRI *", "SSH-", "\x00", "G", "GET /x"}
		rng.Shuffle(len(strs), func(i, j int) { strs[i], strs[j] = strs[j], strs[i] })
		strs = strs[:1+rng.IntN(3)]
		return hoMatcher{fmt.Sprintf("PrefixMatcher(%q)", strs), readOnly(PrefixMatcher(strs...))}
	case 1:
		return hoMatcher{"HTTP1Fast()", readOnly(HTTP1Fast())}
	case 2:
		return hoMatcher{"HTTP1()", readOnly(HTTP1())}
	case 3:
		return hoMatcher{"TLS()", readOnly(TLS())}
	case 4:
		return hoMatcher{"HTTP2()", readOnly(HTTP2())}
	case 5:
		return hoMatcher{"HTTP1HeaderField(X-Key, " + val + ")", readOnly(HTTP1HeaderField("X-Key", val))}
	case 6:
		return hoMatcher{"HTTP1HeaderFieldPrefix(X-Key, " + val + ")", readOnly(HTTP1HeaderFieldPrefix("x-key", val))}
	case 7:
		return hoMatcher{"HTTP2HeaderField(x-key, " + val + ")", readOnly(HTTP2HeaderField("x-key", val))}
	case 8:
		return hoMatcher{"HTTP2MatchHeaderFieldSendSettings(x-key, " + val + ")", HTTP2MatchHeaderFieldSendSettings("x-key", val)}
	case 9:
		return hoMatcher{"HTTP2MatchHeaderFieldPrefixSendSettings(x-key, " + val + ")", HTTP2MatchHeaderFieldPrefixSendSettings("X-Key", val)}
	case 10, 11:
		k := hoRandSize(rng)
		return hoMatcher{fmt.Sprintf("reads %d, no", k), func(_ io.Writer, r io.Reader) bool {
			io.ReadFull(r, make([]byte, k))
			return false
		}}
	case 12, 13:
		k := hoRandSize(rng)
		return hoMatcher{fmt.Sprintf("reads %d, yes if all and the last is odd", k), func(_ io.Writer, r io.Reader) bool {
			b := make([]byte, k)
			n, _ := io.ReadFull(r, b)
			return n == k && (k == 0 || b[k-1]&1 == 1)
		}}
	default:
		return hoMatcher{"reads all, no", func(_ io.Writer, r io.Reader) bool {
			io.Copy(io.Discard, r)
			return false
		}}
	}
}

// hoRandSize returns a size up to 100 KiB, mostly small.
func hoRandSize(rng *rand.Rand) int {
	switch rng.IntN(3) {
	case 0:
		return rng.IntN(64)
	case 1:
		return rng.IntN(4 << 10)
	default:
		return rng.IntN(100 << 10)
	}
}

func hoRandPayload(t *testing.T, rng *rand.Rand) []byte {
	var head []byte
	val := []string{"a", "b", "ab"}[rng.IntN(3)]
	switch rng.IntN(6) {
	case 0:
		head = []byte("GET /x HTTP/1.1\r\nHost: h\r\nX-Key: " + val + "\r\n\r\n")
	case 1:
		head = btH2Flight(t, rng.IntN(2) == 0, "x-key", val)
	case 2:
		head = []byte("\x16\x03\x01\x02\x00\x01")
	case 3:
		head = []byte("SSH-2.0-x\r\n")
	case 4:
		return nil
	}
	n := max(hoRandSize(rng)-len(head), 0)
	p := make([]byte, len(head)+n)
	copy(p, head)
	for i := len(head); i < len(p); i++ {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// hoProperty runs one iteration of TestPropertyDelivered and returns what
// became of the connection; false if t failed.
func hoProperty(t *testing.T, rng *rand.Rand, iter int) (string, bool) {
	limit := []int{DefaultMaxSniffBytes, 1024, 5000}[rng.IntN(3)]
	var chain [][]hoMatcher
	for range 1 + rng.IntN(4) {
		var ms []hoMatcher
		for range 1 + rng.IntN(3) {
			ms = append(ms, hoRandMatcher(rng))
		}
		chain = append(chain, ms)
	}
	if rng.IntN(2) == 0 {
		chain = append(chain, []hoMatcher{{"Any()", readOnly(Any())}})
	}
	payload := hoRandPayload(t, rng)
	var splits []int
	for range rng.IntN(12) {
		splits = append(splits, rng.IntN(len(payload)+1))
	}
	// Where it must go: the first matcher that says yes on the same bytes
	// as a plain reader (at most limit of them).
	want := -1
	for i, ms := range chain {
		for _, mt := range ms {
			if want < 0 && mt.m(io.Discard, btModel(payload, limit, false)) {
				want = i
			}
		}
	}
	var names []string
	for i, ms := range chain {
		var ns []string
		for _, mt := range ms {
			ns = append(ns, mt.name)
		}
		names = append(names, fmt.Sprintf("%d: %s", i, strings.Join(ns, ", ")))
	}
	desc := fmt.Sprintf("iteration %d: %d bytes %q..., limit %d, splits %v, listeners [%s], want listener %d",
		iter, len(payload), payload[:min(len(payload), 24)], limit, splits, strings.Join(names, "; "), want)

	outcome := "not matched"
	switch {
	case want >= 0 && chain[want][0].name == "Any()":
		outcome = "Any()"
	case want >= 0:
		outcome = fmt.Sprintf("listener %d", want)
	}
	return outcome, t.Run(fmt.Sprint(iter), func(t *testing.T) {
		checkLeaks(t)
		x := newHoMux(t, MaxSniffBytes(limit))
		got := make(chan int, len(chain))
		conns := make(chan net.Conn, len(chain))
		for i, ms := range chain {
			mws := make([]MatchWriter, len(ms))
			for j, mt := range ms {
				mws[j] = mt.m
			}
			l := x.MatchWithWriters(mws...)
			ch := acceptChan(t, l)
			go func() {
				if c, ok := <-ch; ok {
					got <- i
					conns <- c
				}
			}()
		}
		x.serve(t)

		c := dialTCP(t, x.addr())
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(hoWait)))
		wrote := make(chan error, 1)
		// Like a real client, the writer sends a SETTINGS ACK only after it
		// has read the mux's SETTINGS, if the mux writes them (it does so at
		// once when it needs more bytes, or never): early holds what it read.
		var early []byte
		ackAt := hoFirstAck(payload)
		decided := make(chan struct{})
		defer func() {
			select {
			case <-decided:
			default:
				close(decided)
			}
		}()
		go func() {
			p, sent := payload, 0
			write := func(b []byte) error {
				if ackAt >= sent && ackAt < sent+len(b) {
					if _, err := c.Write(b[:ackAt-sent]); err != nil {
						return err
					}
					early = hoAwaitMuxSettings(c, decided)
					b, sent = b[ackAt-sent:], ackAt
				}
				_, err := c.Write(b)
				sent += len(b)
				return err
			}
			for _, s := range splits {
				if s < len(p) {
					if err := write(p[:s]); err != nil {
						wrote <- err
						return
					}
					p = p[s:]
				}
			}
			err := write(p)
			if err == nil {
				err = c.CloseWrite()
			}
			wrote <- err
		}()

		if want < 0 {
			select {
			case err := <-x.errs:
				close(decided)
				var nm ErrNotMatched
				require.ErrorAs(t, err, &nm, desc)
			case i := <-got:
				t.Fatalf("%s: delivered to listener %d", desc, i)
			case <-time.After(hoWait):
				t.Fatalf("%s: no ErrNotMatched", desc)
			}
			hoRequireClosed(t, c)
			<-wrote
			return
		}
		var sc net.Conn
		select {
		case i := <-got:
			close(decided)
			require.Equal(t, want, i, desc)
			sc = <-conns
			defer sc.Close()
		case err := <-x.errs:
			t.Fatalf("%s: %v", desc, err)
		case <-time.After(hoWait):
			t.Fatalf("%s: not delivered", desc)
		}
		require.NoError(t, sc.SetReadDeadline(time.Now().Add(hoWait)))
		h := sha256.New()
		n, err := io.Copy(h, sc)
		require.NoError(t, err, desc)
		require.NoError(t, <-wrote, desc)
		// The mux wrote its SETTINGS before delivery, or never: then the
		// client's first SETTINGS ACK, sent after the client read them, is
		// not the server's to read (see http2.go).
		exp := payload
		require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		if b, _ := io.ReadAll(c); len(early)+len(b) > 0 {
			b = append(early, b...)
			require.Equal(t, h2.MuxSettings, b, desc)
			exp = btDropAck(payload, 0)
		}
		sum := sha256.Sum256(exp)
		require.Equal(t, len(exp), int(n), desc)
		require.Equal(t, sum[:], h.Sum(nil), desc)
	})
}

// hoFirstAck returns the offset of the first SETTINGS ACK frame of an
// HTTP/2 client stream, or -1.
func hoFirstAck(b []byte) int {
	if !bytes.HasPrefix(b, []byte(h2.Preface)) {
		return -1
	}
	for off := len(h2.Preface); off+h2.FrameHeaderLen <= len(b); {
		if b[off+3] == h2.FrameSettings && b[off+4]&h2.FlagAck != 0 {
			return off
		}
		off += h2.FrameHeaderLen + (int(b[off])<<16 | int(b[off+1])<<8 | int(b[off+2]))
	}
	return -1
}

// hoAwaitMuxSettings reads the mux's SETTINGS frame from c, if the mux
// writes it before it has decided (decided is closed) or a second passes,
// and returns what it read.
func hoAwaitMuxSettings(c net.Conn, decided <-chan struct{}) []byte {
	buf := make([]byte, len(h2.MuxSettings))
	n := 0
	for deadline := time.Now().Add(time.Second); n < len(buf) && time.Now().Before(deadline); {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		m, err := c.Read(buf[n:])
		n += m
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		select {
		case <-decided:
			if n == 0 {
				deadline = time.Now()
			}
		default:
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return buf[:n]
}
