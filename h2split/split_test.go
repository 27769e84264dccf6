//lint:file-ignore SA1019 the x/net HTTP/2 client is one of the clients the splitter must serve.

package h2split

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	unaryMethod  = "/h2split.test.Echo/Unary"
	serverMethod = "/h2split.test.Echo/Server"
	clientMethod = "/h2split.test.Echo/Client"
	bidiMethod   = "/h2split.test.Echo/Bidi"
)

var (
	serverDesc = &grpc.StreamDesc{StreamName: "Server", ServerStreams: true}
	clientDesc = &grpc.StreamDesc{StreamName: "Client", ClientStreams: true}
	bidiDesc   = &grpc.StreamDesc{StreamName: "Bidi", ServerStreams: true, ClientStreams: true}
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnary(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.grpcClient(t)
	ctx := ctxT(t, 10*time.Second)
	for i := range 50 {
		in := numbered(i, 100)
		var out []byte
		require.NoError(t, cc.Invoke(ctx, unaryMethod, &in, &out))
		require.Equal(t, in, out)
	}
	in := []byte("fail:7")
	var out []byte
	err := cc.Invoke(ctx, unaryMethod, &in, &out)
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
}

func TestGRPCStreaming(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.grpcClient(t)
	ctx := ctxT(t, 20*time.Second)

	t.Run("server", func(t *testing.T) {
		st, err := cc.NewStream(ctx, serverDesc, serverMethod)
		require.NoError(t, err)
		req := []byte("300:1000")
		require.NoError(t, st.SendMsg(&req))
		require.NoError(t, st.CloseSend())
		for i := range 300 {
			var m []byte
			require.NoError(t, st.RecvMsg(&m))
			require.Equal(t, numbered(i, 1000), m)
		}
		var m []byte
		require.Equal(t, io.EOF, st.RecvMsg(&m))
	})
	t.Run("client", func(t *testing.T) {
		st, err := cc.NewStream(ctx, clientDesc, clientMethod)
		require.NoError(t, err)
		for i := range 300 {
			m := numbered(i, 1000)
			require.NoError(t, st.SendMsg(&m))
		}
		require.NoError(t, st.CloseSend())
		var m []byte
		require.NoError(t, st.RecvMsg(&m))
		require.Equal(t, "300:300000", string(m))
	})
	t.Run("bidi", func(t *testing.T) {
		st, err := cc.NewStream(ctx, bidiDesc, bidiMethod)
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			for i := range 500 {
				m := numbered(i, 3000)
				if err := st.SendMsg(&m); err != nil {
					errc <- err
					return
				}
			}
			errc <- st.CloseSend()
		}()
		for i := range 500 {
			var m []byte
			require.NoError(t, st.RecvMsg(&m))
			require.Equal(t, numbered(i, 3000), m)
		}
		var m []byte
		require.Equal(t, io.EOF, st.RecvMsg(&m))
		require.NoError(t, <-errc)
	})
}

// Messages much larger than every window on the way: the client's, the
// splitter's and grpc-go's.
func TestGRPCLargeMessages(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{StreamWindow: 64 << 10, ConnWindow: 128 << 10})
	cc := e.grpcClient(t)
	ctx := ctxT(t, 20*time.Second)
	in := numbered(1, 3<<20)
	var out []byte
	require.NoError(t, cc.Invoke(ctx, unaryMethod, &in, &out))
	require.True(t, bytes.Equal(in, out), "3 MiB echo differs")

	st, err := cc.NewStream(ctx, bidiDesc, bidiMethod)
	require.NoError(t, err)
	for i := range 4 {
		m := numbered(i, 1<<20+i)
		require.NoError(t, st.SendMsg(&m))
		var got []byte
		require.NoError(t, st.RecvMsg(&got))
		require.True(t, bytes.Equal(m, got), "message %d differs", i)
	}
	require.NoError(t, st.CloseSend())
}

func TestGRPCDeadlineAndCancel(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.grpcClient(t)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	in := []byte("sleep")
	var out []byte
	err := cc.Invoke(ctx, unaryMethod, &in, &out)
	cancel()
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err))

	// Cancel a bidi stream with data in flight both ways.
	ctx, cancel = context.WithCancel(context.Background())
	st, err := cc.NewStream(ctx, bidiDesc, bidiMethod)
	require.NoError(t, err)
	sent := make(chan error, 1)
	go func() {
		for i := range 1000 {
			m := numbered(i, 100<<10)
			if err := st.SendMsg(&m); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var m []byte
	require.NoError(t, st.RecvMsg(&m))
	cancel()
	<-sent
	err = st.RecvMsg(&m)
	for err == nil {
		err = st.RecvMsg(&m)
	}
	assert.Equal(t, codes.Canceled, status.Code(err))

	// The connection still works.
	in = []byte("after")
	require.NoError(t, cc.Invoke(ctxT(t, 5*time.Second), unaryMethod, &in, &out))
	assert.Equal(t, "after", string(out))
}

func TestRESTXNet(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	cc := e.h2Conn(t)
	get := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", "http://"+e.addr+path, nil)
		resp, err := cc.RoundTrip(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		return resp, b
	}
	resp, b := get("/")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello from net/http\n", string(b))
	assert.Equal(t, "/", resp.Header.Get("x-path"))

	_, b = get("/big?n=3000000")
	assert.True(t, bytes.Equal(numbered(7, 3000000), b))

	body := numbered(3, 2<<20)
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/echo", bytes.NewReader(body))
	resp, err := cc.RoundTrip(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.True(t, bytes.Equal(body, got), "echo differs")

	// Trailers both ways.
	req, _ = http.NewRequest("POST", "http://"+e.addr+"/trailer", nil)
	req.Trailer = http.Header{"X-Req": nil}
	req.ContentLength = -1
	req.Body = &trailerBody{Reader: strings.NewReader("12345"), req: req}
	resp, err = cc.RoundTrip(req)
	require.NoError(t, err)
	io.ReadAll(resp.Body) //nolint:errcheck
	resp.Body.Close()
	assert.Equal(t, "5", resp.Trailer.Get("x-sum"))
	assert.Equal(t, "sent last", resp.Header.Get("x-request-trailer"))
}

// grpcFrame is one length-prefixed gRPC message.
func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

// readGRPC reads the messages of a gRPC response body.
func readGRPC(r io.Reader) ([][]byte, error) {
	var msgs [][]byte
	for {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err == io.EOF {
			return msgs, nil
		} else if err != nil {
			return msgs, err
		}
		m := make([]byte, binary.BigEndian.Uint32(h[1:]))
		if _, err := io.ReadFull(r, m); err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// grpcOverH2 makes a gRPC call by hand on a shared x/net connection.
func grpcOverH2(cc *http2.ClientConn, addr, method string, body io.Reader) ([][]byte, http.Header, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+method, body)
	req.Header.Set("content-type", "application/grpc+raw")
	req.Header.Set("te", "trailers")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	msgs, err := readGRPC(resp.Body)
	return msgs, resp.Trailer, err
}

// 64 concurrent streams, gRPC (unary, server streaming, bidi) and REST,
// on one client connection: nothing lost, nothing reordered.
func TestSharedConnectionMixed(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{StreamWindow: 64 << 10, ConnWindow: 256 << 10})
	cc := e.h2Conn(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- mixedCall(cc, e.addr, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

func mixedCall(cc *http2.ClientConn, addr string, i int) error {
	switch i % 4 {
	case 0: // gRPC unary
		msg := numbered(i, 1000+i*97)
		msgs, tr, err := grpcOverH2(cc, addr, unaryMethod, bytes.NewReader(grpcFrame(msg)))
		if err != nil {
			return err
		}
		if len(msgs) != 1 || !bytes.Equal(msgs[0], msg) || tr.Get("grpc-status") != "0" {
			return fmt.Errorf("unary %d: %d msgs, status %q", i, len(msgs), tr.Get("grpc-status"))
		}
	case 1: // gRPC server streaming
		msgs, tr, err := grpcOverH2(cc, addr, serverMethod, bytes.NewReader(grpcFrame([]byte("100:2000"))))
		if err != nil {
			return err
		}
		if len(msgs) != 100 || tr.Get("grpc-status") != "0" {
			return fmt.Errorf("server stream %d: %d msgs, status %q", i, len(msgs), tr.Get("grpc-status"))
		}
		for j, m := range msgs {
			if !bytes.Equal(m, numbered(j, 2000)) {
				return fmt.Errorf("server stream %d: message %d differs", i, j)
			}
		}
	case 2: // gRPC bidi, request streamed through a pipe
		pr, pw := io.Pipe()
		go func() {
			for j := range 50 {
				pw.Write(grpcFrame(numbered(j, 5000))) //nolint:errcheck
			}
			pw.Close()
		}()
		msgs, tr, err := grpcOverH2(cc, addr, bidiMethod, pr)
		if err != nil {
			return err
		}
		if len(msgs) != 50 || tr.Get("grpc-status") != "0" {
			return fmt.Errorf("bidi %d: %d msgs, status %q", i, len(msgs), tr.Get("grpc-status"))
		}
		for j, m := range msgs {
			if !bytes.Equal(m, numbered(j, 5000)) {
				return fmt.Errorf("bidi %d: message %d differs", i, j)
			}
		}
	case 3: // REST echo
		body := numbered(i, 100000+i)
		req, _ := http.NewRequest("POST", "http://"+addr+"/echo", bytes.NewReader(body))
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if !bytes.Equal(got, body) {
			return fmt.Errorf("rest %d: echo differs (%d bytes)", i, len(got))
		}
	}
	return nil
}

// Header blocks larger than a frame, both ways (CONTINUATION), and one
// larger than the splitter's MaxHeaderListSize (431).
func TestLargeHeaders(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{MaxHeaderListSize: 200 << 10})
	cc := e.h2Conn(t)
	big := strings.Repeat("0123456789abcdef", 5000) // 80 KB
	req, _ := http.NewRequest("GET", "http://"+e.addr+"/header", nil)
	req.Header.Set("x-big", big)
	resp, err := cc.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, big, resp.Header.Get("x-big"))

	// x/net's client keeps to the advertised limit itself; a raw client
	// does not. (A single field longer than the limit is a connection
	// error, COMPRESSION_ERROR, as in x/net's server.)
	nc, fr := rawClient(t, e.addr)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/header"}, {"x-big1", big}, {"x-big2", big}, {"x-big3", big}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]}) //nolint:errcheck
	}
	block := hb.Bytes()
	require.NoError(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:16000], EndStream: true}))
	for block = block[16000:]; len(block) > 0; {
		n := min(len(block), 16000)
		require.NoError(t, fr.WriteContinuation(1, n == len(block), block[:n]))
		block = block[n:]
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	for {
		f, err := fr.ReadFrame()
		require.NoError(t, err)
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			assert.Equal(t, "431", mh.PseudoValue("status"))
			assert.True(t, mh.StreamEnded())
			return
		}
	}
}

// trailerBody sets the request's trailer once its body is read.
type trailerBody struct {
	io.Reader
	req *http.Request
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		b.req.Trailer.Set("X-Req", "sent last")
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }
