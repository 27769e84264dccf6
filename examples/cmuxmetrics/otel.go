package cmuxmetrics

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/cmux-go/cmux"
)

// OTelHooks returns hooks for cmux.WithHooks that record, with instruments
// created by meter:
//
//	cmux.connections      Int64Counter, unit {connection}, attributes listener, outcome, reason
//	cmux.match.duration   Float64Histogram, unit s, attributes listener, outcome
//	cmux.queue.duration   Float64Histogram, unit s, attribute listener
//
// reason is absent on matched connections. See the package documentation
// for the attributes' values. An OpenTelemetry Prometheus exporter shows
// them as cmux_connections_total, cmux_match_duration_seconds and
// cmux_queue_duration_seconds, the names PrometheusHooks uses.
//
// It returns an error if meter is nil or refuses an instrument.
func OTelHooks(meter metric.Meter) (cmux.Hooks, error) {
	if meter == nil {
		return cmux.Hooks{}, errors.New("cmuxmetrics: OTelHooks needs a meter")
	}
	conns, err1 := meter.Int64Counter("cmux.connections",
		metric.WithUnit("{connection}"),
		metric.WithDescription("Connections the mux decided on, by listener, outcome (matched, not_matched) and reason (not_matched only)."))
	decide, err2 := meter.Float64Histogram("cmux.match.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time from accepting a connection to matching it or giving up on it."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	queued, err3 := meter.Float64Histogram("cmux.queue.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time a matched connection waited for its listener's Accept."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err := errors.Join(err1, err2, err3); err != nil {
		return cmux.Hooks{}, err
	}

	ctx := context.Background()
	matched := attribute.String("outcome", OutcomeMatched)
	notMatched := attribute.String("outcome", OutcomeNotMatched)
	return cmux.Hooks{
		Matched: func(ev cmux.ConnEvent) {
			attrs := metric.WithAttributes(attribute.String("listener", listenerLabel(ev)), matched)
			conns.Add(ctx, 1, attrs)
			decide.Record(ctx, ev.Elapsed.Seconds(), attrs)
		},
		NotMatched: func(ev cmux.ConnEvent) {
			l := attribute.String("listener", listenerLabel(ev))
			conns.Add(ctx, 1, metric.WithAttributes(l, notMatched, attribute.String("reason", Reason(ev.Err))))
			decide.Record(ctx, ev.Elapsed.Seconds(), metric.WithAttributes(l, notMatched))
		},
		Delivered: func(ev cmux.ConnEvent) {
			queued.Record(ctx, ev.Elapsed.Seconds(), metric.WithAttributes(attribute.String("listener", listenerLabel(ev))))
		},
	}, nil
}
