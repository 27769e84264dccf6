// Package h2frame writes and reads HTTP/2 frames for tests, with the names
// of golang.org/x/net/http2's Framer (the subset the tests use). The root
// package's tests use it instead of x/net/http2, whose import of
// golang.org/x/net/idna would make every module that requires this library
// download golang.org/x/text on go mod tidy (see scripts/check-deps). Only
// golang.org/x/net/http2/hpack, which imports no other module, is used.
//
// It writes what it is told, valid or not (x/net's AllowIllegalWrites), and
// checks, on reading, only the frame sizes it needs to parse a frame; the
// tests that check HTTP/2 against an independent implementation run
// x/net/http2 in the e2e module.
package h2frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/net/http2/hpack"
)

// ClientPreface is the HTTP/2 client connection preface.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// FrameHeaderLen is the length of a frame header.
const FrameHeaderLen = 9

// A FrameType is a frame's type (RFC 9113 §6).
type FrameType uint8

// The frame types.
const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

var frameNames = [...]string{"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS",
	"PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"}

func (t FrameType) String() string {
	if int(t) < len(frameNames) {
		return frameNames[t]
	}
	return fmt.Sprintf("UNKNOWN_FRAME_TYPE_%d", uint8(t))
}

// Flags are a frame's flags.
type Flags uint8

// Has reports whether f has every flag of v.
func (f Flags) Has(v Flags) bool { return f&v == v }

// The flags.
const (
	FlagDataEndStream          Flags = 0x1
	FlagDataPadded             Flags = 0x8
	FlagHeadersEndStream       Flags = 0x1
	FlagHeadersEndHeaders      Flags = 0x4
	FlagHeadersPadded          Flags = 0x8
	FlagHeadersPriority        Flags = 0x20
	FlagSettingsAck            Flags = 0x1
	FlagPingAck                Flags = 0x1
	FlagContinuationEndHeaders Flags = 0x4
	FlagPushPromiseEndHeaders  Flags = 0x4
)

// An ErrCode is an error code of RST_STREAM and GOAWAY frames.
type ErrCode uint32

// The error codes the tests use.
const (
	ErrCodeNo       ErrCode = 0x0
	ErrCodeProtocol ErrCode = 0x1
)

var errNames = [...]string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
	"COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}

func (e ErrCode) String() string {
	if int(e) < len(errNames) {
		return errNames[e]
	}
	return fmt.Sprintf("unknown error code 0x%x", uint32(e))
}

// A SettingID is the identifier of a setting.
type SettingID uint16

// The settings.
const (
	SettingHeaderTableSize      SettingID = 0x1
	SettingEnablePush           SettingID = 0x2
	SettingMaxConcurrentStreams SettingID = 0x3
	SettingInitialWindowSize    SettingID = 0x4
	SettingMaxFrameSize         SettingID = 0x5
	SettingMaxHeaderListSize    SettingID = 0x6
)

// A Setting is a setting and its value.
type Setting struct {
	ID  SettingID
	Val uint32
}

// A FrameHeader is the header of a frame.
type FrameHeader struct {
	Type     FrameType
	Flags    Flags
	Length   uint32
	StreamID uint32
}

// Header returns h.
func (h FrameHeader) Header() FrameHeader { return h }

func (h FrameHeader) String() string {
	return fmt.Sprintf("[FrameHeader %v flags=0x%x stream=%d len=%d]", h.Type, uint8(h.Flags), h.StreamID, h.Length)
}

// A Frame is a frame read by a Framer.
type Frame interface {
	Header() FrameHeader
}

// A SettingsFrame is a SETTINGS frame.
type SettingsFrame struct {
	FrameHeader
	p []byte
}

// IsAck reports whether f has the ACK flag.
func (f *SettingsFrame) IsAck() bool { return f.Flags.Has(FlagSettingsAck) }

// NumSettings returns the number of settings in f.
func (f *SettingsFrame) NumSettings() int { return len(f.p) / 6 }

// Setting returns the i-th setting of f.
func (f *SettingsFrame) Setting(i int) Setting {
	b := f.p[i*6:]
	return Setting{ID: SettingID(binary.BigEndian.Uint16(b)), Val: binary.BigEndian.Uint32(b[2:])}
}

// ForeachSetting calls fn for each setting of f, stopping at an error.
func (f *SettingsFrame) ForeachSetting(fn func(Setting) error) error {
	for i := range f.NumSettings() {
		if err := fn(f.Setting(i)); err != nil {
			return err
		}
	}
	return nil
}

// A PingFrame is a PING frame.
type PingFrame struct {
	FrameHeader
	Data [8]byte
}

// IsAck reports whether f has the ACK flag.
func (f *PingFrame) IsAck() bool { return f.Flags.Has(FlagPingAck) }

// A GoAwayFrame is a GOAWAY frame.
type GoAwayFrame struct {
	FrameHeader
	LastStreamID uint32
	ErrCode      ErrCode
	debug        []byte
}

// DebugData returns f's debug data.
func (f *GoAwayFrame) DebugData() []byte { return f.debug }

// An RSTStreamFrame is an RST_STREAM frame.
type RSTStreamFrame struct {
	FrameHeader
	ErrCode ErrCode
}

// A WindowUpdateFrame is a WINDOW_UPDATE frame.
type WindowUpdateFrame struct {
	FrameHeader
	Increment uint32
}

// A DataFrame is a DATA frame.
type DataFrame struct {
	FrameHeader
	data []byte
}

// Data returns f's data, without padding.
func (f *DataFrame) Data() []byte { return f.data }

// StreamEnded reports whether f has the END_STREAM flag.
func (f *DataFrame) StreamEnded() bool { return f.Flags.Has(FlagDataEndStream) }

// A HeadersFrame is a HEADERS frame.
type HeadersFrame struct {
	FrameHeader
	Priority PriorityParam
	frag     []byte
}

// HeaderBlockFragment returns f's fragment of a header block.
func (f *HeadersFrame) HeaderBlockFragment() []byte { return f.frag }

// HeadersEnded reports whether f has the END_HEADERS flag.
func (f *HeadersFrame) HeadersEnded() bool { return f.Flags.Has(FlagHeadersEndHeaders) }

// StreamEnded reports whether f has the END_STREAM flag.
func (f *HeadersFrame) StreamEnded() bool { return f.Flags.Has(FlagHeadersEndStream) }

// A ContinuationFrame is a CONTINUATION frame.
type ContinuationFrame struct {
	FrameHeader
	frag []byte
}

// HeaderBlockFragment returns f's fragment of a header block.
func (f *ContinuationFrame) HeaderBlockFragment() []byte { return f.frag }

// HeadersEnded reports whether f has the END_HEADERS flag.
func (f *ContinuationFrame) HeadersEnded() bool { return f.Flags.Has(FlagContinuationEndHeaders) }

// A MetaHeadersFrame is a HEADERS frame and its CONTINUATION frames, with
// the header block decoded.
type MetaHeadersFrame struct {
	*HeadersFrame
	Fields []hpack.HeaderField
}

// PseudoValue returns the value of the pseudo-header field :name.
func (f *MetaHeadersFrame) PseudoValue(name string) string {
	for _, hf := range f.Fields {
		if hf.Name == ":"+name {
			return hf.Value
		}
	}
	return ""
}

// RegularFields returns the fields that are not pseudo-header fields.
func (f *MetaHeadersFrame) RegularFields() []hpack.HeaderField {
	var out []hpack.HeaderField
	for _, hf := range f.Fields {
		if len(hf.Name) == 0 || hf.Name[0] != ':' {
			out = append(out, hf)
		}
	}
	return out
}

// An UnknownFrame is a frame of another type (PRIORITY, PUSH_PROMISE,
// extensions).
type UnknownFrame struct {
	FrameHeader
	p []byte
}

// Payload returns f's payload.
func (f *UnknownFrame) Payload() []byte { return f.p }

// PriorityParam are the fields of a priority (RFC 7540 §6.3).
type PriorityParam struct {
	StreamDep uint32
	Exclusive bool
	Weight    uint8
}

// IsZero reports whether p is the zero PriorityParam.
func (p PriorityParam) IsZero() bool { return p == PriorityParam{} }

func (p PriorityParam) append(b []byte) []byte {
	dep := p.StreamDep
	if p.Exclusive {
		dep |= 1 << 31
	}
	return append(binary.BigEndian.AppendUint32(b, dep), p.Weight)
}

// HeadersFrameParam are the fields of a HEADERS frame to write.
type HeadersFrameParam struct {
	StreamID      uint32
	BlockFragment []byte
	EndStream     bool
	EndHeaders    bool
	PadLength     uint8
	Priority      PriorityParam
}

// A Framer writes frames to w, each in one Write, and reads them from r.
type Framer struct {
	w io.Writer
	r io.Reader

	// ReadMetaHeaders, if set, makes ReadFrame return a HEADERS frame and
	// its CONTINUATION frames as one MetaHeadersFrame, decoded with it.
	ReadMetaHeaders *hpack.Decoder

	// AllowIllegalWrites is there for x/net's name: the Framer writes
	// whatever it is told.
	AllowIllegalWrites bool
}

// NewFramer returns a Framer that writes to w and reads from r.
func NewFramer(w io.Writer, r io.Reader) *Framer { return &Framer{w: w, r: r} }

// WriteRawFrame writes a frame of type typ with payload.
func (fr *Framer) WriteRawFrame(typ FrameType, flags Flags, stream uint32, payload []byte) error {
	n := len(payload)
	b := make([]byte, 0, FrameHeaderLen+n)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), byte(typ), byte(flags))
	b = binary.BigEndian.AppendUint32(b, stream)
	b = append(b, payload...)
	_, err := fr.w.Write(b)
	return err
}

// WriteSettings writes a SETTINGS frame of settings.
func (fr *Framer) WriteSettings(settings ...Setting) error {
	var p []byte
	for _, s := range settings {
		p = binary.BigEndian.AppendUint16(p, uint16(s.ID))
		p = binary.BigEndian.AppendUint32(p, s.Val)
	}
	return fr.WriteRawFrame(FrameSettings, 0, 0, p)
}

// WriteSettingsAck writes a SETTINGS frame with the ACK flag.
func (fr *Framer) WriteSettingsAck() error {
	return fr.WriteRawFrame(FrameSettings, FlagSettingsAck, 0, nil)
}

// WriteWindowUpdate writes a WINDOW_UPDATE frame.
func (fr *Framer) WriteWindowUpdate(stream, incr uint32) error {
	return fr.WriteRawFrame(FrameWindowUpdate, 0, stream, binary.BigEndian.AppendUint32(nil, incr))
}

// WritePriority writes a PRIORITY frame.
func (fr *Framer) WritePriority(stream uint32, p PriorityParam) error {
	return fr.WriteRawFrame(FramePriority, 0, stream, p.append(nil))
}

// WritePing writes a PING frame.
func (fr *Framer) WritePing(ack bool, data [8]byte) error {
	var flags Flags
	if ack {
		flags = FlagPingAck
	}
	return fr.WriteRawFrame(FramePing, flags, 0, data[:])
}

// WriteData writes a DATA frame.
func (fr *Framer) WriteData(stream uint32, endStream bool, data []byte) error {
	var flags Flags
	if endStream {
		flags = FlagDataEndStream
	}
	return fr.WriteRawFrame(FrameData, flags, stream, data)
}

// WriteHeaders writes a HEADERS frame.
func (fr *Framer) WriteHeaders(p HeadersFrameParam) error {
	var flags Flags
	var b []byte
	if p.EndStream {
		flags |= FlagHeadersEndStream
	}
	if p.EndHeaders {
		flags |= FlagHeadersEndHeaders
	}
	if p.PadLength != 0 {
		flags |= FlagHeadersPadded
		b = append(b, p.PadLength)
	}
	if !p.Priority.IsZero() {
		flags |= FlagHeadersPriority
		b = p.Priority.append(b)
	}
	b = append(b, p.BlockFragment...)
	b = append(b, make([]byte, p.PadLength)...)
	return fr.WriteRawFrame(FrameHeaders, flags, p.StreamID, b)
}

// WriteContinuation writes a CONTINUATION frame.
func (fr *Framer) WriteContinuation(stream uint32, endHeaders bool, frag []byte) error {
	var flags Flags
	if endHeaders {
		flags = FlagContinuationEndHeaders
	}
	return fr.WriteRawFrame(FrameContinuation, flags, stream, frag)
}

// ErrFrameSize is returned for a frame whose payload is too short for its
// type.
var ErrFrameSize = errors.New("h2frame: frame too short for its type")

// ReadFrame reads the next frame.
func (fr *Framer) ReadFrame() (Frame, error) {
	f, err := fr.readFrame()
	if err != nil || fr.ReadMetaHeaders == nil {
		return f, err
	}
	hf, ok := f.(*HeadersFrame)
	if !ok {
		return f, nil
	}
	block := append([]byte(nil), hf.frag...)
	for end := hf.HeadersEnded(); !end; {
		f, err := fr.readFrame()
		if err != nil {
			return nil, err
		}
		cf, ok := f.(*ContinuationFrame)
		if !ok || cf.StreamID != hf.StreamID {
			return nil, fmt.Errorf("h2frame: %v inside the header block of stream %d", f.Header(), hf.StreamID)
		}
		block = append(block, cf.frag...)
		end = cf.HeadersEnded()
	}
	fields, err := fr.ReadMetaHeaders.DecodeFull(block)
	if err != nil {
		return nil, err
	}
	return &MetaHeadersFrame{HeadersFrame: hf, Fields: fields}, nil
}

func (fr *Framer) readFrame() (Frame, error) {
	var hb [FrameHeaderLen]byte
	if _, err := io.ReadFull(fr.r, hb[:]); err != nil {
		return nil, err
	}
	h := FrameHeader{
		Length:   uint32(hb[0])<<16 | uint32(hb[1])<<8 | uint32(hb[2]),
		Type:     FrameType(hb[3]),
		Flags:    Flags(hb[4]),
		StreamID: binary.BigEndian.Uint32(hb[5:]) &^ (1 << 31),
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	unpad := func(padded bool) ([]byte, bool) {
		if !padded {
			return p, true
		}
		if len(p) == 0 || int(p[0]) > len(p)-1 {
			return nil, false
		}
		return p[1 : len(p)-int(p[0])], true
	}
	switch h.Type {
	case FrameSettings:
		if len(p)%6 != 0 {
			return nil, ErrFrameSize
		}
		return &SettingsFrame{FrameHeader: h, p: p}, nil
	case FramePing:
		if len(p) != 8 {
			return nil, ErrFrameSize
		}
		f := &PingFrame{FrameHeader: h}
		copy(f.Data[:], p)
		return f, nil
	case FrameGoAway:
		if len(p) < 8 {
			return nil, ErrFrameSize
		}
		return &GoAwayFrame{FrameHeader: h, LastStreamID: binary.BigEndian.Uint32(p) &^ (1 << 31),
			ErrCode: ErrCode(binary.BigEndian.Uint32(p[4:])), debug: p[8:]}, nil
	case FrameRSTStream:
		if len(p) != 4 {
			return nil, ErrFrameSize
		}
		return &RSTStreamFrame{FrameHeader: h, ErrCode: ErrCode(binary.BigEndian.Uint32(p))}, nil
	case FrameWindowUpdate:
		if len(p) != 4 {
			return nil, ErrFrameSize
		}
		return &WindowUpdateFrame{FrameHeader: h, Increment: binary.BigEndian.Uint32(p) &^ (1 << 31)}, nil
	case FrameData:
		d, ok := unpad(h.Flags.Has(FlagDataPadded))
		if !ok {
			return nil, ErrFrameSize
		}
		return &DataFrame{FrameHeader: h, data: d}, nil
	case FrameHeaders:
		d, ok := unpad(h.Flags.Has(FlagHeadersPadded))
		if !ok {
			return nil, ErrFrameSize
		}
		f := &HeadersFrame{FrameHeader: h}
		if h.Flags.Has(FlagHeadersPriority) {
			if len(d) < 5 {
				return nil, ErrFrameSize
			}
			dep := binary.BigEndian.Uint32(d)
			f.Priority = PriorityParam{StreamDep: dep &^ (1 << 31), Exclusive: dep>>31 == 1, Weight: d[4]}
			d = d[5:]
		}
		f.frag = d
		return f, nil
	case FrameContinuation:
		return &ContinuationFrame{FrameHeader: h, frag: p}, nil
	}
	return &UnknownFrame{FrameHeader: h, p: p}, nil
}
