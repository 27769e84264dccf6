package compat

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// headerBlock is the HPACK block of a request with the given content-type
// ("" for none) after extra fields.
func headerBlock(contentType string, extra ...hpack.HeaderField) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/compat.Service/Method"},
		{Name: ":authority", Value: "127.0.0.1"},
	}
	fields = append(fields, extra...)
	if contentType != "" {
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: contentType})
	}
	fields = append(fields, hpack.HeaderField{Name: "te", Value: "trailers"})
	for _, f := range fields {
		if err := enc.WriteField(f); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

// flight writes the frames a client sends after the preface, for a header
// block.
type flight func(fr *http2.Framer, block []byte) error

// frameOrders are legal but unusual first flights of an HTTP/2 client.
var frameOrders = []struct {
	name  string
	write flight
}{
	{"SettingsThenHeaders", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
	}},
	{"HeadersRightAfterPreface", func(fr *http2.Framer, block []byte) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
	}},
	{"PingFirst", func(fr *http2.Framer, block []byte) error {
		fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
		fr.WriteSettings()
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
	}},
	{"WindowUpdateAndPriorityFirst", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		fr.WriteWindowUpdate(0, 1<<20)
		fr.WritePriority(3, http2.PriorityParam{StreamDep: 0, Weight: 10})
		fr.WritePriority(1, http2.PriorityParam{StreamDep: 3, Weight: 200, Exclusive: true})
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
	}},
	{"UnknownFrameFirst", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		fr.WriteRawFrame(0xfa, 0x5, 0, []byte("an extension frame"))
		fr.WriteRawFrame(0xfb, 0, 7, nil)
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
	}},
	{"Continuation", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		// Cuts fall inside header fields.
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3], EndStream: true})
		fr.WriteContinuation(1, false, block[3:9])
		fr.WriteContinuation(1, false, nil)
		return fr.WriteContinuation(1, true, block[9:])
	}},
	{"PaddedHeaders", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true, PadLength: 200})
	}},
	{"HeadersWithPriority", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: 0, Weight: 255, Exclusive: true}})
	}},
	{"PaddedPriorityHeadersThenContinuation", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:len(block)/2], PadLength: 3,
			Priority: http2.PriorityParam{StreamDep: 0, Weight: 1}})
		return fr.WriteContinuation(1, true, block[len(block)/2:])
	}},
	{"StreamThree", func(fr *http2.Framer, block []byte) error {
		fr.WriteSettings()
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block, EndHeaders: true})
	}},
}

// clientBytes returns the preface and the flight's frames for a request
// with the given content-type.
func clientBytes(t *testing.T, write flight, block []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	if err := write(http2.NewFramer(&b, nil), block); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// routed is a connection and the name of the child listener it came to.
type routed struct {
	name string
	conn net.Conn
}

// acceptAll accepts from every listener until its Accept fails, and sends
// what arrives on the returned channel; connections not taken by the end
// of t are closed.
func acceptAll(t *testing.T, ls map[string]net.Listener) <-chan routed {
	t.Helper()
	c := make(chan routed, 64)
	var wg sync.WaitGroup
	for name, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				c <- routed{name, conn}
			}
		}()
	}
	t.Cleanup(func() {
		// The listeners close with the root at cleanup (registered
		// before, so run after this): drain in the background.
		go func() {
			wg.Wait()
			close(c)
		}()
		go func() {
			for r := range c {
				r.conn.Close()
			}
		}()
	})
	return c
}

// routeOf waits for the next connection at any child listener.
func routeOf(t *testing.T, c <-chan routed) (string, net.Conn) {
	t.Helper()
	r := within(t, c, waitFor, "the connection at a child listener")
	t.Cleanup(func() { r.conn.Close() })
	return r.name, r.conn
}

// h2Router serves a mux with a gRPC listener chosen by m and an Any()
// listener; cleanup closes the root and waits for Serve.
func h2Router(t *testing.T, lib *Lib, grpcMatch func(m Mux) net.Listener) (addr string, routes <-chan routed) {
	t.Helper()
	root := listen(t)
	m := lib.New(root)
	ls := map[string]net.Listener{"grpc": grpcMatch(m), "any": m.Match(lib.Any())}
	served := serve(m)
	t.Cleanup(func() {
		root.Close()
		served.wait(t, waitFor, "Serve at cleanup")
	})
	return root.Addr().String(), acceptAll(t, ls)
}

// requireNothingFromMux fails t if the client receives any byte within d
// before the child wrote anything.
func requireNothingFromMux(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, 64)
	if n, err := c.Read(b); n > 0 || !isTimeout(err) {
		t.Errorf("client received %x, %v from the mux; want nothing", b[:n], err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHTTP2FrameOrders: hand-written HTTP/2 clients whose first frames come
// in unusual but legal orders are routed by HTTP2HeaderField the same way
// by both libraries, and the child reads exactly what the client sent.
func TestHTTP2FrameOrders(t *testing.T) {
	contentTypes := []struct{ ct, want string }{
		{"application/grpc", "grpc"},
		{"application/grpc+proto", "any"},
		{"application/json", "any"},
		{"", "any"},
	}
	for _, fo := range frameOrders {
		t.Run(fo.name, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				addr, ls := h2Router(t, lib, func(m Mux) net.Listener {
					return m.Match(lib.HTTP2HeaderField("content-type", "application/grpc"))
				})
				for _, ct := range contentTypes {
					sent := clientBytes(t, fo.write, headerBlock(ct.ct))
					c := send(t, addr, sent)
					name, conn := routeOf(t, ls)
					if name != ct.want {
						t.Errorf("content-type %q went to %s, want %s", ct.ct, name, ct.want)
					}
					if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
						t.Errorf("content-type %q: child read\n%x\nwant\n%x", ct.ct, got, sent)
					}
					requireNothingFromMux(t, c, 50*time.Millisecond)
					conn.Close()
				}
			})
		})
	}
}

// TestHTTP2LargeHeaderBlock: a 12 KiB header block, the field wanted last,
// split across CONTINUATION frames.
func TestHTTP2LargeHeaderBlock(t *testing.T) {
	both(t, func(t *testing.T, lib *Lib) {
		addr, ls := h2Router(t, lib, func(m Mux) net.Listener {
			return m.Match(lib.HTTP2HeaderFieldPrefix("content-type", "application/grpc"))
		})
		var extra []hpack.HeaderField
		for i := range 4 {
			extra = append(extra, hpack.HeaderField{Name: "x-filler-" + string(rune('a'+i)), Value: strings.Repeat("v", 3000)})
		}
		block := headerBlock("application/grpc+proto", extra...)
		sent := clientBytes(t, func(fr *http2.Framer, block []byte) error {
			fr.WriteSettings()
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:4000]})
			fr.WriteContinuation(1, false, block[4000:8000])
			return fr.WriteContinuation(1, true, block[8000:])
		}, block)
		send(t, addr, sent)
		name, conn := routeOf(t, ls)
		if name != "grpc" {
			t.Errorf("went to %s, want grpc", name)
		}
		if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
			t.Errorf("child read %d bytes that differ from the %d sent", len(got), len(sent))
		}
	})
}

// TestHTTP2InvalidFirstFrames: first flights no server accepts: v0.1.5
// reads on to the HEADERS frame and routes by its field; ours decides on
// the first impossible frame that the connection is not the request it
// looks for.
func TestHTTP2InvalidFirstFrames(t *testing.T) {
	cases := []struct {
		name  string
		write flight
	}{
		{"SettingsAckFirst", func(fr *http2.Framer, block []byte) error {
			fr.WriteSettingsAck()
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
		}},
		{"DataBeforeHeaders", func(fr *http2.Framer, block []byte) error {
			fr.WriteSettings()
			fr.WriteData(1, false, []byte("early"))
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				d := expectDifference(t)
				addr, ls := h2Router(t, lib, func(m Mux) net.Listener {
					return m.Match(lib.HTTP2HeaderField("content-type", "application/grpc"))
				})
				sent := clientBytes(t, tc.write, headerBlock("application/grpc"))
				send(t, addr, sent)
				name, conn := routeOf(t, ls)
				want := map[string]string{libV015: "grpc", libOurs: "any"}[lib.Name]
				if name != want {
					t.Errorf("went to %s, want %s: %s", name, want, map[string]string{libV015: d.V015, libOurs: d.Ours}[lib.Name])
				}
				if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
					t.Errorf("child read %x, want %x", got, sent)
				}
			})
		})
	}
}

// readFrame reads one frame the client received, within d.
func readFrame(c net.Conn, d time.Duration) (http2.Frame, error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	return http2.NewFramer(nil, c).ReadFrame()
}

// TestHTTP2HeaderFieldWaitingClient: a client that sends its preface and
// SETTINGS, then waits for the server's SETTINGS before its HEADERS (as
// grpc-go does). v0.1.5's HTTP2HeaderField writes nothing, so such a
// client hangs; ours sends one SETTINGS frame.
func TestHTTP2HeaderFieldWaitingClient(t *testing.T) {
	both(t, func(t *testing.T, lib *Lib) {
		d := expectDifference(t)
		addr, ls := h2Router(t, lib, func(m Mux) net.Listener {
			return m.Match(lib.HTTP2HeaderField("content-type", "application/grpc"))
		})
		var first bytes.Buffer
		first.WriteString(http2.ClientPreface)
		http2.NewFramer(&first, nil).WriteSettings()
		c := send(t, addr, first.Bytes())
		f, err := readFrame(c, quiet)
		switch lib.Name {
		case libV015:
			if !isTimeout(err) {
				t.Errorf("client received %v, %v; want nothing: %s", f, err, d.V015)
			}
		case libOurs:
			sf, ok := f.(*http2.SettingsFrame)
			if err != nil || !ok || sf.IsAck() {
				t.Fatalf("client received %v, %v; want a SETTINGS frame: %s", f, err, d.Ours)
			}
		}
		// The client goes on without ACKing; the child reads it all.
		var rest bytes.Buffer
		http2.NewFramer(&rest, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("application/grpc"), EndHeaders: true})
		if _, err := c.Write(rest.Bytes()); err != nil {
			t.Fatal(err)
		}
		name, conn := routeOf(t, ls)
		if name != "grpc" {
			t.Errorf("went to %s, want grpc", name)
		}
		sent := append(first.Bytes(), rest.Bytes()...)
		if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
			t.Errorf("child read %x, want %x", got, sent)
		}
	})
}

// TestHTTP2HeaderFieldGRPCClient: the same with a real grpc-go client and
// server: v0.1.5's HTTP2HeaderField (without SendSettings) never gets the
// client's HEADERS, and the call times out; ours serves it.
func TestHTTP2HeaderFieldGRPCClient(t *testing.T) {
	both(t, func(t *testing.T, lib *Lib) {
		d := expectDifference(t)
		root := listen(t)
		m := lib.New(root)
		gl := m.Match(lib.HTTP2HeaderField("content-type", "application/grpc"))
		gs := grpc.NewServer()
		healthpb.RegisterHealthServer(gs, health.NewServer())
		gDone := goWait(func() error { return gs.Serve(gl) })
		served := serve(m)
		cc, err := grpc.NewClient("passthrough:///"+root.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		switch lib.Name {
		case libV015:
			if err == nil {
				t.Errorf("health check succeeded; want a timeout: %s", d.V015)
			}
		case libOurs:
			if err != nil {
				t.Errorf("health check: %v; %s", err, d.Ours)
			}
		}
		cc.Close()
		gs.Stop()
		gDone.wait(t, waitFor, "grpc Serve")
		// v0.1.5's Serve waits for the connection it is still matching:
		// the client closed it.
		served.wait(t, waitFor, "mux Serve")
	})
}

// TestHTTP2SendSettings: HTTP2MatchHeaderFieldSendSettings. v0.1.5 answers
// every client SETTINGS frame it reads while matching with an empty
// SETTINGS frame, even when the HEADERS frame is already there, and the
// client's ACK of it reaches the server, which never sent those SETTINGS.
// Ours writes SETTINGS only when it must wait for HEADERS, and then drops
// the client's ACK of it from what the child reads.
func TestHTTP2SendSettings(t *testing.T) {
	t.Run("FirstFlightHasHeaders", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			addr, ls := h2Router(t, lib, func(m Mux) net.Listener {
				return m.MatchWithWriters(lib.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			})
			sent := clientBytes(t, frameOrders[0].write, headerBlock("application/grpc"))
			c := send(t, addr, sent)
			name, conn := routeOf(t, ls)
			if name != "grpc" {
				t.Errorf("went to %s, want grpc", name)
			}
			if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
				t.Errorf("child read %x, want %x", got, sent)
			}
			switch lib.Name {
			case libV015:
				f, err := readFrame(c, waitFor)
				if sf, ok := f.(*http2.SettingsFrame); err != nil || !ok || sf.IsAck() || sf.Length != 0 {
					t.Errorf("client received %v, %v; want an empty SETTINGS frame: %s", f, err, d.V015)
				}
			case libOurs:
				requireNothingFromMux(t, c, quiet)
			}
		})
	})
	t.Run("ClientWaits", func(t *testing.T) {
		both(t, func(t *testing.T, lib *Lib) {
			d := expectDifference(t)
			addr, ls := h2Router(t, lib, func(m Mux) net.Listener {
				return m.MatchWithWriters(lib.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			})
			var first bytes.Buffer
			first.WriteString(http2.ClientPreface)
			http2.NewFramer(&first, nil).WriteSettings()
			c := send(t, addr, first.Bytes())
			f, err := readFrame(c, waitFor)
			sf, ok := f.(*http2.SettingsFrame)
			if err != nil || !ok || sf.IsAck() {
				t.Fatalf("client received %v, %v; want a SETTINGS frame", f, err)
			}
			var settings []http2.Setting
			sf.ForeachSetting(func(s http2.Setting) error { settings = append(settings, s); return nil })
			var ack, rest bytes.Buffer
			http2.NewFramer(&ack, nil).WriteSettingsAck()
			http2.NewFramer(&rest, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("application/grpc"), EndHeaders: true})
			c.Write(append(ack.Bytes(), rest.Bytes()...))
			name, conn := routeOf(t, ls)
			if name != "grpc" {
				t.Errorf("went to %s, want grpc", name)
			}
			switch lib.Name {
			case libV015:
				if len(settings) != 0 {
					t.Errorf("mux's SETTINGS = %v, want none: %s", settings, d.V015)
				}
				sent := append(append(first.Bytes(), ack.Bytes()...), rest.Bytes()...)
				if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
					t.Errorf("child read %x, want %x (the ACK included): %s", got, sent, d.V015)
				}
			case libOurs:
				if len(settings) != 1 || settings[0].ID != 0x9 || settings[0].Val != 1 {
					t.Errorf("mux's SETTINGS = %v, want SETTINGS_NO_RFC7540_PRIORITIES=1: %s", settings, d.Ours)
				}
				sent := append(first.Bytes(), rest.Bytes()...)
				if got := readN(t, conn, len(sent)); !bytes.Equal(got, sent) {
					t.Errorf("child read %x, want %x (the ACK dropped): %s", got, sent, d.Ours)
				}
			}
		})
	})
}
