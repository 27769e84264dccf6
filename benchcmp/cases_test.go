package benchcmp

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A benchCase is one kind of connection and the mux it goes through.
//
// Every flight is a whole first flight of its protocol, not just the bytes
// our matchers need. That keeps the comparison fair: v0.1.5's prefix
// matchers (PrefixMatcher, HTTP1Fast, TLS) read with io.ReadFull up to the
// longest prefix plus one byte (8 bytes for HTTP1Fast's "OPTIONS", 5 for
// "SSH-", 4 for TLS), its HTTP2 reads the 24-byte preface, and its header
// field matchers read a whole request head or the frames up to the first
// HEADERS; a flight shorter than that would leave v0.1.5 waiting for bytes
// while ours had decided.
type benchCase struct {
	name     string
	flight   []byte
	children []child
	want     int  // index of the child that must get the connection
	settings bool // the mux may write SETTINGS frames to the client
	// miss, for the sanity test, is a flight that no child takes (nil for
	// the cases that end with Any).
	miss []byte
	// gate, for the sanity test, is where in flight a client that waits
	// for the server's SETTINGS stops until it gets them (0: none).
	gate int
}

var (
	casesOnce sync.Once
	allCases  []benchCase
)

// httpGet is what net/http's client sends for a plain GET.
const httpGet = "GET /index.html HTTP/1.1\r\n" +
	"Host: localhost:8080\r\n" +
	"User-Agent: Go-http-client/1.1\r\n" +
	"Accept-Encoding: gzip\r\n" +
	"\r\n"

// httpGRPCWeb is an HTTP/1 request that a Content-Type matcher routes.
const httpGRPCWeb = "POST /helloworld.Greeter/SayHello HTTP/1.1\r\n" +
	"Host: localhost:8080\r\n" +
	"User-Agent: Go-http-client/1.1\r\n" +
	"Content-Length: 5\r\n" +
	"Content-Type: application/grpc\r\n" +
	"Accept-Encoding: gzip\r\n" +
	"\r\n" +
	"\x00\x00\x00\x00\x00"

// sshBanner is what an OpenSSH client sends first.
const sshBanner = "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n"

func cases() []benchCase {
	casesOnce.Do(func() {
		h2 := h2SettingsFlight()
		grpc, headersAt := grpcFlight("application/grpc")
		json, _ := grpcFlight("application/json")
		allCases = []benchCase{
			{name: "Any", flight: []byte(httpGet),
				children: []child{{anyM()}}},
			{name: "PrefixMatcher", flight: []byte(sshBanner),
				children: []child{{prefix("SSH-")}}, miss: []byte(httpGet)},
			{name: "HTTP1Fast", flight: []byte(httpGet),
				children: []child{{http1Fast()}}, miss: []byte(sshBanner)},
			{name: "HTTP2", flight: h2,
				children: []child{{http2M()}}, miss: []byte(httpGet)},
			{name: "TLS", flight: clientHello(),
				children: []child{{tlsM()}}, miss: []byte(httpGet)},
			// Three listeners that say no, then a catch-all: each
			// matcher re-reads the sniffed bytes.
			{name: "MissesThenAny", flight: []byte(httpGet),
				children: []child{{prefix("SSH-")}, {http2M()}, {tlsM()}, {anyM()}},
				want:     3},
			{name: "HTTP1HeaderField", flight: []byte(httpGRPCWeb),
				children: []child{{h1Field("Content-Type", "application/grpc")}},
				miss:     []byte(httpGet)},
			{name: "HTTP2HeaderField", flight: grpc,
				children: []child{{h2Field("content-type", "application/grpc")}},
				miss:     json},
			// Routing (issue 16). v0.1.5 runs HTTPHostH2 with its nearest
			// matcher, a prefix of :authority; it cannot match an HTTP/1
			// Host (http.ReadRequest moves it out of the header it looks
			// at), and has nothing for paths or addresses.
			{name: "HTTPHost", flight: []byte(httpGet),
				children: []child{{routing(kHTTPHost, "localhost")}}, miss: []byte(sshBanner)},
			{name: "HTTPHostH2", flight: grpc,
				children: []child{{routing(kHTTP2Host, "localhost")}}, miss: []byte(sshBanner)},
			{name: "HTTPPathPrefix", flight: []byte(httpGet),
				children: []child{{routing(kHTTPPathPrefix, "/index")}}, miss: []byte(httpGRPCWeb)},
			{name: "RemoteAddrInAndHTTP1Fast", flight: []byte(httpGet),
				children: []child{{routing(kAddrHTTP1Fast, "127.0.0.0/8")}}, miss: []byte(sshBanner)},
			{name: "HTTP2HeaderFieldSendSettings", flight: grpc,
				children: []child{{h2Settings("content-type", "application/grpc")}},
				settings: true, gate: headersAt, miss: json},
		}
	})
	return allCases
}

// h2SettingsFlight is an HTTP/2 client's preface and SETTINGS.
func h2SettingsFlight() []byte {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	must(fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 10 << 20},
	))
	return b.Bytes()
}

// grpcFlight is the first flight of a gRPC client: the preface, SETTINGS,
// a connection WINDOW_UPDATE and the HEADERS of the first call, as grpc-go
// sends them before it has heard from the server (with contentType as its
// content-type), and the offset of the HEADERS frame in it.
func grpcFlight(contentType string) (flight []byte, headersAt int) {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	must(fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20}))
	must(fr.WriteWindowUpdate(0, 4<<20))
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/helloworld.Greeter/SayHello"},
		{Name: ":authority", Value: "localhost:50051"},
		{Name: "content-type", Value: contentType},
		{Name: "user-agent", Value: "grpc-go/1.85.0"},
		{Name: "te", Value: "trailers"},
		{Name: "grpc-timeout", Value: "999871u"},
	} {
		must(enc.WriteField(f))
	}
	headersAt = b.Len()
	must(fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID:      1,
		BlockFragment: hb.Bytes(),
		EndHeaders:    true,
	}))
	return b.Bytes(), headersAt
}

// clientHello is a ClientHello from crypto/tls, captured by letting a
// client handshake over a connection that records what it writes and has
// nothing to read.
func clientHello() []byte {
	c := &captureConn{}
	tc := tls.Client(c, &tls.Config{
		ServerName: "example.com",
		NextProtos: []string{"h2", "http/1.1"},
	})
	if err := tc.Handshake(); err == nil {
		panic("handshake over a capture connection succeeded")
	}
	if c.out.Len() < 5 || c.out.Bytes()[0] != 0x16 {
		panic("no TLS handshake record captured")
	}
	return c.out.Bytes()
}

// captureConn records writes; its reads end at once.
type captureConn struct{ out bytes.Buffer }

func (c *captureConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *captureConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *captureConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

func must(err error) {
	if err != nil {
		panic(err)
	}
}
