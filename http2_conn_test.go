package cmux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"testing"

	"github.com/cmux-go/cmux/internal/h2"
	"github.com/cmux-go/cmux/internal/wiretest"
)

// This file tests the HTTP/2 fix-ups of a delivered connection: the filtering
// of the client's ACK of the mux's SETTINGS and the rewriting of the
// server's first SETTINGS.

// ---------------------------------------------------------------------------
// HTTP/2 frames, by hand.

// h2RawFrame is a whole frame cut out of a byte stream.
type h2RawFrame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
	raw        []byte
}

// h2SplitFrames cuts b into frames; a frame cut short at the end is dropped.
func h2SplitFrames(b []byte) []h2RawFrame {
	var fs []h2RawFrame
	for len(b) >= h2.FrameHeaderLen {
		n := h2.FrameHeaderLen + (int(b[0])<<16 | int(b[1])<<8 | int(b[2]))
		if len(b) < n {
			break
		}
		fs = append(fs, h2RawFrame{
			typ: b[3], flags: b[4], stream: binary.BigEndian.Uint32(b[5:]) &^ (1 << 31),
			payload: b[h2.FrameHeaderLen:n], raw: b[:n],
		})
		b = b[n:]
	}
	return fs
}

// settingValue returns the value of setting id in a SETTINGS payload.
func settingValue(payload []byte, id uint16) (uint32, bool) {
	for i := 0; i+6 <= len(payload); i += 6 {
		if binary.BigEndian.Uint16(payload[i:]) == id {
			return binary.BigEndian.Uint32(payload[i+2:]), true
		}
	}
	return 0, false
}

// h2CheckServerPreface checks what a client received on an HTTP/2
// connection: the mux's SETTINGS frame first if wantMux, then the real
// server's SETTINGS, consistent with the mux's, and no other SETTINGS.
func h2CheckServerPreface(t *testing.T, b []byte, wantMux bool) {
	t.Helper()
	fs := h2SplitFrames(b)
	require.NotEmpty(t, fs, "no frame from the server side")
	if wantMux {
		require.Equal(t, h2.MuxSettings, fs[0].raw, "the first frame is not the mux's SETTINGS")
		fs = fs[1:]
	}
	require.NotEmpty(t, fs, "no SETTINGS from the server after the mux's")
	f := fs[0]
	require.True(t, f.typ == h2.FrameSettings && f.flags&h2.FlagAck == 0, "the server's first frame is not a SETTINGS frame: %x", f.raw)
	require.NotEqual(t, h2.MuxSettings, f.raw, "a second mux SETTINGS frame")
	if v, ok := settingValue(f.payload, 0x9); ok {
		require.EqualValues(t, 1, v, "SETTINGS_NO_RFC7540_PRIORITIES changed after the mux's SETTINGS")
	}
	for _, f := range fs[1:] {
		require.False(t, f.typ == h2.FrameSettings && f.flags&h2.FlagAck == 0, "another SETTINGS frame: %x", f.raw)
	}
}

// ---------------------------------------------------------------------------
// A MuxConn as the mux delivers it, on a scripted connection.

// h2ScriptConn is a net.Conn whose reads return src in pieces of random sizes,
// then err (io.EOF if nil), and whose writes are recorded. Before the bytes
// at the offsets in stalls (ascending), one read fails with a timeout. Only
// Read and Write may be called.
type h2ScriptConn struct {
	net.Conn
	src      []byte
	rnd      *rand.Rand
	maxChunk int
	err      error
	stalls   []int
	pos      int
	written  []byte
}

func (c *h2ScriptConn) Read(p []byte) (int, error) {
	if len(c.stalls) > 0 && c.stalls[0] == c.pos {
		c.stalls = c.stalls[1:]
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.src) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := min(1+c.rnd.IntN(c.maxChunk), len(p), len(c.src))
	if len(c.stalls) > 0 {
		n = min(n, c.stalls[0]-c.pos)
	}
	copy(p, c.src[:n])
	c.src = c.src[n:]
	c.pos += n
	return n, nil
}

func (c *h2ScriptConn) Write(p []byte) (int, error) {
	c.written = append(c.written, p...)
	return len(p), nil
}

// h2DeliveredConn returns c wrapped as the mux delivers it after a match
// that read (at least) sniffed bytes; wroteSettings says whether the mux
// wrote its SETTINGS frame during the match.
func h2DeliveredConn(c net.Conn, sniffed int, wroteSettings bool) *MuxConn {
	mc := &MuxConn{Conn: c}
	mc.sniff = newBufferPools(DefaultMaxSniffBytes).newSniffer(mc, DefaultMaxSniffBytes)
	if sniffed > 0 {
		_ = mc.sniff.fill(sniffed)
	}
	if wroteSettings {
		mc.h2State().wroteSettings = true
	}
	mc.endMatching(true)
	return mc
}

// h2ReadAllRandom reads mc to its error with reads of random sizes.
func h2ReadAllRandom(t *testing.T, mc *MuxConn, rnd *rand.Rand, maxRead int) ([]byte, error) {
	t.Helper()
	var out []byte
	p := make([]byte, maxRead)
	for range 1 << 20 {
		n, err := mc.Read(p[:1+rnd.IntN(maxRead)])
		out = append(out, p[:n]...)
		if err != nil {
			return out, err
		}
	}
	t.Fatal("reads never ended")
	return nil, nil
}

// ---------------------------------------------------------------------------
// ackFilter

// The client's stream on a connection where the mux wrote SETTINGS.
var (
	ackTestSettings = wiretest.Settings(0x2, 0, 0x4, 1<<20, 0x3, 100)
	ackTestWU       = wiretest.WindowUpdate(0, 1<<20)
	ackTestHeaders  = wiretest.Frame(h2.FrameHeaders, h2.FlagEndHeaders, 1, []byte{0x82, 0x86, 0x84, 0x41, 0x03, 'a', '.', 'b'})
	// Payloads full of bytes that look like SETTINGS ACK frames.
	ackTestData = wiretest.Frame(h2.FrameData, 0x1, 1, wiretest.Cat(wiretest.SettingsAck(), wiretest.SettingsAck(), bytes.Repeat([]byte{0}, 40)))
	ackTestBig  = wiretest.Frame(h2.FrameData, 0, 1, bytes.Repeat(wiretest.SettingsAck(), 2000))
)

// h2AckFilterRun feeds in (the client's stream) to a delivered MuxConn with
// random source chunks, read sizes and sniffed lengths, and checks that its
// reader gets want, then wantErr.
func h2AckFilterRun(t *testing.T, in, want []byte, srcErr, wantErr error, sniffs []int) {
	t.Helper()
	for iter := range 300 {
		rnd := rand.New(rand.NewPCG(uint64(iter), 7))
		sniffed := rnd.IntN(len(in) + 1)
		if iter < len(sniffs) {
			sniffed = sniffs[iter]
		}
		maxChunk := []int{1, 2, 9, 64, 4096}[iter%5]
		maxRead := []int{1, 3, 10, 100, 32 << 10}[(iter/5)%5]
		viaWriteTo := iter%3 == 2
		cc := &h2ScriptConn{src: in, rnd: rnd, maxChunk: maxChunk, err: srcErr}
		mc := h2DeliveredConn(cc, sniffed, true)
		var got []byte
		var err error
		if viaWriteTo {
			var buf bytes.Buffer
			_, err = io.Copy(&buf, mc) // MuxConn.WriteTo
			got = buf.Bytes()
			if err == nil {
				err = io.EOF
			}
		} else {
			got, err = h2ReadAllRandom(t, mc, rnd, maxRead)
		}
		desc := fmt.Sprintf("iter %d: sniffed %d, chunks <= %d, reads <= %d, WriteTo %v", iter, sniffed, maxChunk, maxRead, viaWriteTo)
		require.Equal(t, want, got, desc)
		require.ErrorIs(t, err, wantErr, desc)
	}
}

func TestAckFilterDropsFirstAck(t *testing.T) {
	checkLeaks(t)
	pre := []byte(h2.Preface)
	cases := []struct {
		name   string
		frames [][]byte
		drop   int // index of the frame the server must not see; -1: none
	}{
		{"after SETTINGS", [][]byte{pre, ackTestSettings, ackTestWU, wiretest.SettingsAck(), ackTestHeaders, ackTestData, wiretest.SettingsAck()}, 3},
		{"right after the preface frame", [][]byte{pre, ackTestSettings, wiretest.SettingsAck(), ackTestWU, ackTestHeaders, wiretest.SettingsAck()}, 2},
		{"after HEADERS", [][]byte{pre, ackTestSettings, ackTestWU, ackTestHeaders, wiretest.SettingsAck(), ackTestData, wiretest.SettingsAck()}, 4},
		{"after big DATA", [][]byte{pre, ackTestSettings, ackTestHeaders, ackTestBig, ackTestData, wiretest.SettingsAck(), wiretest.SettingsAck()}, 5},
		{"no ACK at all", [][]byte{pre, ackTestSettings, ackTestWU, ackTestHeaders, ackTestData}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := wiretest.Cat(tc.frames...)
			var want [][]byte
			ackOff := 0
			for i, f := range tc.frames {
				if i == tc.drop {
					continue
				}
				if tc.drop < 0 || i < tc.drop {
					ackOff += len(f)
				}
				want = append(want, f)
			}
			// Sniffed lengths around the ACK: before it, inside its
			// header, just after it, everything.
			sniffs := []int{0, len(pre), ackOff - 1, ackOff, ackOff + 1, ackOff + 4, ackOff + 8, ackOff + 9, ackOff + 10, len(in)}
			for i := range sniffs {
				sniffs[i] = min(max(sniffs[i], 0), len(in))
			}
			h2AckFilterRun(t, in, wiretest.Cat(want...), nil, io.EOF, sniffs)
		})
	}
}

// A SETTINGS ACK that arrived before the mux wrote its SETTINGS cannot be
// the ACK of them (only a broken client sends one): it goes to the server,
// and the next ACK, the one of the mux's frame, is dropped.
func TestAckFilterIgnoresAckBeforeMuxSettings(t *testing.T) {
	checkLeaks(t)
	early := wiretest.Cat([]byte(h2.Preface), ackTestSettings, wiretest.SettingsAck())
	in := wiretest.Cat(early, ackTestHeaders, wiretest.SettingsAck(), ackTestData)
	want := wiretest.Cat(early, ackTestHeaders, ackTestData)
	for iter := range 50 {
		rnd := rand.New(rand.NewPCG(uint64(iter), 11))
		cc := &h2ScriptConn{src: in, rnd: rnd, maxChunk: 1 + iter%16}
		mc := &MuxConn{Conn: cc}
		mc.sniff = newBufferPools(DefaultMaxSniffBytes).newSniffer(mc, DefaultMaxSniffBytes)
		// The mux has read the early ACK (and maybe more) when it writes.
		_ = mc.sniff.fill(len(early))
		mc.writeSettings()
		require.Equal(t, h2.MuxSettings, cc.written)
		mc.endMatching(true)
		got, err := h2ReadAllRandom(t, mc, rnd, 1+iter%13)
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, want, got, "iter %d", iter)
	}
}

func TestAckFilterGetsOutOfTheWay(t *testing.T) {
	checkLeaks(t)
	in := wiretest.Cat([]byte(h2.Preface), ackTestSettings, wiretest.SettingsAck(), ackTestHeaders)
	cc := &h2ScriptConn{src: in, rnd: rand.New(rand.NewPCG(1, 2)), maxChunk: 1}
	mc := h2DeliveredConn(cc, len(h2.Preface)+len(ackTestSettings)+3, true) // the ACK straddles sniffed and live bytes
	require.True(t, mc.filtersAck())
	got, err := h2ReadAllRandom(t, mc, rand.New(rand.NewPCG(3, 4)), 1)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, wiretest.Cat([]byte(h2.Preface), ackTestSettings, ackTestHeaders), got)
	require.False(t, mc.filtersAck(), "the filter is still on after the ACK")
	require.True(t, mc.direct.Load(), "reads do not go straight to the connection after the ACK")

	// Without the mux's SETTINGS nothing is filtered.
	cc = &h2ScriptConn{src: in, rnd: rand.New(rand.NewPCG(1, 2)), maxChunk: 5}
	mc = h2DeliveredConn(cc, 30, false)
	require.False(t, mc.filtersAck())
	got, err = h2ReadAllRandom(t, mc, rand.New(rand.NewPCG(3, 4)), 7)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, in, got)
}

func TestAckFilterMalformedAckPassesThrough(t *testing.T) {
	checkLeaks(t)
	// An ACK with a payload is not the ACK of the mux's SETTINGS: it goes to
	// the server (which rejects it), and the filter stops there, so the
	// empty ACK after it is kept too.
	bad := wiretest.Frame(h2.FrameSettings, h2.FlagAck, 0, []byte{0, 4, 0, 0, 0, 1})
	in := wiretest.Cat([]byte(h2.Preface), ackTestSettings, bad, wiretest.SettingsAck(), ackTestHeaders)
	h2AckFilterRun(t, in, in, nil, io.EOF, []int{0, 24, 40, 45, 60, len(in)})

	cc := &h2ScriptConn{src: in, rnd: rand.New(rand.NewPCG(5, 6)), maxChunk: 3}
	mc := h2DeliveredConn(cc, 0, true)
	got, err := h2ReadAllRandom(t, mc, rand.New(rand.NewPCG(7, 8)), 4)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, in, got)
	require.False(t, mc.filtersAck(), "the filter is still on after a malformed ACK")
}

func TestAckFilterStreamEndsMidFrame(t *testing.T) {
	checkLeaks(t)
	errBoom := errors.New("boom")
	pre := []byte(h2.Preface)
	cases := []struct {
		name    string
		in      []byte
		partial int // bytes of a frame header cut short at the end
	}{
		{"inside the preface", pre[:10], 0},
		{"after the preface", pre, 0},
		{"inside a SETTINGS header", wiretest.Cat(pre, ackTestSettings[:4]), 4},
		{"inside an ACK header", wiretest.Cat(pre, ackTestSettings, wiretest.SettingsAck()[:5]), 5},
		{"after 8 bytes of an ACK header", wiretest.Cat(pre, ackTestSettings, wiretest.SettingsAck()[:8]), 8},
		{"inside a payload", wiretest.Cat(pre, ackTestSettings, ackTestData[:20]), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// At the end of the stream every byte is passed on, then
			// io.EOF.
			h2AckFilterRun(t, tc.in, tc.in, nil, io.EOF, []int{0, len(tc.in)})
			// Another error is returned as soon as it comes: the bytes of
			// a partial frame header are kept for a read that may follow
			// (the error may be a timeout).
			h2AckFilterRun(t, tc.in, tc.in[:len(tc.in)-tc.partial], errBoom, errBoom, []int{0, len(tc.in)})
		})
	}
	t.Run("after the ACK", func(t *testing.T) {
		in := wiretest.Cat(pre, ackTestSettings, wiretest.SettingsAck(), ackTestHeaders[:3])
		want := wiretest.Cat(pre, ackTestSettings, ackTestHeaders[:3])
		h2AckFilterRun(t, in, want, nil, io.EOF, []int{0, len(in)})
		h2AckFilterRun(t, in, want, errBoom, errBoom, []int{0, len(in)})
	})
}

// Servers set read deadlines: a read that times out anywhere, inside a
// frame header or the ACK included, loses nothing, and the next read goes
// on where it stopped.
func TestAckFilterResumesAfterTimeout(t *testing.T) {
	checkLeaks(t)
	frames := [][]byte{[]byte(h2.Preface), ackTestSettings, ackTestWU, wiretest.SettingsAck(), ackTestHeaders, ackTestData, wiretest.SettingsAck()}
	in := wiretest.Cat(frames...)
	want := wiretest.Cat(frames[0], frames[1], frames[2], frames[4], frames[5], frames[6])
	ackOff := len(wiretest.Cat(frames[:3]...))
	for iter := range 300 {
		rnd := rand.New(rand.NewPCG(uint64(iter), 13))
		cc := &h2ScriptConn{src: in, rnd: rnd, maxChunk: []int{1, 3, 9, 100}[iter%4]}
		mc := h2DeliveredConn(cc, rnd.IntN(ackOff+1), true)
		sniffed := cc.pos
		// Stalls after the sniffed bytes (the mux read those): inside
		// the ACK's header, and at random places.
		stalls := []int{ackOff + 1 + rnd.IntN(h2.FrameHeaderLen-1)}
		for range 5 {
			stalls = append(stalls, sniffed+1+rnd.IntN(len(in)-sniffed))
		}
		slices.Sort(stalls)
		stalls = slices.Compact(stalls)
		for len(stalls) > 0 && stalls[0] <= sniffed {
			stalls = stalls[1:]
		}
		cc.stalls = stalls
		var got []byte
		timeouts := 0
		p := make([]byte, 64)
		for range 100000 {
			n, err := mc.Read(p[:1+rnd.IntN(len(p))])
			got = append(got, p[:n]...)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				timeouts++
				continue
			}
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
		}
		desc := fmt.Sprintf("iter %d: sniffed %d, stalls %v", iter, sniffed, stalls)
		require.Equal(t, want, got, desc)
		require.Equal(t, len(stalls), timeouts, desc)
	}
}

// ---------------------------------------------------------------------------
// settingsRewriter

// h2WriteRandom writes in to mc in random pieces (or through ReadFrom), and
// checks that every Write takes all of its piece and leaves it untouched.
func h2WriteRandom(t *testing.T, mc *MuxConn, in []byte, rnd *rand.Rand, maxChunk int, viaReadFrom bool) {
	t.Helper()
	if viaReadFrom {
		src := &h2ScriptConn{src: bytes.Clone(in), rnd: rnd, maxChunk: maxChunk}
		n, err := io.Copy(mc, readerOnly{src}) // MuxConn.ReadFrom
		require.NoError(t, err)
		require.EqualValues(t, len(in), n)
		return
	}
	for off := 0; off < len(in); {
		p := bytes.Clone(in[off:min(off+1+rnd.IntN(maxChunk), len(in))])
		orig := bytes.Clone(p)
		n, err := mc.Write(p)
		require.NoError(t, err)
		require.Equal(t, len(p), n)
		require.Equal(t, orig, p, "Write modified the caller's slice")
		off += len(p)
	}
}

func TestSettingsRewriter(t *testing.T) {
	checkLeaks(t)
	const noRFC = 0x9
	wu := wiretest.WindowUpdate(0, 983041)
	// Later frames that carry what looks like the settingValue: never touched.
	later := wiretest.Cat(wiretest.SettingsAck(),
		wiretest.Frame(h2.FrameHeaders, h2.FlagEndHeaders, 1, []byte{0, noRFC, 0, 0, 0, 0, 0x88}),
		wiretest.Settings(noRFC, 0),
		wiretest.Frame(h2.FrameData, 0x1, 1, wiretest.Settings(noRFC, 0)))
	cases := []struct {
		name      string
		wrote     bool // the mux wrote its SETTINGS
		first     []byte
		wantFirst []byte
	}{
		{"value 0 becomes 1", true,
			wiretest.Settings(0x5, 1<<20, 0x3, 250, noRFC, 0, 0x4, 1<<20),
			wiretest.Settings(0x5, 1<<20, 0x3, 250, noRFC, 1, 0x4, 1<<20)},
		{"value 1 unchanged", true,
			wiretest.Settings(0x3, 250, noRFC, 1), wiretest.Settings(0x3, 250, noRFC, 1)},
		{"value 0x01000100 becomes 1", true,
			wiretest.Settings(noRFC, 0x01000100, 0x3, 250), wiretest.Settings(noRFC, 1, 0x3, 250)},
		{"only setting", true, wiretest.Settings(noRFC, 0), wiretest.Settings(noRFC, 1)},
		{"twice", true, wiretest.Settings(noRFC, 0, 0x3, 9, noRFC, 0), wiretest.Settings(noRFC, 1, 0x3, 9, noRFC, 1)},
		{"absent", true,
			wiretest.Settings(0x3, 250, 0x4, 1<<20, 0x6, 1<<20), wiretest.Settings(0x3, 250, 0x4, 1<<20, 0x6, 1<<20)},
		{"empty SETTINGS", true, wiretest.Settings(), wiretest.Settings()},
		{"first frame not SETTINGS", true, wu, wu},
		{"first frame a SETTINGS ACK", true, wiretest.SettingsAck(), wiretest.SettingsAck()},
		{"mux wrote nothing", false, wiretest.Settings(noRFC, 0), wiretest.Settings(noRFC, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := wiretest.Cat(tc.first, wu, later, wiretest.Settings(noRFC, 0))
			want := wiretest.Cat(tc.wantFirst, wu, later, wiretest.Settings(noRFC, 0))
			for iter := range 200 {
				rnd := rand.New(rand.NewPCG(uint64(iter), 11))
				maxChunk := []int{1, 2, 5, 16, 1000}[iter%5]
				viaReadFrom := iter%4 == 3
				cc := &h2ScriptConn{}
				mc := h2DeliveredConn(cc, 0, tc.wrote)
				h2WriteRandom(t, mc, in, rnd, maxChunk, viaReadFrom)
				require.Equal(t, want, cc.written, "iter %d: writes <= %d, ReadFrom %v", iter, maxChunk, viaReadFrom)
				require.False(t, mc.rewritesSettings(), "the rewriter is still on after the first frame")
				require.True(t, mc.wdirect.Load(), "writes do not go straight to the connection")
			}
		})
	}
}

// The rewriter is off as soon as the first frame is over, even if the
// rest of the stream has not been written yet.
func TestSettingsRewriterStopsAfterFirstFrame(t *testing.T) {
	checkLeaks(t)
	cc := &h2ScriptConn{}
	mc := h2DeliveredConn(cc, 0, true)
	first := wiretest.Settings(0x3, 250, 0x9, 0)
	for i := range first {
		require.True(t, mc.rewritesSettings(), "rewriter off at byte %d", i)
		_, err := mc.Write(first[i : i+1])
		require.NoError(t, err)
	}
	require.False(t, mc.rewritesSettings())
	require.Equal(t, wiretest.Settings(0x3, 250, 0x9, 1), cc.written)
	second := wiretest.Settings(0x9, 0)
	_, err := mc.Write(second)
	require.NoError(t, err)
	require.Equal(t, second, cc.written[len(first):])
}
