package cmuxgrpc

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/internal/testcheck"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
)

var assert, require = testcheck.Assert, testcheck.Require

// serveGRPC serves the health service with grpc-go on a mux listening on
// 127.0.0.1, through Listener, next to a catch-all listener; it returns
// the address. Everything stops when the test ends, in the order of a
// program's shutdown: the gRPC server, then the mux.
func serveGRPC(t *testing.T, opts ...cmux.Option) string {
	t.Helper()
	root, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := cmux.NewWithOptions(root, opts...)
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	other := m.Match(cmux.Any())
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 2)
	go func() { served <- srv.Serve(Listener(grpcL)) }()
	go func() { served <- m.Serve() }()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		srv.Stop()
		m.Close()
		for range 2 {
			select {
			case <-served:
			case <-time.After(5 * time.Second):
				t.Error("Serve did not return")
				return
			}
		}
	})
	return root.Addr().String()
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestGRPCReadsOnReady: grpc-go reads the connections Listener gives it
// through ReadOnReady, first the bytes the mux sniffed, then from the
// socket; unary and streaming calls work, and the connection is the mux's.
// If grpc-go stops looking for ReadOnReady, this test fails: the idle
// connection then pins a read buffer again.
func TestGRPCReadsOnReady(t *testing.T) {
	testcheck.CheckLeaks(t)
	var calls atomic.Int64
	testHookReadOnReady = func() { calls.Add(1) }
	t.Cleanup(func() { testHookReadOnReady = nil })

	addr := serveGRPC(t)
	cc := dialGRPC(t, addr)
	client := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		var p peer.Peer
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	}
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	resp, err := stream.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	assert.True(t, calls.Load() >= 4, "grpc-go read through ReadOnReady %d times", calls.Load())
	cancel()
}

// TestConnUnchanged: what is not a mux's connection over a socket is
// returned as it is.
func TestConnUnchanged(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	assert.Equal(t, a, Conn(a))
	mc := &cmux.MuxConn{Conn: a}
	assert.Equal(t, net.Conn(mc), Conn(mc))
}

// TestProxyHeaderThroughConn: the PROXY protocol header the mux consumed
// is still found, and RemoteAddr is still the client's, on the connection
// Listener returns.
func TestProxyHeaderThroughConn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections are returned unchanged")
	}
	testcheck.CheckLeaks(t)
	root, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := cmux.NewWithOptions(root, cmux.ProxyProtocol(cmux.ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	l := Listener(m.Match(cmux.Any()))
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	defer func() {
		m.Close()
		<-done
	}()

	c, err := net.Dial("tcp", root.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("PROXY TCP4 192.0.2.7 192.0.2.1 40000 443\r\nhello"))
	require.NoError(t, err)
	dc, err := l.Accept()
	require.NoError(t, err)
	defer dc.Close()
	_, ok := dc.(interface {
		ReadOnReady(int, mem.BufferPool) (*[]byte, int, error)
	})
	assert.True(t, ok, "%T has no ReadOnReady", dc)
	info, ok := cmux.ProxyHeader(dc)
	require.True(t, ok)
	assert.Equal(t, "192.0.2.7:40000", info.Source.String())
	assert.Equal(t, "192.0.2.7:40000", dc.RemoteAddr().String())

	// Replayed bytes, then live ones, through ReadOnReady.
	rr := dc.(interface {
		ReadOnReady(int, mem.BufferPool) (*[]byte, int, error)
	})
	pool := mem.DefaultBufferPool()
	buf, n, err := rr.ReadOnReady(64, pool)
	require.NoError(t, err)
	assert.Equal(t, "hello", string((*buf)[:n]))
	pool.Put(buf)
	_, err = c.Write([]byte(" world"))
	require.NoError(t, err)
	buf, n, err = rr.ReadOnReady(64, pool)
	require.NoError(t, err)
	assert.Equal(t, " world", string((*buf)[:n]))
	pool.Put(buf)

	// A deadline ends a wait; closing the client gives EOF.
	require.NoError(t, dc.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, _, err = rr.ReadOnReady(64, pool)
	assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "got %v", err)
	require.NoError(t, dc.SetReadDeadline(time.Time{}))
	c.Close()
	_, _, err = rr.ReadOnReady(64, pool)
	assert.True(t, errors.Is(err, io.EOF), "got %v", err)
}

// TestGracefulStopThroughListener: the shutdown of a real program,
// GracefulStop with a server-streaming call in flight, then the mux's
// Close, completes through Listener: the call ends cleanly, every Serve
// returns, nothing leaks.
func TestGracefulStopThroughListener(t *testing.T) {
	testcheck.CheckLeaks(t)
	root, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := cmux.New(root)
	grpcL := Listener(m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc")))
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	grpcDone := make(chan error, 1)
	muxDone := make(chan error, 1)
	go func() { grpcDone <- srv.Serve(grpcL) }()
	go func() { muxDone <- m.Serve() }()

	cc := dialGRPC(t, root.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	resp, err := stream.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

	// GracefulStop waits for the stream: the health server's Shutdown
	// sends NOT_SERVING, and the client's cancel ends the call.
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	hs.Shutdown()
	resp, err = stream.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus())
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop did not return")
	}
	select {
	case err := <-grpcDone:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("grpc Serve did not return")
	}
	// GracefulStop closed the child listener, which closes the root.
	select {
	case <-muxDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the mux's Serve did not return")
	}
	cc.Close()
}
