//lint:file-ignore SA1019 the x/net HTTP/2 client is one of the clients the splitter must serve.

package h2split

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Shutdown: GOAWAY to the client, the stream in flight finishes, then
// everything closes.
func TestShutdownGraceful(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.grpcClient(t)
	ctx := ctxT(t, 20*time.Second)
	st, err := cc.NewStream(ctx, bidiDesc, bidiMethod)
	require.NoError(t, err)
	exchange := func(i int) {
		m := numbered(i, 1000)
		require.NoError(t, st.SendMsg(&m))
		var got []byte
		require.NoError(t, st.RecvMsg(&got))
		require.Equal(t, m, got)
	}
	exchange(0)
	done := make(chan error, 1)
	go func() { done <- e.split.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond)
	for i := 1; i < 20; i++ {
		exchange(i)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a stream in flight", err)
	default:
	}
	require.NoError(t, st.CloseSend())
	var m []byte
	require.Equal(t, io.EOF, st.RecvMsg(&m))
	require.NoError(t, <-done)
	_, err = net.DialTimeout("tcp", e.addr, time.Second)
	assert.Error(t, err, "the splitter still accepts connections")
}

// A backend that stops: its streams fail, the other backend's streams on
// the same client connection go on.
func TestBackendStops(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.h2Conn(t)
	rest := func() {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+e.addr+"/echo", bytes.NewReader([]byte("still here")))
		resp, err := cc.RoundTrip(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, "still here", string(b))
	}
	msgs, _, err := grpcOverH2(cc, e.addr, unaryMethod, bytes.NewReader(grpcFrame([]byte("x"))))
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	rest()

	// GracefulStop with a stream in flight: the backend sends GOAWAY, the
	// stream finishes, new gRPC streams are refused.
	pr, pw := io.Pipe()
	type result struct {
		msgs [][]byte
		err  error
	}
	res := make(chan result, 1)
	go func() {
		m, _, err := grpcOverH2(cc, e.addr, bidiMethod, pr)
		res <- result{m, err}
	}()
	pw.Write(grpcFrame([]byte("one"))) //nolint:errcheck
	time.Sleep(50 * time.Millisecond)
	stopped := make(chan struct{})
	go func() { e.grpc.GracefulStop(); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	rest()
	pw.Write(grpcFrame([]byte("two"))) //nolint:errcheck
	pw.Close()
	r := <-res
	require.NoError(t, r.err)
	require.Len(t, r.msgs, 2)
	<-stopped

	_, _, err = grpcOverH2(cc, e.addr, unaryMethod, bytes.NewReader(grpcFrame([]byte("x"))))
	assert.Error(t, err, "a gRPC call succeeded with grpc-go stopped")
	rest()
}

// buffered is the number of DATA bytes the splitter holds for all its
// connections.
func (s *Splitter) buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		c.mu.Lock()
		for _, st := range c.streams {
			for _, h := range []*half{&st.up, &st.down} {
				for _, o := range h.q {
					n += len(o.data)
				}
			}
		}
		c.mu.Unlock()
	}
	return n
}

// A client that reads nothing: the splitter holds no more than the
// stream windows it advertised, however much the backend has to send.
func TestBoundedBuffering(t *testing.T) {
	testcheck.CheckLeaks(t)
	cfg := Config{StreamWindow: 64 << 10, ConnWindow: 128 << 10}
	e := start(t, cfg)
	nc, fr := rawClient(t, e.addr)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i, path := range []string{"/big?n=8000000", "/big?n=8000000", "/big?n=8000000"} {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}) //nolint:errcheck
		}
		require.NoError(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}))
	}
	// Read what comes (the client's windows, 64 KiB in all), never
	// granting more.
	go io.Copy(io.Discard, nc) //nolint:errcheck
	peak := e.peakBuffered(t)
	assert.Greater(t, peak, 0)
	assert.LessOrEqual(t, peak, 3*int(cfg.StreamWindow))
}

// The request direction: a handler that never reads its body.
func TestBoundedBufferingUpload(t *testing.T) {
	testcheck.CheckLeaks(t)
	cfg := Config{StreamWindow: 64 << 10, ConnWindow: 128 << 10}
	e := start(t, cfg)
	cc := e.h2Conn(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 4 {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+e.addr+"/hold", io.LimitReader(zeros{}, 64<<20))
		go func() {
			if resp, err := cc.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	peak := e.peakBuffered(t)
	assert.Greater(t, peak, 0)
	assert.LessOrEqual(t, peak, 4*int(cfg.StreamWindow))
	cancel()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A backend allowing fewer concurrent streams than the client opens: the
// splitter holds the rest until the backend has room, rather than having
// them refused.
func TestBackendStreamLimit(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := startWith(t, Config{}, func(s *http.Server) {
		s.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2}
	})
	cc := e.h2Conn(t)
	// Let the backend connection and its SETTINGS come first.
	req, _ := http.NewRequest("GET", "http://"+e.addr+"/", nil)
	resp, err := cc.RoundTrip(req)
	require.NoError(t, err)
	io.ReadAll(resp.Body) //nolint:errcheck
	resp.Body.Close()

	errs := make(chan error, 32)
	for i := range 32 {
		go func() { errs <- mixedCall(cc, e.addr, 3+4*i) }() // REST echo
	}
	for range 32 {
		assert.NoError(t, <-errs)
	}
}

// grpc-go ends its connections by age (GOAWAY): the splitter finishes
// what runs there and opens new backend connections for later streams,
// while the client keeps its one connection.
func TestBackendConnectionAge(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := startWith(t, Config{}, nil, grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionAge: 50 * time.Millisecond, MaxConnectionAgeGrace: time.Second}))
	cc := e.grpcClient(t)
	ctx := ctxT(t, 20*time.Second)
	deadline := time.Now().Add(600 * time.Millisecond)
	calls := 0
	for time.Now().Before(deadline) && calls < 5000 {
		in := numbered(calls, 50)
		var out []byte
		require.NoError(t, cc.Invoke(ctx, unaryMethod, &in, &out), "call %d", calls)
		require.Equal(t, in, out)
		calls++
		time.Sleep(time.Millisecond)
	}
	e.split.mu.Lock()
	n := len(e.split.conns)
	e.split.mu.Unlock()
	assert.Equal(t, 1, n, "client connections")
	assert.Greater(t, e.split.backendConns.Load(), int64(3), "backend connections")
	t.Logf("%d calls over %d backend connections", calls, e.split.backendConns.Load())
}

// rawRequest opens stream id on a raw client connection.
func rawRequest(t *testing.T, fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer, id uint32, end bool, kv ...string) {
	t.Helper()
	hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}) //nolint:errcheck
	}
	require.NoError(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: end, EndHeaders: true}))
}

// A client that vanishes mid-stream: the backends' handlers are
// cancelled and every goroutine ends (CheckLeaks).
func TestClientVanishes(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	nc, fr := rawClient(t, e.addr)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	rawRequest(t, fr, enc, &hb, 1, false, ":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/hold")
	rawRequest(t, fr, enc, &hb, 3, false, ":method", "POST", ":scheme", "http", ":authority", "x", ":path", unaryMethod,
		"content-type", "application/grpc", "te", "trailers")
	require.NoError(t, fr.WriteData(3, true, grpcFrame([]byte("sleep"))))
	require.NoError(t, fr.WriteData(1, false, []byte("partial body")))
	time.Sleep(100 * time.Millisecond)
	nc.Close()
}

// Shutdown whose context ends before the streams do: the connections are
// closed and Shutdown reports the context's error.
func TestShutdownTimeout(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.h2Conn(t)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+e.addr+"/hold", io.LimitReader(zeros{}, 10))
		if resp, err := cc.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.ErrorIs(t, e.split.Shutdown(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// A client sending PINGs without reading the ACKs is cut off, not given
// an ever longer queue.
func TestPingFlood(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	// net.Pipe buffers nothing: the ACKs back up in the splitter at once.
	nc, sc := net.Pipe()
	defer nc.Close()
	served := make(chan error, 1)
	go func() { served <- e.split.ServeConn(sc) }()
	fr := rawStart(t, nc)
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	for i := range 1000000 {
		if fr.WritePing(false, [8]byte{byte(i)}) != nil {
			break // the splitter gave up on us
		}
	}
	select {
	case err := <-served:
		assert.ErrorIs(t, err, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm))
	case <-time.After(10 * time.Second):
		t.Fatalf("the splitter kept the flooding connection:\n%s", strings.Join(testcheck.GoroutineStacks(), "\n\n"))
	}
}

// IdleTimeout: a connection without streams is closed; one with a long
// stream is not.
func TestIdleTimeout(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{IdleTimeout: 100 * time.Millisecond})
	busy := e.grpcClient(t)
	st, err := busy.NewStream(ctxT(t, 10*time.Second), bidiDesc, bidiMethod)
	require.NoError(t, err)
	m := []byte("x")
	require.NoError(t, st.SendMsg(&m))
	require.NoError(t, st.RecvMsg(&m))

	idle := e.h2Conn(t)
	req, _ := http.NewRequest("GET", "http://"+e.addr+"/", nil)
	resp, err := idle.RoundTrip(req)
	require.NoError(t, err)
	io.ReadAll(resp.Body) //nolint:errcheck
	resp.Body.Close()
	assert.Eventually(t, func() bool { return idle.State().Closed }, 5*time.Second, 10*time.Millisecond)

	time.Sleep(200 * time.Millisecond)
	require.NoError(t, st.SendMsg(&m), "the busy connection was closed")
	require.NoError(t, st.RecvMsg(&m))
	require.NoError(t, st.CloseSend())
}

// A backend Listener nobody serves: its streams are refused after
// acceptTimeout rather than left hanging.
func TestBackendNeverAccepts(t *testing.T) {
	testcheck.CheckLeaks(t)
	defer func(d time.Duration) { acceptTimeout = d }(acceptTimeout)
	acceptTimeout = 100 * time.Millisecond
	s := New(Config{})
	s.Listener(GRPC) // asked for, never served
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() { s.Serve(l); close(served) }() //nolint:errcheck
	defer func() { s.Close(); <-served }()
	e := &env{addr: l.Addr().String(), split: s}
	cc := e.h2Conn(t)
	start := time.Now()
	_, _, err = grpcOverH2(cc, e.addr, unaryMethod, bytes.NewReader(grpcFrame([]byte("x"))))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "REFUSED_STREAM")
	assert.Less(t, time.Since(start), 5*time.Second)
	// Other: never asked for, refused at once.
	req, _ := http.NewRequest("GET", "http://"+e.addr+"/", nil)
	_, err = cc.RoundTrip(req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "REFUSED_STREAM")
}

// A client's GOAWAY with no stream open leaves the connection usable for a
// while (RFC 9113 §6.8): a PING sent after it is answered, and only then
// does the connection close, with a FIN. The splitter used to close at
// once, so that the PING met a reset.
func TestClientGoAwayThenPing(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	nc, fr := rawClient(t, e.addr)
	require.NoError(t, fr.WriteGoAway(0, http2.ErrCode(0xff), nil))
	// Time for the splitter to act on the GOAWAY before the PING.
	time.Sleep(100 * time.Millisecond)
	data := [8]byte{'c', 'm', 'u', 'x'}
	require.NoError(t, fr.WritePing(false, data))

	require.NoError(t, nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	acked := false
	for i := 0; i < 100; i++ {
		f, err := fr.ReadFrame()
		if err != nil {
			assert.True(t, acked, "the connection ended before the PING's ACK: %v", err)
			assert.ErrorIs(t, err, io.EOF, "the connection was not closed cleanly")
			return
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			assert.Equal(t, data, p.Data)
			acked = true
		}
	}
	t.Fatal("too many frames")
}

// rawClient starts an HTTP/2 connection to addr by hand: the preface and an
// empty SETTINGS, nothing read. The cleanup closes it.
func rawClient(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return nc, rawStart(t, nc)
}

// rawStart writes the client preface and an empty SETTINGS on nc.
func rawStart(t *testing.T, nc net.Conn) *http2.Framer {
	t.Helper()
	fr := http2.NewFramer(nc, nc)
	_, err := nc.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	require.NoError(t, fr.WriteSettings())
	return fr
}

// peakBuffered samples what the splitter buffers every 10 ms for 300 ms and
// returns the most.
func (e *env) peakBuffered(t *testing.T) int {
	peak := 0
	for range 30 {
		time.Sleep(10 * time.Millisecond)
		peak = max(peak, e.split.buffered())
	}
	t.Logf("peak buffered: %d bytes", peak)
	return peak
}
