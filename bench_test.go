package cmux

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
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
func (c *memConn) RemoteAddr() net.Addr               { return memAddr{} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

type memAddr struct{}

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
func benchMux(b *testing.B, flight []byte, setup func(m CMux) net.Listener) {
	b.Helper()
	root := newMemListener()
	m := New(root)
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

	conns := make([]memConn, 64)
	rbuf := make([]byte, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(flight)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &conns[i%len(conns)]
		c.flight, c.off = flight, 0
		root.connc <- c
		got, err := want.Accept()
		if err != nil {
			b.Fatal(err)
		}
		// Read what the server would read, which returns the buffer.
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
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20}, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 16 << 20}); err != nil {
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
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkConn(b *testing.B) {
	only := func(mt Matcher) func(m CMux) net.Listener {
		return func(m CMux) net.Listener { return m.Match(mt) }
	}
	b.Run("HTTP1Fast", func(b *testing.B) { benchMux(b, http1Flight, only(HTTP1Fast())) })
	b.Run("HTTP2", func(b *testing.B) { benchMux(b, grpcFlight(b), only(HTTP2())) })
	b.Run("TLS", func(b *testing.B) { benchMux(b, tlsFlight, only(TLS())) })
	b.Run("PrefixMatcher", func(b *testing.B) { benchMux(b, http1Flight, only(PrefixMatcher("FOO", "GET /"))) })
	b.Run("HTTP1", func(b *testing.B) { benchMux(b, http1Flight, only(HTTP1())) })
	b.Run("HTTP1HeaderField", func(b *testing.B) {
		benchMux(b, http1Flight, only(HTTP1HeaderField("X-Tenant", "blue")))
	})
	b.Run("HTTP2HeaderField", func(b *testing.B) {
		benchMux(b, grpcFlight(b), func(m CMux) net.Listener {
			return m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
		})
	})
	b.Run("TwoHTTP2HeaderFields", func(b *testing.B) {
		benchMux(b, grpcFlight(b), func(m CMux) net.Listener {
			m.Match(HTTP2HeaderField("content-type", "application/other"))
			return m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
		})
	})
	b.Run("ThreeMissesThenAny", func(b *testing.B) {
		benchMux(b, http1Flight, func(m CMux) net.Listener {
			m.Match(HTTP2())
			m.Match(TLS())
			m.Match(PrefixMatcher("SSH-"))
			return m.Match(Any())
		})
	})
}
