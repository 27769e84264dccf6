package cmux_test

import (
	"io"
	"net"
	"time"

	"github.com/soheilhy/cmux"
)

// The exported API of soheilhy/cmux v0.1.5, each name with its type: this
// file compiles only if every one is here, usable as v0.1.5 programs use
// it. (apidiff cannot check this package: it reports every alias of a type
// of another package as a change.)
var (
	_ func(net.Listener) cmux.CMux               = cmux.New
	_ func() cmux.Matcher                        = cmux.Any
	_ func(...string) cmux.Matcher               = cmux.PrefixMatcher
	_ func(...string) cmux.Matcher               = cmux.HTTP1Fast
	_ func() cmux.Matcher                        = cmux.HTTP1
	_ func() cmux.Matcher                        = cmux.HTTP2
	_ func(...int) cmux.Matcher                  = cmux.TLS
	_ func(string, string) cmux.Matcher          = cmux.HTTP1HeaderField
	_ func(string, string) cmux.Matcher          = cmux.HTTP1HeaderFieldPrefix
	_ func(string, string) cmux.Matcher          = cmux.HTTP2HeaderField
	_ func(string, string) cmux.Matcher          = cmux.HTTP2HeaderFieldPrefix
	_ func(string, string) cmux.MatchWriter      = cmux.HTTP2MatchHeaderFieldSendSettings
	_ func(string, string) cmux.MatchWriter      = cmux.HTTP2MatchHeaderFieldPrefixSendSettings
	_ net.Error                                  = cmux.ErrListenerClosed
	_ error                                      = cmux.ErrServerClosed
	_ net.Error                                  = cmux.ErrNotMatched{}
	_ func(*cmux.MuxConn, []byte) (int, error)   = (*cmux.MuxConn).Read
	_ cmux.Matcher                               = func(io.Reader) bool { return false }
	_ cmux.MatchWriter                           = func(io.Writer, io.Reader) bool { return false }
	_ cmux.ErrorHandler                          = func(error) bool { return true }
	_ interface{ SetReadTimeout(time.Duration) } = cmux.CMux(nil)
	_ interface {
		Match(...cmux.Matcher) net.Listener
	} = cmux.CMux(nil)
	_ interface {
		MatchWithWriters(...cmux.MatchWriter) net.Listener
		Serve() error
		Close()
		HandleError(cmux.ErrorHandler)
	} = cmux.CMux(nil)
	_ net.Conn = &cmux.MuxConn{}
)

// v015Mock implements CMux with v0.1.5's six methods only, as programs'
// mocks do.
type v015Mock struct{}

func (v015Mock) Match(...cmux.Matcher) net.Listener                { return nil }
func (v015Mock) MatchWithWriters(...cmux.MatchWriter) net.Listener { return nil }
func (v015Mock) Serve() error                                      { return nil }
func (v015Mock) Close()                                            {}
func (v015Mock) HandleError(cmux.ErrorHandler)                     {}
func (v015Mock) SetReadTimeout(time.Duration)                      {}

var _ cmux.CMux = v015Mock{}
