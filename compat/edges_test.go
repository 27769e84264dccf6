package compat

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// An edgeCase is an input at the edge of what a matcher accepts, with the
// route v0.1.5 gives it: "match" (the matcher's listener) or "any" (the
// Any() listener after it). Both libraries must route it so, unless the
// scenario is in documentedDifferences, where ours routes it the other way.
type edgeCase struct {
	name    string
	matcher func(lib *Lib) Matcher
	input   []byte
	v015    string
}

func h2Input(write func(fr *http2.Framer)) []byte {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	write(http2.NewFramer(&b, nil))
	return b.Bytes()
}

func hpackBlock(fields ...hpack.HeaderField) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, f := range fields {
		e.WriteField(f)
	}
	return b.Bytes()
}

var (
	hfMethod = hpack.HeaderField{Name: ":method", Value: "POST"}
	hfGRPC   = hpack.HeaderField{Name: "content-type", Value: "application/grpc"}
	hfText   = hpack.HeaderField{Name: "content-type", Value: "text/plain"}
)

func grpcField(lib *Lib) Matcher  { return lib.HTTP2HeaderField("content-type", "application/grpc") }
func routeField(lib *Lib) Matcher { return lib.HTTP1HeaderField("X-Route", "v1") }
func http1(lib *Lib) Matcher      { return lib.HTTP1() }

func headersFrame(fields ...hpack.HeaderField) func(fr *http2.Framer) {
	return func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(fields...)})
	}
}

var edgeCases = []edgeCase{
	// HTTP1: request lines.
	{"HTTP1/Version19", http1, []byte("GET / HTTP/1.9\r\n\r\n"), "match"},
	{"HTTP1/Version09", http1, []byte("GET / HTTP/0.9\r\n\r\n"), "any"},
	{"HTTP1/LowerCaseProto", http1, []byte("GET / http/1.1\r\n\r\n"), "any"},
	{"HTTP1/DoubleSpace", http1, []byte("GET  / HTTP/1.1\r\n\r\n"), "any"},
	{"HTTP1/TrailingSpace", http1, []byte("GET / HTTP/1.1 \r\n\r\n"), "any"},
	{"HTTP1/Tab", http1, []byte("GET\t/ HTTP/1.1\r\n\r\n"), "any"},
	{"HTTP1/LeadingCRLF", http1, []byte("\r\nGET / HTTP/1.1\r\n\r\n"), "any"},
	{"HTTP1/NonASCIITarget", http1, []byte("GET /\xc3\xa9 HTTP/1.1\r\n\r\n"), "match"},
	{"HTTP1/InvalidMethodChar", http1, []byte("G@T / HTTP/1.1\r\n\r\n"), "match"},
	{"HTTP1/ControlCharInTarget", http1, []byte("GET /\x01 HTTP/1.1\r\n\r\n"), "match"},
	{"HTTP1/LineEndMissingAtTimeout", http1, []byte("GET / HTTP/1.1"), "match"},
	// HTTP1HeaderField: what http.ReadRequest (v0.1.5's parser) says of
	// the whole request head.
	// http.ReadRequest takes Host and Transfer-Encoding out of the header:
	// v0.1.5 sees neither field, so only the empty value matches them.
	{"HTTP1HeaderField/Host", func(lib *Lib) Matcher { return lib.HTTP1HeaderField("Host", "example.com") }, []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "any"},
	{"HTTP1HeaderField/HostLowerCase", func(lib *Lib) Matcher { return lib.HTTP1HeaderFieldPrefix("host", "ex") }, []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "any"},
	{"HTTP1HeaderField/HostEmptyValue", func(lib *Lib) Matcher { return lib.HTTP1HeaderField("Host", "") }, []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "match"},
	{"HTTP1HeaderField/TransferEncoding", func(lib *Lib) Matcher { return lib.HTTP1HeaderField("Transfer-Encoding", "chunked") }, []byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), "any"},
	{"HTTP1HeaderField/TrailingSpaceInValue", routeField, []byte("GET / HTTP/1.1\r\nX-Route: v1  \r\n\r\n"), "match"},
	{"HTTP1HeaderField/TabBeforeValue", routeField, []byte("GET / HTTP/1.1\r\nX-Route:\tv1\r\n\r\n"), "match"},
	{"HTTP1HeaderField/SpaceBeforeColon", routeField, []byte("GET / HTTP/1.1\r\nX-Route : v1\r\n\r\n"), "any"},
	{"HTTP1HeaderField/MalformedLineBeforeField", routeField, []byte("GET / HTTP/1.1\r\nBad line\r\nX-Route: v1\r\n\r\n"), "any"},
	{"HTTP1HeaderField/ObsFoldValue", routeField, []byte("GET / HTTP/1.1\r\nX-Route:\r\n v1\r\n\r\n"), "match"},
	{"HTTP1HeaderField/HTTP10", routeField, []byte("GET / HTTP/1.0\r\nX-Route: v1\r\n\r\n"), "match"},
	{"HTTP1HeaderField/BareLF", routeField, []byte("GET / HTTP/1.1\nX-Route: v1\n\n"), "match"},
	{"HTTP1HeaderField/HeadUnfinishedAtTimeout", routeField, []byte("GET / HTTP/1.1\r\nX-Route: v1\r\n"), "any"},
	{"HTTP1HeaderField/MalformedLineAfterField", routeField, []byte("GET / HTTP/1.1\r\nX-Route: v1\r\nBad line\r\n\r\n"), "any"},
	{"HTTP1HeaderField/DuplicateHost", routeField, []byte("GET / HTTP/1.1\r\nX-Route: v1\r\nHost: a\r\nHost: b\r\n\r\n"), "any"},
	{"HTTP1HeaderField/BadContentLength", routeField, []byte("GET / HTTP/1.1\r\nX-Route: v1\r\nContent-Length: x\r\n\r\n"), "any"},
	{"HTTP1HeaderField/BadRequestURI", routeField, []byte("GET %zz HTTP/1.1\r\nX-Route: v1\r\n\r\n"), "any"},
	{"HTTP1HeaderField/HTTP20RequestLine", routeField, []byte("GET / HTTP/2.0\r\nX-Route: v1\r\n\r\n"), "match"},
	// PrefixMatcher.
	{"PrefixMatcher/EmptyString", func(lib *Lib) Matcher { return lib.PrefixMatcher("") }, []byte("abc"), "match"},
	{"PrefixMatcher/NoStrings", func(lib *Lib) Matcher { return lib.PrefixMatcher() }, []byte("abc"), "match"},
	// HTTP2HeaderField.
	{"HTTP2HeaderField/DuplicateFieldFirstMatches", grpcField, h2Input(headersFrame(hfMethod, hfGRPC, hfText)), "match"},
	{"HTTP2HeaderField/DuplicateFieldLaterMatches", grpcField, h2Input(headersFrame(hfMethod, hfText, hfGRPC)), "match"},
	{"HTTP2HeaderField/UpperCaseNameInBlock", grpcField, h2Input(headersFrame(hfMethod, hpack.HeaderField{Name: "Content-Type", Value: "application/grpc"})), "any"},
	{"HTTP2HeaderField/UpperCaseMatcherName", func(lib *Lib) Matcher { return lib.HTTP2HeaderField("Content-Type", "application/grpc") }, h2Input(headersFrame(hfMethod, hfGRPC)), "any"},
	{"HTTP2HeaderField/MissingFieldEmptyValue", func(lib *Lib) Matcher { return lib.HTTP2HeaderField("x-missing", "") }, h2Input(headersFrame(hfMethod, hfGRPC)), "any"},
	{"HTTP2HeaderField/FieldInSecondHeaderBlock", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(hfMethod)})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "any"},
	{"HTTP2HeaderField/RSTStreamFirst", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteRSTStream(5, http2.ErrCodeCancel)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "match"},
	{"HTTP2HeaderField/GoAwayFirst", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "match"},
	{"HTTP2HeaderField/PingAckAndSecondSettings", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WritePing(true, [8]byte{})
		fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "match"},
	{"HTTP2HeaderField/DynamicTableSizeUpdate", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		var b bytes.Buffer
		e := hpack.NewEncoder(&b)
		e.SetMaxDynamicTableSizeLimit(100)
		e.SetMaxDynamicTableSize(100)
		e.WriteField(hfMethod)
		e.WriteField(hfGRPC)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: b.Bytes()})
	}), "match"},
	{"HTTP2HeaderField/BadPriorityLength", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteRawFrame(http2.FramePriority, 0, 3, []byte{0, 0, 0})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "any"},
	{"HTTP2HeaderField/HeadersOnStreamZero", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteRawFrame(http2.FrameHeaders, 0x4, 0, hpackBlock(hfMethod, hfGRPC))
	}), "any"},
	{"HTTP2HeaderField/ContinuationOfOtherStream", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		b := hpackBlock(hfMethod, hfGRPC)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:2]})
		fr.WriteContinuation(3, true, b[2:])
	}), "any"},
	// Invalid connections ours turns down at once (documented).
	{"HTTP2HeaderField/FrameOverDefaultMaxSize", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteRawFrame(0xfa, 0, 0, make([]byte, 20000))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "match"},
	{"HTTP2HeaderField/TruncatedHPACK", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: append(hpackBlock(hfGRPC), 0xff, 0xff, 0xff, 0xff, 0xff)})
	}), "match"},
	{"HTTP2HeaderField/EvenStreamID", grpcField, h2Input(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, EndHeaders: true, BlockFragment: hpackBlock(hfMethod, hfGRPC)})
	}), "match"},
}

// TestMatchingEdges routes each edge case through a mux with a 300 ms read
// timeout (so that inputs a matcher would wait on end for both libraries).
func TestMatchingEdges(t *testing.T) {
	for _, ec := range edgeCases {
		t.Run(ec.name, func(t *testing.T) {
			both(t, func(t *testing.T, lib *Lib) {
				want := ec.v015
				var why string
				if lib.Name == libOurs && hasDifference(scenarioName(t)) {
					d := expectDifference(t)
					want = map[string]string{"match": "any", "any": "match"}[ec.v015]
					why = d.Ours
				}
				addr, routes := router(t, lib.New, func(m Mux) map[string]net.Listener {
					m.SetReadTimeout(300 * time.Millisecond)
					return map[string]net.Listener{"match": m.Match(ec.matcher(lib)), "any": m.Match(lib.Any())}
				})
				send(t, addr, ec.input)
				name, conn := routeOf(t, routes)
				if name != want {
					t.Errorf("%q went to %s, want %s (v0.1.5: %s) %s", trim(ec.input), name, want, ec.v015, why)
				}
				if got := readN(t, conn, len(ec.input)); !bytes.Equal(got, ec.input) {
					t.Errorf("child read %q, want %q", trim(got), trim(ec.input))
				}
			})
		})
	}
}

// hasDifference reports whether documentedDifferences lists scenario.
func hasDifference(scenario string) bool {
	for _, d := range documentedDifferences {
		if d.Scenario == scenario {
			return true
		}
	}
	return false
}
