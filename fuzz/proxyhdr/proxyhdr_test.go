// Package proxyhdr checks the mux's PROXY protocol parser
// (github.com/cmux-go/cmux/internal/proxyhdr) against
// github.com/pires/go-proxyproto. It lives in a module of its own so that
// go-proxyproto never enters the cmux module's go.mod.
package proxyhdr

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/cmux-go/cmux/internal/peek"
	"github.com/cmux-go/cmux/internal/proxyhdr"
	"github.com/cmux-go/cmux/internal/wiretest"
)

// ours parses data with the mux's parser: the header, its length, and
// whether data starts with a signature at all.
func ours(data []byte) (h *proxyhdr.Header, n int, err error) {
	p := peek.Bytes(data)
	v := proxyhdr.Detect(p)
	if v == 0 {
		return nil, 0, nil
	}
	return proxyhdr.Parse(p, v)
}

// theirs parses data with go-proxyproto: the header and its length.
func theirs(data []byte) (*proxyproto.Header, int, error) {
	r := bytes.NewReader(data)
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := proxyproto.Read(br)
	return h, len(data) - r.Len() - br.Buffered(), err
}

func addr(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.Network() + " " + a.String()
}

// FuzzProxyHeaderDifferential checks that where go-proxyproto reads a
// header, the mux reads the same one, and the other way round, but for
// these known divergences, where the mux is stricter or keeps less:
//
//   - version 1 ports with leading zeros or a sign, and IPv4 addresses with
//     leading zeros, which go-proxyproto takes (the mux follows the spec's
//     decimal form and net/netip);
//   - version 1 TCP6 lines with an IPv4 address, and TCP4 lines with an
//     IPv6 one, which go-proxyproto takes in some forms (the mux does not);
//   - IPv6 zones in version 1 addresses (the mux refuses them);
//   - version 2 CRC32C TLVs: the mux checks their length and the checksum,
//     go-proxyproto leaves that to the caller;
//   - version 2 TLVs that do not parse: go-proxyproto reads the header and
//     fails only when asked for its TLVs; the mux refuses the header
//     (but for LOCAL, where it ignores them);
//   - version 2 LOCAL headers with an unknown family or transport, which
//     the mux consumes (the receiver ignores the address block, as the spec
//     says) and go-proxyproto refuses;
//   - version 2 PROXY headers with AF_UNSPEC (family and transport 0),
//     which the spec says the receiver accepts, keeping the connection's
//     own addresses, and go-proxyproto refuses;
//   - version 2 UNIX addresses: go-proxyproto keeps the raw 108 bytes, the
//     mux the path up to the first NUL;
//   - the value of a PP2_TYPE_NOOP (0x04) TLV, which go-proxyproto drops
//     and the mux keeps, as it keeps every TLV's;
//   - version 1 UNKNOWN lines with more fields: go-proxyproto may refuse
//     what the spec says to ignore.
//
// Where both read a header, they agree on its version, length, addresses
// and TLVs.
func FuzzProxyHeaderDifferential(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(wiretest.ProxyV2(0x21, 0x11, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 1000, 443), true,
		wiretest.TLV{Type: 0x02, Value: []byte("example.com")}))
	f.Add(wiretest.ProxyV2(0x21, 0x21, wiretest.ProxyInet("2001:db8::1", "2001:db8::2", 1, 2), false))
	f.Add(wiretest.ProxyV2(0x20, 0x00, nil, false))
	f.Add(wiretest.ProxyV2(0x21, 0x12, wiretest.ProxyInet("192.0.2.1", "198.51.100.2", 53, 53), false))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := ours(data)
		ph, pn, perr := theirs(data)
		if h == nil && err == nil {
			// No signature: go-proxyproto finds none either.
			if perr == nil {
				t.Fatalf("%q: no signature for the mux, go-proxyproto reads %+v", data, ph)
			}
			return
		}
		if err != nil || perr != nil {
			if err == nil && perr != nil && knownStricterTheirs(data, h) {
				return
			}
			if err != nil && perr == nil && knownStricterOurs(data, ph) {
				return
			}
			if (err == nil) != (perr == nil) {
				t.Fatalf("%q: mux %v, go-proxyproto %v", data, err, perr)
			}
			return
		}
		if int(ph.Version) != h.Version || pn != n {
			t.Fatalf("%q: mux version %d length %d, go-proxyproto version %d length %d", data, h.Version, n, ph.Version, pn)
		}
		if ph.Command == proxyproto.LOCAL || ph.TransportProtocol == proxyproto.UNSPEC {
			if h.Source != nil {
				t.Fatalf("%q: mux reads addresses %v %v for a header without any", data, h.Source, h.Destination)
			}
		} else if ph.TransportProtocol.IsUnix() {
			// Raw paths: see above.
		} else if addr(h.Source) != addr(ph.SourceAddr) || addr(h.Destination) != addr(ph.DestinationAddr) {
			t.Fatalf("%q: mux %s -> %s, go-proxyproto %s -> %s", data,
				addr(h.Source), addr(h.Destination), addr(ph.SourceAddr), addr(ph.DestinationAddr))
		}
		if h.Version == 2 && ph.Command == proxyproto.PROXY {
			tlvs, terr := ph.TLVs()
			if terr != nil {
				t.Fatalf("%q: mux reads TLVs %v, go-proxyproto fails: %v", data, h.TLVs, terr)
			}
			if len(tlvs) != len(h.TLVs) {
				t.Fatalf("%q: mux %d TLVs, go-proxyproto %d", data, len(h.TLVs), len(tlvs))
			}
			for i := range tlvs {
				noop := h.TLVs[i].Type == 0x04 // PP2_TYPE_NOOP: see above
				if byte(tlvs[i].Type) != h.TLVs[i].Type || !noop && !bytes.Equal(tlvs[i].Value, h.TLVs[i].Value) {
					t.Fatalf("%q: TLV %d: mux %x %q, go-proxyproto %x %q", data, i, h.TLVs[i].Type, h.TLVs[i].Value, tlvs[i].Type, tlvs[i].Value)
				}
			}
		}
	})
}

// knownStricterTheirs reports whether go-proxyproto refuses a header the
// mux reads for one of the known divergences.
func knownStricterTheirs(data []byte, h *proxyhdr.Header) bool {
	switch {
	case h.Version == 1 && h.Source == nil:
		return true // UNKNOWN with more fields
	case h.Version == 2 && data[12]&0xf == 0:
		return true // LOCAL with a family go-proxyproto refuses
	case h.Version == 2 && data[13] == 0:
		return true // PROXY with AF_UNSPEC
	}
	return false
}

// knownStricterOurs reports whether the mux refuses a header go-proxyproto
// reads for one of the known divergences.
func knownStricterOurs(data []byte, ph *proxyproto.Header) bool {
	if ph.Version == 1 {
		return true // number forms, address families, zones
	}
	tlvs, err := ph.TLVs()
	if err != nil {
		return true // TLVs that do not parse
	}
	for _, t := range tlvs {
		if t.Type == proxyproto.PP2_TYPE_CRC32C {
			return true // the mux checks its length and the checksum
		}
	}
	return false
}
