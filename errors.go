package cmux

import (
	"errors"
	"fmt"
	"net"
)

// ErrNotMatched is the error the handler gets for a connection that no
// matcher wanted; the mux closes such a connection.
//
// It matches (errors.Is) the reason: ErrNoBytes, ErrMatchTimeout,
// ErrSniffLimit or ErrNoMatch.
type ErrNotMatched struct {
	c      net.Conn
	reason error
}

// Unwrap returns the reason the connection was not matched.
func (e ErrNotMatched) Unwrap() error { return e.reason }

// Error names the connection's remote address, in the words of
// github.com/soheilhy/cmux v0.1.5, which programs may look for.
func (e ErrNotMatched) Error() string {
	return fmt.Sprintf("mux: connection %v not matched by an matcher", remoteAddr(e.c))
}

// Temporary reports true: the mux goes on serving other connections.
func (e ErrNotMatched) Temporary() bool { return true }

// Timeout reports false.
func (e ErrNotMatched) Timeout() bool { return false }

func remoteAddr(c net.Conn) any {
	if c == nil {
		return "unknown"
	}
	if a := c.RemoteAddr(); a != nil {
		return a
	}
	return "unknown"
}

// errListenerClosed is the type of ErrListenerClosed: a net.Error that is
// neither temporary nor a timeout, as in github.com/soheilhy/cmux v0.1.5.
type errListenerClosed string

func (e errListenerClosed) Error() string   { return string(e) }
func (e errListenerClosed) Temporary() bool { return false }
func (e errListenerClosed) Timeout() bool   { return false }

// Is makes errors.Is(err, net.ErrClosed) hold.
func (e errListenerClosed) Is(target error) bool { return target == net.ErrClosed }

// ErrListenerClosed is returned by a child listener's Accept once the
// listener was closed, or once Serve has returned (the connections that were
// queued for the listener are then closed). errors.Is(ErrListenerClosed,
// net.ErrClosed) holds.
var ErrListenerClosed = errListenerClosed("mux: listener closed")

// serverClosedErr is the type of ErrServerClosed. As in
// github.com/soheilhy/cmux v0.1.5, it is not a net.Error.
type serverClosedErr struct{}

func (serverClosedErr) Error() string { return "mux: server closed" }

// Is makes errors.Is(err, net.ErrClosed) hold.
func (serverClosedErr) Is(target error) bool { return target == net.ErrClosed }

// ErrServerClosed is returned by every child listener's Accept after Close
// (and after Shutdown, once the child's queue is empty), and wrapped by the
// error Serve returns after Close or Shutdown. errors.Is(ErrServerClosed,
// net.ErrClosed) holds.
var ErrServerClosed error = serverClosedErr{}

// errMuxClosed is the cause of the error Serve returns after Close or
// Shutdown: it reads like the standard library's error for a closed
// listener and matches both net.ErrClosed and ErrServerClosed.
type errMuxClosed struct{}

func (errMuxClosed) Error() string   { return "mux: server closed: use of closed network connection" }
func (errMuxClosed) Unwrap() []error { return []error{ErrServerClosed, net.ErrClosed} }

// ErrMatcherPanic is matched (errors.Is) by the error the handler gets when
// a matcher panics; the mux then closes that connection and goes on.
var ErrMatcherPanic = errors.New("cmux: matcher panicked")

type matcherPanic struct {
	remote any
	value  any
	stack  []byte
}

func (e *matcherPanic) Error() string {
	return fmt.Sprintf("cmux: matcher panicked on connection from %v: %v\n%s", e.remote, e.value, e.stack)
}

func (e *matcherPanic) Unwrap() error { return ErrMatcherPanic }

// ErrMatchingLimit is matched (errors.Is) by the errors the handler gets
// when a cap of MaxMatching or MaxMatchingPerSource is reached. They are
// temporary: the mux goes on.
var ErrMatchingLimit = errors.New("cmux: too many connections being matched")

// limitError is the error of a connection closed for MaxMatchingPerSource,
// or (remote nil) of the mux reaching MaxMatching.
type limitError struct {
	remote net.Addr
	limit  int
}

func (e *limitError) Error() string {
	if e.remote == nil {
		return fmt.Sprintf("%v: %d at once; not accepting until one is matched", ErrMatchingLimit, e.limit)
	}
	return fmt.Sprintf("%v: %d at once from %v; connection closed", ErrMatchingLimit, e.limit, e.remote)
}

func (e *limitError) Unwrap() error   { return ErrMatchingLimit }
func (e *limitError) Temporary() bool { return true }
func (e *limitError) Timeout() bool   { return false }

// errServeTwice is returned by a second call of Serve.
var errServeTwice = errors.New("cmux: Serve called more than once")

// errNilListener is returned by Serve of a mux made with a nil listener.
var errNilListener = errors.New("cmux: nil root listener")

// errNilConn stands for a connection the root listener returned as nil
// without an error: a bug of that listener, reported and retried like a
// temporary error.
var errNilConn error = &tempError{"cmux: root listener returned a nil connection"}

type tempError struct{ msg string }

func (e *tempError) Error() string   { return e.msg }
func (e *tempError) Timeout() bool   { return false }
func (e *tempError) Temporary() bool { return true }

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
