package cmuxmetrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmux-go/cmux"
)

// PrometheusHooks returns hooks for cmux.WithHooks that record, in
// collectors registered with reg (none if reg is nil):
//
//	cmux_connections_total{listener, outcome, reason}   counter
//	cmux_match_duration_seconds{listener, outcome}      histogram
//	cmux_queue_duration_seconds{listener}               histogram
//
// reason is "" for matched connections. See the package documentation for
// the labels' values.
//
// Calling PrometheusHooks again with the same reg (for a second mux)
// returns hooks that share the collectors registered the first time. It
// panics if reg refuses a collector for another reason, as promauto does.
func PrometheusHooks(reg prometheus.Registerer) cmux.Hooks {
	conns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmux_connections_total",
		Help: "Connections the mux decided on, by listener, outcome (matched, not_matched) and reason (not_matched only).",
	}, []string{"listener", "outcome", "reason"})
	decide := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cmux_match_duration_seconds",
		Help:    "Time from accepting a connection to matching it or giving up on it.",
		Buckets: durationBuckets,
	}, []string{"listener", "outcome"})
	queued := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cmux_queue_duration_seconds",
		Help:    "Time a matched connection waited for its listener's Accept.",
		Buckets: durationBuckets,
	}, []string{"listener"})
	if reg != nil {
		conns = register(reg, conns)
		decide = register(reg, decide)
		queued = register(reg, queued)
	}
	return cmux.Hooks{
		Matched: func(ev cmux.ConnEvent) {
			l := listenerLabel(ev)
			conns.WithLabelValues(l, OutcomeMatched, "").Inc()
			decide.WithLabelValues(l, OutcomeMatched).Observe(ev.Elapsed.Seconds())
		},
		NotMatched: func(ev cmux.ConnEvent) {
			l := listenerLabel(ev)
			conns.WithLabelValues(l, OutcomeNotMatched, Reason(ev.Err)).Inc()
			decide.WithLabelValues(l, OutcomeNotMatched).Observe(ev.Elapsed.Seconds())
		},
		Delivered: func(ev cmux.ConnEvent) {
			queued.WithLabelValues(listenerLabel(ev)).Observe(ev.Elapsed.Seconds())
		},
	}
}

// register registers c with reg and returns it, or returns the collector
// of the same description registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}
