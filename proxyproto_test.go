package cmux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// ppV2 builds a version 2 header; with crc, it adds a CRC32C TLV.
func ppV2(verCmd, fam byte, addrs []byte, crc bool, tlvs ...ProxyTLV) []byte {
	var body []byte
	body = append(body, addrs...)
	for _, t := range tlvs {
		body = append(body, t.Type)
		body = binary.BigEndian.AppendUint16(body, uint16(len(t.Value)))
		body = append(body, t.Value...)
	}
	if crc {
		body = append(body, proxyTLVCRC32C, 0, 4, 0, 0, 0, 0)
	}
	h := append([]byte(proxyV2Sig), verCmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	h = append(h, body...)
	if crc {
		binary.BigEndian.PutUint32(h[len(h)-4:], crc32.Checksum(h, crc32c))
	}
	return h
}

// ppInet returns a version 2 address block of two IPs and ports.
func ppInet(src, dst string, sp, dp uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	b := append(s.AsSlice(), d.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, sp)
	return binary.BigEndian.AppendUint16(b, dp)
}

// ppUnix returns a version 2 address block of two Unix socket paths.
func ppUnix(src, dst string) []byte {
	b := make([]byte, 216)
	copy(b, src)
	copy(b[108:], dst)
	return b
}

// ppParse detects and parses the header in b, read one byte at a time if
// slow.
func ppParse(b []byte, slow bool) (*ProxyInfo, int, error) {
	var r io.Reader = bytes.NewReader(b)
	if slow {
		r = iotest.OneByteReader(r)
	}
	p := &readerPeeker{r: r}
	v := detectProxyHeader(p)
	if v == 0 {
		return nil, 0, nil
	}
	return parseProxyHeader(p, v)
}

var ppCRCHeader = ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1000, 443), true,
	ProxyTLV{0x02, []byte("example.com")}, ProxyTLV{0x04, []byte{}})

func TestProxyHeaderParse(t *testing.T) {
	checkLeaks(t)
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	udp := func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	worstV1 := "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
	require.Len(t, worstV1, 107)
	good := []struct {
		name string
		in   string
		want ProxyInfo
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
			ProxyInfo{Version: 1, Source: tcp("192.0.2.1:56324"), Destination: tcp("198.51.100.2:443")}},
		{"v1 tcp6", "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 0 65535\r\n",
			ProxyInfo{Version: 1, Source: tcp("[2001:db8::1]:0"), Destination: tcp("[::ffff:198.51.100.2]:65535")}},
		{"v1 unknown", "PROXY UNKNOWN\r\n", ProxyInfo{Version: 1}},
		{"v1 unknown, longest", worstV1, ProxyInfo{Version: 1}},
		{"v2 tcp4", string(ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1000, 443), false)),
			ProxyInfo{Version: 2, Source: tcp("192.0.2.1:1000"), Destination: tcp("198.51.100.2:443")}},
		{"v2 tcp6 tlvs crc", string(ppV2(0x21, 0x21, ppInet("2001:db8::1", "2001:db8::2", 1, 2), true,
			ProxyTLV{0x05, []byte("id-1")}, ProxyTLV{0xEA, []byte("\x01vpce-1")})),
			ProxyInfo{Version: 2, Source: tcp("[2001:db8::1]:1"), Destination: tcp("[2001:db8::2]:2"),
				TLVs: []ProxyTLV{{0x05, []byte("id-1")}, {0xEA, []byte("\x01vpce-1")}, {0x03, nil}}}},
		{"v2 udp4", string(ppV2(0x21, 0x12, ppInet("192.0.2.1", "198.51.100.2", 53, 53), false)),
			ProxyInfo{Version: 2, Source: udp("192.0.2.1:53"), Destination: udp("198.51.100.2:53")}},
		{"v2 unix", string(ppV2(0x21, 0x31, ppUnix("/run/src.sock", "/run/dst.sock"), false)),
			ProxyInfo{Version: 2, Source: &net.UnixAddr{Name: "/run/src.sock", Net: "unix"}, Destination: &net.UnixAddr{Name: "/run/dst.sock", Net: "unix"}}},
		{"v2 unixgram", string(ppV2(0x21, 0x32, ppUnix("a", "b"), false)),
			ProxyInfo{Version: 2, Source: &net.UnixAddr{Name: "a", Net: "unixgram"}, Destination: &net.UnixAddr{Name: "b", Net: "unixgram"}}},
		{"v2 unspec", string(ppV2(0x21, 0x00, nil, false, ProxyTLV{0x02, []byte("a")})),
			ProxyInfo{Version: 2, TLVs: []ProxyTLV{{0x02, []byte("a")}}}},
		{"v2 local", string(ppV2(0x20, 0x00, nil, false)), ProxyInfo{Version: 2}},
		{"v2 local with addresses", string(ppV2(0x20, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false, ProxyTLV{0x05, []byte("x")})),
			ProxyInfo{Version: 2, TLVs: []ProxyTLV{{0x05, []byte("x")}}}},
		{"v2 local, bad family ignored", string(ppV2(0x20, 0x77, []byte{1, 2, 3}, false)), ProxyInfo{Version: 2}},
		{"v2 local, bad TLVs ignored", string(ppV2(0x20, 0x00, []byte{1, 2}, false)), ProxyInfo{Version: 2}},
		{"v2 crc", string(ppCRCHeader), ProxyInfo{Version: 2, Source: tcp("192.0.2.1:1000"), Destination: tcp("198.51.100.2:443"),
			TLVs: []ProxyTLV{{0x02, []byte("example.com")}, {0x04, []byte{}}, {0x03, nil}}}},
	}
	for _, tc := range good {
		for _, slow := range []bool{false, true} {
			in := tc.in + "payload"
			info, n, err := ppParse([]byte(in), slow)
			require.NoError(t, err, tc.name)
			require.NotNil(t, info, tc.name)
			assert.Equal(t, len(tc.in), n, tc.name)
			// The CRC's value is what it is: compare its type only.
			for i, tlv := range info.TLVs {
				if tlv.Type == proxyTLVCRC32C {
					assert.Len(t, tlv.Value, 4)
					info.TLVs[i].Value = nil
				}
			}
			if len(tc.want.TLVs) == 0 {
				tc.want.TLVs = nil
			}
			assert.Equal(t, tc.want, *info, tc.name)
		}
	}

	// Not a header at all: nothing consumed.
	for _, in := range []string{"", "P", "PROXY", "PROXYTCP4", "GET / HTTP/1.1\r\n", "\r\n\r\n\x00\r\nQUIT", "\r\n\r\n\x00\r\nQUIT\r"} {
		info, n, err := ppParse([]byte(in), false)
		assert.True(t, info == nil && n == 0 && err == nil, "%q", in)
	}

	badCRC := bytes.Clone(ppCRCHeader)
	badCRC[len(badCRC)-1] ^= 1
	bad := map[string]string{
		"v1 no CR":              "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
		"v1 protocol":           "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
		"v1 lower case":         "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
		"v1 empty":              "PROXY \r\n",
		"v1 port too big":       "PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
		"v1 port leading zero":  "PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
		"v1 port sign":          "PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
		"v1 ip leading zero":    "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",
		"v1 ip family":          "PROXY TCP4 ::1 ::1 1 2\r\n",
		"v1 ip family 6":        "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
		"v1 zone":               "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		"v1 missing field":      "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
		"v1 extra field":        "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
		"v1 double space":       "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
		"v1 trailing space":     "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
		"v1 too long":           "PROXY UNKNOWN " + strings.Repeat("x", 92) + "\r\n",
		"v1 no CRLF":            "PROXY UNKNOWN " + strings.Repeat("x", 200),
		"v2 version 1":          string(ppV2(0x11, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 version 3":          string(ppV2(0x31, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 command 2":          string(ppV2(0x22, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 family 4":           string(ppV2(0x21, 0x41, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 transport 3":        string(ppV2(0x21, 0x13, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 inet transport 0":   string(ppV2(0x21, 0x10, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 unspec transport 1": string(ppV2(0x21, 0x01, nil, false)),
		"v2 inet too short":     string(ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2)[:11], false)),
		"v2 inet6 too short":    string(ppV2(0x21, 0x21, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 unix too short":     string(ppV2(0x21, 0x31, make([]byte, 215), false)),
		"v2 tlv header short":   string(ppV2(0x21, 0x11, append(ppInet("192.0.2.1", "198.51.100.2", 1, 2), 0x02, 0), false)),
		"v2 tlv value long":     string(ppV2(0x21, 0x11, append(ppInet("192.0.2.1", "198.51.100.2", 1, 2), 0x02, 0, 5, 'a'), false)),
		"v2 crc length":         string(ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false, ProxyTLV{0x03, []byte{1, 2, 3}})),
		"v2 crc mismatch":       string(badCRC),
	}
	for name, in := range bad {
		for _, slow := range []bool{false, true} {
			_, _, err := ppParse([]byte(in+"payload"), slow)
			require.Error(t, err, name)
			assert.ErrorIs(t, err, ErrProxyHeader, name)
			assert.Contains(t, err.Error(), "malformed", name)
		}
	}
	truncated := []string{
		"PROXY TCP4 192.0.2.1",
		"PROXY ",
		proxyV2Sig,
		proxyV2Sig + "\x21\x11\x00",
		string(ppCRCHeader[:len(ppCRCHeader)-1]),
	}
	for _, in := range truncated {
		_, _, err := ppParse([]byte(in), false)
		require.Error(t, err, "%q", in)
		assert.ErrorIs(t, err, ErrProxyHeader)
		assert.ErrorIs(t, err, io.EOF)
		assert.Contains(t, err.Error(), "truncated")
	}
}

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
			if x.Type == proxyTLVCRC32C {
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
	v2 := func(verCmd, fam byte, addrs []byte, tlvs ...ProxyTLV) string {
		return string(ppV2(verCmd, fam, addrs, false, tlvs...))
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
		{"v2 tcp6", []string{v2(0x21, 0x21, ppInet("2001:db8::1", "2001:db8::2", 3, 4)), "hello\n"},
			"hello remote=[2001:db8::1]:3 local=[2001:db8::2]:4 v=2 tlvs="},
		{"v2 unix", []string{v2(0x21, 0x31, ppUnix("/run/a.sock", "/run/b.sock")) + "hello\n"},
			"hello remote=/run/a.sock local=/run/b.sock v=2 tlvs="},
		{"v2 local", []string{v2(0x20, 0x00, nil, ProxyTLV{0x05, []byte("hc")}) + "hello\n"}, "v=2 tlvs=05:hc"},
		{"v2 unspec", []string{v2(0x21, 0x00, nil) + "hello\n"}, "v=2 tlvs="},
		{"v2 split", append(strings.Split(v2(0x21, 0x11, ppInet("192.0.2.9", "198.51.100.9", 9, 99))[:20], ""),
			v2(0x21, 0x11, ppInet("192.0.2.9", "198.51.100.9", 9, 99))[20:], "hel", "lo\n"),
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
		v2(0x22, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2)) + "hello\n",
		v2(0x21, 0x21, ppInet("192.0.2.1", "198.51.100.2", 1, 2)) + "hello\n",
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
	big := ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false, ProxyTLV{0x05, make([]byte, 100)})
	got, _, _ := ppAsk(t, addr, string(big)+"hello\n")
	assert.Empty(t, got)
	err = nextErr(t, errs)
	assert.ErrorIs(t, err, ErrProxyHeader)
	assert.ErrorIs(t, err, ErrSniffLimit)
	// One that fits.
	small := ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1, 2), false, ProxyTLV{0x05, make([]byte, 10)})
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
		TLSConfig: serverTLS(pki.leaf(t, "a", "a.example.com")),
	}
	serveHTTPS(t, httpsL, hs)
	header := ppV2(0x21, 0x11, ppInet("192.0.2.1", "198.51.100.2", 1000, 443), true, ProxyTLV{0x02, []byte("a.example.com")})
	tr := &http.Transport{
		TLSClientConfig: clientTLS(pki.roots),
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
	mc := &MuxConn{Conn: &tls.Conn{}, proxy: &ProxyInfo{Version: 2}}
	dc := mc.deliverable(true)
	_, isTLS := dc.(*tlsMuxConn)
	require.True(t, isTLS)
	info, ok := ProxyHeader(dc)
	assert.True(t, ok)
	assert.Same(t, mc.proxy, info)
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
			hs.TLSConfig = serverTLS(pki.leaf(t, "a", "a.example.com"))
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
	cfg := fmt.Sprintf(`global
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe_ready
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
			TLSClientConfig:   clientTLS(pki.roots),
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
	var ports []int
	for try := 0; len(ports) < n; try++ {
		require.Less(t, try, 100, "no free ports")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		if v6 {
			l6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
			if err != nil {
				l.Close()
				continue
			}
			l6.Close()
		}
		l.Close()
		ports = append(ports, port)
	}
	return ports
}

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
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy did not start listening")
		}
	}
}

// FuzzProxyHeader checks the PROXY protocol parser: it never panics, reads
// the same from any split of the input, stays within its bounds, and reads
// back the version 1 header it would write for what it read.
func FuzzProxyHeader(f *testing.F) {
	checkLeaks(f)
	f.Add(ppCRCHeader)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, n, err := ppParse(data, false)
		info1, n1, err1 := ppParse(data, true)
		if (err == nil) != (err1 == nil) || n != n1 {
			t.Fatalf("whole input: %d %v, one byte per Read: %d %v", n, err, n1, err1)
		}
		require.Equal(t, info, info1)
		if err != nil {
			require.ErrorIs(t, err, ErrProxyHeader)
			require.Nil(t, info)
			return
		}
		require.LessOrEqual(t, n, len(data))
		if info == nil {
			require.Zero(t, n)
			return
		}
		require.Equal(t, info.Source == nil, info.Destination == nil)
		switch info.Version {
		case 1:
			require.LessOrEqual(t, n, proxyV1Max)
			require.Nil(t, info.TLVs)
		case 2:
			require.GreaterOrEqual(t, n, proxyV2HdrLen)
		default:
			t.Fatalf("version %d", info.Version)
		}
		// Round trip of TCP addresses through a version 1 header.
		src, ok1 := info.Source.(*net.TCPAddr)
		dst, ok2 := info.Destination.(*net.TCPAddr)
		if !ok1 || !ok2 || src.IP.To4() == nil != (dst.IP.To4() == nil) {
			return
		}
		proto := "TCP4"
		if src.IP.To4() == nil || len(src.AddrPort().Addr().AsSlice()) == 16 {
			proto = "TCP6"
		}
		if (proto == "TCP6") != (len(dst.AddrPort().Addr().AsSlice()) == 16) {
			return
		}
		line := fmt.Sprintf("PROXY %s %s %s %d %d\r\n", proto, src.AddrPort().Addr(), dst.AddrPort().Addr(), src.Port, dst.Port)
		back, m, err := ppParse([]byte(line), false)
		require.NoError(t, err, line)
		require.Equal(t, len(line), m)
		require.Equal(t, src.String(), back.Source.String())
		require.Equal(t, dst.String(), back.Destination.String())
	})
}
