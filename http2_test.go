package cmux

//lint:file-ignore SA1019 the tests drive the x/net/http2 server and client on purpose: users run them, and the mux must work with them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"

	"github.com/cmux-go/cmux/internal/h2"
)

// This file tests HTTP/2 through the mux: the SETTINGS frame the mux writes,
// the filtering of its ACK (ackFilter), the rewriting of the server's first
// SETTINGS (settingsRewriter), and a matrix of matcher chains x clients x
// servers on real TCP.

const h2Timeout = 20 * time.Second

// ---------------------------------------------------------------------------
// HTTP/2 frames, by hand.

// h2Frame returns an HTTP/2 frame.
func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	b := make([]byte, h2.FrameHeaderLen, h2.FrameHeaderLen+len(payload))
	b[0], b[1], b[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	b[3], b[4] = typ, flags
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

// h2Settings returns a SETTINGS frame of the id, value pairs kv.
func h2Settings(kv ...uint32) []byte {
	var p []byte
	for i := 0; i+1 < len(kv); i += 2 {
		p = binary.BigEndian.AppendUint16(p, uint16(kv[i]))
		p = binary.BigEndian.AppendUint32(p, kv[i+1])
	}
	return h2Frame(h2.FrameSettings, 0, 0, p)
}

var h2SettingsAck = h2Frame(h2.FrameSettings, h2.FlagAck, 0, nil)

func h2WindowUpdate(stream, incr uint32) []byte {
	return h2Frame(h2.FrameWindowUpdate, 0, stream, binary.BigEndian.AppendUint32(nil, incr))
}

func catBytes(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

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
	mc.sniff.init(mc, newBufferPools(DefaultMaxSniffBytes), DefaultMaxSniffBytes)
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
	ackTestSettings = h2Settings(0x2, 0, 0x4, 1<<20, 0x3, 100)
	ackTestWU       = h2WindowUpdate(0, 1<<20)
	ackTestHeaders  = h2Frame(h2.FrameHeaders, h2.FlagEndHeaders, 1, []byte{0x82, 0x86, 0x84, 0x41, 0x03, 'a', '.', 'b'})
	// Payloads full of bytes that look like SETTINGS ACK frames.
	ackTestData = h2Frame(h2.FrameData, 0x1, 1, catBytes(h2SettingsAck, h2SettingsAck, bytes.Repeat([]byte{0}, 40)))
	ackTestBig  = h2Frame(h2.FrameData, 0, 1, bytes.Repeat(h2SettingsAck, 2000))
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
		{"after SETTINGS", [][]byte{pre, ackTestSettings, ackTestWU, h2SettingsAck, ackTestHeaders, ackTestData, h2SettingsAck}, 3},
		{"right after the preface frame", [][]byte{pre, ackTestSettings, h2SettingsAck, ackTestWU, ackTestHeaders, h2SettingsAck}, 2},
		{"after HEADERS", [][]byte{pre, ackTestSettings, ackTestWU, ackTestHeaders, h2SettingsAck, ackTestData, h2SettingsAck}, 4},
		{"after big DATA", [][]byte{pre, ackTestSettings, ackTestHeaders, ackTestBig, ackTestData, h2SettingsAck, h2SettingsAck}, 5},
		{"no ACK at all", [][]byte{pre, ackTestSettings, ackTestWU, ackTestHeaders, ackTestData}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := catBytes(tc.frames...)
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
			h2AckFilterRun(t, in, catBytes(want...), nil, io.EOF, sniffs)
		})
	}
}

// A SETTINGS ACK that arrived before the mux wrote its SETTINGS cannot be
// the ACK of them (only a broken client sends one): it goes to the server,
// and the next ACK, the one of the mux's frame, is dropped.
func TestAckFilterIgnoresAckBeforeMuxSettings(t *testing.T) {
	checkLeaks(t)
	early := catBytes([]byte(h2.Preface), ackTestSettings, h2SettingsAck)
	in := catBytes(early, ackTestHeaders, h2SettingsAck, ackTestData)
	want := catBytes(early, ackTestHeaders, ackTestData)
	for iter := range 50 {
		rnd := rand.New(rand.NewPCG(uint64(iter), 11))
		cc := &h2ScriptConn{src: in, rnd: rnd, maxChunk: 1 + iter%16}
		mc := &MuxConn{Conn: cc}
		mc.sniff.init(mc, newBufferPools(DefaultMaxSniffBytes), DefaultMaxSniffBytes)
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
	in := catBytes([]byte(h2.Preface), ackTestSettings, h2SettingsAck, ackTestHeaders)
	cc := &h2ScriptConn{src: in, rnd: rand.New(rand.NewPCG(1, 2)), maxChunk: 1}
	mc := h2DeliveredConn(cc, len(h2.Preface)+len(ackTestSettings)+3, true) // the ACK straddles sniffed and live bytes
	require.True(t, mc.filtersAck())
	got, err := h2ReadAllRandom(t, mc, rand.New(rand.NewPCG(3, 4)), 1)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, catBytes([]byte(h2.Preface), ackTestSettings, ackTestHeaders), got)
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
	bad := h2Frame(h2.FrameSettings, h2.FlagAck, 0, []byte{0, 4, 0, 0, 0, 1})
	in := catBytes([]byte(h2.Preface), ackTestSettings, bad, h2SettingsAck, ackTestHeaders)
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
		{"inside a SETTINGS header", catBytes(pre, ackTestSettings[:4]), 4},
		{"inside an ACK header", catBytes(pre, ackTestSettings, h2SettingsAck[:5]), 5},
		{"after 8 bytes of an ACK header", catBytes(pre, ackTestSettings, h2SettingsAck[:8]), 8},
		{"inside a payload", catBytes(pre, ackTestSettings, ackTestData[:20]), 0},
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
		in := catBytes(pre, ackTestSettings, h2SettingsAck, ackTestHeaders[:3])
		want := catBytes(pre, ackTestSettings, ackTestHeaders[:3])
		h2AckFilterRun(t, in, want, nil, io.EOF, []int{0, len(in)})
		h2AckFilterRun(t, in, want, errBoom, errBoom, []int{0, len(in)})
	})
}

// Servers set read deadlines: a read that times out anywhere, inside a
// frame header or the ACK included, loses nothing, and the next read goes
// on where it stopped.
func TestAckFilterResumesAfterTimeout(t *testing.T) {
	checkLeaks(t)
	frames := [][]byte{[]byte(h2.Preface), ackTestSettings, ackTestWU, h2SettingsAck, ackTestHeaders, ackTestData, h2SettingsAck}
	in := catBytes(frames...)
	want := catBytes(frames[0], frames[1], frames[2], frames[4], frames[5], frames[6])
	ackOff := len(catBytes(frames[:3]...))
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
	wu := h2WindowUpdate(0, 983041)
	// Later frames that carry what looks like the settingValue: never touched.
	later := catBytes(h2SettingsAck,
		h2Frame(h2.FrameHeaders, h2.FlagEndHeaders, 1, []byte{0, noRFC, 0, 0, 0, 0, 0x88}),
		h2Settings(noRFC, 0),
		h2Frame(h2.FrameData, 0x1, 1, h2Settings(noRFC, 0)))
	cases := []struct {
		name      string
		wrote     bool // the mux wrote its SETTINGS
		first     []byte
		wantFirst []byte
	}{
		{"value 0 becomes 1", true,
			h2Settings(0x5, 1<<20, 0x3, 250, noRFC, 0, 0x4, 1<<20),
			h2Settings(0x5, 1<<20, 0x3, 250, noRFC, 1, 0x4, 1<<20)},
		{"value 1 unchanged", true,
			h2Settings(0x3, 250, noRFC, 1), h2Settings(0x3, 250, noRFC, 1)},
		{"value 0x01000100 becomes 1", true,
			h2Settings(noRFC, 0x01000100, 0x3, 250), h2Settings(noRFC, 1, 0x3, 250)},
		{"only setting", true, h2Settings(noRFC, 0), h2Settings(noRFC, 1)},
		{"twice", true, h2Settings(noRFC, 0, 0x3, 9, noRFC, 0), h2Settings(noRFC, 1, 0x3, 9, noRFC, 1)},
		{"absent", true,
			h2Settings(0x3, 250, 0x4, 1<<20, 0x6, 1<<20), h2Settings(0x3, 250, 0x4, 1<<20, 0x6, 1<<20)},
		{"empty SETTINGS", true, h2Settings(), h2Settings()},
		{"first frame not SETTINGS", true, wu, wu},
		{"first frame a SETTINGS ACK", true, h2SettingsAck, h2SettingsAck},
		{"mux wrote nothing", false, h2Settings(noRFC, 0), h2Settings(noRFC, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := catBytes(tc.first, wu, later, h2Settings(noRFC, 0))
			want := catBytes(tc.wantFirst, wu, later, h2Settings(noRFC, 0))
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
	first := h2Settings(0x3, 250, 0x9, 0)
	for i := range first {
		require.True(t, mc.rewritesSettings(), "rewriter off at byte %d", i)
		_, err := mc.Write(first[i : i+1])
		require.NoError(t, err)
	}
	require.False(t, mc.rewritesSettings())
	require.Equal(t, h2Settings(0x3, 250, 0x9, 1), cc.written)
	second := h2Settings(0x9, 0)
	_, err := mc.Write(second)
	require.NoError(t, err)
	require.Equal(t, second, cc.written[len(first):])
}

// ---------------------------------------------------------------------------
// Servers, clients and relays on real TCP.

// h2CheckServerLog fails t, at its end, if a server logged anything: an HTTP/2
// server logs a connection error when it gets an ACK it did not ask for.
func h2CheckServerLog(t *testing.T) *syncBuffer {
	logs := &syncBuffer{}
	if !strings.Contains(os.Getenv("GODEBUG"), "http2debug") { // verbose logs go there too
		t.Cleanup(func() { assert.Empty(t, logs.String(), "server error log") })
	}
	return logs
}

func h2Wait(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(h2Timeout):
		t.Errorf("timed out waiting for %s", what)
	}
}

func h2WaitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	h2Wait(t, done, what)
}

// Kinds of REST server.
const (
	h2SrvH2C       = "h2c-handler"  // x/net h2c.NewHandler on an http.Server
	h2SrvServeConn = "h2-serveconn" // x/net http2.Server.ServeConn on each conn
	h2SrvProtocols = "nethttp-protocols"
	h2SrvProxy     = "byte-proxy" // io.Copy both ways to a Protocols server
	h2SrvHTTP1     = "nethttp-1"  // net/http, HTTP/1 only
)

var h2ServerKinds = []string{h2SrvH2C, h2SrvServeConn, h2SrvProtocols, h2SrvProxy}

// h2RESTHandler answers "name proto path". Paths starting with /slow are
// answered after a while: clients that send all their requests at once
// then stay long enough for a server to fail the connection on a stray ACK.
func h2RESTHandler(name string, reqs *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reqs != nil {
			reqs.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/slow") {
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(w, "%s %s %s\n", name, r.Proto, r.URL.Path)
	})
}

// h2ServeHTTP serves l with hs until the test ends; hijacked connections
// (h2c) are closed then too.
func h2ServeHTTP(t *testing.T, l net.Listener, hs *http.Server) {
	var mu sync.Mutex
	var hijacked []net.Conn
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateHijacked {
			mu.Lock()
			hijacked = append(hijacked, c)
			mu.Unlock()
		}
	}
	goServe(t, "http.Server.Serve", func() error { return hs.Serve(l) }, func() {
		_ = hs.Close()
		mu.Lock()
		for _, c := range hijacked {
			c.Close()
		}
		mu.Unlock()
	})
}

// h2ServeConns runs handle on each connection l accepts until the test ends.
// handle calls track for every other connection it opens.
func h2ServeConns(t *testing.T, l net.Listener, handle func(c net.Conn, track func(net.Conn))) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	track := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
		}
		conns = append(conns, c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() { defer wg.Done(); handle(c, track) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		h2WaitGroup(t, &wg, "connection handlers")
	})
}

// h2ProxyConn copies c to a new connection to upstream and back, passing on
// half-closes.
func h2ProxyConn(c net.Conn, upstream string, track func(net.Conn)) {
	u, err := net.DialTimeout("tcp", upstream, h2Timeout)
	if err != nil {
		c.Close()
		return
	}
	track(u)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(u, c) // MuxConn.WriteTo
		_ = u.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(c, u) // through MuxConn.Write / ReadFrom
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	<-done
	c.Close()
	u.Close()
}

// h2ServeREST serves l with a REST server of the given kind whose handler
// answers "name proto path"; its errors go to logw.
func h2ServeREST(t *testing.T, kind string, l net.Listener, name string, logw io.Writer, reqs *atomic.Int64) {
	h := h2RESTHandler(name, reqs)
	errLog := log.New(logw, kind+" "+name+": ", 0)
	switch kind {
	case h2SrvH2C:
		h2ServeHTTP(t, l, &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ErrorLog: errLog})
	case h2SrvProtocols:
		h2ServeHTTP(t, l, h2ProtocolsServer(h, errLog))
	case h2SrvHTTP1:
		h2ServeHTTP(t, l, &http.Server{Handler: h, ErrorLog: errLog})
	case h2SrvServeConn:
		s := &http2.Server{}
		h2ServeConns(t, l, func(c net.Conn, _ func(net.Conn)) {
			s.ServeConn(c, &http2.ServeConnOpts{Handler: h, BaseConfig: &http.Server{ErrorLog: errLog}})
			c.Close()
		})
	case h2SrvProxy:
		ul := listenLoopback(t)
		h2ServeHTTP(t, ul, h2ProtocolsServer(h, errLog))
		h2ServeConns(t, l, func(c net.Conn, track func(net.Conn)) { h2ProxyConn(c, ul.Addr().String(), track) })
	default:
		t.Fatalf("unknown server kind %q", kind)
	}
}

// h2ServeMux serves a new mux on a loopback listener until the test ends;
// build registers its listeners. It returns the mux's address.
func h2ServeMux(t *testing.T, build func(m CMux)) string {
	l := listenLoopback(t)
	m := NewWithOptions(l, MatchTimeout(h2Timeout))
	build(m)
	serveMux(t, m, l)
	return l.Addr().String()
}

// ---------------------------------------------------------------------------
// Relays between a client and the mux.

type h2RelayMode int

const (
	// h2RelayPause forwards the client's preface and first frame, waits
	// until the mux's SETTINGS has come back, then forwards the rest. So the
	// mux writes SETTINGS even for clients that send their whole first
	// flight at once.
	h2RelayPause h2RelayMode = iota + 1
	// h2RelayOneByte is h2RelayPause forwarding every client byte in a Write
	// of its own.
	h2RelayOneByte
)

// h2Relay forwards connections to target, recording what the server side
// sends.
type h2Relay struct {
	ln     net.Listener
	target string
	mode   h2RelayMode
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []*h2RelayConn
	closed bool
}

type h2RelayConn struct {
	client, server net.Conn
	left           atomic.Int32 // directions still running

	mu         sync.Mutex
	fromServer []byte // what the server side sent, in order

	firstFrame chan struct{} // closed when a whole frame came from the server side
	once       sync.Once
	h2         atomic.Bool // the client sent the HTTP/2 preface
	timedOut   atomic.Bool // the pause ended without a frame from the server side
}

func h2StartRelay(t *testing.T, target string, mode h2RelayMode) *h2Relay {
	r := &h2Relay{ln: listenLoopback(t), target: target, mode: mode}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		r.ln.Close()
		r.mu.Lock()
		r.closed = true
		for _, c := range r.conns {
			c.client.Close()
			c.server.Close()
		}
		r.mu.Unlock()
		h2WaitGroup(t, &r.wg, "relay")
	})
	return r
}

func (r *h2Relay) addr() string { return r.ln.Addr().String() }

func (r *h2Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", r.target, h2Timeout)
		if err != nil {
			c.Close()
			continue
		}
		rc := &h2RelayConn{client: c, server: s, firstFrame: make(chan struct{})}
		rc.left.Store(2)
		r.mu.Lock()
		if r.closed {
			c.Close()
			s.Close()
		}
		r.conns = append(r.conns, rc)
		r.mu.Unlock()
		r.wg.Add(2)
		go func() { defer r.wg.Done(); rc.clientToServer(r.mode) }()
		go func() { defer r.wg.Done(); rc.serverToClient() }()
	}
}

// end ends one direction; with err not io.EOF, or after both, it closes
// both connections.
func (rc *h2RelayConn) end(to net.Conn, err error) {
	if err == nil || errors.Is(err, io.EOF) {
		_ = to.(*net.TCPConn).CloseWrite()
	}
	if rc.left.Add(-1) == 0 || (err != nil && !errors.Is(err, io.EOF)) {
		rc.client.Close()
		rc.server.Close()
	}
}

func (rc *h2RelayConn) forward(mode h2RelayMode, p []byte) error {
	if mode != h2RelayOneByte {
		_, err := rc.server.Write(p)
		return err
	}
	for i := range p {
		if _, err := rc.server.Write(p[i : i+1]); err != nil {
			return err
		}
	}
	return nil
}

// h2FirstFrameEnd says where the client's first frame after the preface
// ends in head: decided is false while more bytes are needed; end is 0 if
// head does not start with the preface.
func h2FirstFrameEnd(head []byte) (end int, decided bool) {
	n := min(len(head), len(h2.Preface))
	if string(head[:n]) != h2.Preface[:n] {
		return 0, true
	}
	const hdrEnd = len(h2.Preface) + h2.FrameHeaderLen
	if len(head) < hdrEnd {
		return 0, false
	}
	h := head[len(h2.Preface):]
	end = hdrEnd + (int(h[0])<<16 | int(h[1])<<8 | int(h[2]))
	return end, len(head) >= end
}

func (rc *h2RelayConn) clientToServer(mode h2RelayMode) {
	buf := make([]byte, 32<<10)
	var head []byte
	end, decided := 0, false
	var err error
	for !decided && err == nil {
		var n int
		n, err = rc.client.Read(buf)
		head = append(head, buf[:n]...)
		end, decided = h2FirstFrameEnd(head)
	}
	if decided && end > 0 {
		rc.h2.Store(true)
		if ferr := rc.forward(mode, head[:end]); ferr != nil {
			rc.end(rc.server, ferr)
			return
		}
		head = head[end:]
		select {
		case <-rc.firstFrame:
		case <-time.After(5 * time.Second):
			rc.timedOut.Store(true)
		}
	}
	if ferr := rc.forward(mode, head); ferr != nil {
		rc.end(rc.server, ferr)
		return
	}
	for err == nil {
		var n int
		n, err = rc.client.Read(buf)
		if ferr := rc.forward(mode, buf[:n]); ferr != nil {
			err = ferr
		}
	}
	rc.end(rc.server, err)
}

func (rc *h2RelayConn) serverToClient() {
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.server.Read(buf)
		if n > 0 {
			rc.mu.Lock()
			if len(rc.fromServer) < 1<<20 {
				rc.fromServer = append(rc.fromServer, buf[:n]...)
			}
			whole := len(h2SplitFrames(rc.fromServer)) > 0
			rc.mu.Unlock()
			if whole {
				rc.once.Do(func() { close(rc.firstFrame) })
			}
			if _, werr := rc.client.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			rc.once.Do(func() { close(rc.firstFrame) })
			rc.end(rc.client, err)
			return
		}
	}
}

// received returns, per connection, what the server side sent.
func (r *h2Relay) received() (h2 []bool, data [][]byte, timedOut []bool) {
	r.mu.Lock()
	conns := slices.Clone(r.conns)
	r.mu.Unlock()
	for _, rc := range conns {
		rc.mu.Lock()
		data = append(data, bytes.Clone(rc.fromServer))
		rc.mu.Unlock()
		h2 = append(h2, rc.h2.Load())
		timedOut = append(timedOut, rc.timedOut.Load())
	}
	return h2, data, timedOut
}

// checkH2 checks that the relay carried conns HTTP/2 connections, on each
// of which the mux wrote its SETTINGS, once, before the server's.
func (r *h2Relay) checkH2(t *testing.T, conns int) {
	t.Helper()
	h2, data, timedOut := r.received()
	require.Len(t, data, conns, "connections through the relay")
	for i := range data {
		require.True(t, h2[i], "conn %d: no HTTP/2 preface", i)
		require.False(t, timedOut[i], "conn %d: the mux did not write SETTINGS while the client waited", i)
		h2CheckServerPreface(t, data[i], true)
	}
}

// checkHTTP1 checks that the relay carried conns HTTP/1 connections, on
// which the client got an HTTP/1.1 response and nothing from the mux.
func (r *h2Relay) checkHTTP1(t *testing.T, conns int) {
	t.Helper()
	_, data, _ := r.received()
	require.Len(t, data, conns, "connections through the relay")
	for i, b := range data {
		require.True(t, bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")), "conn %d got %q", i, b[:min(len(b), 40)])
	}
}

// ---------------------------------------------------------------------------
// External clients.

func h2NeedBinary(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// h2Run runs name with args and returns its output and exit code.
func h2Run(t *testing.T, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	h2NeedBinary(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*h2Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s %q timed out: %s", name, args, e.String())
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func h2CurlArgs(extra ...string) []string {
	return append([]string{"-sS", "--noproxy", "*", "--max-time", "20"}, extra...)
}

func h2URLs(addr string, paths ...string) []string {
	var us []string
	for _, p := range paths {
		us = append(us, "http://"+addr+p)
	}
	return us
}

// h2CurlWrite makes curl print "<http version> <new connections>" after each
// transfer.
const h2CurlWrite = "%{http_version} %{num_connects}\n"

// h2CurlReuse caches whether this curl can send a second request on a
// prior-knowledge HTTP/2 connection (see TestH2CurlReuseControl).
var h2CurlReuse struct {
	once    sync.Once
	broken  bool
	version string
	fail    string
}

// h2CurlReuseBroken reports whether curl fails the second request on a reused
// prior-knowledge HTTP/2 connection to a bare net/http server, without cmux.
// curl 7.88.x does (curl/curl#10634, fixed in curl 8.0.0): it never sends
// that request and exits with "(16) Error in the HTTP2 framing layer".
func h2CurlReuseBroken(t *testing.T) (bool, string) {
	t.Helper()
	h2NeedBinary(t, "curl")
	h2CurlReuse.once.Do(func() {
		h2CurlReuse.fail = "the probe did not finish" // if h2Run ends the test
		out, _, _ := h2Run(t, "curl", "--version")
		h2CurlReuse.version, _, _ = strings.Cut(out, "\n")
		l := listenLoopback(t)
		var reqs atomic.Int64
		hs := h2ProtocolsServer(h2RESTHandler("bare", &reqs), log.New(io.Discard, "", 0))
		done := make(chan struct{})
		go func() { defer close(done); _ = hs.Serve(l) }()
		out, errOut, code := h2Run(t, "curl", h2CurlArgs(append([]string{"--http2-prior-knowledge"}, h2URLs(l.Addr().String(), "/a", "/b")...)...)...)
		_ = hs.Close()
		h2Wait(t, done, "probe server")
		h2CurlReuse.fail = ""
		switch {
		case code == 0 && out == "bare HTTP/2.0 /a\nbare HTTP/2.0 /b\n":
		case code == 16 && out == "bare HTTP/2.0 /a\n" && reqs.Load() == 1:
			h2CurlReuse.broken = true
		default:
			h2CurlReuse.fail = fmt.Sprintf("unexpected curl result without cmux: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	require.Empty(t, h2CurlReuse.fail)
	return h2CurlReuse.broken, h2CurlReuse.version
}

// h2CheckNghttp checks the output of nghttp -v for the bodies want, and that
// no side sent a GOAWAY with an error.
func h2CheckNghttp(t *testing.T, out, errOut string, code int, want ...string) {
	t.Helper()
	require.Zero(t, code, "nghttp exit code; stderr %q; output:\n%s", errOut, out)
	for _, w := range want {
		require.Equal(t, 1, strings.Count(out, w), "nghttp output has not %q once:\n%s", w, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "error_code=") {
			require.Contains(t, line, "error_code=NO_ERROR", "nghttp output:\n%s", out)
		}
	}
	require.NotContains(t, out+errOut, "[ERROR]", "nghttp output:\n%s", out)
	require.NotContains(t, out, "recv GOAWAY", "the server went away:\n%s", out)
}

// ---------------------------------------------------------------------------
// The matrix.

// h2Chain is a chain of matchers; its listeners are "grpc", "rest" (HTTP/2
// REST), and maybe "other" (HTTP/2, content-type application/other) and "h1"
// (HTTP/1).
type h2Chain struct {
	name  string
	h1    string // the listener HTTP/1.1 requests reach; "" if none
	other bool
	build func(m CMux) (grpcL net.Listener, rest map[string]net.Listener)
}

const h2CT = "content-type"

var h2Chains = []h2Chain{
	{
		name: "writer-grpc,any", h1: "rest",
		build: func(m CMux) (net.Listener, map[string]net.Listener) {
			g := m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings(h2CT, "application/grpc"))
			return g, map[string]net.Listener{"rest": m.Match(Any())}
		},
	},
	{
		name: "writer-grpc,writer-other,http2", other: true,
		build: func(m CMux) (net.Listener, map[string]net.Listener) {
			g := m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings(h2CT, "application/grpc"))
			o := m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings(h2CT, "application/other"))
			return g, map[string]net.Listener{"other": o, "rest": m.Match(HTTP2())}
		},
	},
	{
		name: "plain-grpc,http1fast,any", h1: "h1",
		build: func(m CMux) (net.Listener, map[string]net.Listener) {
			g := m.Match(HTTP2HeaderField(h2CT, "application/grpc"))
			h1 := m.Match(HTTP1Fast())
			return g, map[string]net.Listener{"h1": h1, "rest": m.Match(Any())}
		},
	},
	{
		name: "writer-grpc,http1fast,any", h1: "h1",
		build: func(m CMux) (net.Listener, map[string]net.Listener) {
			g := m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings(h2CT, "application/grpc"))
			h1 := m.Match(HTTP1Fast())
			return g, map[string]net.Listener{"h1": h1, "rest": m.Match(Any())}
		},
	},
}

// serve serves a mux with the chain until the test ends: a gRPC health
// server (serveHealth: x/net/http2 answering as grpc-go) on its gRPC
// listener, REST servers of kind srv on the others (net/http for HTTP/1
// when srv is ServeConn). It returns the mux's address.
func (ch h2Chain) serve(t *testing.T, srv string) string {
	logs := h2CheckServerLog(t)
	var gl net.Listener
	var rest map[string]net.Listener
	addr := h2ServeMux(t, func(m CMux) { gl, rest = ch.build(m) })
	serveHealth(t, gl)
	for name, l := range rest {
		kind := srv
		if name == "h1" && srv == h2SrvServeConn {
			kind = h2SrvHTTP1
		}
		h2ServeREST(t, kind, l, name, logs, nil)
	}
	return addr
}

type h2ClientKind int

const (
	h2ClientGRPC  h2ClientKind = iota
	h2ClientH2                 // HTTP/2 to the "rest" listener
	h2ClientOther              // HTTP/2 to the "other" listener
	h2ClientH1                 // HTTP/1.1
)

type h2MatrixClient struct {
	name string
	kind h2ClientKind
	run  func(t *testing.T, e *h2Cell)
}

// h2Cell is one cell of the matrix: a mux serving a chain.
type h2Cell struct {
	addr string // the mux's
	h1   string // listener name HTTP/1.1 requests reach
}

func (c h2MatrixClient) applies(ch h2Chain, server string) bool {
	switch c.kind {
	case h2ClientH1:
		// http2.Server.ServeConn does not speak HTTP/1.
		return ch.h1 != "" && !(ch.h1 == "rest" && server == h2SrvServeConn)
	case h2ClientOther:
		return ch.other
	}
	return true
}

// target returns the address a client dials: the mux's, or a relay's.
func (e *h2Cell) target(t *testing.T, mode h2RelayMode) (string, *h2Relay) {
	if mode == 0 {
		return e.addr, nil
	}
	r := h2StartRelay(t, e.addr, mode)
	return r.addr(), r
}

// h2RunGRPCWire makes three health checks on one connection as grpc-go's
// client does on the wire (grpcWireCheck); the e2e module runs grpc-go's
// client against the same chains.
func h2RunGRPCWire(t *testing.T, e *h2Cell) {
	require.NoError(t, grpcWireCheck(e.addr, 3))
}

// h2RunGo makes three requests with an x/net/http2 Transport over plain
// TCP and checks that they went over one connection to listener want.
func h2RunGo(t *testing.T, e *h2Cell, mode h2RelayMode, contentType, want string) {
	addr, rl := e.target(t, mode)
	var dials atomic.Int32
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: h2Timeout}
	for _, p := range []string{"/a", "/b", "/c"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+p, nil)
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, want+" HTTP/2.0 "+p+"\n", string(body))
	}
	require.EqualValues(t, 1, dials.Load(), "connections")
	if rl != nil {
		rl.checkH2(t, 1)
	}
}

func h2RunGoHTTP1(t *testing.T, e *h2Cell) {
	var dials atomic.Int32
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: h2Timeout}
	for _, p := range []string{"/a", "/b", "/c"} {
		resp, err := hc.Get("http://" + e.addr + p)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, "HTTP/1.1", resp.Proto)
		require.Equal(t, e.h1+" HTTP/1.1 "+p+"\n", string(body))
	}
	require.EqualValues(t, 1, dials.Load(), "connections")
}

func h2RunCurlH1(t *testing.T, e *h2Cell, mode h2RelayMode) {
	addr, rl := e.target(t, mode)
	args := h2CurlArgs(append([]string{"--http1.1", "-w", h2CurlWrite}, h2URLs(addr, "/a", "/b", "/c")...)...)
	out, errOut, code := h2Run(t, "curl", args...)
	require.Zero(t, code, "curl exit code; stderr %q", errOut)
	h := e.h1
	require.Equal(t, h+" HTTP/1.1 /a\n1.1 1\n"+h+" HTTP/1.1 /b\n1.1 0\n"+h+" HTTP/1.1 /c\n1.1 0\n", out)
	if rl != nil {
		rl.checkHTTP1(t, 1)
	}
}

// h2RunCurlH2 runs curl --http2-prior-knowledge once per URL: one request per
// connection, which every curl can do.
func h2RunCurlH2(t *testing.T, e *h2Cell, mode h2RelayMode) {
	addr, rl := e.target(t, mode)
	paths := []string{"/a", "/b"}
	for _, p := range paths {
		out, errOut, code := h2Run(t, "curl", h2CurlArgs(append([]string{"--http2-prior-knowledge", "-w", h2CurlWrite}, h2URLs(addr, p)...)...)...)
		require.Zero(t, code, "curl exit code; stderr %q", errOut)
		require.Equal(t, "rest HTTP/2.0 "+p+"\n2 1\n", out)
	}
	if rl != nil {
		rl.checkH2(t, len(paths))
	}
}

// h2RunCurlH2Reuse runs curl --http2-prior-knowledge with several URLs: one
// connection carries every request.
func h2RunCurlH2Reuse(t *testing.T, e *h2Cell, mode h2RelayMode) {
	if broken, version := h2CurlReuseBroken(t); broken {
		t.Skipf("%s cannot send a second request on a prior-knowledge HTTP/2 connection to any server, "+
			"with or without cmux (curl/curl#10634, fixed in curl 8.0.0; see TestH2CurlReuseControl); "+
			"the curl-h2* cells use one connection per request instead", version)
	}
	addr, rl := e.target(t, mode)
	args := h2CurlArgs(append([]string{"--http2-prior-knowledge", "-w", h2CurlWrite}, h2URLs(addr, "/a", "/b", "/c")...)...)
	out, errOut, code := h2Run(t, "curl", args...)
	require.Zero(t, code, "curl exit code; stderr %q", errOut)
	require.Equal(t, "rest HTTP/2.0 /a\n2 1\nrest HTTP/2.0 /b\n2 0\nrest HTTP/2.0 /c\n2 0\n", out)
	if rl != nil {
		rl.checkH2(t, 1)
	}
}

// h2RunNghttp runs nghttp (HTTP/2 with prior knowledge) with three URLs on
// one connection.
func h2RunNghttp(t *testing.T, e *h2Cell, mode h2RelayMode) {
	addr, rl := e.target(t, mode)
	out, errOut, code := h2Run(t, "nghttp", append([]string{"-v", "-t", "20"}, h2URLs(addr, "/a", "/b", "/slow")...)...)
	h2CheckNghttp(t, out, errOut, code, "rest HTTP/2.0 /a\n", "rest HTTP/2.0 /b\n", "rest HTTP/2.0 /slow\n")
	if rl != nil {
		rl.checkH2(t, 1)
	}
}

var h2MatrixClients = []h2MatrixClient{
	{"grpc-wire", h2ClientGRPC, h2RunGRPCWire},
	{"go-h2", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunGo(t, e, 0, "", "rest") }},
	{"go-h2-pause", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunGo(t, e, h2RelayPause, "", "rest") }},
	{"go-h2-1byte", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunGo(t, e, h2RelayOneByte, "", "rest") }},
	{"go-h2-other", h2ClientOther, func(t *testing.T, e *h2Cell) { h2RunGo(t, e, 0, "application/other", "other") }},
	{"go-h2-other-pause", h2ClientOther, func(t *testing.T, e *h2Cell) { h2RunGo(t, e, h2RelayPause, "application/other", "other") }},
	{"http1", h2ClientH1, h2RunGoHTTP1},
	{"curl-h1", h2ClientH1, func(t *testing.T, e *h2Cell) { h2RunCurlH1(t, e, 0) }},
	{"curl-h1-1byte", h2ClientH1, func(t *testing.T, e *h2Cell) { h2RunCurlH1(t, e, h2RelayOneByte) }},
	{"curl-h2", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunCurlH2(t, e, 0) }},
	{"curl-h2-pause", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunCurlH2(t, e, h2RelayPause) }},
	{"curl-h2-1byte", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunCurlH2(t, e, h2RelayOneByte) }},
	{"curl-h2-reuse", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunCurlH2Reuse(t, e, 0) }},
	{"curl-h2-reuse-pause", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunCurlH2Reuse(t, e, h2RelayPause) }},
	{"nghttp", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunNghttp(t, e, 0) }},
	{"nghttp-pause", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunNghttp(t, e, h2RelayPause) }},
	{"nghttp-1byte", h2ClientH2, func(t *testing.T, e *h2Cell) { h2RunNghttp(t, e, h2RelayOneByte) }},
}

// TestH2Matrix runs every client against every matcher chain and REST
// server: the gRPC health server of serveHealth on the gRPC listener, the
// REST server of the cell on the others (net/http for HTTP/1 when the REST
// server is ServeConn). The e2e module's TestGRPCMatrix runs grpc-go's
// client and server on the same chains.
func TestH2Matrix(t *testing.T) {
	checkLeaks(t)
	for _, ch := range h2Chains {
		t.Run(ch.name, func(t *testing.T) {
			for _, cl := range h2MatrixClients {
				if !slices.ContainsFunc(h2ServerKinds, func(s string) bool { return cl.applies(ch, s) }) {
					continue
				}
				t.Run(cl.name, func(t *testing.T) {
					for _, srv := range h2ServerKinds {
						if !cl.applies(ch, srv) {
							continue
						}
						t.Run(srv, func(t *testing.T) {
							checkLeaks(t)
							addr := ch.serve(t, srv)
							cl.run(t, &h2Cell{addr: addr, h1: ch.h1})
						})
					}
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Controls without cmux.

// TestH2CurlReuseControl shows that this curl's failure on a second request
// over one prior-knowledge connection has nothing to do with cmux: against
// bare servers curl never sends that request, while nghttp does fine.
func TestH2CurlReuseControl(t *testing.T) {
	checkLeaks(t)
	broken, version := h2CurlReuseBroken(t)
	if !broken {
		t.Skipf("%s reuses prior-knowledge HTTP/2 connections", version)
	}
	for _, kind := range []string{h2SrvH2C, h2SrvServeConn, h2SrvProtocols} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			l := listenLoopback(t)
			var reqs atomic.Int64
			h2ServeREST(t, kind, l, "bare", io.Discard, &reqs)
			us := h2URLs(l.Addr().String(), "/a", "/b")

			out, errOut, code := h2Run(t, "curl", h2CurlArgs(append([]string{"--http2-prior-knowledge"}, us...)...)...)
			require.Equal(t, 16, code, "curl exit code; stderr %q", errOut)
			require.Contains(t, errOut, "Error in the HTTP2 framing layer")
			require.Equal(t, "bare HTTP/2.0 /a\n", out)
			require.EqualValues(t, 1, reqs.Load(), "the server got the second request: not the known curl bug")

			out, errOut, code = h2Run(t, "nghttp", append([]string{"-v"}, us...)...)
			h2CheckNghttp(t, out, errOut, code, "bare HTTP/2.0 /a\n", "bare HTTP/2.0 /b\n")
			require.EqualValues(t, 3, reqs.Load())
		})
	}
}

// TestH2StrayAckControl shows why the ACK of the mux's SETTINGS must never
// reach the server: a bare Go HTTP/2 server fails a connection that ACKs
// more SETTINGS than it sent, and logs it (which the matrix checks).
func TestH2StrayAckControl(t *testing.T) {
	checkLeaks(t)
	for _, kind := range []string{h2SrvH2C, h2SrvServeConn, h2SrvProtocols} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			l := listenLoopback(t)
			logs := &syncBuffer{}
			h2ServeREST(t, kind, l, "bare", logs, nil)
			c := h2Dial(t, l.Addr().String())
			c.write(catBytes([]byte(h2.Preface), h2Settings(), h2SettingsAck, h2SettingsAck, c.request(1, "/")))
			ga := c.readUntilGoAway()
			require.Equal(t, http2.ErrCodeProtocol, ga.ErrCode)
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), "PROTOCOL_ERROR") },
				5*time.Second, 10*time.Millisecond, "server log: %q", logs.String())
		})
	}
}

// ---------------------------------------------------------------------------
// The mux's SETTINGS frame, seen by a hand-written client.

// h2Conn is a hand-written HTTP/2 client connection.
type h2Conn struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder

	settings [][]byte // payloads of the server's non-ACK SETTINGS frames
	acks     int      // SETTINGS ACK frames received
}

func h2Dial(t *testing.T, addr string) *h2Conn {
	c, err := net.DialTimeout("tcp", addr, h2Timeout)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(h2Timeout)))
	hc := &h2Conn{t: t, c: c, fr: http2.NewFramer(c, c)}
	hc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	hc.enc = hpack.NewEncoder(&hc.hbuf)
	return hc
}

func (hc *h2Conn) write(b []byte) {
	hc.t.Helper()
	_, err := hc.c.Write(b)
	require.NoError(hc.t, err)
}

// request returns a HEADERS frame of a GET of path, with header fields kv.
func (hc *h2Conn) request(stream uint32, path string, kv ...string) []byte {
	hc.hbuf.Reset()
	fields := append([]string{":method", "GET", ":scheme", "http", ":authority", "cmux.test", ":path", path}, kv...)
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(hc.t, hc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}))
	}
	return h2Frame(h2.FrameHeaders, h2.FlagEndHeaders|0x1, stream, hc.hbuf.Bytes())
}

// readExactly reads len(want) bytes and checks them.
func (hc *h2Conn) readExactly(want []byte) {
	hc.t.Helper()
	got := make([]byte, len(want))
	_, err := io.ReadFull(hc.c, got)
	require.NoError(hc.t, err)
	require.Equal(hc.t, want, got)
}

// readNothing checks that nothing arrives for a while.
func (hc *h2Conn) readNothing(d time.Duration) {
	hc.t.Helper()
	require.NoError(hc.t, hc.c.SetReadDeadline(time.Now().Add(d)))
	var b [64]byte
	n, err := hc.c.Read(b[:])
	require.Zero(hc.t, n, "unexpected bytes %x", b[:n])
	var ne net.Error
	require.True(hc.t, errors.As(err, &ne) && ne.Timeout(), "unexpected read error %v", err)
	require.NoError(hc.t, hc.c.SetReadDeadline(time.Now().Add(h2Timeout)))
}

// readUntil reads frames, ACKing the server's SETTINGS and counting them
// and its ACKs, until done says so.
func (hc *h2Conn) readUntil(what string, done func(http2.Frame) bool) {
	hc.t.Helper()
	for range 1000 {
		f, err := hc.fr.ReadFrame()
		require.NoError(hc.t, err, "reading until %s", what)
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				hc.acks++
				break
			}
			var p []byte
			_ = f.ForeachSetting(func(s http2.Setting) error {
				p = binary.BigEndian.AppendUint16(p, uint16(s.ID))
				p = binary.BigEndian.AppendUint32(p, s.Val)
				return nil
			})
			hc.settings = append(hc.settings, p)
			hc.write(h2SettingsAck)
		case *http2.GoAwayFrame:
			hc.t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		case *http2.RSTStreamFrame:
			hc.t.Fatalf("RST_STREAM %v on stream %d", f.ErrCode, f.StreamID)
		}
		if done(f) {
			return
		}
	}
	hc.t.Fatalf("no %s", what)
}

// readResponse reads frames up to the end of the response on stream and
// returns its status and body.
func (hc *h2Conn) readResponse(stream uint32) (status, body string) {
	hc.t.Helper()
	hc.readUntil("end of response", func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == stream {
				status = f.PseudoValue("status")
			}
		case *http2.DataFrame:
			if f.StreamID == stream {
				body += string(f.Data())
				return f.StreamEnded()
			}
		}
		return false
	})
	return status, body
}

// ping sends a PING and reads up to its ACK: the server has then answered
// every frame sent before it.
func (hc *h2Conn) ping() {
	hc.t.Helper()
	data := []byte("cmuxping")
	hc.write(h2Frame(h2.FramePing, 0, 0, data))
	hc.readUntil("PING ACK", func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && string(p.Data[:]) == string(data)
	})
}

func (hc *h2Conn) readUntilGoAway() *http2.GoAwayFrame {
	hc.t.Helper()
	for range 1000 {
		f, err := hc.fr.ReadFrame()
		require.NoError(hc.t, err)
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			return ga
		}
	}
	hc.t.Fatal("no GOAWAY")
	return nil
}

// TestH2MuxSettingsAtMostOnce: whatever the number of header matchers and
// of client SETTINGS, the mux writes one SETTINGS frame, then the real
// server's come, and the server gets neither the ACK of the mux's frame nor
// a second frame of the mux.
func TestH2MuxSettingsAtMostOnce(t *testing.T) {
	checkLeaks(t)
	ss := HTTP2MatchHeaderFieldSendSettings
	chains := []struct {
		name  string
		build func(m CMux) map[string]net.Listener
	}{
		{"three writers", func(m CMux) map[string]net.Listener {
			return map[string]net.Listener{
				"a":   m.MatchWithWriters(ss(h2CT, "application/a")),
				"b":   m.MatchWithWriters(ss(h2CT, "application/b")),
				"c":   m.MatchWithWriters(ss(h2CT, "application/c")),
				"any": m.Match(Any()),
			}
		}},
		{"three writers in one call", func(m CMux) map[string]net.Listener {
			return map[string]net.Listener{
				"c":   m.MatchWithWriters(ss(h2CT, "application/a"), ss(h2CT, "application/b"), ss(h2CT, "application/c")),
				"any": m.Match(Any()),
			}
		}},
		{"writer, plain, writer prefix", func(m CMux) map[string]net.Listener {
			return map[string]net.Listener{
				"a":   m.MatchWithWriters(ss(h2CT, "application/a")),
				"b":   m.Match(HTTP2HeaderField(h2CT, "application/b")),
				"c":   m.MatchWithWriters(HTTP2MatchHeaderFieldPrefixSendSettings(h2CT, "application/c")),
				"any": m.Match(Any()),
			}
		}},
		{"three plain", func(m CMux) map[string]net.Listener {
			return map[string]net.Listener{
				"a":   m.Match(HTTP2HeaderField(h2CT, "application/a")),
				"b":   m.Match(HTTP2HeaderFieldPrefix(h2CT, "application/b")),
				"c":   m.Match(HTTP2HeaderField(h2CT, "application/c")),
				"any": m.Match(Any()),
			}
		}},
	}
	for _, ch := range chains {
		for _, srv := range h2ServerKinds {
			t.Run(ch.name+"/"+srv, func(t *testing.T) {
				checkLeaks(t)
				logs := h2CheckServerLog(t)
				var ls map[string]net.Listener
				addr := h2ServeMux(t, func(m CMux) { ls = ch.build(m) })
				for name, l := range ls {
					h2ServeREST(t, srv, l, name, logs, nil)
				}
				c := h2Dial(t, addr)
				// SETTINGS, a pause, another SETTINGS, a pause, the ACK of
				// the mux's frame, a pause, a third SETTINGS and the request.
				c.write(catBytes([]byte(h2.Preface), h2Settings(0x4, 1<<20)))
				c.readExactly(h2.MuxSettings)
				c.readNothing(100 * time.Millisecond)
				c.write(h2Settings(0x6, 1<<16))
				c.readNothing(100 * time.Millisecond)
				c.write(h2SettingsAck)
				c.readNothing(100 * time.Millisecond)
				c.write(catBytes(h2Settings(0x2, 0), c.request(1, "/one", h2CT, "application/c")))
				status, body := c.readResponse(1)
				require.Equal(t, "200", status)
				require.Equal(t, "c HTTP/2.0 /one\n", body)
				for i, p := range []string{"/two", "/three"} {
					c.write(c.request(uint32(3+2*i), p, h2CT, "application/c"))
					_, body = c.readResponse(uint32(3 + 2*i))
					require.Equal(t, "c HTTP/2.0 "+p+"\n", body)
				}
				c.ping()
				require.Len(t, c.settings, 1, "SETTINGS frames after the mux's")
				v, ok := settingValue(c.settings[0], 0x9)
				require.True(t, !ok || v == 1, "SETTINGS_NO_RFC7540_PRIORITIES = %d", v)
				// x/net/http2 servers ACK SETTINGS frames that arrive
				// together once.
				require.True(t, 1 <= c.acks && c.acks <= 3, "%d ACKs of the client's 3 SETTINGS", c.acks)
			})
		}
	}
}

// TestH2NoMuxSettings: the mux writes nothing to a connection that is not
// HTTP/2 or has not sent a SETTINGS frame yet, nor in reply to an ACK.
func TestH2NoMuxSettings(t *testing.T) {
	checkLeaks(t)
	ss := HTTP2MatchHeaderFieldSendSettings
	start := func(t *testing.T) string {
		logs := &syncBuffer{}
		var ls map[string]net.Listener
		addr := h2ServeMux(t, func(m CMux) {
			ls = map[string]net.Listener{
				"a":    m.MatchWithWriters(ss(h2CT, "application/a")),
				"b":    m.MatchWithWriters(ss(h2CT, "application/b")),
				"c":    m.Match(HTTP2HeaderField(h2CT, "application/c")),
				"h1":   m.Match(HTTP1Fast()),
				"rest": m.Match(Any()),
			}
		})
		for name, l := range ls {
			h2ServeREST(t, h2SrvProtocols, l, name, logs, nil)
		}
		return addr
	}
	pre := []byte(h2.Preface)

	t.Run("http1", func(t *testing.T) {
		checkLeaks(t)
		c := h2Dial(t, start(t))
		c.write([]byte("GET /h1 HTTP/1.1\r\nHost: x\r\n"))
		c.readNothing(150 * time.Millisecond)
		c.write([]byte("\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c.c), nil)
		require.NoError(t, err)
		body, err := io.ReadAll(io.LimitReader(resp.Body, 100))
		require.NoError(t, err)
		require.Equal(t, "h1 HTTP/1.1 /h1\n", string(body))
	})
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"partial preface", pre[:10]},
		{"preface", pre},
		{"SETTINGS header only", catBytes(pre, h2Settings(0x4, 1<<20)[:h2.FrameHeaderLen])},
		{"SETTINGS cut in its payload", catBytes(pre, h2Settings(0x4, 1<<20, 0x3, 10)[:14])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			c := h2Dial(t, start(t))
			c.write(tc.in)
			c.readNothing(150 * time.Millisecond)
		})
	}
	t.Run("SETTINGS completed later", func(t *testing.T) {
		// The control of the cases above: once the SETTINGS frame is
		// whole, the mux writes.
		checkLeaks(t)
		c := h2Dial(t, start(t))
		s := h2Settings(0x4, 1<<20, 0x3, 10)
		c.write(catBytes(pre, s[:14]))
		c.readNothing(100 * time.Millisecond)
		c.write(s[14:])
		c.readExactly(h2.MuxSettings)
	})
	t.Run("ACK first", func(t *testing.T) {
		// Not a valid start: no header matcher answers it; the Go server
		// behind Any() speaks first.
		checkLeaks(t)
		c := h2Dial(t, start(t))
		c.write(catBytes(pre, h2SettingsAck))
		f, err := c.fr.ReadFrame()
		require.NoError(t, err)
		sf, ok := f.(*http2.SettingsFrame)
		require.True(t, ok, "first frame %v", f)
		require.False(t, sf.IsAck())
		require.NotEqual(t, 1, sf.NumSettings(), "looks like the mux's SETTINGS")
	})
}

// TestH2NoMuxSettingsForCompleteFirstFlight: a client whose first flight
// holds its HEADERS gets no SETTINGS from the mux, only the server's.
func TestH2NoMuxSettingsForCompleteFirstFlight(t *testing.T) {
	checkLeaks(t)
	for _, ch := range h2Chains {
		for _, srv := range h2ServerKinds {
			t.Run(ch.name+"/"+srv, func(t *testing.T) {
				checkLeaks(t)
				addr := ch.serve(t, srv)
				c := h2Dial(t, addr)
				c.write(catBytes([]byte(h2.Preface), h2Settings(0x4, 1<<20), h2WindowUpdate(0, 1<<20), c.request(1, "/x")))
				// The first frame is the server's SETTINGS.
				var hdr [h2.FrameHeaderLen]byte
				_, err := io.ReadFull(c.c, hdr[:])
				require.NoError(t, err)
				payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
				_, err = io.ReadFull(c.c, payload)
				require.NoError(t, err)
				first := catBytes(hdr[:], payload)
				require.NotEqual(t, h2.MuxSettings, first, "the mux wrote SETTINGS")
				h2CheckServerPreface(t, first, false)
				c.write(h2SettingsAck)
				_, body := c.readResponse(1)
				require.Equal(t, "rest HTTP/2.0 /x\n", body)
				c.write(c.request(3, "/y"))
				_, body = c.readResponse(3)
				require.Equal(t, "rest HTTP/2.0 /y\n", body)
				c.ping()
				require.Empty(t, c.settings, "a second SETTINGS frame")
				require.Equal(t, 1, c.acks, "ACKs of the client's SETTINGS")
			})
		}
	}
}
