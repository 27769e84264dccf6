package cmux

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest/h2frame"
	"golang.org/x/net/http2/hpack"

	"github.com/cmux-go/cmux/internal/h2"
	"github.com/cmux-go/cmux/internal/wiretest"
)

// This file tests the SETTINGS frame the mux writes, as a hand-written
// HTTP/2 client sees it.

// ---------------------------------------------------------------------------
// The mux's SETTINGS frame, seen by a hand-written client.

// h2Conn is a hand-written HTTP/2 client connection.
type h2Conn struct {
	t    *testing.T
	c    net.Conn
	fr   *h2frame.Framer
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
	hc := &h2Conn{t: t, c: c, fr: h2frame.NewFramer(c, c)}
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
	return wiretest.Frame(h2.FrameHeaders, h2.FlagEndHeaders|0x1, stream, hc.hbuf.Bytes())
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
func (hc *h2Conn) readUntil(what string, done func(h2frame.Frame) bool) {
	hc.t.Helper()
	for range 1000 {
		f, err := hc.fr.ReadFrame()
		require.NoError(hc.t, err, "reading until %s", what)
		switch f := f.(type) {
		case *h2frame.SettingsFrame:
			if f.IsAck() {
				hc.acks++
				break
			}
			var p []byte
			_ = f.ForeachSetting(func(s h2frame.Setting) error {
				p = binary.BigEndian.AppendUint16(p, uint16(s.ID))
				p = binary.BigEndian.AppendUint32(p, s.Val)
				return nil
			})
			hc.settings = append(hc.settings, p)
			hc.write(wiretest.SettingsAck())
		case *h2frame.GoAwayFrame:
			hc.t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		case *h2frame.RSTStreamFrame:
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
	hc.readUntil("end of response", func(f h2frame.Frame) bool {
		switch f := f.(type) {
		case *h2frame.MetaHeadersFrame:
			if f.StreamID == stream {
				status = f.PseudoValue("status")
			}
		case *h2frame.DataFrame:
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
	hc.write(wiretest.Frame(h2.FramePing, 0, 0, data))
	hc.readUntil("PING ACK", func(f h2frame.Frame) bool {
		p, ok := f.(*h2frame.PingFrame)
		return ok && p.IsAck() && string(p.Data[:]) == string(data)
	})
}

func (hc *h2Conn) readUntilGoAway() *h2frame.GoAwayFrame {
	hc.t.Helper()
	for range 1000 {
		f, err := hc.fr.ReadFrame()
		require.NoError(hc.t, err)
		if ga, ok := f.(*h2frame.GoAwayFrame); ok {
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
				c.write(wiretest.Cat([]byte(h2.Preface), wiretest.Settings(0x4, 1<<20)))
				c.readExactly(h2.MuxSettings)
				c.readNothing(100 * time.Millisecond)
				c.write(wiretest.Settings(0x6, 1<<16))
				c.readNothing(100 * time.Millisecond)
				c.write(wiretest.SettingsAck())
				c.readNothing(100 * time.Millisecond)
				c.write(wiretest.Cat(wiretest.Settings(0x2, 0), c.request(1, "/one", h2CT, "application/c")))
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
		{"SETTINGS header only", wiretest.Cat(pre, wiretest.Settings(0x4, 1<<20)[:h2.FrameHeaderLen])},
		{"SETTINGS cut in its payload", wiretest.Cat(pre, wiretest.Settings(0x4, 1<<20, 0x3, 10)[:14])},
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
		s := wiretest.Settings(0x4, 1<<20, 0x3, 10)
		c.write(wiretest.Cat(pre, s[:14]))
		c.readNothing(100 * time.Millisecond)
		c.write(s[14:])
		c.readExactly(h2.MuxSettings)
	})
	t.Run("ACK first", func(t *testing.T) {
		// Not a valid start: no header matcher answers it; the Go server
		// behind Any() speaks first.
		checkLeaks(t)
		c := h2Dial(t, start(t))
		c.write(wiretest.Cat(pre, wiretest.SettingsAck()))
		f, err := c.fr.ReadFrame()
		require.NoError(t, err)
		sf, ok := f.(*h2frame.SettingsFrame)
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
				c.write(wiretest.Cat([]byte(h2.Preface), wiretest.Settings(0x4, 1<<20), wiretest.WindowUpdate(0, 1<<20), c.request(1, "/x")))
				// The first frame is the server's SETTINGS.
				var hdr [h2.FrameHeaderLen]byte
				_, err := io.ReadFull(c.c, hdr[:])
				require.NoError(t, err)
				payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
				_, err = io.ReadFull(c.c, payload)
				require.NoError(t, err)
				first := wiretest.Cat(hdr[:], payload)
				require.NotEqual(t, h2.MuxSettings, first, "the mux wrote SETTINGS")
				h2CheckServerPreface(t, first, false)
				c.write(wiretest.SettingsAck())
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

// TestH2FieldMatcherOnSplitFirstBytes: an HTTP/2 header matcher decides on
// the first two bytes whether a connection can be HTTP/2 at all ("PR",
// the preface's), and on a single 'P' waits for the rest: a preface or an
// HTTP/1 POST whose first byte comes alone reaches the right listener with
// every byte, as does a lone first byte of something else, a 'P' followed
// by the end of the stream, and flights sent at once.
func TestH2FieldMatcherOnSplitFirstBytes(t *testing.T) {
	grpcFlight := btH2Flight(t, false, "content-type", "application/grpc")
	post := []byte("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
	hello := []byte("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
	const (
		toGRPC = iota
		toHTTP
		toOther
	)
	for _, tc := range []struct {
		name   string
		flight []byte
		split  int  // bytes sent before a pause; 0: all at once
		eof    bool // the client closes its side after the flight
		to     int
	}{
		{"preface, P alone", grpcFlight, 1, false, toGRPC},
		{"preface, PR alone", grpcFlight, 2, false, toGRPC},
		{"preface at once", grpcFlight, 0, false, toGRPC},
		{"POST, P alone", post, 1, false, toHTTP},
		{"POST at once", post, 0, false, toHTTP},
		{"PUT at once", []byte("PUT /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, false, toHTTP},
		{"GET, G alone", []byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), 1, false, toHTTP},
		{"ClientHello, first byte alone", hello, 1, false, toOther},
		{"P then the end", []byte("P"), 0, true, toOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			root := listenLoopback(t)
			m := New(root)
			grpcL := m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			httpL := m.Match(HTTP1Fast())
			otherL := m.Match(Any())
			errs := errorChan(m, 10)
			chans := []<-chan net.Conn{acceptChan(t, grpcL), acceptChan(t, httpL), acceptChan(t, otherL)}
			serveMux(t, m, root)

			c := dialTCP(t, root.Addr().String())
			defer c.Close()
			first := tc.flight
			if tc.split > 0 {
				first = tc.flight[:tc.split]
			}
			_, err := c.Write(first)
			require.NoError(t, err)
			if tc.split > 0 {
				time.Sleep(50 * time.Millisecond)
				_, err = c.Write(tc.flight[tc.split:])
				require.NoError(t, err)
			}
			if tc.eof {
				require.NoError(t, c.CloseWrite())
			}
			sc := takeConn(t, chans[tc.to])
			defer sc.Close()
			got := make([]byte, len(tc.flight))
			require.NoError(t, sc.SetReadDeadline(time.Now().Add(waitFor)))
			_, err = io.ReadFull(sc, got)
			require.NoError(t, err)
			assert.Equal(t, tc.flight, got)
			for i, ch := range chans {
				select {
				case oc := <-ch:
					oc.Close()
					t.Fatalf("also delivered to listener %d", i)
				default:
				}
			}
			select {
			case err := <-errs:
				t.Fatalf("mux error: %v", err)
			default:
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The server's preface, held back until its next write.

// writeLog is a listener whose connections record each Write whole. They
// are not *net.TCPConn, so the mux writes to them as to a *tls.Conn.
type writeLog struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *writeLog) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &loggedConn{c, l}, nil
}

func (l *writeLog) all() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

type loggedConn struct {
	net.Conn
	l *writeLog
}

func (c *loggedConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

func (c *loggedConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, slices.Clone(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// framesOf names the frames in b, whole or not.
func framesOf(b []byte) []string {
	var names []string
	for len(b) >= h2.FrameHeaderLen {
		h := h2.ReadFrameHeader(b)
		names = append(names, h2frame.FrameType(h.Type).String()+map[bool]string{true: "+ACK"}[h.Type == h2.FrameSettings && h.Has(h2.FlagAck)])
		b = b[min(len(b), h2.FrameHeaderLen+h.Length):]
	}
	return names
}

// TestH2ServerPrefaceWithItsAck: through the mux, after the mux's SETTINGS,
// a real server's SETTINGS frame reaches the client in one write with the
// server's ACK of the client's SETTINGS, and the exchange goes on as usual.
func TestH2ServerPrefaceWithItsAck(t *testing.T) {
	checkLeaks(t)
	for _, srv := range h2ServerKinds {
		t.Run(srv, func(t *testing.T) {
			checkLeaks(t)
			logs := h2CheckServerLog(t)
			root := &writeLog{Listener: listenLoopback(t)}
			m := NewWithOptions(root, MatchTimeout(h2Timeout))
			h2ServeREST(t, srv, m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings(h2CT, "application/a")), "a", logs, nil)
			serveMux(t, m, root)

			c := h2Dial(t, root.Addr().String())
			c.write(wiretest.Cat([]byte(h2.Preface), wiretest.Settings(0x4, 1<<20)))
			c.readExactly(h2.MuxSettings)
			c.write(c.request(1, "/one", h2CT, "application/a"))
			status, body := c.readResponse(1)
			require.Equal(t, "200", status)
			require.Equal(t, "a HTTP/2.0 /one\n", body)
			c.ping()
			require.Len(t, c.settings, 1, "SETTINGS frames after the mux's")

			writes := root.all()
			require.True(t, len(writes) >= 2, "%d writes", len(writes))
			require.Equal(t, h2.MuxSettings, writes[0])
			got := framesOf(writes[1])
			require.True(t, len(got) >= 2 && got[0] == "SETTINGS" && slices.Contains(got, "SETTINGS+ACK"),
				"the server's first write after the mux's SETTINGS: %v; want its SETTINGS and its ACK", got)
		})
	}
}

// heldPrefaceExchange serves, on a mux over root, a child for gRPC-like
// clients with handle, then has a client that waits for the server's
// SETTINGS (so the mux writes its own) send a request, and returns all the
// client reads after the mux's SETTINGS, up to the end of the connection.
func heldPrefaceExchange(t *testing.T, root net.Listener, handle func(net.Conn)) []byte {
	t.Helper()
	m := NewWithOptions(root, MatchTimeout(h2Timeout))
	serveConns(t, m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings(h2CT, "application/a")), handle)
	serveMux(t, m, root)

	hc := h2Dial(t, root.Addr().String())
	hc.write(wiretest.Cat([]byte(h2.Preface), wiretest.Settings()))
	hc.readExactly(h2.MuxSettings)
	hc.write(hc.request(1, "/", h2CT, "application/a"))
	got, err := io.ReadAll(hc.c)
	require.NoError(t, err)
	return got
}

// TestH2HeldServerPreface: whatever the server does after writing its
// preface alone (write a little, write much, close, close its writing
// side), the client gets the preface, rewritten to agree with the mux's
// SETTINGS, then the rest, in order, and each Write reports all of its
// bytes written; over TCP and over a connection that cannot write two
// buffers at once. A preface too large to hold goes out at once.
func TestH2HeldServerPreface(t *testing.T) {
	checkLeaks(t)
	preface := wiretest.Cat(wiretest.Settings(0x3, 100, 0x9, 0), wiretest.WindowUpdate(0, 1<<20))
	fixed := wiretest.Cat(wiretest.Settings(0x3, 100, 0x9, 1), wiretest.WindowUpdate(0, 1<<20))
	var eleven, fourteen []uint32 // settings: 9+66 bytes, 9+84 bytes
	for i := range 14 {
		if i < 11 {
			eleven = append(eleven, 0x3, uint32(i))
		}
		fourteen = append(fourteen, 0x3, uint32(i))
	}
	small := wiretest.SettingsAck()
	large := bytes.Repeat([]byte("0123456789abcdef"), 8<<10)
	wu := wiretest.WindowUpdate(0, 1)
	for _, c := range []struct {
		name    string
		preface []byte   // the server's first write; preface if nil
		then    [][]byte // what the server writes after it, a Write each
		close   func(net.Conn)
		rest    []byte // what the client reads after the (fixed) preface
		writes  int    // Writes on a logged connection, the mux's SETTINGS aside
	}{
		{name: "small write", then: [][]byte{small}, rest: small, writes: 1},
		{name: "large write", then: [][]byte{large}, rest: large, writes: 2},
		{name: "window update, then small write", then: [][]byte{wu, small}, rest: wiretest.Cat(wu, small), writes: 1},
		{name: "close", rest: nil, writes: 1},
		{name: "close write", close: func(c net.Conn) {
			require.NoError(t, c.(interface{ CloseWrite() error }).CloseWrite())
		}, writes: 1},
		{name: "preface too large to hold", preface: wiretest.Settings(fourteen...), then: [][]byte{small}, rest: small, writes: 2},
		{name: "window updates past the room", preface: wiretest.Settings(eleven...), then: [][]byte{wu, wu, wu, small},
			rest: wiretest.Cat(wu, wu, wu, small), writes: 3},
	} {
		for _, logged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/logged=%v", c.name, logged), func(t *testing.T) {
				checkLeaks(t)
				var root net.Listener = listenLoopback(t)
				wl := &writeLog{Listener: root}
				if logged {
					root = wl
				}
				first, want := c.preface, c.preface
				if first == nil {
					first, want = preface, fixed
				}
				got := heldPrefaceExchange(t, root, func(sc net.Conn) {
					for _, b := range append([][]byte{first}, c.then...) {
						n, err := sc.Write(b)
						require.NoError(t, err)
						require.Equal(t, len(b), n)
					}
					if c.close != nil {
						c.close(sc)
					}
				})
				require.Equal(t, wiretest.Cat(want, c.rest), got)
				if logged {
					require.Len(t, wl.all(), 1+c.writes)
				}
			})
		}
	}
}

// TestH2HeldServerPrefaceWriteError: a write that fails after the preface
// was held reports its error and no byte of its own written, and keeps the
// preface for the retry, which the client gets before the retry's bytes.
func TestH2HeldServerPrefaceWriteError(t *testing.T) {
	checkLeaks(t)
	settings := wiretest.Settings(0x3, 100)
	got := heldPrefaceExchange(t, listenLoopback(t), func(sc net.Conn) {
		n, err := sc.Write(settings)
		require.NoError(t, err)
		require.Equal(t, len(settings), n)
		require.NoError(t, sc.SetWriteDeadline(time.Now().Add(-time.Second)))
		n, err = sc.Write(wiretest.SettingsAck())
		require.Zero(t, n)
		require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "write error %v", err)
		require.NoError(t, sc.SetWriteDeadline(time.Time{}))
		n, err = sc.Write(wiretest.SettingsAck())
		require.NoError(t, err)
		require.Equal(t, len(wiretest.SettingsAck()), n)
	})
	require.Equal(t, wiretest.Cat(settings, wiretest.SettingsAck()), got)
}

// TestH2HeldServerPrefaceClosed: writes to a closed connection fail,
// though the preface or a WINDOW_UPDATE alone would be held.
func TestH2HeldServerPrefaceClosed(t *testing.T) {
	checkLeaks(t)
	for _, first := range []bool{false, true} {
		t.Run(fmt.Sprintf("preface written first=%v", first), func(t *testing.T) {
			checkLeaks(t)
			settings := wiretest.Settings(0x3, 100)
			got := heldPrefaceExchange(t, listenLoopback(t), func(sc net.Conn) {
				if first {
					_, err := sc.Write(settings)
					require.NoError(t, err)
				}
				require.NoError(t, sc.Close())
				for _, b := range [][]byte{settings, wiretest.WindowUpdate(0, 1)} {
					_, err := sc.Write(b)
					require.True(t, errors.Is(err, net.ErrClosed), "write after Close: %v", err)
				}
			})
			if first {
				require.Equal(t, settings, got)
			} else {
				require.Empty(t, got)
			}
		})
	}
}

// TestH2HeldServerPrefaceCloseBounded: Close writes the held preface
// within flushTimeout, even to a peer that reads nothing.
func TestH2HeldServerPrefaceCloseBounded(t *testing.T) {
	checkLeaks(t)
	defer func(d time.Duration) { flushTimeout = d }(flushTimeout)
	flushTimeout = 50 * time.Millisecond
	a, b := net.Pipe()
	defer b.Close()
	mc := &MuxConn{Conn: a}
	st := getH2State()
	st.wroteSettings = true
	st.settings.Start()
	mc.h2 = st
	mc.h2Ends.Store(2)
	_, err := mc.Write(wiretest.Settings(0x3, 100))
	require.NoError(t, err)
	require.Equal(t, uint8(15), st.heldN, "held")
	done := make(chan error, 1)
	go func() { done <- mc.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		b.Close() // let the Close return
		t.Fatal("Close waits for a peer that reads nothing")
	}
}

// TestMuxConnCloseDuringBlockedWrite: Close of a MuxConn returns while a
// Write is blocked on the underlying connection, and ends it.
func TestMuxConnCloseDuringBlockedWrite(t *testing.T) {
	checkLeaks(t)
	a, b := net.Pipe()
	defer b.Close()
	mc := &MuxConn{Conn: a} // made by hand: its writes take wmu
	werr := make(chan error, 1)
	go func() {
		_, err := mc.Write([]byte("nobody reads this"))
		werr <- err
	}()
	// Wait until the Write holds wmu.
	for i := 0; mc.wmu.TryLock(); i++ {
		mc.wmu.Unlock()
		if i == 5000 {
			b.Close()
			t.Fatal("the Write never took wmu")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- mc.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		b.Close()
		<-done
		t.Fatal("Close waited for the blocked Write")
	}
	require.True(t, errors.Is(<-werr, io.ErrClosedPipe), "the blocked Write ends")
}
