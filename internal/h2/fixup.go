package h2

import "io"

// AckFilter drops the client's first SETTINGS ACK frame from the stream the
// server reads: that ACK is of the mux's SETTINGS, which the server never
// sent. It walks the frames from the preface on, reading frame headers whole
// and passing payloads through, until the ACK; then it gets out of the way.
type AckFilter struct {
	active bool
	skip   int // bytes to pass on before the next frame header
	hdr    [FrameHeaderLen]byte
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

// Start starts filtering a stream that begins with the preface; the mux
// wrote its SETTINGS once notBefore bytes of it had arrived.
func (f *AckFilter) Start(notBefore int) {
	f.active = true
	f.skip = len(Preface)
	f.notBefore = notBefore
}

// Active reports whether the filter is still looking for the ACK.
func (f *AckFilter) Active() bool { return f.active }

// Read reads from src into p, without the ACK.
func (f *AckFilter) Read(p []byte, src func([]byte) (int, error)) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if f.skip > 0 {
		n, err := src(p[:min(len(p), f.skip)])
		f.skip -= n
		f.pos += n
		return n, err
	}
	for f.hdrN < FrameHeaderLen && f.err == nil {
		n, err := src(f.hdr[f.hdrN:])
		f.hdrN += n
		f.pos += n
		if f.hdrN == FrameHeaderLen {
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
	if f.hdrN < FrameHeaderLen {
		// The stream ended inside a frame header: pass on what came.
		if f.out < f.hdrN {
			n := copy(p, f.hdr[f.out:f.hdrN])
			f.out += n
			return n, nil
		}
		return 0, f.err
	}
	h := &f.hdr
	if f.out == 0 && h[3] == FrameSettings && h[4]&FlagAck != 0 && f.pos-FrameHeaderLen >= f.notBefore {
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
	if f.out == FrameHeaderLen {
		f.skip = frameLength(h[:])
		f.hdrN, f.out = 0, 0
		if f.last {
			f.active = false
		}
	}
	return n, nil
}

// SettingsRewriter keeps the server's first SETTINGS frame consistent with
// the mux's: it writes the value 1 for SETTINGS_NO_RFC7540_PRIORITIES. It
// walks the first frame the server writes, whatever way it is split into
// writes, and gets out of the way after it.
type SettingsRewriter struct {
	active bool
	pos    int // bytes of the server's stream seen
	hdr    [FrameHeaderLen]byte
	length int
	id     uint16 // identifier of the setting being walked
}

// Start starts rewriting the server's stream.
func (r *SettingsRewriter) Start() { r.active = true }

// Active reports whether the rewriter is still walking the first frame.
func (r *SettingsRewriter) Active() bool { return r.active }

// noRFC7540Value is the value the mux declared, as on the wire.
var noRFC7540Value = [4]byte{0, 0, 0, 1}

// Write writes p to w, rewritten as needed.
func (r *SettingsRewriter) Write(w io.Writer, p []byte) (int, error) {
	var fixed []byte // a copy of p, made only if a byte must change
	for i := 0; i < len(p) && r.active; i++ {
		b := p[i]
		if r.pos < FrameHeaderLen {
			r.hdr[r.pos] = b
			if r.pos == FrameHeaderLen-1 {
				r.length = frameLength(r.hdr[:])
				if r.hdr[3] != FrameSettings || r.hdr[4]&FlagAck != 0 || r.length == 0 {
					r.active = false
				}
			}
		} else {
			off := r.pos - FrameHeaderLen
			switch j := off % 6; j {
			case 0:
				r.id = uint16(b) << 8
			case 1:
				r.id |= uint16(b)
			default:
				if r.id == SettingNoRFC7540Priorities && b != noRFC7540Value[j-2] {
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

// ServerPrefaceOnly reports whether p holds a server's connection preface
// (RFC 9113 §3.4) and nothing else: one whole SETTINGS frame that is not an
// ACK, then whole WINDOW_UPDATE frames if any, which servers send with it
// to widen the connection's flow-control window.
func ServerPrefaceOnly(p []byte) bool {
	if len(p) < FrameHeaderLen || p[3] != FrameSettings || p[4]&FlagAck != 0 {
		return false
	}
	n := FrameHeaderLen + frameLength(p)
	return n <= len(p) && (n == len(p) || WindowUpdatesOnly(p[n:]))
}

// WindowUpdatesOnly reports whether p holds whole WINDOW_UPDATE frames and
// nothing else, and at least one.
func WindowUpdatesOnly(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	for len(p) > 0 {
		if len(p) < FrameHeaderLen || p[3] != FrameWindowUpdate {
			return false
		}
		n := FrameHeaderLen + frameLength(p)
		if n > len(p) {
			return false
		}
		p = p[n:]
	}
	return true
}

// Untouched reports whether the rewriter is active and has seen no byte
// of the server's stream yet.
func (r *SettingsRewriter) Untouched() bool { return r.active && r.pos == 0 }
