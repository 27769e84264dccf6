package httproute

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	cases := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM:8080", "Example.COM"},
		{"example.com.", "example.com"},
		{"example.com.:443", "example.com"},
		{"[::1]:80", "::1"},
		{"[::1]", "::1"},
		{"[::1", "::1"},
		{"user:pw@host:1", "host"},
		{"a@b@c:1", "c"},
		{"", ""},
		{":80", ""},
		{"10.0.0.1:80", "10.0.0.1"},
	}
	for _, tc := range cases {
		if got := string(Host([]byte(tc.in))); got != tc.want {
			t.Errorf("Host(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTarget(t *testing.T) {
	cases := []struct {
		method, target, auth, path string
		has                        bool
	}{
		{"GET", "/a/b?x=1", "", "/a/b", false},
		{"GET", "/", "", "/", false},
		{"GET", "http://Example.com:80/a?q", "Example.com:80", "/a", true},
		{"GET", "http://example.com", "example.com", "/", true},
		{"GET", "http://example.com?q", "example.com", "/", true},
		{"CONNECT", "example.com:443", "example.com:443", "", true},
		{"OPTIONS", "*", "", "*", false},
		{"GET", "nonsense", "", "", false},
		{"GET", "://x/y", "", "", false},
	}
	for _, tc := range cases {
		a, p, has := Target([]byte(tc.method), []byte(tc.target))
		if string(a) != tc.auth || string(p) != tc.path || has != tc.has {
			t.Errorf("Target(%q, %q) = %q, %q, %v; want %q, %q, %v", tc.method, tc.target, a, p, has, tc.auth, tc.path, tc.has)
		}
	}
}

// FuzzTarget checks Host and Target against net/url on the targets it
// parses, and that both return subslices with no port, query or
// userinfo left.
func FuzzTarget(f *testing.F) {
	f.Add("GET", "/a/b?c")
	f.Add("GET", "http://u@Example.com:8080/x?y")
	f.Add("CONNECT", "h:443")
	f.Add("OPTIONS", "*")
	f.Add("GET", "https://[::1]:8443")
	f.Fuzz(func(t *testing.T, method, target string) {
		auth, path, has := Target([]byte(method), []byte(target))
		if !has && len(auth) > 0 {
			t.Fatalf("%q: authority %q without hasAuthority", target, auth)
		}
		if bytes.ContainsAny(path, "?#") {
			t.Fatalf("%q: path %q has a query", target, path)
		}
		if len(path) > 0 && !strings.Contains(target, string(path)) {
			if string(path) != "/" {
				t.Fatalf("%q: path %q not from the target", target, path)
			}
		}
		host := Host(auth)
		if !bytes.Contains(auth, host) {
			t.Fatalf("%q: host %q not in %q", target, host, auth)
		}
		if bytes.IndexByte(host, '@') >= 0 || len(host) > 0 && host[len(host)-1] == '.' && (len(auth) == 0 || auth[0] != '[') {
			t.Fatalf("%q: host %q", target, host)
		}
		if method == "CONNECT" || target == "*" {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Opaque != "" {
			return
		}
		if target[0] == '/' {
			if has || string(path) != strings.SplitN(strings.SplitN(target, "?", 2)[0], "#", 2)[0] {
				t.Fatalf("%q: path %q", target, path)
			}
			return
		}
		if !has || u.Host == "" && len(auth) > 0 && !bytes.ContainsAny(auth, "@") {
			return
		}
		if !strings.HasPrefix(u.Host, "[") && strings.Count(u.Host, ":") > 1 {
			return // not an authority: "::"
		}
		want := strings.TrimSuffix(u.Hostname(), ".")
		if u.User == nil && !bytes.Contains(auth, []byte("%")) && string(host) != want {
			t.Fatalf("%q: host %q, net/url %q", target, host, want)
		}
	})
}
