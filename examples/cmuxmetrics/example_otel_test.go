package cmuxmetrics_test

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cmux-go/cmux/examples/cmuxmetrics"
)

// Count a mux's connections with OpenTelemetry metrics. A server would
// give the MeterProvider a periodic reader and an exporter (OTLP,
// Prometheus); here a manual reader collects the metrics, and the example
// prints every counter and the number of observations of every histogram
// (the durations vary from run to run).
func ExampleOTelHooks() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	hooks, err := cmuxmetrics.OTelHooks(provider.Meter("github.com/cmux-go/cmux"))
	if err != nil {
		log.Fatal(err)
	}
	err = serveAndDrive(hooks, func() bool {
		var sum int64
		for _, p := range otelPoints(reader) {
			if p.name == "cmux.connections" {
				sum += p.value
			}
		}
		return sum == 3
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range otelPoints(reader) {
		fmt.Println(p)
	}
	// Output:
	// cmux.connections{listener=,outcome=not_matched,reason=no_bytes} 1
	// cmux.connections{listener=,outcome=not_matched,reason=no_match} 1
	// cmux.connections{listener=http,outcome=matched} 1
	// cmux.match.duration count{listener=,outcome=not_matched} 2
	// cmux.match.duration count{listener=http,outcome=matched} 1
	// cmux.queue.duration count{listener=http} 1
}

// otelPoint is a counter's value or a histogram's count of observations.
type otelPoint struct {
	name  string // the instrument's name, and " count" for a histogram
	attrs string
	value int64
}

func (p otelPoint) String() string { return fmt.Sprintf("%s{%s} %d", p.name, p.attrs, p.value) }

// otelPoints collects reader and returns its int64 sums and float64
// histograms, sorted.
func otelPoints(reader sdkmetric.Reader) []otelPoint {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	enc := attribute.DefaultEncoder()
	var points []otelPoint
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					points = append(points, otelPoint{m.Name, dp.Attributes.Encoded(enc), dp.Value})
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					points = append(points, otelPoint{m.Name + " count", dp.Attributes.Encoded(enc), int64(dp.Count)})
				}
			}
		}
	}
	slices.SortFunc(points, func(a, b otelPoint) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.attrs, b.attrs))
	})
	return points
}
