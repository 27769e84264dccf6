package h2

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/cmux-go/cmux/internal/peek"
	w "github.com/cmux-go/cmux/internal/wiretest"
)

// field returns the value of the first field named name.
func field(f *Flight, name string) (string, bool) {
	for i := range f.Fields.NumFields() {
		if n, v := f.Fields.FieldAt(i); string(n) == name {
			return string(v), true
		}
	}
	return "", false
}

// countWriter counts the SETTINGS frames it is asked to write.
type countWriter struct{ n int }

func (c *countWriter) WriteSettings() { c.n++ }

// stepPeeker has only the first n bytes of b at hand, and Peek gives no
// more: it stands for a client that waits.
type stepPeeker struct {
	b []byte
	n int
}

func (s *stepPeeker) Buffered() []byte { return s.b[:s.n] }
func (s *stepPeeker) Peek(n int) ([]byte, error) {
	if n > s.n {
		return s.b[:s.n], nil
	}
	return s.b[:n], nil
}

func TestFlight(t *testing.T) {
	grpc := w.GRPCRequest()
	pre := []byte(Preface)
	ok := map[string][]byte{
		"settings, headers":           w.Cat(pre, w.Settings(4, 1<<20), w.Headers(1, grpc, true, 0, false)),
		"padded, priority":            w.Cat(pre, w.Settings(), w.Headers(1, grpc, true, 3, true)),
		"continuation":                w.Cat(pre, w.Settings(), w.Headers(1, grpc[:4], false, 0, false), w.Continuation(1, true, grpc[4:])),
		"ping, window update, prio":   w.Cat(pre, w.Settings(), w.Ping(), w.WindowUpdate(0, 1), w.Priority(3), w.Headers(1, grpc, true, 0, false)),
		"unknown frame type":          w.Cat(pre, w.Settings(), w.Frame(0x10, 0, 0, []byte{1}), w.Headers(1, grpc, true, 0, false)),
		"headers before settings":     w.Cat(pre, w.Headers(1, grpc, true, 0, false)),
		"settings ack after settings": w.Cat(pre, w.Settings(), w.SettingsAck(), w.Headers(1, grpc, true, 0, false)),
	}
	for name, in := range ok {
		for _, p := range []peek.Peeker{peek.Bytes(in), peek.NewReader(iotest.OneByteReader(bytes.NewReader(in)), 1<<16)} {
			var f Flight
			f.Run(p, nil)
			if f.Err != nil {
				t.Errorf("%s: %v", name, f.Err)
				continue
			}
			if v, _ := field(&f, "content-type"); v != "application/grpc" {
				t.Errorf("%s: content-type %q", name, v)
			}
		}
	}
	bad := map[string][]byte{
		"no preface":             []byte("GET / HTTP/1.1\r\n\r\n"),
		"settings ack first":     w.Cat(pre, w.SettingsAck(), w.Headers(1, grpc, true, 0, false)),
		"data":                   w.Cat(pre, w.Settings(), w.Data(1)),
		"push promise":           w.Cat(pre, w.Settings(), w.Frame(FramePushPromise, 0, 1, make([]byte, 4))),
		"frame too large":        w.Cat(pre, w.FrameHeader(MaxFrameSize+1, FrameSettings, 0, 0)),
		"ping in a block":        w.Cat(pre, w.Settings(), w.Headers(1, grpc[:4], false, 0, false), w.Ping()),
		"continuation elsewhere": w.Cat(pre, w.Settings(), w.Headers(1, grpc[:4], false, 0, false), w.Continuation(3, true, grpc[4:])),
		"headers on stream 2":    w.Cat(pre, w.Settings(), w.Headers(2, grpc, true, 0, false)),
		"settings on a stream":   w.Cat(pre, w.Frame(FrameSettings, 0, 1, nil)),
		"settings of 5 bytes":    w.Cat(pre, w.Frame(FrameSettings, 0, 0, make([]byte, 5))),
		"ping of 7 bytes":        w.Cat(pre, w.Settings(), w.Frame(FramePing, 0, 0, make([]byte, 7))),
		"padding too long":       w.Cat(pre, w.Settings(), w.Frame(FrameHeaders, FlagEndHeaders|FlagPadded, 1, []byte{9, 0x82})),
		"cut short":              w.Cat(pre, w.Settings(), w.Headers(1, grpc, true, 0, false))[:60],
		"bad hpack":              w.Cat(pre, w.Settings(), w.Headers(1, []byte{0xff}, true, 0, false)),
	}
	for name, in := range bad {
		var f Flight
		f.Run(peek.Bytes(in), nil)
		if f.Err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFlightWritesSettingsBeforeWaiting(t *testing.T) {
	in := w.Cat([]byte(Preface), w.Settings(4, 1<<20), w.Headers(1, w.GRPCRequest(), true, 0, false))
	settingsEnd := len(Preface) + FrameHeaderLen + 6
	// The client waits after its SETTINGS: one write, then no block.
	var cw countWriter
	var f Flight
	f.Run(&stepPeeker{b: in, n: settingsEnd}, &cw)
	if cw.n < 1 || f.Err == nil {
		t.Fatalf("a client waiting after SETTINGS: %d writes, %v", cw.n, f.Err)
	}
	// The whole flight at hand: no write.
	cw, f = countWriter{}, Flight{}
	f.Run(peek.Bytes(in), &cw)
	if cw.n != 0 || f.Err != nil {
		t.Fatalf("a whole first flight: %d writes, %v", cw.n, f.Err)
	}
	// Before the SETTINGS arrived: no write.
	cw, f = countWriter{}, Flight{}
	f.Run(&stepPeeker{b: in, n: settingsEnd - 1}, &cw)
	if cw.n != 0 {
		t.Fatalf("before the client's SETTINGS: %d writes", cw.n)
	}
}

func TestAckFilter(t *testing.T) {
	settings := w.Settings(4, 1<<20)
	hdrs := w.Headers(1, w.GRPCRequest(), true, 0, false)
	in := w.Cat([]byte(Preface), settings, w.SettingsAck(), hdrs, w.SettingsAck())
	want := w.Cat([]byte(Preface), settings, hdrs, w.SettingsAck())
	for _, size := range []int{1, 2, 7, 100} {
		var f AckFilter
		f.Start(0)
		src := iotest.OneByteReader(bytes.NewReader(in))
		var got []byte
		buf := make([]byte, size)
		for {
			n, err := f.Read(buf, src.Read)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reads of %d: got %q, want %q", size, got, want)
		}
		if f.Active() {
			t.Fatalf("reads of %d: still active", size)
		}
	}
}

func TestSettingsRewriter(t *testing.T) {
	server := w.Cat(w.Settings(3, 100, SettingNoRFC7540Priorities, 0), w.Ping())
	want := w.Cat(w.Settings(3, 100, SettingNoRFC7540Priorities, 1), w.Ping())
	var r SettingsRewriter
	r.Start()
	var out bytes.Buffer
	for i := range server {
		if _, err := r.Write(&out, server[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), want) || r.Active() {
		t.Fatalf("got %x (active %v), want %x", out.Bytes(), r.Active(), want)
	}
}

// FuzzFlight checks that the parse reads the same whether the bytes arrive
// at once or one at a time, and never panics.
func FuzzFlight(f *testing.F) {
	grpc := w.GRPCRequest()
	f.Add(w.Cat([]byte(Preface), w.Settings(4, 1<<20), w.Headers(1, grpc, true, 0, false)))
	f.Add(w.Cat([]byte(Preface), w.Settings(), w.Headers(1, grpc[:3], false, 2, false), w.Continuation(1, true, grpc[3:])))
	f.Fuzz(func(t *testing.T, in []byte) {
		var a, b Flight
		a.Run(peek.Bytes(in), nil)
		b.Run(peek.NewReader(iotest.OneByteReader(bytes.NewReader(in)), 1<<16), nil)
		if (a.Err == nil) != (b.Err == nil) || a.Fields.NumFields() != b.Fields.NumFields() {
			t.Fatalf("%q: whole %v (%d fields), one byte per Read %v (%d fields)", in, a.Err, a.Fields.NumFields(), b.Err, b.Fields.NumFields())
		}
	})
}

func TestServerPrefaceOnly(t *testing.T) {
	settings := w.Settings(3, 100, 4, 1<<20)
	wu := w.WindowUpdate(0, 1<<20)
	for _, c := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"settings", settings, true},
		{"empty settings", w.Settings(), true},
		{"settings and window update", w.Cat(settings, wu), true},
		{"settings and two window updates", w.Cat(settings, wu, wu), true},
		{"nothing", nil, false},
		{"ack", w.SettingsAck(), false},
		{"settings and ack", w.Cat(settings, w.SettingsAck()), false},
		{"window update first", w.Cat(wu, settings), false},
		{"settings and ping", w.Cat(settings, w.Ping()), false},
		{"settings and headers", w.Cat(settings, w.Headers(1, w.Block(":status", "200"), true, 0, false)), false},
		{"half a header", settings[:5], false},
		{"header without payload", settings[:FrameHeaderLen], false},
		{"cut payload", settings[:len(settings)-1], false},
		{"cut window update", w.Cat(settings, wu[:len(wu)-1]), false},
		{"settings and a byte", w.Cat(settings, []byte{0}), false},
	} {
		if got := ServerPrefaceOnly(c.in); got != c.want {
			t.Errorf("%s (%x): %v, want %v", c.name, c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"one", wu, true},
		{"two", w.Cat(wu, wu), true},
		{"nothing", nil, false},
		{"settings", settings, false},
		{"then a ping", w.Cat(wu, w.Ping()), false},
		{"cut", wu[:len(wu)-1], false},
		{"and a byte", w.Cat(wu, []byte{0}), false},
	} {
		if got := WindowUpdatesOnly(c.in); got != c.want {
			t.Errorf("WindowUpdatesOnly %s (%x): %v, want %v", c.name, c.in, got, c.want)
		}
	}
}

// FuzzServerPrefaceOnly checks ServerPrefaceOnly against a walk of the
// frames that reads each header whole through an io.Reader.
func FuzzServerPrefaceOnly(f *testing.F) {
	settings := w.Settings(3, 100)
	f.Add(settings)
	f.Add(w.Cat(settings, w.WindowUpdate(0, 1<<20)))
	f.Add(w.Cat(settings, w.SettingsAck()))
	f.Add(settings[:FrameHeaderLen+1])
	f.Fuzz(func(t *testing.T, in []byte) {
		want := len(in) > 0
		r := bytes.NewReader(in)
		for i := 0; r.Len() > 0; i++ {
			var hdr [FrameHeaderLen]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				want = false
				break
			}
			h := ReadFrameHeader(hdr[:])
			if h.Length > r.Len() ||
				i == 0 && (h.Type != FrameSettings || h.Has(FlagAck)) ||
				i > 0 && h.Type != FrameWindowUpdate {
				want = false
				break
			}
			r.Seek(int64(h.Length), io.SeekCurrent)
		}
		if got := ServerPrefaceOnly(in); got != want {
			t.Fatalf("%x: %v, want %v", in, got, want)
		}
	})
}
