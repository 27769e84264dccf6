package cmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxyPolicyRule(t *testing.T) {
	checkLeaks(t)
	p := netip.MustParsePrefix
	pc := newProxyConfig(ProxyConfig{
		Trusted:  []netip.Prefix{p("10.0.0.0/16")},
		Required: true,
		Policies: []ProxySourcePolicy{
			{Source: p("10.0.0.0/8"), Header: ProxyRefused}, // shorter than Trusted: Trusted never decides in 10/8
			{Source: p("10.0.9.0/24"), Header: ProxyOptional},
			{Source: p("10.0.9.7/32"), Header: ProxyRefused},
			{Source: p("10.0.9.0/24"), Header: ProxyRequired}, // same prefix: the first wins
			{Source: p("::ffff:192.168.0.0/120"), Header: ProxyRequired},
			{Source: p("2001:db8::/32"), Header: ProxyOptional},
			{}, // invalid: ignored
		},
	})
	assert.Equal(t, 6, len(pc.policies))
	cases := []struct {
		a                 net.Addr
		trusted, required bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.0.9.1")}, true, false},
		{&net.TCPAddr{IP: net.ParseIP("10.0.9.7")}, false, false},
		{&net.TCPAddr{IP: net.ParseIP("10.0.1.1")}, false, false},
		{&net.TCPAddr{IP: net.ParseIP("10.1.1.1")}, false, false},
		{&net.TCPAddr{IP: net.ParseIP("192.168.0.9")}, true, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Zone: "eth0"}, true, false},
		{&net.TCPAddr{IP: net.ParseIP("172.16.0.1")}, false, false},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, false, false},
	}
	for _, tc := range cases {
		tr, req := pc.rule(tc.a)
		assert.Equal(t, tc.trusted, tr, "trusted %v", tc.a)
		assert.Equal(t, tc.required, req, "required %v", tc.a)
	}
	// Without policies, Trusted and Required decide as before.
	pc = newProxyConfig(ProxyConfig{Trusted: []netip.Prefix{p("10.0.0.0/16")}, Required: true})
	tr, req := pc.rule(&net.TCPAddr{IP: net.ParseIP("10.0.0.1")})
	assert.True(t, tr && req)
	tr, req = pc.rule(&net.TCPAddr{IP: net.ParseIP("10.1.0.1")})
	assert.False(t, tr || req)
}

// TestProxyPolicyMux: 127.0.0.1 must send a header, 127.0.0.3 may (a
// health checker), 127.0.0.4 must not; address matchers see the client's
// address the header carries.
func TestProxyPolicyMux(t *testing.T) {
	checkLeaks(t)
	p := netip.MustParsePrefix
	m, addr, errs := thServedMux(t, ProxyProtocol(ProxyConfig{
		Trusted:  ppLoopback,
		Required: true,
		Policies: []ProxySourcePolicy{{Source: p("127.0.0.3/32"), Header: ProxyOptional}, {Source: p("127.0.0.4/32")}},
	}))
	rtServeID(t, m.Match(All(RemoteAddrIn(p("192.0.2.0/24")), LocalAddrIn(p("198.51.100.2/32")), PrefixMatcher("hello"))), "client")
	rtServeID(t, m.Match(PrefixMatcher("hello")), "hello")
	probes := make(chan string, 10)
	thServe(t, m.Match(Any()), func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		probes <- fmt.Sprintf("%v %d", c.RemoteAddr().(*net.TCPAddr).IP, n)
	})
	v1 := "PROXY TCP4 192.0.2.1 198.51.100.2 1000 443\r\n"
	cases := []struct{ from, in, want string }{
		{"127.0.0.1", v1 + "hello", "client 192.0.2.1"},
		{"127.0.0.1", "hello", ""}, // required
		{"127.0.0.3", v1 + "hello", "client 192.0.2.1"},
		{"127.0.0.3", "hello", "hello 127.0.0.3"}, // optional
		{"127.0.0.4", v1 + "hello", ""},           // refused
		{"127.0.0.4", "hello", "hello 127.0.0.4"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, rtID(rtAsk(t, tc.from, addr, []byte(tc.in))), "%s %q", tc.from, tc.in)
		if tc.want == "" {
			err := nextErr(t, errs)
			assert.True(t, errors.Is(err, ErrProxyHeader), "%s: %v", tc.from, err)
		}
	}
	// Connect-only probes: from the optional source one is an empty
	// connection like any other; from the required one, an error.
	for _, from := range []string{"127.0.0.3", "127.0.0.1"} {
		d := net.Dialer{Timeout: thWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		c.Close()
	}
	select {
	case got := <-probes:
		assert.Equal(t, "127.0.0.3 0", got)
	case <-time.After(thWait):
		t.Fatal("the probe of 127.0.0.3 was not delivered")
	}
	err := nextErr(t, errs)
	assert.True(t, errors.Is(err, ErrProxyHeader) && strings.Contains(err.Error(), "127.0.0.1"), "%v", err)
	ppNoErr(t, errs)
}

// TestProxyPolicyPassUntrusted: with PassUntrusted, a refused source's
// header stays in the stream, as an untrusted source's does.
func TestProxyPolicyPassUntrusted(t *testing.T) {
	checkLeaks(t)
	m, addr, errs := thServedMux(t, ProxyProtocol(ProxyConfig{
		Trusted:       ppLoopback,
		PassUntrusted: true,
		Policies:      []ProxySourcePolicy{{Source: netip.MustParsePrefix("127.0.0.4/32"), Header: ProxyRefused}},
	}))
	rtServeID(t, m.Match(PrefixMatcher("PROXY ")), "header-in-stream")
	rtServeID(t, m.Match(Any()), "other")
	v1 := "PROXY TCP4 192.0.2.1 198.51.100.2 1000 443\r\nhello"
	assert.Equal(t, "header-in-stream 127.0.0.4", rtID(rtAsk(t, "127.0.0.4", addr, []byte(v1))))
	assert.Equal(t, "other 192.0.2.1", rtID(rtAsk(t, "127.0.0.5", addr, []byte(v1))))
	ppNoErr(t, errs)
}

// TestProxyPolicyHAProxy puts haproxy in front of the mux: trusted
// backends send PROXY v2 and v1 from 127.0.0.1 and the mux routes on the
// client's address; backends on the refused source 127.0.0.4 send v1 and
// v2 and are refused; a backend on 127.0.0.3 sends no header, and its HTTP
// health checks pass only with an optional policy for that source.
func TestProxyPolicyHAProxy(t *testing.T) {
	checkLeaks(t)
	thNeed(t, "haproxy")
	p := netip.MustParsePrefix
	for _, optional := range []bool{true, false} {
		t.Run(fmt.Sprintf("optional=%v", optional), func(t *testing.T) {
			cfg := ProxyConfig{Trusted: ppLoopback, Required: true, Policies: []ProxySourcePolicy{{Source: p("127.0.0.4/32")}}}
			if optional {
				cfg.Policies = append(cfg.Policies, ProxySourcePolicy{Source: p("127.0.0.3/32"), Header: ProxyOptional})
			}
			m, muxAddr, errs := thServedMux(t, ProxyProtocol(cfg))
			var checks atomic.Int32
			handler := func(id string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/health" {
						checks.Add(1)
					}
					host, _, _ := net.SplitHostPort(r.RemoteAddr)
					fmt.Fprintf(w, "%s %s", id, host)
				})
			}
			serveHTTP(t, m.Match(All(RemoteAddrIn(p("127.0.0.2/32")), HTTP1Fast())), &http.Server{Handler: handler("from-2")})
			serveHTTP(t, m.Match(HTTP1Fast()), &http.Server{Handler: handler("http")})

			ports := ppFreePorts(t, 6, false)
			fe := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
			ppRunHAProxy(t, fmt.Sprintf(ppHAProxyDefaults+`    timeout check 5s
frontend fe_ready
    bind %s
    tcp-request connection reject
frontend fe_trusted
    bind %s
    default_backend be_trusted
backend be_trusted
    server mux %s send-proxy-v2
frontend fe_untrusted
    bind %s
    default_backend be_untrusted
backend be_untrusted
    server mux %s send-proxy source 127.0.0.4
frontend fe_trusted_v1
    bind %s
    default_backend be_trusted_v1
backend be_trusted_v1
    server mux %s send-proxy
frontend fe_untrusted_v2
    bind %s
    default_backend be_untrusted_v2
backend be_untrusted_v2
    server mux %s send-proxy-v2 source 127.0.0.4
frontend fe_checked
    bind %s
    default_backend be_checked
backend be_checked
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host lb
    http-check expect status 200
    server mux %s source 127.0.0.3 check inter 50ms fall 1 rise 1
`, fe(0), fe(1), muxAddr, fe(2), muxAddr, fe(4), muxAddr, fe(5), muxAddr, fe(3), muxAddr), fe(0))

			get := func(via, from string) string {
				t.Helper()
				tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
					return d.DialContext(ctx, network, via)
				}, DisableKeepAlives: true}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr, Timeout: thWait}).Get("http://app.example/")
				if err != nil {
					return "error"
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			assert.Equal(t, "from-2 127.0.0.2", get(fe(1), "127.0.0.2"))
			assert.Equal(t, "http 127.0.0.1", get(fe(1), "127.0.0.1"))
			assert.Equal(t, "error", get(fe(2), "127.0.0.2"))
			assert.Equal(t, "from-2 127.0.0.2", get(fe(4), "127.0.0.2"))
			assert.Equal(t, "error", get(fe(5), "127.0.0.2"))
			if optional {
				rtWaitProxyErrs(t, errs, "127.0.0.4") // v1
				rtWaitProxyErrs(t, errs, "127.0.0.4") // v2
				assert.Eventually(t, func() bool { return checks.Load() >= 3 }, thWait, 10*time.Millisecond, "health checks")
				assert.Equal(t, "http 127.0.0.3", get(fe(3), "127.0.0.1"))
				ppNoErr(t, errs)
				return
			}
			// Every check is refused: haproxy takes the server down.
			rtWaitProxyErrs(t, errs, "127.0.0.4", "127.0.0.3")
			assert.Eventually(t, func() bool { return get(fe(3), "127.0.0.1") == "error" }, thWait, 50*time.Millisecond, "server down")
			assert.Equal(t, int32(0), checks.Load())
		})
	}
}

// rtWaitProxyErrs reads errors until each of froms has appeared in one
// matching ErrProxyHeader, failing t on any other error.
func rtWaitProxyErrs(t *testing.T, errs chan error, froms ...string) {
	t.Helper()
	seen := map[string]bool{}
	for range 100 {
		err := nextErr(t, errs)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrProxyHeader) {
			t.Errorf("unexpected error: %v", err)
			continue
		}
		all := true
		for _, f := range froms {
			seen[f] = seen[f] || strings.Contains(err.Error(), f+":")
			all = all && seen[f]
		}
		if all {
			return
		}
	}
	t.Errorf("not every source in %v had its header refused: %v", froms, seen)
}
