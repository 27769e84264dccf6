package e2e

//lint:file-ignore SA1019 the tests drive the x/net/http2 server and client on purpose: users run them, and the mux must work with them.

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

	"github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
)

// gRPC and REST on one HTTP/2 connection (moved from the root module's
// protocols_test.go).

// prWait bounds every wait of these tests.
const prWait = 10 * time.Second

// prGRPCOrREST sends gRPC requests to gs and the others to rest.
func prGRPCOrREST(gs *grpc.Server, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// prH2Conn is one client HTTP/2 connection (h2c, prior knowledge).
type prH2Conn struct {
	cc   *http2.ClientConn
	addr string
}

func prDialH2(t *testing.T, addr string) *prH2Conn {
	t.Helper()
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(dialTCP(t, addr, prWait))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return &prH2Conn{cc: cc, addr: addr}
}

// health sends grpc.health.v1.Health/Check as a raw gRPC request: a
// length-prefixed protobuf message, the status in the trailers.
func (h *prH2Conn) health(t *testing.T) (*http.Response, *healthpb.HealthCheckResponse) {
	t.Helper()
	codec := encoding.GetCodecV2(proto.Name)
	msg, err := codec.Marshal(&healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(msg.Len()))
	body = append(body, msg.Materialize()...)
	req, err := http.NewRequest(http.MethodPost, "http://"+h.addr+"/grpc.health.v1.Health/Check", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := h.cc.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.Header.Get("Content-Type") != "application/grpc" || len(b) < 5 {
		return resp, nil
	}
	require.Equal(t, byte(0), b[0], "uncompressed")
	require.Equal(t, int(binary.BigEndian.Uint32(b[1:5])), len(b)-5, "message length")
	var out healthpb.HealthCheckResponse
	require.NoError(t, codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[5:])}, &out))
	return resp, &out
}

func (h *prH2Conn) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+h.addr+path, nil)
	require.NoError(t, err)
	resp, err := h.cc.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestGRPCRESTOneConnection(t *testing.T) {
	checkLeaks(t)
	l := listenLoopback(t)
	m := cmux.New(l)
	h2L := m.Match(cmux.HTTP2())
	serveMux(t, m, l)

	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	t.Cleanup(gs.Stop)
	var mu sync.Mutex
	peers := map[string]int{} // remote address -> requests
	rest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "REST %s over %s", r.URL.Path, r.Proto)
	})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers[r.RemoteAddr]++
		mu.Unlock()
		prGRPCOrREST(gs, rest).ServeHTTP(w, r)
	})}
	serveHTTP(t, h2L, hs)
	addr := l.Addr().String()

	// One HTTP/2 connection, as a proxy would use it: gRPC and REST
	// requests interleaved.
	h := prDialH2(t, addr)
	for range 3 {
		resp, hc := h.health(t)
		require.NotNil(t, hc, "gRPC response %v", resp.Status)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())
		assert.Equal(t, "0", resp.Trailer.Get("Grpc-Status"))
		code, body := h.get(t, "/hello")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "REST /hello over HTTP/2.0", body)
	}
	mu.Lock()
	assert.Len(t, peers, 1, "requests came on one connection: %v", peers)
	mu.Unlock()

	// A grpc-go client on its own connections, on the same port.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), prWait)
	defer cancel()
	hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.GetStatus())
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	assert.Error(t, err, "unknown service")
}

// Why the handler: a connection-level split sends the whole connection
// where its first request belongs, and the native gRPC server refuses the
// REST requests a proxy later sends on it.
func TestGRPCRESTNativeSplitRefusesMixedConnection(t *testing.T) {
	checkLeaks(t)
	l := listenLoopback(t)
	m := cmux.New(l)
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	h2L := m.Match(cmux.HTTP2())
	serveMux(t, m, l)
	serveHealth(t, grpcL)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "REST")
	})}
	serveHTTP(t, h2L, hs)

	h := prDialH2(t, l.Addr().String())
	_, hc := h.health(t)
	require.NotNil(t, hc)
	code, _ := h.get(t, "/hello")
	assert.Equal(t, http.StatusUnsupportedMediaType, code, "REST on a connection the native gRPC server got")

	h = prDialH2(t, l.Addr().String())
	code, body := h.get(t, "/hello")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "REST", body)
	resp, hc := h.health(t)
	assert.Nil(t, hc, "gRPC on a connection the REST server got: %s", resp.Status)
}
