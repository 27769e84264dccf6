package cmuxmetrics_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/examples/cmuxmetrics"
)

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{cmux.ErrNoBytes, "no_bytes"},
		{cmux.ErrMatchTimeout, "timeout"},
		{cmux.ErrSniffLimit, "sniff_limit"},
		{cmux.ErrNoMatch, "no_match"},
		{cmux.ErrProxyHeader, "proxy_header"},
		{cmux.ErrMatcherPanic, "matcher_panic"},
		{cmux.ErrMatchingLimit, "limit"},
		{cmux.ErrListenerClosed, "listener_closed"},
		{fmt.Errorf("wrapped: %w", cmux.ErrNoMatch), "no_match"},
		// A PROXY header cut short by the timeout is a header problem.
		{errors.Join(cmux.ErrProxyHeader, cmux.ErrMatchTimeout), "proxy_header"},
		{cmux.ErrServerClosed, "other"},
		{io.EOF, "other"},
		{nil, "other"},
	} {
		if got := cmuxmetrics.Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// Two muxes may share a registry: the second call reuses the collectors.
// Unnamed listeners are "#" and their index; the listener of a connection
// matched for a closed listener is kept.
func TestPrometheusHooks(t *testing.T) {
	reg := prometheus.NewRegistry()
	h1 := cmuxmetrics.PrometheusHooks(reg)
	h2 := cmuxmetrics.PrometheusHooks(reg)
	h1.NotMatched(cmux.ConnEvent{ListenerIndex: -1, MatcherIndex: -1, Err: cmux.ErrNoBytes})
	h2.NotMatched(cmux.ConnEvent{ListenerIndex: -1, MatcherIndex: -1, Err: fmt.Errorf("x: %w", cmux.ErrNoBytes)})
	h2.Matched(cmux.ConnEvent{ListenerIndex: 2, MatcherIndex: 0})
	h1.NotMatched(cmux.ConnEvent{Listener: "grpc", ListenerIndex: -1, MatcherIndex: -1, Err: cmux.ErrListenerClosed})
	want := `
# HELP cmux_connections_total Connections the mux decided on, by listener, outcome (matched, not_matched) and reason (not_matched only).
# TYPE cmux_connections_total counter
cmux_connections_total{listener="",outcome="not_matched",reason="no_bytes"} 2
cmux_connections_total{listener="#2",outcome="matched",reason=""} 1
cmux_connections_total{listener="grpc",outcome="not_matched",reason="listener_closed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cmux_connections_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "cmux_match_duration_seconds"); err != nil || n != 3 {
		t.Fatalf("cmux_match_duration_seconds: %d series, %v; want 3", n, err)
	}
}

func TestOTelHooksNilMeter(t *testing.T) {
	if _, err := cmuxmetrics.OTelHooks(nil); err == nil {
		t.Fatal("OTelHooks(nil) returned no error")
	}
}
