// Package cmuxmetrics turns the hooks of github.com/cmux-go/cmux into
// metrics: PrometheusHooks for github.com/prometheus/client_golang and
// OTelHooks for an OpenTelemetry metric.Meter. Both record the same three
// things:
//
//   - connections the mux decided on, by listener, outcome ("matched" or
//     "not_matched") and, for not_matched, the reason (see Reason);
//   - the time from Accept to that decision (ConnEvent.Elapsed of the
//     Matched and NotMatched hooks), by listener and outcome;
//   - the time a matched connection waited in its listener's queue before
//     the listener's Accept returned it (the Delivered hook), by listener.
//
// The listener is the name given with cmux.Name; an unnamed listener is
// "#" and its place in registration order ("#0", "#1", ...), and a
// connection that no listener took has listener "".
//
// A connection matched for a listener that was closed before it accepted
// the connection is counted twice: matched for that listener, then
// not_matched with reason listener_closed (the mux closed it). Sum the
// matched and not_matched series of a listener with that in mind.
//
// The package lives in the examples module so that the cmux module does
// not require either metrics library; copy it, or import it from there.
package cmuxmetrics

import (
	"errors"
	"strconv"

	"github.com/cmux-go/cmux"
)

// The values of the outcome label.
const (
	OutcomeMatched    = "matched"
	OutcomeNotMatched = "not_matched"
)

// The values of the reason label of not_matched connections; Reason maps
// the error of a NotMatched hook to one of them.
const (
	ReasonNoBytes        = "no_bytes"        // cmux.ErrNoBytes: closed before sending a byte (a TCP probe)
	ReasonTimeout        = "timeout"         // cmux.ErrMatchTimeout
	ReasonSniffLimit     = "sniff_limit"     // cmux.ErrSniffLimit
	ReasonNoMatch        = "no_match"        // cmux.ErrNoMatch: no matcher wanted the bytes
	ReasonProxyHeader    = "proxy_header"    // cmux.ErrProxyHeader
	ReasonMatcherPanic   = "matcher_panic"   // cmux.ErrMatcherPanic
	ReasonLimit          = "limit"           // cmux.ErrMatchingLimit
	ReasonListenerClosed = "listener_closed" // cmux.ErrListenerClosed: matched, but its listener was closed
	ReasonOther          = "other"           // anything else (cmux.ErrServerClosed, for one)
)

// reasons is the order Reason tries the sentinels in. The PROXY header
// error wraps the read error that cut the header short (a timeout, say),
// so it comes first: the header is what went wrong.
var reasons = []struct {
	err   error
	label string
}{
	{cmux.ErrProxyHeader, ReasonProxyHeader},
	{cmux.ErrMatcherPanic, ReasonMatcherPanic},
	{cmux.ErrMatchingLimit, ReasonLimit},
	{cmux.ErrListenerClosed, ReasonListenerClosed},
	{cmux.ErrNoBytes, ReasonNoBytes},
	{cmux.ErrMatchTimeout, ReasonTimeout},
	{cmux.ErrSniffLimit, ReasonSniffLimit},
	{cmux.ErrNoMatch, ReasonNoMatch},
}

// Reason returns the reason label for err, the ConnEvent.Err of a
// NotMatched hook, found with errors.Is: one of the Reason constants.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return ReasonOther
}

// listenerLabel returns the listener label of ev.
func listenerLabel(ev cmux.ConnEvent) string {
	if ev.Listener != "" || ev.ListenerIndex < 0 {
		return ev.Listener
	}
	return "#" + strconv.Itoa(ev.ListenerIndex)
}

// durationBuckets are the upper bounds, in seconds, of both histograms:
// from 100µs (a decision on bytes that came with the connection) to 10s
// (beyond any sensible match timeout).
var durationBuckets = []float64{
	.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
}
