package h2

import (
	"errors"

	"github.com/cmux-go/cmux/internal/hpack"
	"github.com/cmux-go/cmux/internal/peek"
)

// errH2 is the reason a connection's first header block could not be read.
var errH2 = errors.New("cmux: not an HTTP/2 connection with a valid first header block")

// SettingsWriter writes the mux's SETTINGS frame, at most once per
// connection.
type SettingsWriter interface {
	WriteSettings()
}

// Flight is the result of reading a connection's first flight up to the
// end of its first header block. The zero value is ready to use; Reset
// makes a used one ready again.
type Flight struct {
	// Err is nil if the first header block was read and decoded.
	Err error
	// Fields are the decoded fields of the first header block.
	Fields  hpack.Decoder
	scratch []byte // a header block split into CONTINUATION frames
}

// Reset empties f for another connection, keeping its buffers unless they
// grew large.
func (f *Flight) Reset() {
	f.Err = nil
	f.Fields.Reset()
	if cap(f.scratch) > 64<<10 {
		f.scratch = nil
	}
	f.scratch = f.scratch[:0]
}

// Run reads the preface and the frames that follow it up to the end of the
// first header block, and decodes that block; the result is in f.Err and
// f.Fields. Once the client's SETTINGS have arrived, and before it waits
// for bytes that have not, it has sw (if not nil) write the mux's SETTINGS:
// clients that wait for the server's SETTINGS then go on.
func (f *Flight) Run(p peek.Peeker, sw SettingsWriter) {
	f.Err = f.run(p, sw)
}

func (f *Flight) run(p peek.Peeker, sw SettingsWriter) error {
	if !MatchPreface(p) {
		return errH2
	}
	var ord order
	for off := len(Preface); ; {
		b, ok := fetch(p, off+FrameHeaderLen, ord.sawSettings, sw)
		if !ok {
			return errH2
		}
		h := ReadFrameHeader(b[off:])
		if err := ord.check(h); err != nil {
			return err
		}
		end := off + FrameHeaderLen + h.Length
		if b, ok = fetch(p, end, ord.sawSettings, sw); !ok {
			return errH2
		}
		payload := b[off+FrameHeaderLen : end]
		off = end
		if err := validate(h, payload); err != nil {
			return err
		}
		block, done, err := f.collect(&ord, h, payload)
		if err != nil {
			return err
		}
		if done {
			// A block with more fields than the decoder keeps is still a
			// request: match on the fields it kept.
			if err := f.Fields.Decode(block); err != nil && !errors.Is(err, hpack.ErrTooManyFields) {
				return err
			}
			return nil
		}
	}
}

// fetch returns the first n bytes of the connection and whether there are
// that many. A client that has sent its SETTINGS may wait for the server's
// before it sends more: so before fetch waits for bytes not there yet, it
// has sw write the mux's SETTINGS.
func fetch(p peek.Peeker, n int, sawSettings bool, sw SettingsWriter) ([]byte, bool) {
	if sawSettings && sw != nil && len(p.Buffered()) < n {
		sw.WriteSettings()
	}
	b, _ := p.Peek(n)
	return b, len(b) == n
}

// order holds what the frame-order rules of a first flight need.
type order struct {
	seen        bool   // a frame was read
	sawSettings bool   // the client's SETTINGS (not an ACK) were read
	inBlock     bool   // a HEADERS frame without END_HEADERS was read
	blockStream uint32 // its stream
}

// check decides on a frame header alone where it can, without waiting for
// the payload, but only on what no client can send before its first
// request: DATA on a stream not yet opened, a PUSH_PROMISE, or another
// frame inside a header block (RFC 9113 §5.1, §6.6, §6.10). A client that
// sends HEADERS before its SETTINGS breaks RFC 9113 §3.4 but still states
// its request, and is matched. A SETTINGS ACK as the first frame
// acknowledges nothing: no server has spoken yet.
func (o *order) check(h FrameHeader) error {
	first := !o.seen
	o.seen = true
	switch {
	case h.Length > MaxFrameSize,
		first && h.Type == FrameSettings && h.Has(FlagAck),
		o.inBlock && h.Type != FrameContinuation,
		h.Type == FrameData || h.Type == FramePushPromise:
		return errH2
	}
	return nil
}

// validate checks a frame's header and payload as its type wants them
// (RFC 9113 §6). Unknown types are valid (RFC 9113 §4.1: ignored).
func validate(h FrameHeader, payload []byte) error {
	ok := true
	switch h.Type {
	case FrameSettings:
		ok = h.Stream == 0 && !(h.Has(FlagAck) && h.Length != 0) && h.Length%6 == 0
	case FrameHeaders:
		_, okFrag := headersFragment(h.Flags, payload)
		ok = h.Stream != 0 && h.Stream%2 == 1 && okFrag
	case FramePriority:
		ok = h.Length == 5 && h.Stream != 0
	case FrameWindowUpdate, FrameRSTStream:
		ok = h.Length == 4
	case FramePing:
		ok = h.Length == 8 && h.Stream == 0
	}
	if !ok {
		return errH2
	}
	return nil
}

// collect follows the frames of the first header block: it returns the
// whole block once its last frame is read (done).
func (f *Flight) collect(o *order, h FrameHeader, payload []byte) (block []byte, done bool, err error) {
	switch h.Type {
	case FrameSettings:
		if !h.Has(FlagAck) {
			o.sawSettings = true
		}
	case FrameHeaders:
		frag, _ := headersFragment(h.Flags, payload)
		if h.Has(FlagEndHeaders) {
			return frag, true, nil
		}
		o.inBlock, o.blockStream = true, h.Stream
		f.scratch = append(f.scratch[:0], frag...)
	case FrameContinuation:
		if !o.inBlock || h.Stream != o.blockStream {
			return nil, false, errH2
		}
		f.scratch = append(f.scratch, payload...)
		if h.Has(FlagEndHeaders) {
			return f.scratch, true, nil
		}
	}
	return nil, false, nil
}

// headersFragment returns the header block fragment of a HEADERS frame's
// payload: without its padding and priority fields.
func headersFragment(flags byte, p []byte) ([]byte, bool) {
	pad := 0
	if flags&FlagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad = int(p[0])
		p = p[1:]
	}
	if flags&FlagPriority != 0 {
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
