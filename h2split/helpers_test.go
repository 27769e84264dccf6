//lint:file-ignore SA1019 the x/net HTTP/2 client is one of the clients the splitter must serve.

package h2split

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var assert, require = testcheck.Assert, testcheck.Require

// rawCodec carries *[]byte messages as they are: the tests need no
// generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// The echo service: Unary echoes its request, or for "sleep" waits for
// the deadline, or for "fail:N" fails with code N; Server answers "n:size"
// with n numbered messages of size bytes; Client answers with the count
// and byte total of what it received; Bidi echoes each message.
func unaryHandler(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	switch s := string(in); {
	case s == "sleep":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case strings.HasPrefix(s, "fail:"):
		n, _ := strconv.Atoi(s[5:])
		return nil, status.Error(codes.Code(n), "asked to fail")
	}
	return &in, nil
}

func serverStreamHandler(_ any, st grpc.ServerStream) error {
	var in []byte
	if err := st.RecvMsg(&in); err != nil {
		return err
	}
	var n, size int
	if _, err := fmt.Sscanf(string(in), "%d:%d", &n, &size); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	for i := range n {
		msg := numbered(i, size)
		if err := st.SendMsg(&msg); err != nil {
			return err
		}
	}
	return nil
}

func clientStreamHandler(_ any, st grpc.ServerStream) error {
	var count, total int
	for {
		var in []byte
		err := st.RecvMsg(&in)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		count++
		total += len(in)
	}
	out := []byte(fmt.Sprintf("%d:%d", count, total))
	return st.SendMsg(&out)
}

func bidiHandler(_ any, st grpc.ServerStream) error {
	for {
		var in []byte
		err := st.RecvMsg(&in)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.SendMsg(&in); err != nil {
			return err
		}
	}
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "h2split.test.Echo",
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: unaryHandler}},
	Streams: []grpc.StreamDesc{
		{StreamName: "Server", Handler: serverStreamHandler, ServerStreams: true},
		{StreamName: "Client", Handler: clientStreamHandler, ClientStreams: true},
		{StreamName: "Bidi", Handler: bidiHandler, ServerStreams: true, ClientStreams: true},
	},
}

// numbered is a message of size bytes (at least 8) starting with i.
func numbered(i, size int) []byte {
	b := make([]byte, max(size, 8))
	copy(b, fmt.Sprintf("%08d", i))
	for j := 8; j < len(b); j++ {
		b[j] = byte('a' + (i+j)%26)
	}
	return b
}

// restHandler: GET / says hello; /big?n=N sends N bytes; /echo echoes
// the body; /hold waits for the client to go; /trailer sets a trailer; anything sets x-path.
func restHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-path", r.URL.Path)
	switch r.URL.Path {
	case "/big":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(numbered(7, n)[:n]) //nolint:errcheck
	case "/echo":
		io.Copy(w, r.Body) //nolint:errcheck
	case "/header":
		w.Header().Set("x-big", r.Header.Get("x-big"))
	case "/hold":
		<-r.Context().Done()
	case "/trailer":
		w.Header().Set("Trailer", "x-sum")
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("x-request-trailer", r.Trailer.Get("x-req"))
		w.Write([]byte("ok")) //nolint:errcheck
		w.Header().Set("x-sum", strconv.Itoa(len(b)))
	default:
		io.Copy(io.Discard, r.Body)              //nolint:errcheck
		w.Write([]byte("hello from net/http\n")) //nolint:errcheck
	}
}

type env struct {
	addr  string
	split *Splitter
	grpc  *grpc.Server
	http  *http.Server
}

// start runs a splitter on 127.0.0.1 with grpc-go and net/http behind it;
// everything stops when the test ends.
func start(t testing.TB, cfg Config) *env {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with a chance to configure the servers.
func startWith(t testing.TB, cfg Config, httpMod func(*http.Server), grpcOpts ...grpc.ServerOption) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &env{addr: l.Addr().String(), split: New(cfg)}
	e.grpc = grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodec(rawCodec{})}, grpcOpts...)...)
	e.grpc.RegisterService(&echoDesc, nil)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	e.http = &http.Server{Handler: http.HandlerFunc(restHandler), Protocols: &p}
	if httpMod != nil {
		httpMod(e.http)
	}
	done := make(chan struct{}, 3)
	grpcL, restL := e.split.Listener(GRPC), e.split.Listener(Other)
	go func() { e.grpc.Serve(grpcL); done <- struct{}{} }() //nolint:errcheck
	go func() { e.http.Serve(restL); done <- struct{}{} }() //nolint:errcheck
	go func() { e.split.Serve(l); done <- struct{}{} }()    //nolint:errcheck
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, e.split.Shutdown(ctx))
		e.grpc.Stop()
		e.http.Close()
		for range 3 {
			<-done
		}
	})
	return e
}

func (e *env) grpcClient(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// h2Conn opens one x/net HTTP/2 client connection to the splitter: every
// request made on it shares that connection.
func (e *env) h2Conn(t testing.TB) *http2.ClientConn {
	t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	require.NoError(t, err)
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return nil, errors.New("one connection only")
	}}
	cc, err := tr.NewClientConn(nc)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}
