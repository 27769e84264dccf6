// Package cmux is github.com/cmux-go/cmux under the import path of
// github.com/soheilhy/cmux v0.1.5, with v0.1.5's API and nothing more.
//
// A program that imports github.com/soheilhy/cmux through a dependency (an
// etcd server, for one) cannot change that import. It can point the path
// at this module in its own go.mod:
//
//	go mod edit -replace github.com/soheilhy/cmux=github.com/cmux-go/cmux/soheilhy@VERSION
//	go mod tidy
//
// Every name here is the one of github.com/cmux-go/cmux: the types are
// aliases and the functions call it, so a program may import both paths,
// and reach the options and Shutdown of the main module through it.
package cmux

import (
	"net"

	cmux "github.com/cmux-go/cmux"
)

// The types of v0.1.5, as aliases of the main module's.
type (
	Matcher       = cmux.Matcher
	MatchWriter   = cmux.MatchWriter
	ErrorHandler  = cmux.ErrorHandler
	CMux          = cmux.CMux
	ErrNotMatched = cmux.ErrNotMatched
	MuxConn       = cmux.MuxConn
)

// The error values of v0.1.5: the main module's.
var (
	ErrListenerClosed = cmux.ErrListenerClosed
	ErrServerClosed   = cmux.ErrServerClosed
)

// New is cmux.New.
func New(l net.Listener) CMux { return cmux.New(l) }

// Any is cmux.Any.
func Any() Matcher { return cmux.Any() }

// PrefixMatcher is cmux.PrefixMatcher.
func PrefixMatcher(strs ...string) Matcher { return cmux.PrefixMatcher(strs...) }

// HTTP1Fast is cmux.HTTP1Fast.
func HTTP1Fast(extMethods ...string) Matcher { return cmux.HTTP1Fast(extMethods...) }

// HTTP1 is cmux.HTTP1.
func HTTP1() Matcher { return cmux.HTTP1() }

// HTTP2 is cmux.HTTP2.
func HTTP2() Matcher { return cmux.HTTP2() }

// TLS is cmux.TLS.
func TLS(versions ...int) Matcher { return cmux.TLS(versions...) }

// HTTP1HeaderField is cmux.HTTP1HeaderField.
func HTTP1HeaderField(name, value string) Matcher { return cmux.HTTP1HeaderField(name, value) }

// HTTP1HeaderFieldPrefix is cmux.HTTP1HeaderFieldPrefix.
func HTTP1HeaderFieldPrefix(name, valuePrefix string) Matcher {
	return cmux.HTTP1HeaderFieldPrefix(name, valuePrefix)
}

// HTTP2HeaderField is cmux.HTTP2HeaderField.
func HTTP2HeaderField(name, value string) Matcher { return cmux.HTTP2HeaderField(name, value) }

// HTTP2HeaderFieldPrefix is cmux.HTTP2HeaderFieldPrefix.
func HTTP2HeaderFieldPrefix(name, valuePrefix string) Matcher {
	return cmux.HTTP2HeaderFieldPrefix(name, valuePrefix)
}

// HTTP2MatchHeaderFieldSendSettings is cmux.HTTP2MatchHeaderFieldSendSettings.
func HTTP2MatchHeaderFieldSendSettings(name, value string) MatchWriter {
	return cmux.HTTP2MatchHeaderFieldSendSettings(name, value)
}

// HTTP2MatchHeaderFieldPrefixSendSettings is
// cmux.HTTP2MatchHeaderFieldPrefixSendSettings.
func HTTP2MatchHeaderFieldPrefixSendSettings(name, valuePrefix string) MatchWriter {
	return cmux.HTTP2MatchHeaderFieldPrefixSendSettings(name, valuePrefix)
}
