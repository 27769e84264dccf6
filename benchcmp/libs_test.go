package benchcmp

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	ours "github.com/cmux-go/cmux"
	v015 "github.com/soheilhy/cmux"
)

// A case names its matchers as data (spec); each library turns them into
// its own matchers through api, a table of that library's functions. The
// code that builds a mux, registers the children and serves is written
// once, for both.

type kind int

const (
	kAny kind = iota
	kPrefix
	kHTTP1Fast
	kHTTP2
	kTLS
	kHTTP1HeaderField
	kHTTP2HeaderField
	kHTTP2SendSettings // HTTP2MatchHeaderFieldSendSettings: a MatchWriter
	// The routing matchers of this library (issue 16). v0.1.5 has none:
	// where a program can route alike with it, the case names its nearest
	// matcher (see api.Routing); otherwise v0.1.5 skips the case.
	kHTTPHost       // HTTPHost(args...); v0.1.5's HTTP1HeaderField never sees Host (http.ReadRequest moves it out)
	kHTTP2Host      // HTTPHost(args...); v0.1.5: HTTP2HeaderFieldPrefix(":authority", args[0]+":")
	kHTTPPathPrefix // HTTPPathPrefix(args...)
	kAddrHTTP1Fast  // All(RemoteAddrIn(args...), HTTP1Fast())
)

// spec is one matcher: its kind and its string arguments (the prefixes of
// kPrefix, the name and value of the header field matchers).
type spec struct {
	kind kind
	args []string
}

func anyM() spec                     { return spec{kind: kAny} }
func prefix(strs ...string) spec     { return spec{kPrefix, strs} }
func http1Fast() spec                { return spec{kind: kHTTP1Fast} }
func http2M() spec                   { return spec{kind: kHTTP2} }
func tlsM() spec                     { return spec{kind: kTLS} }
func h1Field(name, v string) spec    { return spec{kHTTP1HeaderField, []string{name, v}} }
func h2Field(name, v string) spec    { return spec{kHTTP2HeaderField, []string{name, v}} }
func h2Settings(name, v string) spec { return spec{kHTTP2SendSettings, []string{name, v}} }
func routing(k kind, args ...string) spec {
	return spec{k, args}
}

// child is the matchers of one Match (or MatchWithWriters, if they are all
// MatchWriters) call.
type child []spec

func (c child) writers() bool {
	w := 0
	for _, s := range c {
		if s.kind == kHTTP2SendSettings {
			w++
		}
	}
	if w != 0 && w != len(c) {
		panic("a child mixes Matchers and MatchWriters")
	}
	return w != 0
}

// muxer is the part of CMux that both libraries have and the harness uses.
type muxer[M, W any] interface {
	Match(...M) net.Listener
	MatchWithWriters(...W) net.Listener
	Serve() error
	Close()
}

// api is one library's constructor and matchers.
type api[M ~func(io.Reader) bool, W ~func(io.Writer, io.Reader) bool, X muxer[M, W]] struct {
	New                               func(net.Listener) X
	Any                               func() M
	PrefixMatcher                     func(...string) M
	HTTP1Fast                         func(...string) M
	HTTP2                             func() M
	TLS                               func(...int) M
	HTTP1HeaderField                  func(name, value string) M
	HTTP2HeaderField                  func(name, value string) M
	HTTP2MatchHeaderFieldSendSettings func(name, value string) W
	// Routing returns the library's matcher of a routing kind (kHTTPHost
	// and after), or false if it has none.
	Routing func(s spec) (M, bool)
}

// supports reports whether the library has every matcher of children.
func (a api[M, W, X]) supports(children []child) bool {
	for _, c := range children {
		for _, s := range c {
			if s.kind >= kHTTPHost {
				if _, ok := a.Routing(s); !ok {
					return false
				}
			}
		}
	}
	return true
}

func (a api[M, W, X]) matcher(s spec) M {
	switch s.kind {
	case kAny:
		return a.Any()
	case kPrefix:
		return a.PrefixMatcher(s.args...)
	case kHTTP1Fast:
		return a.HTTP1Fast()
	case kHTTP2:
		return a.HTTP2()
	case kTLS:
		return a.TLS()
	case kHTTP1HeaderField:
		return a.HTTP1HeaderField(s.args[0], s.args[1])
	case kHTTP2HeaderField:
		return a.HTTP2HeaderField(s.args[0], s.args[1])
	}
	if m, ok := a.Routing(s); ok {
		return m
	}
	panic(fmt.Sprintf("matcher kind %d is not a Matcher", s.kind))
}

func (a api[M, W, X]) writer(s spec) W {
	if s.kind == kHTTP2SendSettings {
		return a.HTTP2MatchHeaderFieldSendSettings(s.args[0], s.args[1])
	}
	panic(fmt.Sprintf("matcher kind %d is not a MatchWriter", s.kind))
}

// running is a mux serving in its own goroutine.
type running struct {
	children []net.Listener // in the order of the case's children
	close    func()         // the mux's Close
	served   chan struct{}  // closed when Serve has returned
	err      error          // what Serve returned; read after served
}

// start builds a mux on root with children, in order, and serves it.
func (a api[M, W, X]) start(root net.Listener, children []child) *running {
	m := a.New(root)
	r := &running{close: m.Close, served: make(chan struct{})}
	for _, c := range children {
		var l net.Listener
		if c.writers() {
			ws := make([]W, len(c))
			for i, s := range c {
				ws[i] = a.writer(s)
			}
			l = m.MatchWithWriters(ws...)
		} else {
			ms := make([]M, len(c))
			for i, s := range c {
				ms[i] = a.matcher(s)
			}
			l = m.Match(ms...)
		}
		r.children = append(r.children, l)
	}
	go func() {
		r.err = m.Serve()
		close(r.served)
	}()
	return r
}

// library is a library under test, by the name used in benchmark names.
type library struct {
	name     string
	start    func(root net.Listener, children []child) *running
	supports func(children []child) bool
}

// skipUnsupported skips tb if lib lacks a matcher of c.
func skipUnsupported(tb testing.TB, lib library, c benchCase) {
	if !lib.supports(c.children) {
		tb.Skipf("%s has no matcher for case %s", lib.name, c.name)
	}
}

// libs are the libraries compared: v0.1.5 first, as the baseline, then
// cmux as New makes it, then (cmuxca) with the ConcurrentAccept option,
// which only connections that are not sockets feel: the socket and TCP
// benchmarks leave it out (see socketLibs).
var libs = []library{
	{"v015", apiV015.start, apiV015.supports},
	{"cmux", apiOurs.start, apiOurs.supports},
	{"cmuxca", apiOursCA.start, apiOursCA.supports},
}

// socketLibs are libs without cmuxca.
var socketLibs = libs[:2]

var apiV015 = api[v015.Matcher, v015.MatchWriter, v015.CMux]{
	New:                               v015.New,
	Any:                               v015.Any,
	PrefixMatcher:                     v015.PrefixMatcher,
	HTTP1Fast:                         v015.HTTP1Fast,
	HTTP2:                             v015.HTTP2,
	TLS:                               v015.TLS,
	HTTP1HeaderField:                  v015.HTTP1HeaderField,
	HTTP2HeaderField:                  v015.HTTP2HeaderField,
	HTTP2MatchHeaderFieldSendSettings: v015.HTTP2MatchHeaderFieldSendSettings,
	Routing: func(s spec) (v015.Matcher, bool) {
		switch s.kind {
		case kHTTP2Host:
			return v015.HTTP2HeaderFieldPrefix(":authority", s.args[0]+":"), true
		}
		return nil, false
	},
}

var apiOurs = api[ours.Matcher, ours.MatchWriter, ours.CMux]{
	New:                               func(l net.Listener) ours.CMux { return ours.New(l) },
	Any:                               ours.Any,
	PrefixMatcher:                     ours.PrefixMatcher,
	HTTP1Fast:                         ours.HTTP1Fast,
	HTTP2:                             ours.HTTP2,
	TLS:                               ours.TLS,
	HTTP1HeaderField:                  ours.HTTP1HeaderField,
	HTTP2HeaderField:                  ours.HTTP2HeaderField,
	HTTP2MatchHeaderFieldSendSettings: ours.HTTP2MatchHeaderFieldSendSettings,
	Routing: func(s spec) (ours.Matcher, bool) {
		switch s.kind {
		case kHTTPHost, kHTTP2Host:
			return ours.HTTPHost(s.args...), true
		case kHTTPPathPrefix:
			return ours.HTTPPathPrefix(s.args...), true
		case kAddrHTTP1Fast:
			ps := make([]netip.Prefix, len(s.args))
			for i, a := range s.args {
				ps[i] = netip.MustParsePrefix(a)
			}
			return ours.All(ours.RemoteAddrIn(ps...), ours.HTTP1Fast()), true
		}
		return nil, false
	},
}

// apiOursCA is apiOurs with ConcurrentAccept.
var apiOursCA = func() api[ours.Matcher, ours.MatchWriter, ours.CMux] {
	a := apiOurs
	a.New = func(l net.Listener) ours.CMux { return ours.NewWithOptions(l, ours.ConcurrentAccept()) }
	return a
}()
