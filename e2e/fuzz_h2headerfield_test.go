package e2e

// FuzzHTTP2HeaderFieldXNet is the root package's FuzzHTTP2HeaderField with
// golang.org/x/net/http2's Framer, an independent implementation that
// validates HTTP/2 much more than the root package's internal/wiretest
// h2frame, as the judge of what the matchers match; it runs the root
// target's seed corpus (testdata/fuzz/FuzzHTTP2HeaderFieldXNet is a copy of
// the root's testdata/fuzz/FuzzHTTP2HeaderField). It is here because the
// root package's tests import no golang.org/x/net/http2 (see
// scripts/check-deps).

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/internal/h2"
	"github.com/cmux-go/cmux/internal/wiretest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

type fzCountReader struct {
	r io.Reader
	n int
}

func (c *fzCountReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// fzH2FirstBlock decodes the first header block of an HTTP/2 connection's
// first bytes with an http2.Framer that has ReadMetaHeaders.
//
// The mux classifies connections; the server that gets one validates it.
// So where the Framer is stricter than the mux it is made to agree:
//   - a frame that the Framer rejects for a value the mux does not check
//     (a SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1, a WINDOW_UPDATE of 0, an
//     RST_STREAM on stream 0, a malformed RFC 9218 PRIORITY_UPDATE, which
//     the mux takes for an unknown frame) is skipped, as the mux does;
//   - a header block whose fields break HTTP rules (such as a duplicate
//     pseudo-header or an upper-case name) is decoded with a plain
//     hpack.Decoder instead.
func fzH2FirstBlock(in []byte) ([]hpack.HeaderField, error) {
	return fzH2Block(in, true)
}

func fzH2Block(in []byte, meta bool) ([]hpack.HeaderField, error) {
	if !bytes.HasPrefix(in, []byte(h2.Preface)) {
		return nil, errors.New("no preface")
	}
	frames := in[len(h2.Preface):]
	cr := &fzCountReader{r: bytes.NewReader(frames)}
	fr := http2.NewFramer(io.Discard, cr)
	if meta {
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	}
	var block []byte
	for range len(in) {
		start := cr.n
		f, err := fr.ReadFrame()
		// Fields that break HTTP rules end in a stream error, or in a
		// connection error if CONTINUATION frames follow them. (Other
		// protocol errors the plain Framer finds again.)
		var se http2.StreamError
		if meta && (errors.As(err, &se) && se.Code == http2.ErrCodeProtocol || err == http2.ConnectionError(http2.ErrCodeProtocol)) {
			return fzH2Block(in, false)
		}
		if err != nil {
			if start+h2.FrameHeaderLen <= len(frames) && cr.n > start+h2.FrameHeaderLen-1 {
				switch frames[start+3] {
				case h2.FrameSettings, h2.FrameWindowUpdate, h2.FrameRSTStream, 0x10:
					continue
				}
			}
			return nil, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return f.Fields, nil
		case *http2.HeadersFrame:
			block = append(block, f.HeaderBlockFragment()...)
			if !f.HeadersEnded() {
				continue
			}
		case *http2.ContinuationFrame:
			block = append(block, f.HeaderBlockFragment()...)
			if !f.HeadersEnded() {
				continue
			}
		default:
			continue
		}
		return hpack.NewDecoder(4096, nil).DecodeFull(block)
	}
	return nil, errors.New("no header block")
}

func FuzzHTTP2HeaderFieldXNet(f *testing.F) {
	grpc := wiretest.Block(":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/Method", ":authority", "localhost",
		"content-type", "application/grpc")
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	buf.WriteString(h2.Preface)
	_ = fr.WriteSettings()
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpc, EndHeaders: true})
	f.Add(bytes.Clone(buf.Bytes()), "content-type", "application/grpc", false)
	buf.Reset()
	buf.WriteString(h2.Preface)
	_ = fr.WriteSettings()
	_ = fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpc[:3], PadLength: 2})
	_ = fr.WriteContinuation(1, true, grpc[3:])
	f.Add(bytes.Clone(buf.Bytes()), "content-type", "application/", true)
	f.Fuzz(func(t *testing.T, in []byte, name, value string, prefix bool) {
		m := cmux.HTTP2HeaderField(name, value)
		w := cmux.HTTP2MatchHeaderFieldSendSettings(name, value)
		if prefix {
			m = cmux.HTTP2HeaderFieldPrefix(name, value)
			w = cmux.HTTP2MatchHeaderFieldPrefixSendSettings(name, value)
		}
		got := m(bytes.NewReader(in))
		if one := m(iotest.OneByteReader(bytes.NewReader(in))); one != got {
			t.Fatalf("on %q: %v whole, %v one byte per Read", in, got, one)
		}
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			var out bytes.Buffer
			if wgot := w(&out, r); wgot != got {
				t.Fatalf("on %q: writer matcher says %v, matcher %v", in, wgot, got)
			}
			if out.Len() > 0 && !bytes.Equal(out.Bytes(), h2.MuxSettings) {
				t.Fatalf("on %q: wrote %q", in, out.Bytes())
			}
		}
		if !got {
			return
		}
		fields, err := fzH2FirstBlock(in)
		if err != nil {
			t.Fatalf("matched %q, which http2.Framer rejects: %v", in, err)
		}
		lname := strings.ToLower(name)
		for _, hf := range fields {
			if hf.Name == lname {
				if hf.Value != value && !(prefix && strings.HasPrefix(hf.Value, value)) {
					t.Fatalf("matched %q, whose %s is %q", in, lname, hf.Value)
				}
				return
			}
		}
		t.Fatalf("matched %q, which has no %s: %v", in, lname, fields)
	})
}
