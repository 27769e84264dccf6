package cmux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/cmux-go/cmux/internal/wiretest/h2frame"
	"golang.org/x/net/http2/hpack"

	"github.com/cmux-go/cmux/internal/h2"
)

// btConn is the client end of a connection as the mux sees it, without a
// network: reads return src in pieces whose sizes come from sizes (cycled),
// then io.EOF. A size of 0 is a read that returns nothing and no error, at
// most 50 of them (the mux takes 100 for a connection that makes no
// progress). If stallAt >= 0, reads from byte stallAt on return
// nothing and no error for ever. Writes (the mux's SETTINGS) are recorded.
type btConn struct {
	net.Conn // nil; only Read and Write are used
	src      []byte
	off      int
	sizes    []byte
	i        int
	zeros    int
	stallAt  int
	reads    int
	wrote    []byte
	wroteAt  int // bytes read before the first write
}

// btReadSize maps a size byte to a read size: 0 to 127 as is, above that
// in steps of 512 bytes up to 64 KiB.
func btReadSize(b byte) int {
	if b < 128 {
		return int(b)
	}
	return int(b-127) * 512
}

func (c *btConn) end() int {
	if c.stallAt >= 0 && c.stallAt < len(c.src) {
		return c.stallAt
	}
	return len(c.src)
}

func (c *btConn) Read(p []byte) (int, error) {
	if c.reads++; c.reads > 1<<22 {
		panic("btConn: runaway reads") // a caller that spins
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := c.end()
	if c.off == end {
		if end < len(c.src) {
			return 0, nil // stalled
		}
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = btReadSize(c.sizes[c.i%len(c.sizes)])
		c.i++
		if n == 0 && c.zeros < 50 {
			c.zeros++
			return 0, nil
		}
	}
	n = min(max(n, 1), len(p), end-c.off)
	copy(p, c.src[c.off:c.off+n])
	c.off += n
	return n, nil
}

func (c *btConn) Write(p []byte) (int, error) {
	if c.wrote == nil {
		c.wroteAt = c.off
	}
	c.wrote = append(c.wrote, p...)
	return len(p), nil
}

// btModel is what a matcher reads through the mux, as a plain reader: the
// bytes the connection gives (at most max of them), then io.EOF, or
// ErrSniffLimit if the connection had more.
func btModel(src []byte, max int, stalled bool) io.Reader {
	var tail io.Reader = bytes.NewReader(nil)
	switch {
	case len(src) > max:
		src, tail = src[:max], btErrReader{ErrSniffLimit}
	case stalled:
		tail = btErrReader{io.ErrNoProgress}
	}
	return io.MultiReader(bytes.NewReader(src), tail)
}

type btErrReader struct{ err error }

func (r btErrReader) Read([]byte) (int, error) { return 0, r.err }

// btMatchers are run on the sniffer by FuzzSniffer and compared with the
// same matcher on btModel.
var btMatchers = []MatchWriter{
	readOnly(PrefixMatcher("GET", "GE", "PRI * HTTP/2", "\x16\x03")),
	readOnly(HTTP1Fast()),
	readOnly(HTTP1()),
	readOnly(TLS()),
	readOnly(HTTP2()),
	readOnly(HTTP1HeaderField("Host", "x")),
	readOnly(HTTP1HeaderFieldPrefix("X-A", "")),
	readOnly(HTTP2HeaderField("content-type", "application/grpc")),
	HTTP2MatchHeaderFieldPrefixSendSettings(":path", "/"),
	func(_ io.Writer, r io.Reader) bool { // a user matcher that reads all
		b, _ := io.ReadAll(r)
		return len(b)%2 == 1
	},
}

// btH2Flight returns an HTTP/2 client's first flight: the preface, a
// SETTINGS frame, a SETTINGS ACK if ack, and, given fields, a HEADERS frame
// of a request with them.
func btH2Flight(tb testing.TB, ack bool, fields ...string) []byte {
	var buf bytes.Buffer
	buf.WriteString(h2frame.ClientPreface)
	fr := h2frame.NewFramer(&buf, nil)
	require.NoError(tb, fr.WriteSettings(h2frame.Setting{ID: h2frame.SettingInitialWindowSize, Val: 1 << 20}))
	if ack {
		require.NoError(tb, fr.WriteSettingsAck())
	}
	if len(fields) > 0 {
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		fields = append([]string{":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/M", ":authority", "x"}, fields...)
		for i := 0; i+1 < len(fields); i += 2 {
			require.NoError(tb, enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}))
		}
		require.NoError(tb, fr.WriteHeaders(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}))
	}
	return buf.Bytes()
}

// btDropAck returns b without its first SETTINGS ACK frame that starts at
// or after notBefore (the bytes the mux had when it wrote its SETTINGS), as
// the delivered connection reads it when the mux wrote SETTINGS; a
// malformed ACK (with a payload) ends the search.
func btDropAck(b []byte, notBefore int) []byte {
	off := len(h2.Preface)
	for off+h2.FrameHeaderLen <= len(b) {
		n := int(b[off])<<16 | int(b[off+1])<<8 | int(b[off+2])
		if b[off+3] == h2.FrameSettings && b[off+4]&h2.FlagAck != 0 && off >= notBefore {
			if n == 0 {
				return append(b[:off:off], b[off+h2.FrameHeaderLen:]...)
			}
			return b
		}
		off += h2.FrameHeaderLen + n
	}
	return b
}

// FuzzSniffer drives the replay buffer of one connection with a random
// sequence of peeks, reads, rewinds and matchers over a connection that
// returns its bytes in random pieces, and then delivers or drops it. The
// bytes seen must always be a prefix of what the client sent, never more
// than the limit; peek returns as many bytes as there can be; every
// matcher decides as on a plain reader of the same bytes; and a delivered
// connection reads every byte exactly once.
func FuzzSniffer(f *testing.F) {
	grpc := btH2Flight(f, true, "content-type", "application/grpc")
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), []byte{0, 5, 1, 3, 2, 0, 4, 5, 1, 255}, []byte{1, 2, 200}, uint16(0), int32(-1), true)
	f.Add(grpc, []byte{4, 7, 4, 8, 0, 60, 1, 250}, []byte{9, 0, 0, 130}, uint16(100), int32(-1), true)
	f.Add(grpc, []byte{4, 8, 0, 255}, []byte{3}, uint16(1000), int32(40), true)
	f.Add(bytes.Repeat([]byte("x"), 3000), []byte{0, 255, 1, 255, 2, 1, 100, 4, 9}, []byte{128, 0}, uint16(100), int32(-1), false)
	f.Add([]byte("\x16\x03\x01\x00\x10hello"), []byte{4, 3, 0, 2}, []byte{}, uint16(0), int32(2), true)
	f.Fuzz(func(t *testing.T, src, ops, sizes []byte, maxSniff uint16, stall int32, deliver bool) {
		limit := 64 + int(maxSniff)
		stallAt := -1
		if stall >= 0 {
			stallAt = int(stall) % (len(src) + 1)
		}
		conn := &btConn{src: src, sizes: sizes, stallAt: stallAt}
		eff := src[:conn.end()] // what the connection ever gives
		stalled := len(eff) < len(src)
		c := &MuxConn{Conn: conn}
		c.sniff = newBufferPools(limit).newSniffer(c, limit)
		s := c.sniff
		want := min(len(eff), limit) // the most the sniffer can hold
		off := 0                     // the Read cursor of the model

		check := func(what string) {
			b := s.Buffered()
			if len(b) > limit {
				t.Fatalf("%s: %d bytes buffered, limit %d", what, len(b), limit)
			}
			if !bytes.Equal(b, eff[:len(b)]) {
				t.Fatalf("%s: buffered bytes are not the connection's first %d", what, len(b))
			}
		}
		argN := func(a byte) int {
			if a < 200 {
				return int(a)
			}
			return int(a-199) * 1500 // up to 84000: past any limit
		}
		for i := 0; i+1 < len(ops) && i < 400; i += 2 {
			op, arg := ops[i]%5, ops[i+1]
			switch op {
			case 0: // peek
				n := argN(arg)
				got, err := s.Peek(n)
				if w := min(n, want); len(got) != w {
					t.Fatalf("peek(%d) = %d bytes, want %d (source %d, limit %d)", n, len(got), w, len(eff), limit)
				}
				if !bytes.Equal(got, eff[:len(got)]) {
					t.Fatalf("peek(%d) returned bytes that are not the connection's", n)
				}
				switch {
				case len(got) == n && err != nil:
					t.Fatalf("peek(%d) returned all bytes and %v", n, err)
				case len(got) < n && len(got) < len(eff) && !errors.Is(err, ErrSniffLimit):
					t.Fatalf("peek(%d) stopped at the limit %d with %v, want ErrSniffLimit", n, len(got), err)
				case len(got) < n && len(got) < limit && !stalled && err != io.EOF:
					t.Fatalf("peek(%d) stopped at the end with %v, want io.EOF", n, err)
				case len(got) < n && len(got) < limit && stalled && err != io.ErrNoProgress:
					t.Fatalf("peek(%d) of a stalled connection: %v, want io.ErrNoProgress", n, err)
				}
			case 1: // Read
				p := make([]byte, argN(arg))
				n, err := s.Read(p)
				if !bytes.Equal(p[:n], eff[off:off+n]) {
					t.Fatalf("Read at %d returned %q, want bytes %d..%d of the connection", off, p[:n], off, off+n)
				}
				off += n
				if len(p) > 0 && n == 0 && (off < want || err == nil) {
					t.Fatalf("Read at %d of %d: 0 bytes, %v", off, want, err)
				}
			case 2:
				s.rewind()
				off = 0
			case 3:
				// buffered alone; checked below
			case 4: // a matcher, from the first byte
				mt := btMatchers[int(arg)%len(btMatchers)]
				s.rewind()
				off = 0
				got := mt(s, s)
				if exp := mt(io.Discard, btModel(eff, limit, stalled)); got != exp {
					t.Fatalf("matcher %d says %v through the sniffer, %v on the same bytes", int(arg)%len(btMatchers), got, exp)
				}
				off = -1 // the matcher moved the cursor
			}
			check("after op " + string("PRrbm"[op]))
			if off < 0 {
				s.rewind()
				off = 0
			}
		}
		if len(conn.wrote) > 0 && (!c.wroteSettings() || !bytes.Equal(conn.wrote, h2.MuxSettings)) {
			t.Fatalf("the mux wrote %q", conn.wrote)
		}
		if !deliver {
			c.endMatching(false)
			if s.buf != nil || s.bufp != nil || s.old != [maxClasses - 1]*[]byte{} {
				t.Fatal("a dropped connection still holds buffers")
			}
			return
		}
		sniffed := len(s.Buffered())
		c.endMatching(true)
		exp := src
		if c.wroteSettings() {
			exp = btDropAck(src, conn.wroteAt)
		}
		var got []byte
		if !stalled && len(sizes) > 0 && sizes[0]%4 == 0 {
			var buf bytes.Buffer
			if _, err := c.WriteTo(&buf); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			got = buf.Bytes()
		} else {
			got = btReadAll(t, c, sizes)
		}
		if stalled {
			// The client goes on: the rest follows what came, nothing lost.
			if !bytes.HasPrefix(exp, got) {
				t.Fatalf("stalled delivered connection read %d bytes that are not what was sent", len(got))
			}
			conn.stallAt = -1
			got = append(got, btReadAll(t, c, sizes)...)
		}
		if !bytes.Equal(got, exp) {
			t.Fatalf("delivered connection read %d bytes, want the %d sent (%d sniffed, settings written %v)", len(got), len(exp), sniffed, c.wroteSettings())
		}
		if !c.direct.Load() && !c.filtersAck() {
			t.Fatal("reads do not go straight to the connection after the replay")
		}
	})
}

// btReadAll reads c to its end with buffers of the sizes in sizes; a
// connection that gives nothing and no error 200 times in a row has ended.
func btReadAll(t *testing.T, c *MuxConn, sizes []byte) []byte {
	var got []byte
	zeros := 0
	for i := 0; zeros < 200 && i < 1<<20; i++ {
		n := 1
		if len(sizes) > 0 {
			n = max(btReadSize(sizes[(i+1)%len(sizes)]), 1)
		}
		p := make([]byte, n)
		m, err := c.Read(p)
		got = append(got, p[:m]...)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if m == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return got
}

func TestBufferPoolClasses(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want []int
	}{
		{64, []int{64}},
		{2048, []int{2048}},
		{4096, []int{2048, 4096}},
		{DefaultMaxSniffBytes, []int{2048, 16384, 65536}},
		{1 << 20, []int{2048, 16384, 128 << 10, 1 << 20}},
		{1 << 30, []int{2048, 16384, 128 << 10, 1 << 20, 8 << 20, 1 << 30}},
	} {
		bp := newBufferPools(tc.max)
		assert.Equal(t, tc.want, bp.sizes[:bp.n], "max %d", tc.max)
		for i, size := range bp.sizes[:min(bp.n, 4)] {
			assert.Len(t, *bp.get(i), size, "max %d class %d", tc.max, i)
		}
	}
}

// TestSnifferGrowsWithBytes: a connection holds the buffer its bytes need,
// not one sized by what a matcher asked for: a length announced by the
// client does not make the mux take a large buffer before the bytes come.
func TestSnifferGrowsWithBytes(t *testing.T) {
	src := make([]byte, 3000)
	conn := &btConn{src: src, sizes: []byte{255}, stallAt: -1}
	c := &MuxConn{Conn: conn}
	c.sniff = newBufferPools(1<<20).newSniffer(c, 1<<20)
	b, err := c.sniff.Peek(1 << 20)
	require.ErrorIs(t, err, io.EOF)
	require.Len(t, b, len(src))
	assert.Equal(t, 1, c.sniff.class, "3000 bytes need the 16 KiB class")
	assert.Equal(t, 16384, cap(c.sniff.buf))
	c.endMatching(false)
}

// TestSnifferGrowKeepsSlices: a matcher that holds a slice from peek sees
// the same bytes after the buffer grew, until matching ends.
func TestSnifferGrowKeepsSlices(t *testing.T) {
	src := make([]byte, 40<<10)
	for i := range src {
		src[i] = byte(i * 31 >> 3)
	}
	conn := &btConn{src: src, sizes: []byte{255}, stallAt: -1}
	c := &MuxConn{Conn: conn}
	c.sniff = newBufferPools(DefaultMaxSniffBytes).newSniffer(c, DefaultMaxSniffBytes)
	var held [][]byte
	for _, n := range []int{100, 3000, 20000, 40000} {
		b, err := c.sniff.Peek(n)
		require.NoError(t, err)
		held = append(held, b)
	}
	assert.Equal(t, 2, c.sniff.class, "the buffer grew to the largest class")
	for _, b := range held {
		require.Equal(t, src[:len(b)], b, "a slice from an outgrown buffer changed")
	}
	c.endMatching(true)
	assert.Equal(t, [maxClasses - 1]*[]byte{}, c.sniff.old, "outgrown buffers not released at delivery")
	assert.Equal(t, src, btReadAll(t, c, []byte{200}))
}

// TestSnifferZeroReads: a connection that returns nothing and no error for
// ever ends matching with io.ErrNoProgress instead of a spin, through the
// sniffer and through a foreign reader.
func TestSnifferZeroReads(t *testing.T) {
	conn := &btConn{src: []byte("GET / HTTP/1.1\r\n"), stallAt: 5}
	c := &MuxConn{Conn: conn}
	c.sniff = newBufferPools(1024).newSniffer(c, 1024)
	b, err := c.sniff.Peek(10)
	assert.Equal(t, "GET /", string(b))
	assert.ErrorIs(t, err, io.ErrNoProgress)
	assert.Less(t, conn.reads, 200)
	assert.False(t, HTTP1()(c.sniff))

	conn = &btConn{src: []byte("GET / HTTP/1.1\r\n"), stallAt: 5}
	assert.False(t, HTTP1()(conn))
	assert.Less(t, conn.reads, 200)
}

// TestSnifferAckFilterStall: once delivered, a connection where the mux
// wrote SETTINGS and whose client stalls mid-frame-header returns to the
// caller instead of spinning in the ACK filter.
func TestSnifferAckFilterStall(t *testing.T) {
	flight := btH2Flight(t, false)[:len(h2.Preface)+h2.FrameHeaderLen+6]
	src := append(flight, 0, 0) // two bytes of the next frame header
	conn := &btConn{src: append(src, make([]byte, 7)...), stallAt: len(src)}
	c := &MuxConn{Conn: conn}
	c.sniff = newBufferPools(1024).newSniffer(c, 1024)
	_, err := c.sniff.Peek(len(flight))
	require.NoError(t, err)
	c.writeSettings()
	c.endMatching(true)
	got := btReadAll(t, c, []byte{100})
	assert.Equal(t, flight, got, "a partial frame header is held until it is whole")
	assert.Less(t, conn.reads, 1000, "reads of a stalled connection spun")
	conn.stallAt = -1
	got = append(got, btReadAll(t, c, []byte{100})...)
	assert.Equal(t, conn.src, got)
}

// TestSnifferLimitExact: the mux reads exactly the limit from a client
// that sends more, never a byte past it.
func TestSnifferLimitExact(t *testing.T) {
	for _, limit := range []int{64, 1000, 2048, 2049, 20000, DefaultMaxSniffBytes} {
		src := make([]byte, limit+5000)
		binary.BigEndian.PutUint32(src, uint32(limit))
		conn := &btConn{src: src, sizes: []byte{255, 3}, stallAt: -1}
		c := &MuxConn{Conn: conn}
		c.sniff = newBufferPools(limit).newSniffer(c, limit)
		b, err := io.ReadAll(c.sniff)
		assert.ErrorIs(t, err, ErrSniffLimit)
		assert.Len(t, b, limit)
		assert.Equal(t, limit, conn.off, "bytes taken from the connection, limit %d", limit)
		c.endMatching(false)
	}
}
