package cmux

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest/h2frame"
	"golang.org/x/net/http2/hpack"

	"github.com/cmux-go/cmux/internal/h2"
	ihpack "github.com/cmux-go/cmux/internal/hpack"
)

// A writer matcher that wraps the mux's reader but passes the mux's writer
// on still writes the mux's SETTINGS once, and its ACK never reaches the
// server that gets the connection.
func TestWrappedReaderWriterMatcherAckFiltered(t *testing.T) {
	checkLeaks(t)
	root, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer root.Close()
	m := NewWithOptions(root, MatchTimeout(5*time.Second))
	inner := HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")
	m.MatchWithWriters(
		func(w io.Writer, r io.Reader) bool { return inner(w, io.MultiReader(r)) },
		func(w io.Writer, r io.Reader) bool { return inner(w, io.MultiReader(r)) },
	)
	anyL := m.Match(Any())
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	defer func() {
		m.Close()
		<-served
	}()

	c, err := net.Dial("tcp", root.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, h2frame.ClientPreface)
	require.NoError(t, err)
	fr := h2frame.NewFramer(c, c)
	require.NoError(t, fr.WriteSettings())
	// The client waits for the server's SETTINGS: the mux's, once.
	got := make([]byte, len(h2.MuxSettings))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, h2.MuxSettings, got)

	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	require.NoError(t, enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"}))
	require.NoError(t, enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain"}))
	require.NoError(t, fr.WriteSettingsAck())
	require.NoError(t, fr.WriteHeaders(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}))
	require.NoError(t, c.(*net.TCPConn).CloseWrite())

	sc, err := anyL.Accept()
	require.NoError(t, err)
	defer sc.Close()
	require.NoError(t, sc.SetReadDeadline(time.Now().Add(5*time.Second)))
	stream, err := io.ReadAll(sc)
	require.NoError(t, err)
	// The server reads the preface, the client's SETTINGS and the HEADERS:
	// no ACK.
	sfr := h2frame.NewFramer(nil, bytes.NewReader(stream[len(h2frame.ClientPreface):]))
	var types []h2frame.FrameType
	for {
		f, err := sfr.ReadFrame()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if sf, ok := f.(*h2frame.SettingsFrame); ok {
			require.False(t, sf.IsAck(), "the client's ACK of the mux's SETTINGS reached the server")
		}
		types = append(types, f.Header().Type)
	}
	require.Equal(t, []h2frame.FrameType{h2frame.FrameSettings, h2frame.FrameHeaders}, types)
	// Nothing more from the mux.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	n, _ := c.Read(got)
	require.Zero(t, n)
}

// A header block with more fields than the decoder keeps still matches on
// the fields it kept.
func TestHTTP2HeaderFieldManyFields(t *testing.T) {
	var flight bytes.Buffer
	flight.WriteString(h2frame.ClientPreface)
	fr := h2frame.NewFramer(&flight, nil)
	require.NoError(t, fr.WriteSettings())
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	require.NoError(t, enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"}))
	for range ihpack.MaxFields + 50 {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: "x", Value: "y"}))
	}
	require.NoError(t, fr.WriteHeaders(h2frame.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}))
	require.True(t, HTTP2HeaderField("content-type", "application/grpc")(bytes.NewReader(flight.Bytes())))
	require.False(t, HTTP2HeaderField("content-type", "text/plain")(bytes.NewReader(flight.Bytes())))
}

// nilOnceListener returns a nil connection without an error once, then
// what its embedded listener accepts.
type nilOnceListener struct {
	net.Listener
	once atomic.Bool
}

func (l *nilOnceListener) Accept() (net.Conn, error) {
	if l.once.CompareAndSwap(false, true) {
		return nil, nil
	}
	return l.Listener.Accept()
}

// A root listener that returns a nil connection is reported and retried,
// not dereferenced.
func TestRootAcceptNilConn(t *testing.T) {
	checkLeaks(t)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tl.Close()
	m := New(&nilOnceListener{Listener: tl})
	errs := make(chan error, 10)
	m.HandleError(func(err error) bool { errs <- err; return true })
	l := m.Match(Any())
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	defer func() {
		m.Close()
		<-served
	}()
	c, err := net.Dial("tcp", tl.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	sc, err := l.Accept()
	require.NoError(t, err)
	sc.Close()
	select {
	case err := <-errs:
		require.ErrorIs(t, err, errNilConn)
	case <-time.After(5 * time.Second):
		t.Fatal("the nil connection was not reported")
	}
}

// deafListener has SetDeadline, but its Accept does not heed it.
type deafListener struct {
	net.Listener
	release chan struct{}
}

func (l *deafListener) Accept() (net.Conn, error) {
	<-l.release
	return nil, net.ErrClosed
}

func (l *deafListener) SetDeadline(time.Time) error { return nil }

// Close makes Serve return even when the root listener's Accept cannot be
// interrupted; the accept loop ends when the listener does.
func TestCloseWithDeafListener(t *testing.T) {
	checkLeaks(t)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tl.Close()
	dl := &deafListener{Listener: tl, release: make(chan struct{})}
	defer close(dl.release)
	m := New(dl)
	m.Match(Any())
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	time.Sleep(20 * time.Millisecond)
	m.Close()
	select {
	case err := <-served:
		require.ErrorIs(t, err, ErrServerClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

// gatedListener's Accept returns a connection only once gate is closed.
type gatedListener struct {
	net.Listener
	gate <-chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		<-l.gate
	}
	return c, err
}

// A matcher that needs no bytes decides without the mux reading the
// socket, even when the first flight is there already: as with v0.1.5, the
// embedded Conn of what Any delivers reads every byte the client sent.
// (The accept loop used to read what was there before running Any.)
func TestAnyLeavesSocketUnread(t *testing.T) {
	checkLeaks(t)
	root := listenLoopback(t)
	written := make(chan struct{})
	m := New(gatedListener{root, written})
	l := m.Match(Any())
	serveMux(t, m, root)

	client := dialTCP(t, root.Addr().String())
	_, err := client.Write([]byte("hello"))
	require.NoError(t, err)
	// On loopback the bytes are in the server's socket when Write
	// returns; give a slow kernel a moment all the same.
	time.Sleep(20 * time.Millisecond)
	close(written)

	c, err := l.Accept()
	require.NoError(t, err)
	defer c.Close()
	mc, ok := c.(*MuxConn)
	require.True(t, ok, "delivered a %T", c)
	require.NoError(t, mc.Conn.SetReadDeadline(time.Now().Add(2*time.Second)))
	buf := make([]byte, 16)
	n, err := mc.Conn.Read(buf)
	require.NoError(t, err, "the mux read the bytes")
	assert.Equal(t, "hello", string(buf[:n]))
}

// ipPipe is the server end of a net.Pipe with an IP remote address, so that
// a PROXY header on it can be trusted.
type ipPipe struct{ net.Conn }

func (ipPipe) RemoteAddr() net.Addr { return memRemote }

// A PROXY header longer than MuxConn.first that arrives alone, on a
// connection that is not a socket, leaves an empty pooled buffer once
// consumed; the bytes after it must go on in that buffer. The mux used to
// read them into MuxConn.first beside it, and panicked (a matcher panic,
// the connection dropped) when a matcher then wanted more than that held
// with a sniff limit of one buffer class.
func TestProxyHeaderAloneThenFlightNotSocket(t *testing.T) {
	checkLeaks(t)
	ml := newMemListener()
	m := NewWithOptions(ml, MaxSniffBytes(1024),
		ProxyProtocol(ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}))
	errs := errorChan(m, 10)
	l := m.Match(HTTP1HeaderField("X-Want", "yes"))
	serveMux(t, m, ml)
	accepted := acceptChan(t, l)

	client, server := net.Pipe()
	defer client.Close()
	ml.connc <- ipPipe{server}
	// net.Pipe's Write returns once every byte is read: the header is
	// read alone, in two reads, before the flight is written.
	header := "PROXY TCP4 198.51.100.7 203.0.113.9 40000 443\r\n"
	flight := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789\r\nX-Want: yes\r\n\r\n"
	wrote := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(client, header); err != nil {
			wrote <- err
			return
		}
		_, err := io.WriteString(client, flight)
		wrote <- err
	}()
	select {
	case dc := <-accepted:
		defer dc.Close()
		assert.Equal(t, flight, readN(t, dc, len(flight)))
	case err := <-errs:
		t.Fatalf("not delivered: %v", err)
	case <-time.After(waitFor):
		t.Fatal("not delivered")
	}
	require.NoError(t, <-wrote)
}
