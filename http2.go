package cmux

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// The HTTP/2 behaviour is described in the package documentation (doc.go).

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// prefaceTree matches the preface, deciding on the first byte that differs.
var prefaceTree = newPatricia(http2Preface)

// HTTP/2 frame types and flags (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	frameHeaderLen = 9
	// maxFrameSize is SETTINGS_MAX_FRAME_SIZE as the client must assume it
	// before it has the real server's SETTINGS (the mux does not raise it).
	maxFrameSize = 16384

	settingNoRFC7540Priorities = 0x9
)

// muxSettingsFrame is the SETTINGS frame the mux writes:
// SETTINGS_NO_RFC7540_PRIORITIES = 1.
var muxSettingsFrame = []byte{
	0, 0, 6, frameSettings, 0, 0, 0, 0, 0,
	0, settingNoRFC7540Priorities, 0, 0, 0, 1,
}

// errH2 is the reason a connection's first header block could not be read.
var errH2 = errors.New("cmux: not an HTTP/2 connection with a valid first header block")

// HTTP2 matches the HTTP/2 client connection preface. It says no on the
// first byte that differs from the preface.
func HTTP2() Matcher {
	return func(r io.Reader) bool { return prefaceTree.match(asPeeker(r)) }
}

// HTTP2HeaderField matches an HTTP/2 connection whose first request has the
// header field name with exactly value. It reads the preface and the
// frames that follow, up to the end of the first header block. Names are
// compared byte for byte, as in github.com/soheilhy/cmux v0.1.5: HTTP/2
// sends them in lower case, so pass a lower-case name ("content-type").
// If the field appears more than once, any occurrence may match.
//
// Through the mux, when the client has sent its SETTINGS and waits, the mux
// writes its SETTINGS frame so that clients that wait for it (gRPC) go on;
// see "HTTP/2" in the package documentation. So HTTP2HeaderField and
// HTTP2MatchHeaderFieldSendSettings behave alike on a mux; they differ only
// when called on a reader that is not the mux's, where this one never
// writes.
func HTTP2HeaderField(name, value string) Matcher {
	return func(r io.Reader) bool { return matchH2Field(nil, r, name, value, false) }
}

// HTTP2HeaderFieldPrefix is HTTP2HeaderField for a field whose value starts
// with valuePrefix.
func HTTP2HeaderFieldPrefix(name, valuePrefix string) Matcher {
	return func(r io.Reader) bool { return matchH2Field(nil, r, name, valuePrefix, true) }
}

// HTTP2MatchHeaderFieldSendSettings is HTTP2HeaderField as a MatchWriter:
// it answers the client's SETTINGS with a SETTINGS frame, so that clients
// that wait for the server's SETTINGS before they send HEADERS (grpc-go,
// grpc-java and others) can be matched. Through the mux the frame is written
// at most once per connection, however many such matchers run, and its ACK
// never reaches the server that gets the connection, so any HTTP/2 server
// can follow it in the chain.
func HTTP2MatchHeaderFieldSendSettings(name, value string) MatchWriter {
	return func(w io.Writer, r io.Reader) bool { return matchH2Field(w, r, name, value, false) }
}

// HTTP2MatchHeaderFieldPrefixSendSettings is
// HTTP2MatchHeaderFieldSendSettings for a field whose value starts with
// valuePrefix.
func HTTP2MatchHeaderFieldPrefixSendSettings(name, valuePrefix string) MatchWriter {
	return func(w io.Writer, r io.Reader) bool { return matchH2Field(w, r, name, valuePrefix, true) }
}

// matchH2Field reports whether the first header block of the connection
// read through r has field name with value (or a value starting with it).
// w, if not nil, receives a SETTINGS frame when r is not the mux's.
func matchH2Field(w io.Writer, r io.Reader, name, value string, prefix bool) bool {
	var hp *h2Parse
	if s, ok := r.(*sniffer); ok {
		s.builtin = true
		// One parse per connection, shared by every HTTP/2 matcher.
		c := s.conn
		if c.h2 == nil {
			c.h2 = getH2Parse()
			c.h2.run(s, c)
		}
		hp = c.h2
	} else {
		hp = getH2Parse()
		defer putH2Parse(hp)
		var sw settingsWriter
		if ws, ok := w.(*sniffer); ok {
			// The mux's writer with a wrapped reader: write through the
			// connection, so that the frame is written once and its ACK
			// filtered.
			sw = ws.conn
		} else if w != nil {
			sw = &onceWriter{w: w}
		}
		hp.run(&readerPeeker{r: r}, sw)
	}
	if hp.err != nil {
		return false
	}
	for i := range hp.dec.fields {
		n, v := hp.dec.fieldAt(i)
		if string(n) != name {
			continue
		}
		if prefix && len(v) >= len(value) && string(v[:len(value)]) == value ||
			!prefix && string(v) == value {
			return true
		}
	}
	return false
}

// settingsWriter writes the mux's SETTINGS frame, at most once.
type settingsWriter interface {
	writeSettings()
}

// writeSettings writes the mux's SETTINGS frame once per connection.
func (c *MuxConn) writeSettings() {
	if c.wroteSettings {
		return
	}
	if c.sniff.now != nil {
		// The client waits: not for the accept loop.
		c.sniff.blocked = true
		return
	}
	c.wroteSettings = true
	// An ACK that began before this write cannot be of it.
	c.ack.notBefore = len(c.sniff.buffered())
	_, _ = c.Conn.Write(muxSettingsFrame)
}

// onceWriter writes the SETTINGS frame to a writer that is not the mux's.
type onceWriter struct {
	w     io.Writer
	wrote bool
}

func (o *onceWriter) writeSettings() {
	if !o.wrote {
		o.wrote = true
		_, _ = o.w.Write(muxSettingsFrame)
	}
}

// h2Parse is the result of reading a connection's first header block.
type h2Parse struct {
	err     error
	dec     hpackDecoder
	scratch []byte // a header block split into CONTINUATION frames
}

var h2ParsePool = sync.Pool{New: func() any { return new(h2Parse) }}

func getH2Parse() *h2Parse { return h2ParsePool.Get().(*h2Parse) }

func putH2Parse(hp *h2Parse) {
	hp.err = nil
	hp.dec.reset()
	if cap(hp.scratch) > 64<<10 {
		hp.scratch = nil
	}
	hp.scratch = hp.scratch[:0]
	h2ParsePool.Put(hp)
}

// run reads the preface and the frames that follow it up to the end of the
// first header block, and decodes that block. Once the client's SETTINGS
// have arrived, it has sw write the mux's SETTINGS before it waits for more
// bytes. The result is in hp.err and hp.dec.
func (hp *h2Parse) run(p peeker, sw settingsWriter) {
	if !prefaceTree.match(p) {
		hp.err = errH2
		return
	}
	off := len(http2Preface)
	sawSettings := false
	// need returns the first n bytes of the connection. Before it waits
	// for bytes that have not arrived, it lets a waiting client go on.
	need := func(n int) ([]byte, bool) {
		if sawSettings && sw != nil {
			if b := p.buffered(); len(b) < n {
				sw.writeSettings()
			}
		}
		b, _ := p.peek(n)
		return b, len(b) == n
	}
	var (
		inBlock     bool // a HEADERS frame without END_HEADERS was read
		blockStream uint32
		first       = true
	)
	for {
		b, ok := need(off + frameHeaderLen)
		if !ok {
			hp.err = errH2
			return
		}
		h := b[off : off+frameHeaderLen]
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		typ, flags := h[3], h[4]
		stream := binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1)
		if length > maxFrameSize {
			hp.err = errH2
			return
		}
		// Decide on the frame header alone where it can, without waiting
		// for the payload, but only on what no client can send before its
		// first request: DATA on a stream not yet opened, a PUSH_PROMISE,
		// or another frame inside a header block (RFC 9113 §5.1, §6.6,
		// §6.10). A client that sends HEADERS before its SETTINGS breaks
		// RFC 9113 §3.4 but still states its request, and is matched.
		// A SETTINGS ACK as the first frame acknowledges nothing: no
		// server has spoken yet.
		if (first && typ == frameSettings && flags&flagAck != 0) ||
			(inBlock && typ != frameContinuation) ||
			typ == frameData || typ == framePushPromise {
			hp.err = errH2
			return
		}
		first = false
		end := off + frameHeaderLen + length
		if b, ok = need(end); !ok {
			hp.err = errH2
			return
		}
		payload := b[off+frameHeaderLen : end]
		off = end

		switch typ {
		case frameSettings:
			if stream != 0 || (flags&flagAck != 0 && length != 0) || length%6 != 0 {
				hp.err = errH2
				return
			}
			if flags&flagAck == 0 {
				sawSettings = true
			}
		case frameHeaders:
			if stream == 0 || stream%2 == 0 {
				hp.err = errH2
				return
			}
			frag, ok := headersFragment(flags, payload)
			if !ok {
				hp.err = errH2
				return
			}
			if flags&flagEndHeaders != 0 {
				hp.decode(frag)
				return
			}
			inBlock, blockStream = true, stream
			hp.scratch = append(hp.scratch[:0], frag...)
		case frameContinuation:
			if !inBlock || stream != blockStream {
				hp.err = errH2
				return
			}
			hp.scratch = append(hp.scratch, payload...)
			if flags&flagEndHeaders != 0 {
				hp.decode(hp.scratch)
				return
			}
		case framePriority:
			if length != 5 || stream == 0 {
				hp.err = errH2
				return
			}
		case frameWindowUpdate, frameRSTStream:
			if length != 4 {
				hp.err = errH2
				return
			}
		case framePing:
			if length != 8 || stream != 0 {
				hp.err = errH2
				return
			}
		default:
			// RFC 9113 §4.1: unknown frame types are ignored.
		}
	}
}

func (hp *h2Parse) decode(block []byte) {
	// A block with more fields than the decoder keeps is still a request:
	// match on the fields it kept.
	if err := hp.dec.decode(block); err != nil && !errors.Is(err, errHPACKTooManyFields) {
		hp.err = err
	}
}

// headersFragment returns the header block fragment of a HEADERS frame's
// payload: without its padding and priority fields.
func headersFragment(flags byte, p []byte) ([]byte, bool) {
	pad := 0
	if flags&flagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad = int(p[0])
		p = p[1:]
	}
	if flags&flagPriority != 0 {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, false
	}
	return p[:len(p)-pad], true
}

// ackFilter drops the client's first SETTINGS ACK frame from the stream the
// server reads: that ACK is of the mux's SETTINGS, which the server never
// sent. It walks the frames from the preface on, reading frame headers whole
// and passing payloads through, until the ACK; then it gets out of the way.
type ackFilter struct {
	active bool
	skip   int // bytes to pass on before the next frame header
	hdr    [frameHeaderLen]byte
	hdrN   int // bytes of hdr read
	out    int // bytes of hdr passed on
	err    error
	last   bool // the header in hdr ends the filtering
	// pos counts the bytes read from the stream; an ACK that starts before
	// notBefore arrived before the mux wrote its SETTINGS, so it is not
	// the ACK of them (only a broken client sends it) and is passed on.
	pos       int
	notBefore int
}

func (f *ackFilter) start() {
	f.active = true
	f.skip = len(http2Preface)
}

// read reads from src into p, without the ACK.
func (f *ackFilter) read(p []byte, src func([]byte) (int, error)) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if f.skip > 0 {
		n, err := src(p[:min(len(p), f.skip)])
		f.skip -= n
		f.pos += n
		return n, err
	}
	for f.hdrN < frameHeaderLen && f.err == nil {
		n, err := src(f.hdr[f.hdrN:])
		f.hdrN += n
		f.pos += n
		if f.hdrN == frameHeaderLen {
			break
		}
		if err == io.EOF {
			f.err = err
		} else if err != nil || n == 0 {
			// A timeout (a deadline the server set), a closed connection,
			// or nothing at all: return it and keep the partial header, so
			// that a later read goes on where this one stopped.
			return 0, err
		}
	}
	if f.hdrN < frameHeaderLen {
		// The stream ended inside a frame header: pass on what came.
		if f.out < f.hdrN {
			n := copy(p, f.hdr[f.out:f.hdrN])
			f.out += n
			return n, nil
		}
		return 0, f.err
	}
	h := &f.hdr
	if f.out == 0 && h[3] == frameSettings && h[4]&flagAck != 0 && f.pos-frameHeaderLen >= f.notBefore {
		// The first ACK: what follows is for the server alone.
		if h[0]|h[1]|h[2] == 0 {
			f.active = false
			f.hdrN = 0
			return src(p)
		}
		// A malformed ACK, with a payload: pass it on for the server
		// to reject, and stop filtering after its header.
		f.last = true
	}
	n := copy(p, h[f.out:])
	f.out += n
	if f.out == frameHeaderLen {
		f.skip = int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		f.hdrN, f.out = 0, 0
		if f.last {
			f.active = false
		}
	}
	return n, nil
}

// settingsRewriter keeps the server's first SETTINGS frame consistent with
// the mux's: it writes the value 1 for SETTINGS_NO_RFC7540_PRIORITIES. It
// walks the first frame the server writes, whatever way it is split into
// writes, and gets out of the way after it.
type settingsRewriter struct {
	active bool
	pos    int // bytes of the server's stream seen
	hdr    [frameHeaderLen]byte
	length int
	id     uint16 // identifier of the setting being walked
}

func (r *settingsRewriter) start() { r.active = true }

// noRFC7540Value is the value the mux declared, as on the wire.
var noRFC7540Value = [4]byte{0, 0, 0, 1}

func (r *settingsRewriter) write(w io.Writer, p []byte) (int, error) {
	var fixed []byte // a copy of p, made only if a byte must change
	for i := 0; i < len(p) && r.active; i++ {
		b := p[i]
		if r.pos < frameHeaderLen {
			r.hdr[r.pos] = b
			if r.pos == frameHeaderLen-1 {
				r.length = int(r.hdr[0])<<16 | int(r.hdr[1])<<8 | int(r.hdr[2])
				if r.hdr[3] != frameSettings || r.hdr[4]&flagAck != 0 || r.length == 0 {
					r.active = false
				}
			}
		} else {
			off := r.pos - frameHeaderLen
			switch j := off % 6; j {
			case 0:
				r.id = uint16(b) << 8
			case 1:
				r.id |= uint16(b)
			default:
				if r.id == settingNoRFC7540Priorities && b != noRFC7540Value[j-2] {
					if fixed == nil {
						fixed = append([]byte(nil), p...)
					}
					fixed[i] = noRFC7540Value[j-2]
				}
			}
			if off+1 == r.length {
				r.active = false
			}
		}
		r.pos++
	}
	if fixed != nil {
		return w.Write(fixed)
	}
	return w.Write(p)
}

// lowerASCII returns s with ASCII upper-case letters in lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
