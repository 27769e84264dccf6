package e2e

//lint:file-ignore SA1019 the h2c client is x/net/http2's on purpose: programs use it, and the mux must serve it.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// streamServer answers StreamingOutputCall with one message per response
// parameter, each after the interval it asks for.
type streamServer struct {
	testpb.UnimplementedTestServiceServer
	started chan struct{} // a stream began
}

func (s *streamServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	select {
	case s.started <- struct{}{}:
	default:
	}
	for i, p := range req.GetResponseParameters() {
		time.Sleep(time.Duration(p.GetIntervalUs()) * time.Microsecond)
		body := []byte(fmt.Sprint("msg ", i))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// TestShutdownRecipe runs the SIGTERM recipe of the README on a program
// that serves grpc-go and net/http (HTTP/1.1 and h2c) on one port through a
// mux made by cmux.New, with connections in every phase when it starts: one
// being matched, one queued for a server that has not accepted it yet, an
// HTTP/1.1 request in flight, an HTTP/2 connection with open streams, and a
// gRPC server-streaming call. Every one of them completes, nothing hangs,
// and every goroutine ends.
//
// The recipe: Shutdown the mux (it stops accepting and hands every
// connection it accepted to its server), then the servers' own graceful
// stops, each bounded by the same deadline.
func TestShutdownRecipe(t *testing.T) {
	checkLeaks(t)
	root := &acceptLog{Listener: listenLoopback(t)}
	addr := root.Addr().String()
	m := cmux.New(root)
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	httpL := m.Match(cmux.HTTP1Fast(), cmux.HTTP2())
	rawL := m.Match(cmux.PrefixMatcher("RAW"))

	gs := grpc.NewServer()
	ss := &streamServer{started: make(chan struct{}, 1)}
	testpb.RegisterTestServiceServer(gs, ss)
	slowIn := make(chan struct{}, 8)
	release := make(chan struct{})
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowIn <- struct{}{}
			<-release
		}
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
	})}
	// The raw server accepts only once the test lets it: its connection
	// waits in the mux's queue meanwhile.
	rawGate := make(chan struct{})
	rawDone := make(chan error, 1)
	go func() {
		<-rawGate
		for {
			c, err := rawL.Accept()
			if err != nil {
				rawDone <- err
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "raw:"+line)
			}()
		}
	}()
	served := make(chan error, 3)
	go func() { served <- gs.Serve(grpcL) }()
	go func() { served <- hs.Serve(httpL) }()
	muxDone := make(chan error, 1)
	go func() { muxDone <- m.Serve() }()

	var clients sync.WaitGroup
	results := make(chan string, 16)
	run := func(what string, f func() (string, error)) {
		clients.Add(1)
		go func() {
			defer clients.Done()
			got, err := f()
			if err != nil {
				results <- fmt.Sprintf("%s: error %v", what, err)
				return
			}
			results <- what + ": " + got
		}()
	}
	deadline := time.Now().Add(10 * time.Second)

	// Delivered, an HTTP/1.1 request in flight.
	run("http1", func() (string, error) {
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		return get(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://"+addr+"/slow")
	})
	// Delivered, an HTTP/2 connection with three open streams.
	h2 := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}}
	defer h2.CloseIdleConnections()
	for i := range 3 {
		run(fmt.Sprint("h2c ", i), func() (string, error) {
			return get(&http.Client{Transport: h2, Timeout: 10 * time.Second}, "http://"+addr+"/slow")
		})
	}
	for range 4 {
		select {
		case <-slowIn:
		case <-time.After(time.Until(deadline)):
			t.Fatal("requests did not reach the handler")
		}
	}
	// Delivered, a gRPC server-streaming call under way.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	run("grpc stream", func() (string, error) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		params := make([]*testpb.ResponseParameters, 5)
		for i := range params {
			params[i] = &testpb.ResponseParameters{IntervalUs: 100_000}
		}
		stream, err := testpb.NewTestServiceClient(cc).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			return "", err
		}
		var got []string
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				return strings.Join(got, ","), nil
			}
			if err != nil {
				return strings.Join(got, ","), err
			}
			got = append(got, string(r.GetPayload().GetBody()))
		}
	})
	select {
	case <-ss.started:
	case <-time.After(time.Until(deadline)):
		t.Fatal("the stream did not start")
	}
	// Queued: matched, waiting for the raw server's Accept.
	rawConn := dialTCP(t, addr, 5*time.Second)
	io.WriteString(rawConn, "RAW hello\n")
	// Being matched: half a request line.
	midConn := dialTCP(t, addr, 5*time.Second)
	io.WriteString(midConn, "GE")
	// Both must be accepted by the mux before the port closes: one still
	// in the kernel's backlog then is reset, which is not what this tests.
	waitUntil(t, "the mux to accept both", func() bool {
		return root.accepted(rawConn.LocalAddr()) && root.accepted(midConn.LocalAddr())
	})

	// SIGTERM.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- m.(interface{ Shutdown(context.Context) error }).Shutdown(ctx) }()

	// The port closes at once; what was accepted goes on.
	waitUntil(t, "the port to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	io.WriteString(midConn, "T /mid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	close(rawGate)
	if err := <-shut; err != nil {
		t.Fatalf("mux Shutdown: %v", err)
	}
	if err := <-muxDone; !errors.Is(err, cmux.ErrServerClosed) {
		t.Errorf("mux Serve returned %v", err)
	}
	// The servers' graceful stops, bounded by the same deadline.
	var stops sync.WaitGroup
	stops.Add(2)
	go func() {
		defer stops.Done()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("http.Server.Shutdown: %v", err)
		}
	}()
	go func() {
		defer stops.Done()
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			gs.Stop()
			t.Error("grpc GracefulStop did not finish in time")
		}
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	stops.Wait()

	// Every client got its whole answer.
	if got := readAll(midConn); !strings.HasSuffix(got, "HTTP/1.1 /mid") {
		t.Errorf("mid-match client got %q", got)
	}
	if got := readAll(rawConn); got != "raw:RAW hello\n" {
		t.Errorf("queued client got %q", got)
	}
	clients.Wait()
	close(results)
	want := map[string]bool{
		"http1: HTTP/1.1 /slow":                      true,
		"h2c 0: HTTP/2.0 /slow":                      true,
		"h2c 1: HTTP/2.0 /slow":                      true,
		"h2c 2: HTTP/2.0 /slow":                      true,
		"grpc stream: msg 0,msg 1,msg 2,msg 3,msg 4": true,
	}
	for r := range results {
		if !want[r] {
			t.Errorf("unexpected result %q", r)
		}
		delete(want, r)
	}
	for r := range want {
		t.Errorf("missing result %q", r)
	}
	for range 2 {
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatal("a server's Serve did not return")
		}
	}
	select {
	case err := <-rawDone:
		if !errors.Is(err, cmux.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("raw server's Accept returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the raw server's Accept did not return")
	}
}

// acceptLog is a listener that records the remote address of every
// connection its Accept returned.
type acceptLog struct {
	net.Listener
	mu    sync.Mutex
	peers map[string]bool
}

func (l *acceptLog) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		if l.peers == nil {
			l.peers = make(map[string]bool)
		}
		l.peers[c.RemoteAddr().String()] = true
		l.mu.Unlock()
	}
	return c, err
}

// SetDeadline lets the mux interrupt a blocked Accept, as it does on the
// listener underneath.
func (l *acceptLog) SetDeadline(t time.Time) error {
	return l.Listener.(*net.TCPListener).SetDeadline(t)
}

// accepted reports whether Accept returned a connection from peer.
func (l *acceptLog) accepted(peer net.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers[peer.String()]
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func readAll(c net.Conn) string {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	return string(b)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
