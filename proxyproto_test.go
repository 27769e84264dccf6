package cmux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/proxyhdr"
	"github.com/cmux-go/cmux/internal/wiretest"
)

var ppCRCHeader = wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1000, 443), true,
	wiretest.TLV{Type: 0x02, Value: []byte("example.com")}, wiretest.TLV{Type: 0x04, Value: []byte{}})

func TestProxyTrusts(t *testing.T) {
	checkLeaks(t)
	pc := newProxyConfig(ProxyConfig{Trusted: []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"),
		netip.MustParsePrefix("2001:db8::/32"),
		{}, // invalid: ignored
	}})
	cases := []struct {
		a    net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.200.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.200.0.1").To4(), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("11.0.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.168.7.7"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("192.169.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 1, Zone: "eth0"}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db9::5"), Port: 1}, false},
		{&net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, true},
		{&net.IPAddr{IP: net.ParseIP("10.0.0.1")}, true},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, false},
		{&net.TCPAddr{}, false},
		{nil, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, pc.trusts(tc.a), "%v", tc.a)
	}
}

// ppMux serves a mux with cfg: connections that start with "hello" get a
// report of the connection and its PROXY header; the others are echoed
// raw (see thServeRaw).
func ppMux(t *testing.T, cfg ProxyConfig, opts ...Option) (addr string, errs chan error) {
	m, addr, errs := thServedMux(t, append(opts, ProxyProtocol(cfg))...)
	ppServeReport(t, m.Match(PrefixMatcher("hello")))
	thServeRaw(t, m.Match(Any()))
	return addr, errs
}

// ppServeReport answers a line with the line, the connection's addresses,
// and its PROXY header's version and TLVs.
func ppServeReport(t *testing.T, l net.Listener) {
	thServe(t, l, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%s %s\n", strings.TrimSpace(line), ppDescribe(c))
	})
}

// ppDescribe describes c's addresses and PROXY header.
func ppDescribe(c net.Conn) string {
	v, tlvs := 0, []string{}
	if info, ok := ProxyHeader(c); ok {
		v = info.Version
		for _, x := range info.TLVs {
			if x.Type == proxyhdr.TLVCRC32C {
				tlvs = append(tlvs, "03")
				continue
			}
			tlvs = append(tlvs, fmt.Sprintf("%02x:%s", x.Type, x.Value))
		}
	}
	return fmt.Sprintf("remote=%v local=%v v=%d tlvs=%s", c.RemoteAddr(), c.LocalAddr(), v, strings.Join(tlvs, ","))
}

// ppAsk connects to addr, sends the pieces (pausing between them) and
// returns the answer line, "" if the connection was closed without one,
// and the client's connection addresses.
func ppAsk(t *testing.T, addr string, pieces ...string) (reply, local, remote string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, thWait)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thWait))
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			break
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), c.LocalAddr().String(), c.RemoteAddr().String()
}

func ppNoErr(t *testing.T, errs chan error) {
	t.Helper()
	select {
	case err := <-errs:
		t.Errorf("unexpected error: %v", err)
	default:
	}
}

var ppLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestProxyProtocol(t *testing.T) {
	checkLeaks(t)
	addr, errs := ppMux(t, ProxyConfig{Trusted: ppLoopback})
	v2 := func(verCmd, fam byte, addrs []byte, tlvs ...wiretest.TLV) string {
		return string(wiretest.ProxyV2(verCmd, fam, addrs, false, tlvs...))
	}
	cases := []struct {
		name   string
		pieces []string
		want   string // "" for the real addresses
	}{
		{"v1 tcp4", []string{"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello\n"},
			"hello remote=192.0.2.1:56324 local=198.51.100.2:443 v=1 tlvs="},
		{"v1 tcp6", []string{"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", "hello\n"},
			"hello remote=[2001:db8::1]:1 local=[2001:db8::2]:2 v=1 tlvs="},
		{"v1 unknown", []string{"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\nhello\n"}, "v=1"},
		{"v1 byte by byte", append(strings.Split("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n", ""), "hello\n"),
			"hello remote=192.0.2.1:1 local=198.51.100.2:2 v=1 tlvs="},
		{"v2 tcp4 tlvs", []string{string(ppCRCHeader) + "hello\n"},
			"hello remote=192.0.2.1:1000 local=198.51.100.2:443 v=2 tlvs=02:example.com,04:,03"},
		{"v2 tcp6", []string{v2(0x21, 0x21, wiretest.ProxyInet("2001:db8::1", "2001:db8::2", 3, 4)), "hello\n"},
			"hello remote=[2001:db8::1]:3 local=[2001:db8::2]:4 v=2 tlvs="},
		{"v2 unix", []string{v2(0x21, 0x31, wiretest.ProxyUnix("/run/a.sock", "/run/b.sock")) + "hello\n"},
			"hello remote=/run/a.sock local=/run/b.sock v=2 tlvs="},
		{"v2 local", []string{v2(0x20, 0x00, nil, wiretest.TLV{Type: 0x05, Value: []byte("hc")}) + "hello\n"}, "v=2 tlvs=05:hc"},
		{"v2 unspec", []string{v2(0x21, 0x00, nil) + "hello\n"}, "v=2 tlvs="},
		{"v2 split", append(strings.Split(v2(0x21, 0x11, wiretest.ProxyInet("192.0.2.9", "198.51.100.9", 9, 99))[:20], ""),
			v2(0x21, 0x11, wiretest.ProxyInet("192.0.2.9", "198.51.100.9", 9, 99))[20:], "hel", "lo\n"),
			"hello remote=192.0.2.9:9 local=198.51.100.9:99 v=2 tlvs="},
		{"no header", []string{"hello\n"}, "v=0"},
	}
	for _, tc := range cases {
		got, local, remote := ppAsk(t, addr, tc.pieces...)
		want := tc.want
		if !strings.HasPrefix(want, "hello") {
			want = fmt.Sprintf("hello remote=%s local=%s %s", local, remote, want)
			if !strings.Contains(want, "tlvs=") {
				want += " tlvs="
			}
		}
		assert.Equal(t, want, got, tc.name)
	}
	// Matchers see the bytes after the header, and the connection reads
	// them intact.
	got, _, _ := ppAsk(t, addr, "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n", "not hello\x00\xff")
	assert.Equal(t, fmt.Sprintf("raw %x", "not hello\x00\xff"), got)
	ppNoErr(t, errs)

	// Malformed and truncated headers: closed, and reported.
	for _, in := range []string{
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\nhello\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 99999\r\nhello\n",
		"PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\nhello\n",
		v2(0x22, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2)) + "hello\n",
		v2(0x21, 0x21, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2)) + "hello\n",
		string(ppCRCHeader[:len(ppCRCHeader)-1]) + "X" + "hello\n",
	} {
		got, _, _ := ppAsk(t, addr, in)
		assert.Empty(t, got, "%q", in)
		err := nextErr(t, errs)
		assert.ErrorIs(t, err, ErrProxyHeader)
		assert.Contains(t, err.Error(), "malformed")
		assert.Contains(t, err.Error(), "127.0.0.1:", "the error names the peer")
	}
	for _, in := range []string{"PROXY TCP4 192.0.2.1 1", string(ppCRCHeader[:30])} {
		got, _, _ := ppAsk(t, addr, in)
		assert.Empty(t, got, "%q", in)
		err := nextErr(t, errs)
		assert.ErrorIs(t, err, ErrProxyHeader)
		assert.ErrorIs(t, err, io.EOF)
	}
}

func TestProxyProtocolLimits(t *testing.T) {
	checkLeaks(t)
	// A header cut short by the match timeout.
	addr, errs := ppMux(t, ProxyConfig{Trusted: ppLoopback}, MatchTimeout(300*time.Millisecond))
	c, err := net.DialTimeout("tcp", addr, thWait)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thWait))
	_, err = io.WriteString(c, "PROXY TCP4 192.0.2.1 ")
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the mux closes the connection")
	err = nextErr(t, errs)
	assert.ErrorIs(t, err, ErrProxyHeader)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)

	// A header larger than the sniff limit.
	addr, errs = ppMux(t, ProxyConfig{Trusted: ppLoopback}, MaxSniffBytes(100))
	big := wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false, wiretest.TLV{Type: 0x05, Value: make([]byte, 100)})
	got, _, _ := ppAsk(t, addr, string(big)+"hello\n")
	assert.Empty(t, got)
	err = nextErr(t, errs)
	assert.ErrorIs(t, err, ErrProxyHeader)
	assert.ErrorIs(t, err, ErrSniffLimit)
	// One that fits.
	small := wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false, wiretest.TLV{Type: 0x05, Value: make([]byte, 10)})
	got, _, _ = ppAsk(t, addr, string(small)+"hello\n")
	assert.True(t, strings.HasPrefix(got, "hello remote=192.0.2.1:1 "), got)
}

func TestProxyProtocolRequired(t *testing.T) {
	checkLeaks(t)
	addr, errs := ppMux(t, ProxyConfig{Trusted: ppLoopback, Required: true})
	got, _, _ := ppAsk(t, addr, "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\nhello\n")
	assert.Equal(t, "hello remote=192.0.2.1:1 local=198.51.100.2:2 v=1 tlvs=", got)
	ppNoErr(t, errs)
	for _, in := range []string{"hello\n", "PROX", ""} {
		got, _, _ = ppAsk(t, addr, in)
		assert.Empty(t, got)
		err := nextErr(t, errs)
		assert.ErrorIs(t, err, ErrProxyHeader)
		assert.Contains(t, err.Error(), "missing")
	}
}

func TestProxyProtocolUntrusted(t *testing.T) {
	checkLeaks(t)
	others := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	header := "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n"

	// Refused by default.
	addr, errs := ppMux(t, ProxyConfig{Trusted: others, Required: true})
	for _, in := range []string{header + "hello\n", string(ppCRCHeader) + "hello\n"} {
		got, _, _ := ppAsk(t, addr, in)
		assert.Empty(t, got)
		err := nextErr(t, errs)
		assert.ErrorIs(t, err, ErrProxyHeader)
		assert.Contains(t, err.Error(), "untrusted")
	}
	// Without a header, untrusted sources are served (Required is for the
	// trusted ones).
	got, local, remote := ppAsk(t, addr, "hello\n")
	assert.Equal(t, fmt.Sprintf("hello remote=%s local=%s v=0 tlvs=", local, remote), got)
	ppNoErr(t, errs)

	// Passed through untouched.
	addr, errs = ppMux(t, ProxyConfig{Trusted: others, PassUntrusted: true})
	for _, in := range []string{header + "hello\n", string(ppCRCHeader) + "hello\n"} {
		got, _, _ := ppAsk(t, addr, in)
		assert.Equal(t, fmt.Sprintf("raw %x", in), got)
	}
	got, local, remote = ppAsk(t, addr, "hello\n")
	assert.Equal(t, fmt.Sprintf("hello remote=%s local=%s v=0 tlvs=", local, remote), got)
	ppNoErr(t, errs)
}

// TestProxyProtocolIPv6 trusts a source by an IPv6 prefix and by an
// IPv4-mapped one.
func TestProxyProtocolIPv6(t *testing.T) {
	checkLeaks(t)
	root, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	m := NewWithOptions(root, ProxyProtocol(ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("::1/128")}}))
	ppServeReport(t, m.Match(PrefixMatcher("hello")))
	serveMux(t, m, root)
	got, _, _ := ppAsk(t, root.Addr().String(), "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\nhello\n")
	assert.Equal(t, "hello remote=[2001:db8::1]:1 local=[2001:db8::2]:2 v=1 tlvs=", got)

	addr, _ := ppMux(t, ProxyConfig{Trusted: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.0/104")}})
	got, _, _ = ppAsk(t, addr, "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\nhello\n")
	assert.Equal(t, "hello remote=192.0.2.1:1 local=198.51.100.2:2 v=1 tlvs=", got)
}

// TestProxyProtocolTLS: a PROXY header, then TLS routed by SNI to an HTTPS
// server, which sees the client's address and, through the *tls.Conn, the
// header.
func TestProxyProtocolTLS(t *testing.T) {
	checkLeaks(t)
	pki := newTestPKI(t)
	m, addr, errs := thServedMux(t, ProxyProtocol(ProxyConfig{Trusted: ppLoopback, Required: true}))
	httpsL := m.Match(TLSServerName("a.example.com"))
	type ctxKey struct{}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s", r.RemoteAddr, r.TLS.ServerName, r.Context().Value(ctxKey{}))
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, ppDescribe(c))
		},
		TLSConfig: serverTLS(pki.Leaf(t, "a", "a.example.com")),
	}
	serveHTTPS(t, httpsL, hs)
	header := wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1000, 443), true, wiretest.TLV{Type: 0x02, Value: []byte("a.example.com")})
	tr := &http.Transport{
		TLSClientConfig: clientTLS(pki.Roots),
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_, err = c.Write(header)
			}
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: thWait}).Get("https://a.example.com/")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "192.0.2.1:1000 a.example.com remote=192.0.2.1:1000 local=198.51.100.2:443 v=2 tlvs=02:a.example.com,03", string(b))
	ppNoErr(t, errs)
}

// TestProxyProtocolHeaderOfTLSMuxConn: ProxyHeader sees through the wrapper
// that adds ConnectionState on a mux of a TLS listener.
func TestProxyProtocolHeaderOfTLSMuxConn(t *testing.T) {
	checkLeaks(t)
	mc := &MuxConn{Conn: &tls.Conn{}, ext: &connExt{proxy: &ProxyInfo{Version: 2}}}
	dc := mc.deliverable(true)
	_, isTLS := dc.(*tlsMuxConn)
	require.True(t, isTLS)
	info, ok := ProxyHeader(dc)
	assert.True(t, ok)
	assert.Same(t, mc.proxyInfo(), info)
	_, ok = ProxyHeader(&MuxConn{})
	assert.False(t, ok)
	_, ok = ProxyHeader(&net.TCPConn{})
	assert.False(t, ok)
	_, ok = ProxyHeader(nil)
	assert.False(t, ok)
}

// TestProxyProtocolHAProxy puts a real haproxy in front of the mux, with
// send-proxy (v1) and send-proxy-v2 (with CRC32C and unique ID TLVs), for
// plain HTTP and TLS passthrough.
func TestProxyProtocolHAProxy(t *testing.T) {
	checkLeaks(t)
	thNeed(t, "haproxy")
	pki := newTestPKI(t)
	m, muxAddr, errs := thServedMux(t, ProxyProtocol(ProxyConfig{Trusted: ppLoopback, Required: true}))
	describe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.Context().Value(ppCtxKey{}))
	})
	connCtx := func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, ppCtxKey{}, ppDescribe(c))
	}
	for _, srv := range []struct {
		l   net.Listener
		tls bool
	}{{m.Match(TLSServerName("a.example.com")), true}, {m.Match(HTTP1Fast()), false}} {
		hs := &http.Server{Handler: describe, ConnContext: connCtx}
		if srv.tls {
			hs.TLSConfig = serverTLS(pki.Leaf(t, "a", "a.example.com"))
			serveHTTPS(t, srv.l, hs)
		} else {
			serveHTTP(t, srv.l, hs)
		}
	}

	has6 := false
	if l6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l6.Close()
		has6 = true
	}
	ports := ppFreePorts(t, 4, has6)
	v1, v2, v2six := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("[::1]:%d", ports[2])
	ready := fmt.Sprintf("127.0.0.1:%d", ports[3])
	if !has6 {
		v2six = fmt.Sprintf("127.0.0.3:%d", ports[2]) // no IPv6 loopback here
	}
	// fe_ready only tells that haproxy listens: it opens no connection to
	// the mux.
	cfg := fmt.Sprintf(ppHAProxyDefaults+`frontend fe_ready
    bind %s
    tcp-request connection reject
frontend fe_v1
    bind %s
    default_backend be_v1
backend be_v1
    server mux %s send-proxy
frontend fe_v2
    bind %s
    bind %s
    unique-id-format cmux-%%[src]
    default_backend be_v2
backend be_v2
    server mux %s send-proxy-v2 proxy-v2-options crc32c,unique-id
`, ready, v1, muxAddr, v2, v2six, muxAddr)
	ppRunHAProxy(t, cfg, ready)

	get := func(url, via string, local net.IP) (string, string) {
		t.Helper()
		var clientAddr string
		tr := &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   clientTLS(pki.Roots),
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
				c, err := d.DialContext(ctx, network, via)
				if err == nil {
					clientAddr = c.LocalAddr().String()
				}
				return c, err
			},
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: thWait}).Get(url)
		if err != nil {
			return "error: " + err.Error(), clientAddr
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), clientAddr
	}
	lo2 := net.ParseIP("127.0.0.2")
	got, client := get("http://a.example.com/", v1, lo2)
	assert.Equal(t, fmt.Sprintf("HTTP/1.1 remote=%s local=%s v=1 tlvs=", client, v1), got)
	got, client = get("https://a.example.com/", v1, lo2)
	assert.Equal(t, fmt.Sprintf("HTTP/2.0 remote=%s local=%s v=1 tlvs=", client, v1), got)
	got, client = get("http://a.example.com/", v2, lo2)
	assert.Equal(t, fmt.Sprintf("HTTP/1.1 remote=%s local=%s v=2 tlvs=03,05:cmux-127.0.0.2", client, v2), got)
	got, client = get("https://a.example.com/", v2, lo2)
	assert.Equal(t, fmt.Sprintf("HTTP/2.0 remote=%s local=%s v=2 tlvs=03,05:cmux-127.0.0.2", client, v2), got)
	if has6 {
		got, client = get("https://a.example.com/", v2six, net.IPv6loopback)
		assert.Equal(t, fmt.Sprintf("HTTP/2.0 remote=%s local=%s v=2 tlvs=03,05:cmux-::1", client, v2six), got)
	}
	ppNoErr(t, errs)
}

type ppCtxKey struct{}

// ppFreePorts returns n TCP ports that were free on 127.0.0.1 (and on ::1
// too, if v6) a moment ago.
func ppFreePorts(t *testing.T, n int, v6 bool) []int {
	t.Helper()
	// Every listener stays open until all ports are picked, so that the
	// kernel cannot hand the same port out twice (haproxy would then bind
	// two frontends to it with SO_REUSEPORT and share its connections).
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for try := 0; len(ports) < n; try++ {
		require.Less(t, try, 100, "no free ports")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		if v6 {
			l6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
			if err != nil {
				continue
			}
			held = append(held, l6)
		}
		ports = append(ports, port)
	}
	return ports
}

// ppHAProxyDefaults starts every haproxy configuration of these tests: one
// thread, TCP mode, timeouts that outlast a test.
const ppHAProxyDefaults = `global
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
`

// ppRunHAProxy runs haproxy with the configuration cfg until the test ends,
// and waits until it accepts connections on addr.
func ppRunHAProxy(t *testing.T, cfg, addr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "haproxy", "-f", path, "-db")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(thWait); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %v", errors.New(out.String()))
		default:
		}
		if ppReady(addr) && ppListening(cfg) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy did not start listening")
		}
	}
}

// ppReady reports whether addr accepts a connection.
func ppReady(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

var ppBindRE = regexp.MustCompile(`(?m)^\s*bind \S*:(\d+)`)

// ppListening reports whether every port an haproxy configuration binds
// has a listening TCP socket, from /proc/net/tcp and tcp6, without
// connecting to it (a connection to a frontend would reach the mux). haproxy
// may enable its frontends one after another, so that the one ready
// accepts before the others do. Where /proc cannot tell, it reports true.
func ppListening(cfg string) bool {
	var table []byte
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return true
		}
		table = append(table, b...)
	}
	listening := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n") {
		// sl local_address rem_address st ...; st 0A is LISTEN.
		fields := strings.Fields(line)
		if len(fields) > 3 && fields[3] == "0A" {
			if i := strings.LastIndexByte(fields[1], ':'); i >= 0 {
				listening[fields[1][i+1:]] = true
			}
		}
	}
	for _, m := range ppBindRE.FindAllStringSubmatch(cfg, -1) {
		port, _ := strconv.Atoi(m[1])
		if !listening[fmt.Sprintf("%04X", port)] {
			return false
		}
	}
	return true
}

// ppListening tells a bound port from a free one.
func TestPPListening(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	l := listenLoopback(t)
	bound := fmt.Sprintf("frontend a\n    bind %s\n", l.Addr())
	assert.True(t, ppListening(bound))
	free := ppFreePorts(t, 1, false)[0]
	assert.False(t, ppListening(fmt.Sprintf("%s    bind 127.0.0.1:%d\n", bound, free)))
}
