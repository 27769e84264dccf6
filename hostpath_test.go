package cmux

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cmux-go/cmux/internal/wiretest"
)

// hpH2 returns an HTTP/2 first flight whose first request has fields.
func hpH2(fields ...string) []byte {
	return wiretest.Cat([]byte(wiretestPreface), wiretest.Settings(), wiretest.Headers(1, wiretest.Block(fields...), true, 0, false))
}

var hpCases = []struct {
	in   string
	m    string // "host:<patterns>" or "path:<prefixes>", comma-separated
	want bool
}{
	{"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "host:api.example.com", true},
	{"GET /x HTTP/1.1\r\nhost: API.Example.com.:8080\r\n\r\n", "host:api.example.com", true},
	{"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "host:API.EXAMPLE.COM.", true},
	{"GET /x HTTP/1.1\r\nHost: api.example.org\r\n\r\n", "host:api.example.com", false},
	{"GET /x HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "host:*.example.com", true},
	{"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n", "host:*.example.com", false},
	{"GET /x HTTP/1.1\r\nHost: a.b.example.com\r\n\r\n", "host:*.example.com", false},
	{"GET /x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "host:::1", true},
	{"GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n", "host:", true},
	{"GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n", "host:x", false},
	{"GET http://b.example.com:81/y HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "host:b.example.com", true},
	{"GET http://b.example.com:81/y HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "path:/y", true},
	{"CONNECT c.example.com:443 HTTP/1.1\r\nHost: c.example.com:443\r\n\r\n", "host:c.example.com", true},
	{"CONNECT c.example.com:443 HTTP/1.1\r\n\r\n", "path:/", false},
	{"GET /api/v1?x=/static HTTP/1.1\r\nHost: x\r\n\r\n", "path:/static,/api/", true},
	{"GET /apiv1?x=/api/ HTTP/1.1\r\nHost: x\r\n\r\n", "path:/api/", false},
	{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "path:*", true},
	{"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "host:a", true},
	{"GET /x HTTP/1.1\r\nBad header\r\nHost: a\r\n\r\n", "host:a", false},
	{"GET /x HTTP/1.1\r\nHost: a\r\nX", "host:a", true}, // the header need not end
	{"GET /x HTTP/1.1\r\nX: y\r\n", "host:", false},     // but without Host it must
	{"\x16\x03\x01\x00\x05hello", "host:", false},
	{"SSH-2.0-x\r\n", "path:", false},
	{"", "path:", false},
	{string(hpH2(":method", "GET", ":scheme", "http", ":path", "/api/v1?q", ":authority", "api.example.com:8080")), "host:api.example.com", true},
	{string(hpH2(":method", "GET", ":scheme", "http", ":path", "/api/v1?q", ":authority", "api.example.com:8080")), "path:/api/", true},
	{string(hpH2(":method", "GET", ":scheme", "http", ":path", "/api/v1?q", ":authority", "api.example.com:8080")), "path:/v1", false},
	{string(hpH2(":method", "GET", ":scheme", "http", ":path", "/", "host", "h.example.com")), "host:*.example.com", true},
	{string(hpH2(":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a.example.com", "host", "h.example.com")), "host:h.example.com", false},
	{string(hpH2(":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/M", ":authority", "grpc.example.com", "content-type", "application/grpc")), "path:/pkg.Svc/", true},
	{string(hpH2(":method", "GET", ":scheme", "http", ":path", "/")), "host:", true},
	{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "host:", false},
}

func hpMatcher(spec string) Matcher {
	kind, list, _ := strings.Cut(spec, ":")
	args := strings.Split(list, ",")
	if kind == "host" {
		return HTTPHost(args...)
	}
	return HTTPPathPrefix(args...)
}

// TestHTTPHostPath runs the matchers on plain readers, and on the mux's
// sniffer with the bytes whole and one at a time.
func TestHTTPHostPath(t *testing.T) {
	checkLeaks(t)
	for _, tc := range hpCases {
		m := hpMatcher(tc.m)
		assert.Equal(t, tc.want, m(strings.NewReader(tc.in)), "reader: %s %q", tc.m, tc.in)
		for _, chunk := range []int{0, 1} {
			r := mtSniff(t, mtPeer{in: []byte(tc.in), chunk: chunk, hangUp: true}, func(s *sniffer) bool { return m(s) })
			assert.Equal(t, tc.want, r.ok, "sniffer, chunk %d: %s %q", chunk, tc.m, tc.in)
		}
	}
}

// TestHTTPHostPathShared: through the mux the matchers share one parse of
// the request per connection.
func TestHTTPHostPathShared(t *testing.T) {
	checkLeaks(t)
	for _, in := range []string{
		"GET /a HTTP/1.1\r\nHost: one.example\r\n\r\n",
		string(hpH2(":method", "GET", ":scheme", "http", ":path", "/a", ":authority", "one.example")),
	} {
		var second bool
		mtSniff(t, mtPeer{in: []byte(in), hangUp: true}, func(s *sniffer) bool {
			if !HTTPHost("one.example")(s) {
				t.Errorf("%q: no match", in)
			}
			s.route.host = []byte("two.example") // a second parse would undo this
			s.rewind()
			second = HTTPHost("two.example")(s) && HTTPPathPrefix("/a")(s)
			return true
		})
		assert.True(t, second, "%q: parsed twice", in)
	}
}

// TestHTTPHostPathCurl routes curl's requests, HTTP/1.1 and h2c, with
// --resolve and Host headers.
func TestHTTPHostPathCurl(t *testing.T) {
	checkLeaks(t)
	h2NeedBinary(t, "curl")
	m, addr, errs := thServedMux(t)
	serve := func(id string, ms ...Matcher) {
		hs := h2ProtocolsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s%s", id, r.Proto, r.Host, r.URL.Path)
		}), nil)
		serveHTTP(t, m.Match(ms...), hs)
	}
	serve("api", HTTPHost("api.example.com"))
	serve("static", All(HTTPHost("*.example.com"), HTTPPathPrefix("/static/")))
	serve("admin", HTTPPathPrefix("/admin/", "/Admin/"))
	serve("default", Any())
	_, port, _ := strings.Cut(addr, ":")
	resolve := func(host string) []string {
		return []string{"--resolve", host + ":" + port + ":127.0.0.1", "http://" + host + ":" + port}
	}
	cases := []struct {
		args []string
		path string
		want string
	}{
		{resolve("api.example.com"), "/x", "api %s api.example.com:" + port + "/x"},
		{resolve("API.example.com"), "/static/a", "api %s API.example.com:" + port + "/static/a"},
		{resolve("www.example.com"), "/static/a.css", "static %s www.example.com:" + port + "/static/a.css"},
		{resolve("a.b.example.com"), "/static/a.css", "default %s a.b.example.com:" + port + "/static/a.css"},
		{[]string{"-H", "Host: www.example.com", "http://" + addr}, "/static/x?y=1", "static %s www.example.com/static/x"},
		{[]string{"-H", "Host: api.example.com:8443", "http://" + addr}, "/", "api %s api.example.com:8443/"},
		{[]string{"http://" + addr}, "/admin/users", "admin %s " + addr + "/admin/users"},
		{[]string{"http://" + addr}, "/administrator", "default %s " + addr + "/administrator"},
	}
	for _, proto := range []struct{ flag, name string }{{"--http1.1", "HTTP/1.1"}, {"--http2-prior-knowledge", "HTTP/2.0"}} {
		for _, tc := range cases {
			args := append([]string{proto.flag}, tc.args[:len(tc.args)-1]...)
			args = append(args, tc.args[len(tc.args)-1]+tc.path)
			out, errOut, code := h2Run(t, "curl", h2CurlArgs(args...)...)
			assert.Equal(t, 0, code, "curl %q: %s", args, errOut)
			assert.Equal(t, fmt.Sprintf(tc.want, proto.name), out, "curl %q", args)
		}
	}
	ppNoErr(t, errs)
}
