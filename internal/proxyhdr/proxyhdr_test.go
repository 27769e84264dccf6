package proxyhdr

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cmux-go/cmux/internal/peek"
	"github.com/cmux-go/cmux/internal/testcheck"
	"github.com/cmux-go/cmux/internal/wiretest"
)

var assert, require = testcheck.Assert, testcheck.Require

// ppParse detects and parses the header in b, read one byte at a time if
// slow.
func ppParse(b []byte, slow bool) (*Header, int, error) {
	var r io.Reader = bytes.NewReader(b)
	if slow {
		r = iotest.OneByteReader(r)
	}
	p := peek.NewReader(r, 64<<10)
	v := Detect(p)
	if v == 0 {
		return nil, 0, nil
	}
	return Parse(p, v)
}

var ppCRCHeader = wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1000, 443), true,
	wiretest.TLV{Type: 0x02, Value: []byte("example.com")}, wiretest.TLV{Type: 0x04, Value: []byte{}})

func TestProxyHeaderParse(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	udp := func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	worstV1 := "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
	require.Len(t, worstV1, 107)
	good := []struct {
		name string
		in   string
		want Header
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
			Header{Version: 1, Source: tcp("192.0.2.1:56324"), Destination: tcp("198.51.100.2:443")}},
		{"v1 tcp6", "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 0 65535\r\n",
			Header{Version: 1, Source: tcp("[2001:db8::1]:0"), Destination: tcp("[::ffff:198.51.100.2]:65535")}},
		{"v1 unknown", "PROXY UNKNOWN\r\n", Header{Version: 1}},
		{"v1 unknown, longest", worstV1, Header{Version: 1}},
		{"v2 tcp4", string(wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1000, 443), false)),
			Header{Version: 2, Source: tcp("192.0.2.1:1000"), Destination: tcp("198.51.100.2:443")}},
		{"v2 tcp6 tlvs crc", string(wiretest.ProxyV2(0x21, 0x21, wiretest.ProxyInet("2001:db8::1", "2001:db8::2", 1, 2), true,
			wiretest.TLV{Type: 0x05, Value: []byte("id-1")}, wiretest.TLV{Type: 0xEA, Value: []byte("\x01vpce-1")})),
			Header{Version: 2, Source: tcp("[2001:db8::1]:1"), Destination: tcp("[2001:db8::2]:2"),
				TLVs: []TLV{{0x05, []byte("id-1")}, {0xEA, []byte("\x01vpce-1")}, {0x03, nil}}}},
		{"v2 udp4", string(wiretest.ProxyV2(0x21, 0x12, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 53, 53), false)),
			Header{Version: 2, Source: udp("192.0.2.1:53"), Destination: udp("198.51.100.2:53")}},
		{"v2 unix", string(wiretest.ProxyV2(0x21, 0x31, wiretest.ProxyUnix("/run/src.sock", "/run/dst.sock"), false)),
			Header{Version: 2, Source: &net.UnixAddr{Name: "/run/src.sock", Net: "unix"}, Destination: &net.UnixAddr{Name: "/run/dst.sock", Net: "unix"}}},
		{"v2 unixgram", string(wiretest.ProxyV2(0x21, 0x32, wiretest.ProxyUnix("a", "b"), false)),
			Header{Version: 2, Source: &net.UnixAddr{Name: "a", Net: "unixgram"}, Destination: &net.UnixAddr{Name: "b", Net: "unixgram"}}},
		{"v2 unspec", string(wiretest.ProxyV2(0x21, 0x00, nil, false, wiretest.TLV{Type: 0x02, Value: []byte("a")})),
			Header{Version: 2, TLVs: []TLV{{0x02, []byte("a")}}}},
		{"v2 local", string(wiretest.ProxyV2(0x20, 0x00, nil, false)), Header{Version: 2}},
		{"v2 local with addresses", string(wiretest.ProxyV2(0x20, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false, wiretest.TLV{Type: 0x05, Value: []byte("x")})),
			Header{Version: 2, TLVs: []TLV{{0x05, []byte("x")}}}},
		{"v2 local, bad family ignored", string(wiretest.ProxyV2(0x20, 0x77, []byte{1, 2, 3}, false)), Header{Version: 2}},
		{"v2 local, bad TLVs ignored", string(wiretest.ProxyV2(0x20, 0x00, []byte{1, 2}, false)), Header{Version: 2}},
		{"v2 crc", string(ppCRCHeader), Header{Version: 2, Source: tcp("192.0.2.1:1000"), Destination: tcp("198.51.100.2:443"),
			TLVs: []TLV{{0x02, []byte("example.com")}, {0x04, []byte{}}, {0x03, nil}}}},
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
				if tlv.Type == TLVCRC32C {
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
		"v2 version 1":          string(wiretest.ProxyV2(0x11, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 version 3":          string(wiretest.ProxyV2(0x31, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 command 2":          string(wiretest.ProxyV2(0x22, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 family 4":           string(wiretest.ProxyV2(0x21, 0x41, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 transport 3":        string(wiretest.ProxyV2(0x21, 0x13, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 inet transport 0":   string(wiretest.ProxyV2(0x21, 0x10, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 unspec transport 1": string(wiretest.ProxyV2(0x21, 0x01, nil, false)),
		"v2 inet too short":     string(wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2)[:11], false)),
		"v2 inet6 too short":    string(wiretest.ProxyV2(0x21, 0x21, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false)),
		"v2 unix too short":     string(wiretest.ProxyV2(0x21, 0x31, make([]byte, 215), false)),
		"v2 tlv header short":   string(wiretest.ProxyV2(0x21, 0x11, append(wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), 0x02, 0), false)),
		"v2 tlv value long":     string(wiretest.ProxyV2(0x21, 0x11, append(wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), 0x02, 0, 5, 'a'), false)),
		"v2 crc length":         string(wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1, 2), false, wiretest.TLV{Type: 0x03, Value: []byte{1, 2, 3}})),
		"v2 crc mismatch":       string(badCRC),
	}
	for name, in := range bad {
		for _, slow := range []bool{false, true} {
			_, _, err := ppParse([]byte(in+"payload"), slow)
			require.Error(t, err, name)
			assert.ErrorAs(t, err, new(*Error), name)
			assert.Contains(t, err.Error(), "malformed", name)
		}
	}
	truncated := []string{
		"PROXY TCP4 192.0.2.1",
		"PROXY ",
		V2Sig,
		V2Sig + "\x21\x11\x00",
		string(ppCRCHeader[:len(ppCRCHeader)-1]),
	}
	for _, in := range truncated {
		_, _, err := ppParse([]byte(in), false)
		require.Error(t, err, "%q", in)
		assert.ErrorAs(t, err, new(*Error))
		assert.ErrorIs(t, err, io.EOF)
		assert.Contains(t, err.Error(), "truncated")
	}
}

// FuzzProxyHeader checks the PROXY protocol parser: it never panics, reads
// the same from any split of the input, stays within its bounds, and reads
// back the version 1 header it would write for what it read.
func FuzzProxyHeader(f *testing.F) {
	f.Add(ppCRCHeader)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, n, err := ppParse(data, false)
		info1, n1, err1 := ppParse(data, true)
		if (err == nil) != (err1 == nil) || n != n1 {
			t.Fatalf("whole input: %d %v, one byte per Read: %d %v", n, err, n1, err1)
		}
		require.Equal(t, info, info1)
		if err != nil {
			require.ErrorAs(t, err, new(*Error))
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
			require.LessOrEqual(t, n, V1Max)
			require.Nil(t, info.TLVs)
		case 2:
			require.GreaterOrEqual(t, n, V2HeaderLen)
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
