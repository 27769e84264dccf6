// Command report prints a markdown table of RESULTS.md from the output of
// the benchmarks (go test -bench, any -count) and a TSV of callgrind totals
// written by run.sh (lines "benchmark case lib N Ir", where benchmark is
// FullPath or TCPPath). -table picks the table:
//
//   - full: BenchmarkFullPath, with instructions per connection;
//   - fullca: the same for cmux with ConcurrentAccept (lib=cmuxca);
//   - sock: BenchmarkSockPath, the same over in-memory sockets;
//   - tcp: BenchmarkTCPPath, the same with the user and system CPU time;
//   - idle: BenchmarkIdleConns.
//
// Every ratio is cmux's (or cmuxca's) / v0.1.5's: below 1 means cmux costs
// less.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	benchFile := flag.String("bench", "", "go test -bench output")
	cgFile := flag.String("callgrind", "", "TSV of callgrind totals: benchmark, case, lib, N, Ir")
	table := flag.String("table", "", "the table to print: full, tcp or idle")
	flag.Parse()
	if *benchFile == "" || (*table != "full" && *table != "fullca" && *table != "sock" && *table != "tcp" && *table != "idle") {
		fmt.Fprintln(os.Stderr, "usage: report -bench FILE [-callgrind FILE] -table full|fullca|sock|tcp|idle")
		os.Exit(2)
	}
	b, err := readBench(*benchFile)
	if err != nil {
		fail(err)
	}
	var cg map[key]float64
	if *cgFile != "" {
		if cg, err = readCallgrind(*cgFile); err != nil {
			fail(err)
		}
	}
	switch *table {
	case "full":
		writePath(os.Stdout, b, cg, "FullPath", "cmux", []string{"ns/op", "B/op", "allocs/op"})
	case "fullca":
		writePath(os.Stdout, b, cg, "FullPath", "cmuxca", []string{"ns/op", "B/op", "allocs/op"})
	case "sock":
		writePath(os.Stdout, b, cg, "SockPath", "cmux", []string{"ns/op", "B/op", "allocs/op"})
	case "tcp":
		writePath(os.Stdout, b, cg, "TCPPath", "cmux", []string{"ns/op", "cpu-ns/op", "usr-ns/op", "sys-ns/op", "B/op", "allocs/op", "rst/op"})
	case "idle":
		writeIdle(os.Stdout, b)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}

// key is a benchmark (without "Benchmark"), a case ("" if it has none) and
// a library.
type key struct{ bench, cas, lib string }

// results holds, per benchmark, case, library and unit, every measured
// value, and each benchmark's cases in the order they first appear.
type results struct {
	vals  map[key]map[string][]float64
	order map[string][]string
}

// nameRE splits a benchmark name: top, optional case, lib, -GOMAXPROCS.
var nameRE = regexp.MustCompile(`^Benchmark(\w+)(?:/case=([^/]+))?/lib=([^/\s-]+)(?:-\d+)?$`)

func readBench(path string) (*results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &results{vals: map[key]map[string][]float64{}, order: map[string][]string{}}
	seen := map[[2]string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		m := nameRE.FindStringSubmatch(fields[0])
		if m == nil {
			continue
		}
		k := key{m[1], m[2], m[3]}
		if r.vals[k] == nil {
			r.vals[k] = map[string][]float64{}
		}
		if !seen[[2]string{k.bench, k.cas}] {
			seen[[2]string{k.bench, k.cas}] = true
			r.order[k.bench] = append(r.order[k.bench], k.cas)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			r.vals[k][fields[i+1]] = append(r.vals[k][fields[i+1]], v)
		}
	}
	return r, sc.Err()
}

// median returns the median of the values of k in unit, and whether there
// are any.
func (r *results) median(k key, unit string) (float64, bool) {
	vs := slices.Clone(r.vals[k][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

func readCallgrind(path string) (map[key]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type run struct{ n, ir float64 }
	runs := map[key][]run{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 5 {
			return nil, fmt.Errorf("bad callgrind line %q", sc.Text())
		}
		n, err1 := strconv.ParseFloat(fields[3], 64)
		ir, err2 := strconv.ParseFloat(fields[4], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad callgrind line %q", sc.Text())
		}
		k := key{fields[0], fields[1], fields[2]}
		runs[k] = append(runs[k], run{n, ir})
	}
	out := map[key]float64{}
	for k, rs := range runs {
		slices.SortFunc(rs, func(a, b run) int { return int(a.n - b.n) })
		if len(rs) != 2 || rs[0].n == rs[1].n {
			return nil, fmt.Errorf("%v: want two callgrind runs of different N, have %v", k, rs)
		}
		// Instructions per connection: the difference between a long and
		// a short run, so that start-up and tear-down cancel out.
		out[k] = (rs[1].ir - rs[0].ir) / (rs[1].n - rs[0].n)
	}
	return out, sc.Err()
}

// writePath writes the table of bench (FullPath or TCPPath) for lib (cmux,
// or cmuxca: cmux with ConcurrentAccept) against v0.1.5: a row per case,
// with instructions per connection if cg has them and the ratio of the
// medians in each of units.
//
// If cg has BenchmarkHarness's figure for bench (the harness alone), a
// column gives each library's instructions above it, the mux's own, and
// their ratio.
func writePath(w io.Writer, r *results, cg map[key]float64, bench, lib string, units []string) {
	harness, withHarness := cg[key{"Harness", bench, "none"}]
	head := "| case | instr/conn " + lib + " | instr/conn v0.1.5 | ratio |"
	sep := "| --- | ---: | ---: | ---: |"
	if withHarness {
		head += " mux's own instr/conn: ratio (" + lib + " / v0.1.5) |"
		sep += " ---: |"
	}
	for _, u := range units {
		if u == "rst/op" {
			head += " resets/conn " + lib + " / v0.1.5 |"
			sep += " ---: |"
			continue
		}
		head += " " + label(u) + " ratio |"
		sep += " ---: |"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, c := range r.order[bench] {
		kO, kT := key{bench, c, lib}, key{bench, c, "v015"}
		if _, ok := r.vals[kO]["ns/op"]; !ok || c == "" {
			continue
		}
		ours, okO := cg[kO]
		theirs, okT := cg[kT]
		row := []string{c, "n/a", "n/a", "n/a"}
		own := "n/a"
		switch {
		case okO && okT:
			row = []string{c, fmt.Sprintf("%.0f", ours), fmt.Sprintf("%.0f", theirs), ratio(ours, theirs)}
			own = fmt.Sprintf("%s (%.0f / %.0f)", ratio(ours-harness, theirs-harness), ours-harness, theirs-harness)
		case okO:
			// v0.1.5 has no such matcher: lib's figures alone.
			row = []string{c, fmt.Sprintf("%.0f", ours), "—", "—"}
			own = fmt.Sprintf("— (%.0f / —)", ours-harness)
		}
		if withHarness {
			row = append(row, own)
		}
		for _, unit := range units {
			o, ok1 := r.median(kO, unit)
			t, ok2 := r.median(kT, unit)
			if ok1 && !ok2 && unit != "rst/op" {
				row = append(row, fmt.Sprintf("— (%s / —)", short(unit, o)))
				continue
			}
			if !ok1 || !ok2 {
				row = append(row, "n/a")
				continue
			}
			cell := ratio(o, t)
			if unit == "rst/op" {
				// Mostly 0 or 1: a ratio says nothing.
				row = append(row, fmt.Sprintf("%.2f / %.2f", o, t))
				continue
			}
			if strings.HasSuffix(unit, "ns/op") {
				cell += fmt.Sprintf(" (%.0f / %.0f)", o, t)
			} else {
				cell += fmt.Sprintf(" (%g / %g)", o, t)
			}
			row = append(row, cell)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// short formats a value of unit as the ratio cells do.
func short(unit string, v float64) string {
	if strings.HasSuffix(unit, "ns/op") {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}

// label is a unit's name in a column's head.
func label(unit string) string {
	switch unit {
	case "allocs/op":
		return "allocs"
	case "cpu-ns/op":
		return "cpu ns/op"
	case "usr-ns/op":
		return "usr ns/op"
	case "sys-ns/op":
		return "sys ns/op"
	}
	return unit
}

func ratio(a, b float64) string {
	if b == 0 {
		if a == 0 {
			return "1.00"
		}
		return "inf"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func writeIdle(w io.Writer, r *results) {
	const bench = "IdleConns"
	units := []string{"heapB/idleconn", "stackB/idleconn", "goroutines/idleconn", "harnessB/idleconn"}
	fmt.Fprintf(w, "| lib | %s |\n", strings.Join(units, " | "))
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	for _, lib := range []string{"cmux", "cmuxca", "v015"} {
		row := []string{lib}
		for _, u := range units {
			v, ok := r.median(key{bench, "", lib}, u)
			if !ok {
				row = append(row, "n/a")
				continue
			}
			row = append(row, strconv.FormatFloat(v, 'f', 1, 64))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}
