package cmuxmetrics_test

import (
	"fmt"
	"log"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cmux-go/cmux/examples/cmuxmetrics"
)

// Count a mux's connections with Prometheus. A server would serve reg with
// promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) (see examples/demo);
// here the example gathers reg itself and prints every counter and the
// number of observations of every histogram (the durations vary from run
// to run).
func ExamplePrometheusHooks() {
	reg := prometheus.NewRegistry()
	hooks := cmuxmetrics.PrometheusHooks(reg) // for cmux.WithHooks

	err := serveAndDrive(hooks, func() bool {
		return promSum(reg, "cmux_connections_total") == 3
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range promLines(reg) {
		fmt.Println(line)
	}
	// Output:
	// cmux_connections_total{listener="",outcome="not_matched",reason="no_bytes"} 1
	// cmux_connections_total{listener="",outcome="not_matched",reason="no_match"} 1
	// cmux_connections_total{listener="http",outcome="matched",reason=""} 1
	// cmux_match_duration_seconds_count{listener="",outcome="not_matched"} 2
	// cmux_match_duration_seconds_count{listener="http",outcome="matched"} 1
	// cmux_queue_duration_seconds_count{listener="http"} 1
}

// promLines returns the counters and histogram counts of reg, one line
// each in the text format, sorted.
func promLines(reg *prometheus.Registry) []string {
	mfs, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			ls := "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				lines = append(lines, fmt.Sprintf("%s%s %g", mf.GetName(), ls, m.GetCounter().GetValue()))
			case dto.MetricType_HISTOGRAM:
				lines = append(lines, fmt.Sprintf("%s_count%s %d", mf.GetName(), ls, m.GetHistogram().GetSampleCount()))
			}
		}
	}
	slices.Sort(lines)
	return lines
}

// promSum returns the sum of the counter name over its labels.
func promSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
