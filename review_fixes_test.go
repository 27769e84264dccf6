package cmux

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// TestSilentPastMatchingDeadline: Silent whose wait outlasts the matching
// deadline matches at the deadline, and the connection it delivers has no
// deadline left: the server reads what the client sends afterwards.
func TestSilentPastMatchingDeadline(t *testing.T) {
	checkLeaks(t)
	x := newServedMux(t, MatchTimeout(60*time.Millisecond))
	ch := acceptChan(t, x.Match(Silent(time.Second)))
	x.start(t)
	for i := range 5 {
		c := dialTCP(t, x.addr())
		sc := takeConn(t, ch)
		if _, err := io.WriteString(c, "hello"); err != nil {
			t.Fatal(err)
		}
		// No deadline of the test's own: one the mux left would show.
		got := make(chan error, 1)
		b := make([]byte, 5)
		go func() {
			_, err := io.ReadFull(sc, b)
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil || string(b) != "hello" {
				t.Fatalf("connection %d: server read %q, %v", i, b, err)
			}
		case <-time.After(waitFor):
			t.Fatalf("connection %d: server read nothing", i)
		}
		c.Close()
		sc.Close()
	}
}

// prefixConn is a connection of a program's own: a *net.TCPConn (so it has
// SyscallConn) whose Read serves bytes of its own first.
type prefixConn struct {
	*net.TCPConn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.TCPConn.Read(p)
}

type prefixListener struct {
	net.Listener
	prefix string
}

func (l prefixListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &prefixConn{TCPConn: c.(*net.TCPConn), prefix: []byte(l.prefix)}, nil
}

// TestWrappedSocketReadThroughItsRead: a root listener's connection that
// embeds a socket but reads bytes of its own first is read through its
// Read alone, whether the client's bytes are there at Accept or not.
func TestWrappedSocketReadThroughItsRead(t *testing.T) {
	checkLeaks(t)
	for _, silent := range []bool{false, true} {
		root := prefixListener{Listener: listenLoopback(t), prefix: "GET / HTTP/1.1\r\n"}
		x := newServedMuxOn(t, root, MatchTimeout(10*time.Second))
		httpCh := acceptChan(t, x.Match(HTTP1Fast()))
		x.Match(Any())
		x.start(t)
		c := dialTCP(t, x.addr())
		if !silent {
			if _, err := io.WriteString(c, "SSH-2.0-x\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		sc := takeConn(t, httpCh)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("silent=%v: delivered after %v", silent, d)
		}
		if silent {
			io.WriteString(c, "SSH-2.0-x\r\n")
		}
		want := "GET / HTTP/1.1\r\nSSH-2.0-x\r\n"
		if got := readN(t, sc, len(want)); got != want {
			t.Errorf("silent=%v: server read %q, want %q", silent, got, want)
		}
		c.Close()
	}
}

// TestMaxMatchingPerSourceTerminateTLSProxyHeader: with the PROXY protocol
// and TerminateTLS, a connection counts against MaxMatchingPerSource under
// the address it came from (the proxy's) until its matching ends, and no
// longer: the delivered *tls.Conn reports the header's client address,
// which must not be what the count is taken back from. Connections from
// one proxy, one after another, are all delivered.
func TestMaxMatchingPerSourceTerminateTLSProxyHeader(t *testing.T) {
	testcheck.CheckLeaks(t)
	p := newTermPKI(t)
	root := listenLoopback(t)
	m := NewWithOptions(root, TerminateTLS(p.serverConfig()), MaxMatchingPerSource(2),
		ProxyProtocol(ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	errs := errorChan(m, 10)
	ch := acceptChan(t, m.Match(NegotiatedProtocol("h2")))
	serveMux(t, m, root)

	for i := range 4 {
		raw := dialTCP(t, root.Addr().String())
		_, err := fmt.Fprintf(raw, "PROXY TCP4 192.0.2.%d 198.51.100.1 40000 443\r\n", i+1)
		require.NoError(t, err)
		c := tls.Client(raw, p.clientConfig("h2"))
		done := make(chan error, 1)
		go func() { done <- c.Handshake() }()
		select {
		case sc := <-ch:
			require.NoError(t, <-done)
			sc.Close()
		case err := <-errs:
			t.Fatalf("connection %d: %v", i, err)
		case <-time.After(waitFor):
			t.Fatalf("connection %d not delivered", i)
		}
		c.Close()
	}
}

// TestProxyTrustedLikePolicies: Trusted and Policies read a remote address
// alike, so a net.Addr of a program's own type whose String is an IP
// address and port is judged by its IP address in both; before, Trusted
// took only the net package's types and refused it, where a policy for the
// same network accepted it.
func TestProxyTrustedLikePolicies(t *testing.T) {
	pc := newProxyConfig(ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	assert.True(t, pc.trusts(strAddr("10.1.2.3:4000")))
	assert.True(t, pc.trusts(&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}))
	assert.False(t, pc.trusts(strAddr("/run/x.sock")))
	assert.False(t, pc.trusts(&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}))
	pol := newProxyConfig(ProxyConfig{Policies: []ProxySourcePolicy{{Source: netip.MustParsePrefix("10.0.0.0/8"), Header: ProxyOptional}}})
	trusted, _ := pol.rule(strAddr("10.1.2.3:4000"))
	assert.True(t, trusted)
}
