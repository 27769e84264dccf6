// Package h2 reads the first flight of an HTTP/2 client connection (the
// preface and the frames up to the end of the first header block) and
// keeps the stream consistent once the mux has written its own SETTINGS
// frame: AckFilter drops the client's ACK of it from what the server reads,
// SettingsRewriter makes the server's first SETTINGS agree with it.
package h2

import (
	"encoding/binary"

	"github.com/cmux-go/cmux/internal/patricia"
	"github.com/cmux-go/cmux/internal/peek"
)

// Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// prefaceTree matches the preface, deciding on the first byte that differs.
var prefaceTree = patricia.New(Preface)

// MatchPreface reports whether the connection starts with the preface,
// saying no on the first byte that differs.
func MatchPreface(p peek.Peeker) bool { return prefaceTree.Match(p) }

// Frame types and flags (RFC 9113 §6).
const (
	FrameData         = 0x0
	FrameHeaders      = 0x1
	FramePriority     = 0x2
	FrameRSTStream    = 0x3
	FrameSettings     = 0x4
	FramePushPromise  = 0x5
	FramePing         = 0x6
	FrameGoAway       = 0x7
	FrameWindowUpdate = 0x8
	FrameContinuation = 0x9

	FlagAck        = 0x1
	FlagEndHeaders = 0x4
	FlagPadded     = 0x8
	FlagPriority   = 0x20

	// FrameHeaderLen is the length of a frame header.
	FrameHeaderLen = 9
	// MaxFrameSize is SETTINGS_MAX_FRAME_SIZE as the client must assume it
	// before it has the real server's SETTINGS (the mux does not raise it).
	MaxFrameSize = 16384

	SettingNoRFC7540Priorities = 0x9
)

// MuxSettings is the SETTINGS frame the mux writes:
// SETTINGS_NO_RFC7540_PRIORITIES = 1.
var MuxSettings = []byte{
	0, 0, 6, FrameSettings, 0, 0, 0, 0, 0,
	0, SettingNoRFC7540Priorities, 0, 0, 0, 1,
}

// FrameHeader is a decoded frame header (RFC 9113 §4.1).
type FrameHeader struct {
	Length int
	Type   byte
	Flags  byte
	Stream uint32
}

// ReadFrameHeader decodes the frame header at the start of b, which holds
// at least FrameHeaderLen bytes.
func ReadFrameHeader(b []byte) FrameHeader {
	return FrameHeader{
		Length: frameLength(b),
		Type:   b[3],
		Flags:  b[4],
		Stream: binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1),
	}
}

// frameLength is the length field of the frame header at the start of b.
func frameLength(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// Has reports whether the header has flag f.
func (h FrameHeader) Has(f byte) bool { return h.Flags&f != 0 }
