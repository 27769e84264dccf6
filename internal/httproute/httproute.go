// Package httproute takes from the head of an HTTP request what routing by
// host and path needs: the host of an authority (an HTTP/1 Host field or
// request target, an HTTP/2 :authority) and the path of a request target
// (an HTTP/1 request target, an HTTP/2 :path). It works on the bytes as
// sent: no percent-decoding, no dot-segment removal.
package httproute

// Host returns the host of an authority ("host", "host:port",
// "[v6]:port", with any userinfo "user@"), without userinfo, port,
// brackets and one trailing dot; letters keep their case. It returns a
// subslice of authority.
func Host(authority []byte) []byte {
	a := authority
	// userinfo (absolute-form targets; HTTP/2 forbids it).
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == '@' {
			a = a[i+1:]
			break
		}
	}
	if len(a) > 0 && a[0] == '[' {
		for i := 1; i < len(a); i++ {
			if a[i] == ']' {
				return a[1:i]
			}
		}
		return a[1:] // unclosed: what is there
	}
	for i := 0; i < len(a); i++ {
		if a[i] == ':' {
			a = a[:i]
			break
		}
	}
	if n := len(a); n > 0 && a[n-1] == '.' {
		a = a[:n-1]
	}
	return a
}

// Target splits an HTTP/1 request target. The origin-form ("/p?q") has a
// path; the absolute-form ("http://authority/p?q") an authority and a
// path ("/" when it has none); the authority-form of CONNECT
// ("host:port") an authority; the asterisk-form ("*") the path "*".
// Paths come without their query. hasAuthority reports whether the
// target carries an authority, which then takes precedence over the Host
// field (RFC 9112 §3.2.2).
func Target(method, target []byte) (authority, path []byte, hasAuthority bool) {
	switch {
	case len(target) > 0 && target[0] == '/':
		return nil, Path(target), false
	case string(method) == "CONNECT":
		return target, nil, true
	case string(target) == "*":
		return nil, target, false
	}
	// absolute-form: scheme "://" authority path-abempty ["?" query]
	i := indexOf(target, "://")
	if i <= 0 {
		return nil, nil, false
	}
	rest := target[i+3:]
	end := len(rest)
	for j, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			end = j
			break
		}
	}
	authority, path = rest[:end], Path(rest[end:])
	if len(path) == 0 || path[0] != '/' {
		path = slash
	}
	return authority, path, true
}

var slash = []byte("/")

// Path returns p up to its query or fragment.
func Path(p []byte) []byte {
	for i, c := range p {
		if c == '?' || c == '#' {
			return p[:i]
		}
	}
	return p
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}
