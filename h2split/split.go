package h2split

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Backend names one of the servers streams are routed to.
type Backend int

const (
	// GRPC is the backend for gRPC streams (grpc-go's native server).
	GRPC Backend = iota
	// Other is the backend for every other stream (net/http's HTTP/2 server).
	Other

	numBackends
)

func (b Backend) String() string {
	switch b {
	case GRPC:
		return "grpc"
	case Other:
		return "other"
	}
	return "backend?"
}

// Request is what a Route function sees of a stream: its request header
// block, decoded. It must not be retained or modified.
type Request struct {
	Method, Scheme, Authority, Path string
	// Fields is the whole decoded header block, pseudo-header fields first.
	Fields []hpack.HeaderField
}

// Header returns the value of the first regular field named name, which
// must be lower case, or "".
func (r *Request) Header(name string) string {
	for _, f := range r.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// RouteGRPC is the default route: gRPC by content type
// (application/grpc, application/grpc+proto, application/grpc;...),
// everything else to Other.
func RouteGRPC(r *Request) Backend {
	ct := r.Header("content-type")
	if strings.HasPrefix(ct, "application/grpc") {
		if len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';' {
			return GRPC
		}
	}
	return Other
}

// Config configures a Splitter. The zero value is usable.
type Config struct {
	// Route picks the backend of each stream from its request headers.
	// It runs on the connection's reading goroutine and must be quick.
	// Nil means RouteGRPC. A Backend whose Listener was never asked for
	// gets the stream refused (RST_STREAM REFUSED_STREAM).
	Route func(*Request) Backend

	// StreamWindow is the flow-control window advertised per stream, to
	// the client for request bodies and to the backends for response
	// bodies: the most the splitter buffers for one stream in each
	// direction. It is granted back as data is forwarded. So a client
	// connection holds at most MaxConcurrentStreams * StreamWindow bytes
	// in each direction. Default 256 KiB; at least 65535.
	StreamWindow int32
	// ConnWindow is the connection flow-control window advertised to the
	// client and to each backend connection. It is granted back as data
	// arrives (buffering is bounded per stream), so that a stream whose
	// backend is slow or has no room yet never holds up the others.
	// Default 1 MiB; at least StreamWindow.
	ConnWindow int32
	// MaxConcurrentStreams advertised to the client. Default 100.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize advertised to the client; larger request header
	// blocks are answered 431. Default 1 MiB.
	MaxHeaderListSize uint32
	// IdleTimeout, if positive, closes a client connection (GOAWAY
	// NO_ERROR) that had no stream for that long.
	IdleTimeout time.Duration
}

const (
	defaultStreamWindow = 256 << 10
	defaultConnWindow   = 1 << 20
	maxWindow           = 1<<31 - 1
	initialWindow       = 65535
	defaultFrameSize    = 16384
)

func (c *Config) fill() {
	if c.Route == nil {
		c.Route = RouteGRPC
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = defaultStreamWindow
	}
	if c.StreamWindow < initialWindow {
		c.StreamWindow = initialWindow
	}
	if c.ConnWindow == 0 {
		c.ConnWindow = defaultConnWindow
	}
	if c.ConnWindow < c.StreamWindow {
		c.ConnWindow = c.StreamWindow
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 100
	}
	if c.MaxHeaderListSize == 0 {
		c.MaxHeaderListSize = 1 << 20
	}
}

// ErrClosed is returned by Serve, ServeConn and the backend listeners'
// Accept once the Splitter (or that listener) is closed or shut down. It
// matches net.ErrClosed.
var ErrClosed = fmt.Errorf("h2split: splitter closed: %w", net.ErrClosed)

// Splitter speaks HTTP/2 to clients and splits each client connection's
// streams between backend servers; see the package documentation.
type Splitter struct {
	cfg Config
	ls  [numBackends]*listener

	mu       sync.Mutex
	conns    map[*conn]struct{}
	serving  map[net.Listener]struct{}
	shutdown bool
	wg       sync.WaitGroup // ServeConn calls in flight

	backendConns atomic.Int64 // backend connections opened, for tests
}

// New returns a Splitter configured by cfg.
func New(cfg Config) *Splitter {
	cfg.fill()
	s := &Splitter{cfg: cfg, conns: map[*conn]struct{}{}, serving: map[net.Listener]struct{}{}}
	for b := range s.ls {
		s.ls[b] = &listener{s: s, b: Backend(b), ch: make(chan net.Conn), done: make(chan struct{})}
	}
	return s
}

// Listener returns the listener through which backend b accepts its
// connections: one per client connection that has streams for b (and a
// new one after the backend sent GOAWAY on the previous one). Hand it to
// grpc.Server.Serve, http.Server.Serve (with h2c or HTTP2 unencrypted
// enabled), or http2.Server.ServeConn on each accepted connection. Each
// accepted connection speaks HTTP/2 prior knowledge, starting with the
// client preface. Streams are routed to b only once Listener(b) was
// called, and refused after its Close.
func (s *Splitter) Listener(b Backend) net.Listener {
	if b < 0 || b >= numBackends {
		panic("h2split: no such backend")
	}
	l := s.ls[b]
	l.used.Store(true)
	return l
}

// Serve accepts client connections from l and serves each with ServeConn
// in its own goroutine, until l fails or the Splitter is shut down.
func (s *Splitter) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrClosed
	}
	s.serving[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.serving, l)
		s.mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			down := s.shutdown
			s.mu.Unlock()
			if down {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		go s.ServeConn(c) //nolint:errcheck // reported per connection only
	}
}

// ServeConn serves one client connection, which must start with the
// HTTP/2 client preface (prior knowledge, or after TLS with ALPN h2), and
// returns when it is closed. It closes nc.
func (s *Splitter) ServeConn(nc net.Conn) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		nc.Close()
		return ErrClosed
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	return c.serve()
}

// Shutdown stops accepting client connections, sends GOAWAY on every
// client connection, lets the streams in flight finish, and closes each
// connection once it has none; then it closes the backend listeners. If
// ctx ends first, the remaining connections are closed at once and
// ctx.Err() is returned.
func (s *Splitter) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, c := range conns {
		c.goAway()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.closeConns()
		<-done
	}
	s.closeListeners()
	return err
}

// Close closes every client connection, their backend connections, and
// the backend listeners at once.
func (s *Splitter) Close() error {
	s.stop()
	s.closeConns()
	s.wg.Wait()
	s.closeListeners()
	return nil
}

func (s *Splitter) stop() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = true
	for l := range s.serving {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func (s *Splitter) closeConns() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.teardown(ErrClosed)
	}
}

func (s *Splitter) closeListeners() {
	for _, l := range s.ls {
		l.Close()
	}
}
