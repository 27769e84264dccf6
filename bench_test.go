package cmux

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest"
	"github.com/cmux-go/cmux/internal/wiretest/h2frame"
	"golang.org/x/net/http2/hpack"
)

// The benchmarks of the matching path run the whole mux over an in-memory
// listener: each iteration hands a connection to the root's Accept and takes
// it from the child's Accept. The connections are reused, so what is counted
// is the mux's own cost per connection.

// memConn is a connection whose client sent flight and then hangs up.
type memConn struct {
	flight []byte
	off    int
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.off == len(c.flight) {
		return 0, io.EOF
	}
	n := copy(p, c.flight[c.off:])
	c.off += n
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *memConn) Close() error                       { return nil }
func (c *memConn) LocalAddr() net.Addr                { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr               { return memRemote }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

type memAddr struct{}

// memRemote is the remote address of every memConn, an IP address as a
// TCP connection's, for the address matchers.
var memRemote net.Addr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// memListener's Accept returns the connections sent on its channel.
type memListener struct {
	connc chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newMemListener() *memListener {
	return &memListener{connc: make(chan net.Conn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.connc:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

// benchMux measures connections with first flight flight through a mux set
// up by setup, which returns the listener they must reach.
func benchMux(b *testing.B, flight []byte, setup func(m CMux) net.Listener, opts ...Option) {
	b.Helper()
	benchMuxProxied(b, nil, flight, setup, opts...)
}

// benchMatch measures the mux's own work for a connection, without the
// goroutine hand-offs of benchMux: wrapping it, matching it and queueing it
// for its listener, all on the benchmark's goroutine.
func benchMatch(b *testing.B, flight []byte, setup func(m CMux) net.Listener) {
	b.Helper()
	m := New(newMemListener()).(*cMux)
	want := setup(m).(*muxListener)
	conns := make([]memConn, 64)
	rbuf := make([]byte, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(flight)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &conns[i%len(conns)]
		c.flight, c.off = flight, 0
		mc := m.newConn(c)
		if m.track(mc) != tracked {
			b.Fatal("mux stopped")
		}
		m.serveConn(mc)
		var got net.Conn
		select {
		case got = <-want.connc:
		default:
			b.Fatal("connection not delivered to the expected listener")
		}
		if n, err := io.ReadFull(got, rbuf[:len(flight)]); err != nil || !bytes.Equal(rbuf[:n], flight) {
			b.Fatalf("read %q, %v", rbuf[:n], err)
		}
	}
}

var (
	http1Flight = []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nX-Tenant: blue\r\n\r\n")
	tlsFlight   = []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + string(make([]byte, 64)))
)

// grpcFlight returns a first flight like grpc-go's: the preface, SETTINGS,
// WINDOW_UPDATE and the HEADERS of a unary call.
func grpcFlight(tb testing.TB) []byte {
	var buf bytes.Buffer
	buf.WriteString(h2frame.ClientPreface)
	fr := h2frame.NewFramer(&buf, nil)
	if err := fr.WriteSettings(h2frame.Setting{ID: h2frame.SettingInitialWindowSize, Val: 4 << 20}, h2frame.Setting{ID: h2frame.SettingMaxHeaderListSize, Val: 16 << 20}); err != nil {
		tb.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 4<<20); err != nil {
		tb.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Check"},
		{":authority", "127.0.0.1:50051"}, {"content-type", "application/grpc"},
		{"user-agent", "grpc-go/1.85.0"}, {"te", "trailers"}, {"grpc-timeout", "999965u"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// connCase is a first flight and the mux set-up it is measured with; setup
// returns the listener the connection must reach.
type connCase struct {
	name   string
	flight func(testing.TB) []byte
	setup  func(m CMux) net.Listener
}

func connCases() []connCase {
	only := func(mt Matcher) func(m CMux) net.Listener {
		return func(m CMux) net.Listener { return m.Match(mt) }
	}
	http1 := func(testing.TB) []byte { return http1Flight }
	tlsHello := func(testing.TB) []byte { return tlsFlight }
	grpcWriter := HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")
	return []connCase{
		{"HTTP1Fast", http1, only(HTTP1Fast())},
		{"HTTP2", grpcFlight, only(HTTP2())},
		{"TLS", tlsHello, only(TLS())},
		{"PrefixMatcher", http1, only(PrefixMatcher("FOO", "GET /"))},
		{"HTTP1", http1, only(HTTP1())},
		{"HTTP1HeaderField", http1, only(HTTP1HeaderField("X-Tenant", "blue"))},
		{"HTTP2HeaderField", grpcFlight, func(m CMux) net.Listener { return m.MatchWithWriters(grpcWriter) }},
		{"TwoHTTP2HeaderFields", grpcFlight, func(m CMux) net.Listener {
			m.Match(HTTP2HeaderField("content-type", "application/other"))
			return m.MatchWithWriters(grpcWriter)
		}},
		{"HTTPHost", http1, only(HTTPHost("example.com"))},
		{"HTTPHostWildcard", http1, only(HTTPHost("*.example.org", "example.com"))},
		{"HTTPPathPrefix", http1, only(HTTPPathPrefix("/index"))},
		{"HTTPHostH2", grpcFlight, only(HTTPHost("127.0.0.1"))},
		{"HTTPHostAndPath", http1, only(All(HTTPHost("example.com"), HTTPPathPrefix("/index")))},
		{"RemoteAddrIn", http1, only(RemoteAddrIn(netip.MustParsePrefix("192.0.2.0/24")))},
		{"RemoteAddrInAndHTTP1Fast", http1, only(All(RemoteAddrIn(netip.MustParsePrefix("192.0.2.0/24")), HTTP1Fast()))},
		{"RemoteAddrInAndHTTP2HeaderField", grpcFlight, func(m CMux) net.Listener {
			return m.MatchWithWriters(AllWriters(ReadOnly(RemoteAddrIn(netip.MustParsePrefix("192.0.2.0/24"))), grpcWriter))
		}},
		{"ThreeMissesThenAny", http1, func(m CMux) net.Listener {
			m.Match(HTTP2())
			m.Match(TLS())
			m.Match(PrefixMatcher("SSH-"))
			return m.Match(Any())
		}},
	}
}

// BenchmarkConn measures a connection from the root listener's Accept to
// the child's, through the accept loop and a matching goroutine.
func BenchmarkConn(b *testing.B) {
	for _, c := range connCases() {
		b.Run(c.name, func(b *testing.B) { benchMux(b, c.flight(b), c.setup) })
	}
}

// BenchmarkConnHooks is BenchmarkConn with every hook set (to functions
// that count): what observing each connection costs.
func BenchmarkConnHooks(b *testing.B) {
	var n atomic.Int64
	count := func(ConnEvent) { n.Add(1) }
	hooks := WithHooks(Hooks{Accepted: count, Matched: count, NotMatched: count, Delivered: count})
	for _, c := range connCases() {
		b.Run(c.name, func(b *testing.B) { benchMux(b, c.flight(b), c.setup, hooks) })
	}
}

// BenchmarkMatch measures part of the path only: the same connections as
// BenchmarkConn, matched and queued on the benchmark's goroutine, without
// the accept loop, the hand-offs between goroutines or the child's Accept.
// Do not compare it with full-path figures (benchcmp's, or v0.1.5's).
func BenchmarkMatch(b *testing.B) {
	for _, c := range connCases() {
		b.Run(c.name, func(b *testing.B) { benchMatch(b, c.flight(b), c.setup) })
	}
}

// The benchmarks below run real clients over loopback TCP against a bare
// listener and against the same server behind the mux. Client and server
// share the process, so "cpu-ns/op" (user+system CPU of the process per
// operation) counts both sides; the difference between bare and mux is
// the mux's.

// serveBareOrMux starts srv on a fresh loopback listener, directly or
// behind a mux whose listener for srv is made by match, and returns the
// address and a stop function.
func serveBareOrMux(tb testing.TB, viaMux bool, match func(CMux) net.Listener, serve func(net.Listener)) (string, func()) {
	tb.Helper()
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if !viaMux {
		go serve(root)
		return root.Addr().String(), func() { root.Close() }
	}
	m := New(root)
	l := match(m)
	go serve(l)
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	return root.Addr().String(), func() {
		m.Close()
		root.Close()
		<-done
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkHTTP1NewConn measures an HTTP/1.1 request on a new connection
// each time, bare and through the mux.
func BenchmarkHTTP1NewConn(b *testing.B) {
	for _, viaMux := range []bool{false, true} {
		b.Run(map[bool]string{false: "bare", true: "mux"}[viaMux], func(b *testing.B) {
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			})}
			addr, stop := serveBareOrMux(b, viaMux,
				func(m CMux) net.Listener { m.Match(HTTP2()); return m.Match(HTTP1Fast()) },
				func(l net.Listener) { srv.Serve(l) })
			defer stop()
			defer srv.Close()
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + addr + "/"
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkDownload measures a 32 MiB file served by net/http
// (http.ServeContent, which uses sendfile through the connection's
// ReadFrom) over one keep-alive connection, bare and through the mux.
func BenchmarkDownload(b *testing.B) {
	const size = 32 << 20
	f, err := os.CreateTemp(b.TempDir(), "download")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("0123456789abcdef"), size/16)); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for _, viaMux := range []bool{false, true} {
		b.Run(map[bool]string{false: "bare", true: "mux"}[viaMux], func(b *testing.B) {
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeFile(w, r, f.Name())
			})}
			addr, stop := serveBareOrMux(b, viaMux,
				func(m CMux) net.Listener { return m.Match(HTTP1Fast()) },
				func(l net.Listener) { srv.Serve(l) })
			defer stop()
			defer srv.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + addr + "/"
			buf := make([]byte, 256<<10)
			b.SetBytes(size)
			b.ResetTimer()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if err != nil || n != size {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkRegexpTrickle measures Regexp on a client that sends 60,000
// bytes one at a time and never matches: the work must stay about linear
// in the bytes, not quadratic.
func BenchmarkRegexpTrickle(b *testing.B) {
	mt := Regexp(regexp.MustCompile(`[a-z]+\d`), 60000)
	flight := bytes.Repeat([]byte("a"), 60000)
	b.SetBytes(int64(len(flight)))
	for i := 0; i < b.N; i++ {
		if mt(iotest.OneByteReader(bytes.NewReader(flight))) {
			b.Fatal("matched")
		}
	}
}

// BenchmarkConnProxy is BenchmarkConn for connections that start with a
// PROXY version 2 header (with an AWS VPC endpoint TLV and a CRC32C) from a
// trusted source: the header alone, then the matchers on it.
func BenchmarkConnProxy(b *testing.B) {
	hdr := wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("198.51.100.7", "203.0.113.1", 40000, 443), true,
		wiretest.TLV{Type: 0xEA, Value: []byte("\x01vpce-0123456789abcdef0")})
	opt := ProxyProtocol(ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Required: true})
	only := func(mt Matcher) func(m CMux) net.Listener {
		return func(m CMux) net.Listener { return m.Match(mt) }
	}
	for _, c := range []struct {
		name  string
		setup func(m CMux) net.Listener
	}{
		{"HTTP1Fast", only(HTTP1Fast())},
		{"ProxyHeaderTLV", only(ProxyHeaderTLV(0xEA, "\x01vpce-0123456789abcdef0"))},
		{"ProxyAWSVPCEndpoint", only(ProxyAWSVPCEndpoint("vpce-0123456789abcdef0"))},
		{"RemoteAddrIn", only(RemoteAddrIn(netip.MustParsePrefix("198.51.100.0/24")))},
		{"RemoteAddrInAndHTTPHost", only(All(RemoteAddrIn(netip.MustParsePrefix("198.51.100.0/24")), HTTPHost("example.com")))},
	} {
		b.Run(c.name, func(b *testing.B) { benchMuxProxied(b, hdr, http1Flight, c.setup, opt) })
	}
}

// benchMuxProxied measures connections that send hdr, a PROXY header the
// mux consumes (or nothing), then flight, through a mux set up by setup,
// which returns the listener they must reach; the server reads flight.
func benchMuxProxied(b *testing.B, hdr, flight []byte, setup func(m CMux) net.Listener, opts ...Option) {
	b.Helper()
	root := newMemListener()
	m := NewWithOptions(root, opts...)
	want := setup(m)
	// Drain the other listeners.
	for _, l := range *m.(*cMux).lst.Load() {
		if l != want {
			go func() {
				for {
					if _, err := l.Accept(); err != nil {
						return
					}
				}
			}()
		}
	}
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	defer func() {
		m.Close()
		root.Close()
		<-done
	}()

	in := append(append([]byte(nil), hdr...), flight...)
	conns := make([]memConn, 64)
	rbuf := make([]byte, len(flight))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &conns[i%len(conns)]
		c.flight, c.off = in, 0
		root.connc <- c
		got, err := want.Accept()
		if err != nil {
			b.Fatal(err)
		}
		// Read what the server would read, which returns the buffer.
		if n, err := io.ReadFull(got, rbuf); err != nil || !bytes.Equal(rbuf[:n], flight) {
			b.Fatalf("read %q, %v", rbuf[:n], err)
		}
	}
}
