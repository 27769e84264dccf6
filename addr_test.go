package cmux

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest"
)

// rtServeID answers every connection l delivers, once the client has
// half-closed, with id and the connection's remote address.
func rtServeID(t *testing.T, l net.Listener, id string) {
	thServe(t, l, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%s %v\n", id, c.RemoteAddr())
	})
}

// rtAsk connects to addr from the loopback address from, sends b,
// half-closes and returns the last line of the answer ("" if none).
func rtAsk(t *testing.T, from, addr string, b []byte) string {
	t.Helper()
	d := net.Dialer{Timeout: thWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thWait))
	_, _ = c.Write(b)
	_ = c.(*net.TCPConn).CloseWrite()
	all, _ := io.ReadAll(c)
	lines := strings.Split(strings.TrimSpace(string(all)), "\n")
	return lines[len(lines)-1]
}

// rtID returns the id of an answer of rtServeID, and its address's IP.
func rtID(answer string) string {
	id, addr, _ := strings.Cut(answer, " ")
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return id + " " + host
	}
	return id
}

var rtGRPC = wiretest.Cat([]byte(wiretestPreface), wiretest.Settings(), wiretest.Headers(1, wiretest.GRPCRequest(), true, 0, false))

const wiretestPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func TestRouteAddrMatchers(t *testing.T) {
	checkLeaks(t)
	p := netip.MustParsePrefix
	m, addr, errs := thServedMux(t)
	rtServeID(t, m.Match(All(RemoteAddrIn(p("127.0.0.2/32")), HTTP1Fast())), "http-from-2")
	thServeNone(t, m.Match(All(LocalAddrIn(p("10.0.0.0/8")), Any())), "local 10/8")
	rtServeID(t, m.Match(All(LocalAddrIn(p("::ffff:127.0.0.1/128")), PrefixMatcher("local"))), "local-1")
	rtServeID(t, m.MatchWithWriters(AllWriters(
		ReadOnly(RemoteAddrIn(p("127.0.0.3/32"), p("2001:db8::/32"))),
		HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))), "grpc-from-3")
	rtServeID(t, m.Match(Any()), "other")

	get := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	cases := []struct {
		from string
		in   []byte
		want string
	}{
		{"127.0.0.2", get, "http-from-2 127.0.0.2"},
		{"127.0.0.1", get, "other 127.0.0.1"},
		{"127.0.0.2", []byte("SSH-2.0-x\r\n"), "other 127.0.0.2"},
		{"127.0.0.3", rtGRPC, "grpc-from-3 127.0.0.3"},
		{"127.0.0.1", rtGRPC, "other 127.0.0.1"},
		{"127.0.0.3", get, "other 127.0.0.3"},
		{"127.0.0.1", []byte("local"), "local-1 127.0.0.1"},
		{"127.0.0.5", []byte("local"), "local-1 127.0.0.5"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, rtID(rtAsk(t, tc.from, addr, tc.in)), "%s %q", tc.from, tc.in)
	}
	ppNoErr(t, errs)
}

// TestRouteAllContract: in All, a matcher of the user's runs once per
// connection and never on the accept loop, even behind this package's
// matchers that decide there; a matcher after one that says no is not
// run; each sub-matcher reads from the first byte.
func TestRouteAllContract(t *testing.T) {
	checkLeaks(t)
	p := netip.MustParsePrefix
	var calls, onLoop, never atomic.Int32
	user := func(r io.Reader) bool {
		calls.Add(1)
		if s, ok := r.(*sniffer); !ok || s.now != nil {
			onLoop.Add(1)
		}
		b := make([]byte, 3)
		_, err := io.ReadFull(r, b)
		return err == nil && string(b) == "GET"
	}
	m, addr, errs := thServedMux(t)
	rtServeID(t, m.Match(All(RemoteAddrIn(p("10.0.0.0/8")), func(io.Reader) bool { never.Add(1); return true })), "never")
	rtServeID(t, m.Match(All(RemoteAddrIn(p("127.0.0.0/8")), PrefixMatcher("GE"), HTTP1(), user)), "a")
	rtServeID(t, m.Match(Any()), "other")
	const n = 30
	for i := range n {
		in := "GET / HTTP/1.1\r\n\r\n"
		want := "a 127.0.0.1"
		switch i % 3 {
		case 1:
			in, want = "POST / HTTP/1.1\r\n\r\n", "other 127.0.0.1" // PrefixMatcher says no: user not run
		case 2:
			in, want = "GEX / HTTP/1.1\r\n\r\n", "other 127.0.0.1" // user says no
		}
		assert.Equal(t, want, rtID(rtAsk(t, "127.0.0.1", addr, []byte(in))))
	}
	assert.Equal(t, int32(n-n/3), calls.Load(), "calls of the user's matcher")
	assert.Equal(t, int32(0), onLoop.Load(), "calls on the accept loop")
	assert.Equal(t, int32(0), never.Load(), "calls after an address mismatch")
	ppNoErr(t, errs)
}

// TestRouteAllReader: All and AllWriters on readers that are not the
// mux's: each matcher reads from the first byte; address matchers say no.
func TestRouteAllReader(t *testing.T) {
	checkLeaks(t)
	r := func(s string) io.Reader { return strings.NewReader(s) }
	assert.True(t, All()(r("")))
	assert.True(t, All(PrefixMatcher("GE"), HTTP1(), HTTP1HeaderField("Host", ""))(r("GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
	assert.False(t, All(PrefixMatcher("GE"), PrefixMatcher("POST"))(r("GET / HTTP/1.1\r\n\r\n")))
	assert.False(t, All(RemoteAddrIn(netip.MustParsePrefix("0.0.0.0/0")), Any())(r("GET")))
	// A reader that returns a byte at a time, then an error.
	errBoom := errors.New("boom")
	one := io.MultiReader(&oneByte{s: "GET / HTTP/1.0\n"}, &errReader{errBoom})
	assert.True(t, All(HTTP1Fast(), HTTP1())(one))
	var w strings.Builder
	assert.True(t, AllWriters(ReadOnly(Any()), HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))(&w, bufio.NewReader(strings.NewReader(string(rtGRPC)))))
	assert.False(t, AllWriters(ReadOnly(TLS()), HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))(&w, r(string(rtGRPC))))
}

type oneByte struct{ s string }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.s) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestRouteAddrOf(t *testing.T) {
	checkLeaks(t)
	ps := normPrefixes([]netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104"), netip.MustParsePrefix("fe80::/10"), {}})
	assert.Equal(t, 2, len(ps))
	cases := []struct {
		a    net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3").To4(), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("11.1.2.3"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "lo", Port: 1}, true},
		{&net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, true},
		{&net.IPAddr{IP: net.ParseIP("10.0.0.1")}, true},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, false},
		{strAddr("10.9.9.9:80"), true},
		{strAddr("[fe80::2%eth0]:80"), true},
		{strAddr("nonsense"), false},
		{(*net.TCPAddr)(nil), false},
		{nil, false},
		{&net.TCPAddr{}, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, addrIn(tc.a, ps), "%v", tc.a)
	}
}

type strAddr string

func (a strAddr) Network() string { return "tcp" }
func (a strAddr) String() string  { return string(a) }
