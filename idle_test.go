package cmux

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// TestIdleWaitWithoutSniffer: a connection that has sent nothing when it is
// accepted, whose first matcher needs bytes, waits for them on a worker
// without a sniffer, over TCP and over a connection that is not a socket;
// once its bytes come, it is matched and delivered with every byte, and
// the matchers that need no bytes, or wait on time, still decide at once.
func TestIdleWaitWithoutSniffer(t *testing.T) {
	var waits atomic.Int64
	testHookIdleWait = func() { waits.Add(1) }
	t.Cleanup(func() { testHookIdleWait = nil })

	flight := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name  string
		pipe  bool
		build func(m CMux) net.Listener
		idle  bool // the wait without a sniffer is expected
	}{
		{"tcp", false, func(m CMux) net.Listener {
			m.Match(HTTP2HeaderField("content-type", "application/grpc"))
			return m.Match(HTTP1Fast())
		}, true},
		{"pipe", true, func(m CMux) net.Listener {
			m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
			return m.Match(HTTP1Fast())
		}, true},
		{"any-first", false, func(m CMux) net.Listener { return m.Match(Any()) }, false},
		{"silent-first", false, func(m CMux) net.Listener {
			m.Match(Silent(time.Second))
			return m.Match(HTTP1Fast())
		}, false},
		{"user-matcher-first", false, func(m CMux) net.Listener {
			inner := HTTP1Fast()
			return m.Match(func(r io.Reader) bool { return inner(r) })
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testcheck.CheckLeaks(t)
			waits.Store(0)
			var root net.Listener
			var dial func() net.Conn
			if tc.pipe {
				ml := newMemListener()
				root = ml
				dial = func() net.Conn {
					c, s := net.Pipe()
					ml.connc <- s
					return c
				}
			} else {
				root = listenLoopback(t)
				dial = func() net.Conn { return dialTCP(t, root.Addr().String()) }
			}
			m := New(root)
			want := tc.build(m)
			serveMux(t, m, root)
			accepted := acceptChan(t, want)

			c := dial()
			defer c.Close()
			if tc.name == "any-first" {
				dc := takeConn(t, accepted)
				dc.Close()
				assert.Equal(t, int64(0), waits.Load())
				return
			}
			if tc.idle {
				// Write only once the worker waits: written earlier, the
				// bytes may be there when the mux first looks.
				hoEventually(t, "the wait without a sniffer", func() bool { return waits.Load() == 1 })
			} else {
				time.Sleep(50 * time.Millisecond) // accepted, and found silent
			}
			// A pipe's Write returns once every byte is read: write
			// from another goroutine.
			wrote := make(chan error, 1)
			go func() { _, err := c.Write([]byte(flight)); wrote <- err }()
			dc := takeConn(t, accepted)
			defer dc.Close()
			assert.Equal(t, flight, readN(t, dc, len(flight)))
			select {
			case err := <-wrote:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("the client's Write did not return")
			}
			if tc.idle {
				assert.Equal(t, int64(1), waits.Load(), "waits without a sniffer")
			} else {
				assert.Equal(t, int64(0), waits.Load(), "waits without a sniffer")
			}
		})
	}
}

// TestIdleWaitNotForDeferredMatcher: when the accept loop stops at a
// matcher that must run on a worker (one of the program's, inside All),
// the connection is not taken to be waiting for bytes: that matcher may
// say no without reading, and a later listener take the connection at
// once, as a client waiting for the server to speak first needs.
func TestIdleWaitNotForDeferredMatcher(t *testing.T) {
	testcheck.CheckLeaks(t)
	var waits atomic.Int64
	testHookIdleWait = func() { waits.Add(1) }
	t.Cleanup(func() { testHookIdleWait = nil })

	root := listenLoopback(t)
	m := New(root)
	var userRuns atomic.Int64
	first := m.Match(All(func(io.Reader) bool { userRuns.Add(1); return false }, HTTP1Fast()))
	want := m.Match(Any())
	serveMux(t, m, root)
	firstC := acceptChan(t, first)
	accepted := acceptChan(t, want)

	for i := range 3 { // the mux learns All's kind on the first
		c := dialTCP(t, root.Addr().String())
		dc := takeConn(t, accepted) // with no byte sent
		dc.Close()
		c.Close()
		assert.Equal(t, int64(i+1), userRuns.Load())
	}
	assert.Equal(t, int64(0), waits.Load(), "waits without a sniffer")
	select {
	case c := <-firstC:
		c.Close()
		t.Fatal("the first listener took a connection")
	default:
	}
}

// TestBuiltinKnownAtRegistration: the mux knows this package's matchers
// from their registration, whatever their arguments and wherever they are
// made (a constructor inlined at its call site would copy its closure and
// defeat builtinCode).
func TestBuiltinKnownAtRegistration(t *testing.T) {
	for name, m := range map[string]Matcher{
		"Any": Any(), "PrefixMatcher": PrefixMatcher("x", "yz"), "HTTP1Fast": HTTP1Fast("PURGE"),
		"HTTP1": HTTP1(), "TLS": TLS(tls.VersionTLS12), "SSH": SSH(), "SOCKS4": SOCKS4(), "SOCKS5": SOCKS5(),
		"PostgreSQL": PostgreSQL(), "HTTP2": HTTP2(), "HTTP2HeaderField": HTTP2HeaderField("c", "d"),
		"HTTP2HeaderFieldPrefix": HTTP2HeaderFieldPrefix("c", "d"), "HTTP1HeaderField": HTTP1HeaderField("c", "d"),
		"HTTP1HeaderFieldPrefix": HTTP1HeaderFieldPrefix("c", "d"), "TLSServerName": TLSServerName("*.x"),
		"TLSALPN": TLSALPN("h2"), "TLSVersion": TLSVersion(tls.VersionTLS12), "Silent": Silent(time.Minute),
		"Regexp": Regexp(regexp.MustCompile("^b+"), 3), "RemoteAddrIn": RemoteAddrIn(netip.MustParsePrefix("10.0.0.0/8")),
		"LocalAddrIn": LocalAddrIn(), "HTTPHost": HTTPHost("*.x"), "HTTPPathPrefix": HTTPPathPrefix("/api"),
		"ProxyHeaderTLV": ProxyHeaderTLV(0x2, "x"), "ProxyAWSVPCEndpoint": ProxyAWSVPCEndpoint("vpce-1"),
		"NegotiatedProtocol": NegotiatedProtocol("h2", "http/1.1"),
	} {
		assert.Equal(t, uint32(kindBuiltin), initialKind(m), name)
	}
	for name, w := range map[string]MatchWriter{
		"HTTP2MatchHeaderFieldSendSettings":       HTTP2MatchHeaderFieldSendSettings("c", "d"),
		"HTTP2MatchHeaderFieldPrefixSendSettings": HTTP2MatchHeaderFieldPrefixSendSettings("c", "d"),
	} {
		assert.Equal(t, uint32(kindBuiltin), initialKind(w), name)
	}
	user := func(io.Reader) bool { return true }
	assert.Equal(t, uint32(kindUnknown), initialKind(Matcher(user)))
	assert.Equal(t, uint32(kindUnknown), initialKind(TLSClientHello(func(*ClientHelloInfo) bool { return true })))
}

// TestIdleWaitNotForHandshake: on a tls.NewListener root, a
// NegotiatedProtocol matcher first stops the accept loop for the handshake,
// not for bytes: a client that completes it and then waits for the server
// to speak (ALPN other than the matcher's) reaches the next listener.
func TestIdleWaitNotForHandshake(t *testing.T) {
	testcheck.CheckLeaks(t)
	pki := newTestPKI(t)
	cfg := serverTLS(pki.Leaf(t, "srv", "a.example.com"))
	cfg.NextProtos = []string{"h2", "greet"}
	root := tls.NewListener(listenLoopback(t), cfg)
	m := New(root)
	m.Match(NegotiatedProtocol("h2"))
	greetL := m.Match(Any())
	serveMux(t, m, root)
	accepted := acceptChan(t, greetL)

	for range 3 { // the first teaches the mux its matchers' kinds
		raw := dialTCP(t, root.Addr().String())
		tc := tls.Client(raw, &tls.Config{ServerName: "a.example.com", RootCAs: pki.Roots, NextProtos: []string{"greet"}})
		require.NoError(t, tc.SetDeadline(time.Now().Add(waitFor)))
		require.NoError(t, tc.Handshake())
		dc := takeConn(t, accepted)
		_, err := dc.Write([]byte("hello"))
		require.NoError(t, err)
		assert.Equal(t, "hello", readN(t, tc, 5))
		dc.Close()
		tc.Close()
	}
}

// TestMuxConnSize: an idle connection being matched holds a MuxConn and
// nothing else of the mux's, which keeps it at or below soheilhy/cmux
// v0.1.5's heap per idle connection (BenchmarkIdleConns in benchcmp: about
// 145 B). A field that takes MuxConn past the 144-byte size class costs
// every such connection 16 bytes or more: put it in connExt or the sniffer,
// or take its bytes from MuxConn.first.
func TestMuxConnSize(t *testing.T) {
	// 144 bytes is an allocation size class: MuxConn.first fills it.
	assert.Equal(t, uintptr(144), unsafe.Sizeof(MuxConn{}), "MuxConn is %d bytes", unsafe.Sizeof(MuxConn{}))
}

// TestIdleWaitEnds: a connection waiting on a worker for its first bytes,
// over TCP, ends its wait as the mux says: its first flight, even one
// larger than the smallest sniff buffer, is delivered whole; a client that
// closes without sending is ErrNoBytes; one that stays silent is
// ErrMatchTimeout and gets its connection closed.
func TestIdleWaitEnds(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 5000) + "\r\nX-Want: yes\r\n\r\n"
	for _, tc := range []struct {
		name   string
		client func(c net.Conn)
		want   error // nil: delivered with every byte of big
	}{
		{"late flight", func(c net.Conn) { io.WriteString(c, big) }, nil},
		{"close", func(c net.Conn) { c.Close() }, ErrNoBytes},
		{"silent", func(c net.Conn) {}, ErrMatchTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testcheck.CheckLeaks(t)
			var waits atomic.Int64
			testHookIdleWait = func() { waits.Add(1) }
			t.Cleanup(func() { testHookIdleWait = nil })
			root := listenLoopback(t)
			m := NewWithOptions(root, MatchTimeout(300*time.Millisecond))
			errs := errorChan(m, 10)
			l := m.Match(HTTP1HeaderField("X-Want", "yes"))
			serveMux(t, m, root)

			c := dialTCP(t, root.Addr().String())
			hoEventually(t, "the connection waiting on a worker", func() bool { return waits.Load() == 1 })
			tc.client(c)
			if tc.want != nil {
				err := nextErr(t, errs)
				assert.True(t, errors.Is(err, tc.want), "error %v, want %v", err, tc.want)
				if tc.want == ErrMatchTimeout {
					requireClosedByPeer(t, c)
				}
				return
			}
			got, err := l.Accept()
			require.NoError(t, err)
			defer got.Close()
			assert.Equal(t, big, string(readN(t, got, len(big))))
		})
	}
}
