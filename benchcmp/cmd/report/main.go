// Command report prints the markdown tables of RESULTS.md from the output
// of the benchmarks (go test -bench, any -count) and a TSV of callgrind
// totals written by run.sh (lines "case lib N Ir").
//
// Every ratio is cmux / v0.1.5: below 1 means cmux costs less.
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
	cgFile := flag.String("callgrind", "", "TSV of callgrind totals: case, lib, N, Ir")
	flag.Parse()
	if *benchFile == "" {
		fmt.Fprintln(os.Stderr, "usage: report -bench FILE [-callgrind FILE]")
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
	writeFullPath(os.Stdout, b, cg)
	fmt.Println()
	writeIdle(os.Stdout, b)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}

// key is a case and a library.
type key struct{ bench, lib string }

// results holds, per benchmark and unit, every measured value, and the
// cases in the order they first appear.
type results struct {
	vals  map[key]map[string][]float64
	order []string
}

// nameRE splits a benchmark name: top, optional case, lib, -GOMAXPROCS.
var nameRE = regexp.MustCompile(`^(Benchmark\w+)(?:/case=([^/]+))?/lib=([^/\s-]+)(?:-\d+)?$`)

func readBench(path string) (*results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &results{vals: map[key]map[string][]float64{}}
	seen := map[string]bool{}
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
		bench := m[1]
		if m[2] != "" {
			bench = m[2]
		}
		k := key{bench, m[3]}
		if r.vals[k] == nil {
			r.vals[k] = map[string][]float64{}
		}
		if !seen[bench] {
			seen[bench] = true
			r.order = append(r.order, bench)
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

// median returns the median of the values of bench, lib in unit, and
// whether there are any.
func (r *results) median(bench, lib, unit string) (float64, bool) {
	vs := slices.Clone(r.vals[key{bench, lib}][unit])
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
		if len(fields) != 4 {
			continue
		}
		n, err1 := strconv.ParseFloat(fields[2], 64)
		ir, err2 := strconv.ParseFloat(fields[3], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad callgrind line %q", sc.Text())
		}
		k := key{fields[0], fields[1]}
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

func writeFullPath(w io.Writer, r *results, cg map[key]float64) {
	fmt.Fprintln(w, "| case | instr/conn cmux | instr/conn v0.1.5 | ratio | ns/op ratio | B/op ratio | allocs ratio |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.order {
		if _, ok := r.vals[key{c, "cmux"}]["ns/op"]; !ok || strings.HasPrefix(c, "Benchmark") {
			continue
		}
		ours, okO := cg[key{c, "cmux"}]
		theirs, okT := cg[key{c, "v015"}]
		row := []string{c, "n/a", "n/a", "n/a"}
		if okO && okT {
			row = []string{c, fmt.Sprintf("%.0f", ours), fmt.Sprintf("%.0f", theirs), ratio(ours, theirs)}
		}
		for _, unit := range []string{"ns/op", "B/op", "allocs/op"} {
			o, ok1 := r.median(c, "cmux", unit)
			t, ok2 := r.median(c, "v015", unit)
			if !ok1 || !ok2 {
				row = append(row, "n/a")
				continue
			}
			cell := ratio(o, t)
			if unit != "ns/op" {
				cell += fmt.Sprintf(" (%g / %g)", o, t)
			} else {
				cell += fmt.Sprintf(" (%.0f / %.0f)", o, t)
			}
			row = append(row, cell)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
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
	const bench = "BenchmarkIdleConns"
	units := []string{"heapB/idleconn", "stackB/idleconn", "goroutines/idleconn", "harnessB/idleconn"}
	fmt.Fprintf(w, "| lib | %s |\n", strings.Join(units, " | "))
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	for _, lib := range []string{"cmux", "v015"} {
		row := []string{lib}
		for _, u := range units {
			v, ok := r.median(bench, lib, u)
			if !ok {
				row = append(row, "n/a")
				continue
			}
			row = append(row, strconv.FormatFloat(v, 'f', 1, 64))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}
