package compat

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	ours "github.com/cmux-go/cmux"
	v015 "github.com/soheilhy/cmux"
)

// Matcher and MatchWriter are the two libraries' matcher types, unnamed, so
// that one scenario can build matchers for either.
type (
	Matcher     = func(io.Reader) bool
	MatchWriter = func(io.Writer, io.Reader) bool
)

// Mux is the CMux interface of both libraries over the unnamed types.
type Mux interface {
	Match(...Matcher) net.Listener
	MatchWithWriters(...MatchWriter) net.Listener
	Serve() error
	Close()
	HandleError(func(error) bool)
	SetReadTimeout(time.Duration)
}

// Lib is what a scenario may use of a library: its constructor, its
// matcher constructors and its error values.
type Lib struct {
	Name string
	New  func(net.Listener) Mux

	Any                                     func() Matcher
	PrefixMatcher                           func(...string) Matcher
	HTTP1Fast                               func(...string) Matcher
	HTTP1, HTTP2                            func() Matcher
	TLS                                     func(...int) Matcher
	HTTP1HeaderField                        func(name, value string) Matcher
	HTTP1HeaderFieldPrefix                  func(name, prefix string) Matcher
	HTTP2HeaderField                        func(name, value string) Matcher
	HTTP2HeaderFieldPrefix                  func(name, prefix string) Matcher
	HTTP2MatchHeaderFieldSendSettings       func(name, value string) MatchWriter
	HTTP2MatchHeaderFieldPrefixSendSettings func(name, prefix string) MatchWriter

	ErrListenerClosed error
	ErrServerClosed   error
	// IsErrNotMatched reports whether err is the library's ErrNotMatched.
	IsErrNotMatched func(error) bool
	// IsMuxConn reports whether c is the library's *MuxConn, and returns
	// its embedded connection.
	IsMuxConn func(c net.Conn) (net.Conn, bool)
}

const (
	libV015 = "v015"
	libOurs = "cmux"
)

// libs are the libraries every scenario runs against, v0.1.5 first.
var libs = []*Lib{
	{
		Name:                                    libV015,
		New:                                     func(l net.Listener) Mux { return v015Mux{v015.New(l)} },
		Any:                                     func() Matcher { return v015.Any() },
		PrefixMatcher:                           func(s ...string) Matcher { return v015.PrefixMatcher(s...) },
		HTTP1Fast:                               func(s ...string) Matcher { return v015.HTTP1Fast(s...) },
		HTTP1:                                   func() Matcher { return v015.HTTP1() },
		HTTP2:                                   func() Matcher { return v015.HTTP2() },
		TLS:                                     func(v ...int) Matcher { return v015.TLS(v...) },
		HTTP1HeaderField:                        func(n, v string) Matcher { return v015.HTTP1HeaderField(n, v) },
		HTTP1HeaderFieldPrefix:                  func(n, v string) Matcher { return v015.HTTP1HeaderFieldPrefix(n, v) },
		HTTP2HeaderField:                        func(n, v string) Matcher { return v015.HTTP2HeaderField(n, v) },
		HTTP2HeaderFieldPrefix:                  func(n, v string) Matcher { return v015.HTTP2HeaderFieldPrefix(n, v) },
		HTTP2MatchHeaderFieldSendSettings:       func(n, v string) MatchWriter { return v015.HTTP2MatchHeaderFieldSendSettings(n, v) },
		HTTP2MatchHeaderFieldPrefixSendSettings: func(n, v string) MatchWriter { return v015.HTTP2MatchHeaderFieldPrefixSendSettings(n, v) },
		ErrListenerClosed:                       v015.ErrListenerClosed,
		ErrServerClosed:                         v015.ErrServerClosed,
		IsErrNotMatched: func(err error) bool {
			var e v015.ErrNotMatched
			return errors.As(err, &e)
		},
		IsMuxConn: func(c net.Conn) (net.Conn, bool) {
			mc, ok := c.(*v015.MuxConn)
			if !ok {
				return nil, false
			}
			return mc.Conn, true
		},
	},
	{
		Name:                                    libOurs,
		New:                                     func(l net.Listener) Mux { return oursMux{ours.New(l)} },
		Any:                                     func() Matcher { return ours.Any() },
		PrefixMatcher:                           func(s ...string) Matcher { return ours.PrefixMatcher(s...) },
		HTTP1Fast:                               func(s ...string) Matcher { return ours.HTTP1Fast(s...) },
		HTTP1:                                   func() Matcher { return ours.HTTP1() },
		HTTP2:                                   func() Matcher { return ours.HTTP2() },
		TLS:                                     func(v ...int) Matcher { return ours.TLS(v...) },
		HTTP1HeaderField:                        func(n, v string) Matcher { return ours.HTTP1HeaderField(n, v) },
		HTTP1HeaderFieldPrefix:                  func(n, v string) Matcher { return ours.HTTP1HeaderFieldPrefix(n, v) },
		HTTP2HeaderField:                        func(n, v string) Matcher { return ours.HTTP2HeaderField(n, v) },
		HTTP2HeaderFieldPrefix:                  func(n, v string) Matcher { return ours.HTTP2HeaderFieldPrefix(n, v) },
		HTTP2MatchHeaderFieldSendSettings:       func(n, v string) MatchWriter { return ours.HTTP2MatchHeaderFieldSendSettings(n, v) },
		HTTP2MatchHeaderFieldPrefixSendSettings: func(n, v string) MatchWriter { return ours.HTTP2MatchHeaderFieldPrefixSendSettings(n, v) },
		ErrListenerClosed:                       ours.ErrListenerClosed,
		ErrServerClosed:                         ours.ErrServerClosed,
		IsErrNotMatched: func(err error) bool {
			var e ours.ErrNotMatched
			return errors.As(err, &e)
		},
		IsMuxConn: func(c net.Conn) (net.Conn, bool) {
			mc, ok := c.(*ours.MuxConn)
			if !ok {
				return nil, false
			}
			return mc.Conn, true
		},
	},
}

// newOurs wraps a mux of ours made with options, for the scenarios that
// show what an Option changes.
func newOurs(l net.Listener, opts ...ours.Option) Mux {
	return oursMux{ours.NewWithOptions(l, opts...)}
}

type v015Mux struct{ m v015.CMux }

func (x v015Mux) Match(ms ...Matcher) net.Listener {
	c := make([]v015.Matcher, len(ms))
	for i, m := range ms {
		c[i] = m
	}
	return x.m.Match(c...)
}

func (x v015Mux) MatchWithWriters(ms ...MatchWriter) net.Listener {
	c := make([]v015.MatchWriter, len(ms))
	for i, m := range ms {
		c[i] = m
	}
	return x.m.MatchWithWriters(c...)
}

func (x v015Mux) Serve() error                   { return x.m.Serve() }
func (x v015Mux) Close()                         { x.m.Close() }
func (x v015Mux) HandleError(h func(error) bool) { x.m.HandleError(h) }
func (x v015Mux) SetReadTimeout(d time.Duration) { x.m.SetReadTimeout(d) }

type oursMux struct{ m ours.CMux }

func (x oursMux) Match(ms ...Matcher) net.Listener {
	c := make([]ours.Matcher, len(ms))
	for i, m := range ms {
		c[i] = m
	}
	return x.m.Match(c...)
}

func (x oursMux) MatchWithWriters(ms ...MatchWriter) net.Listener {
	c := make([]ours.MatchWriter, len(ms))
	for i, m := range ms {
		c[i] = m
	}
	return x.m.MatchWithWriters(c...)
}

func (x oursMux) Serve() error                   { return x.m.Serve() }
func (x oursMux) Close()                         { x.m.Close() }
func (x oursMux) HandleError(h func(error) bool) { x.m.HandleError(h) }
func (x oursMux) SetReadTimeout(d time.Duration) { x.m.SetReadTimeout(d) }

// both runs scenario as the subtests lib=v015 and lib=cmux, each checked
// for leaked goroutines.
func both(t *testing.T, scenario func(t *testing.T, lib *Lib)) {
	t.Helper()
	for _, lib := range libs {
		t.Run("lib="+lib.Name, func(t *testing.T) {
			checkLeaks(t)
			scenario(t, lib)
		})
	}
}

// Compile-time checks that the adapter covers both libraries' API.
var (
	_ func(net.Listener) v015.CMux = v015.New
	_ func(net.Listener) ours.CMux = ours.New
)
