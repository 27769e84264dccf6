//go:build linux

// Command cpupair measures the CPU time a server process spends per new
// connection, for several servers side by side, in a way that a machine's
// changing load falls on all of them alike: the servers run at once, as
// processes of their own pinned to the same CPU, and the clients take
// turns among them in small batches, in a new random order each round.
// Each server's CPU time is read from the kernel's per-thread scheduler
// statistics (/proc/PID/task/*/schedstat, in nanoseconds), at the start
// and end of every round; a round's cost for a server includes what it did
// while the others served (a Go server's timers and background work, which
// are part of its cost too).
//
// The first server named is the reference: for every other one, cpupair
// prints the median over rounds of the ratio of its round's CPU time to
// the reference's in the same round, with a 95 % confidence interval for
// that median (order statistics), the mean ratio, and each server's CPU
// time per connection over the whole run.
//
//	cpupair -proto http1 -rounds 300 -batch 100 bare=./cpuserver,bare mux=./cpuserver,mux
//
// By default one client connects at a time (-clients sets how many at
// once), and the HTTP/1.1 client is net/http's, which writes its request
// as soon as it is connected (-delay has a client of cpupair's own write
// it that much later).
//
// Each server argument is NAME=BINARY,SETUP: cpupair runs
// "BINARY -proto PROTO -setup SETUP" with GOMAXPROCS=1, on CPU 0 when there
// are two CPUs or more and taskset is there (the clients, in cpupair's own
// process, then run on the others), and reads the server's loopback
// address from its first line of output. It kills the servers when done.
// Linux only.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cmux-go/cmux/cmuxgrpc/internal/cpuserve"
)

type server struct {
	name, addr string
	cmd        *exec.Cmd
	ns         []float64 // CPU time per round
	// CPU time while its own batches ran, and while the others' did.
	own, idle float64
	slices    float64 // times its threads were scheduled, over all rounds
	// utime and stime, in clock ticks, before the rounds and after.
	stat0, stat1 [2]float64
	// Per thread, before the rounds and after (with -threads).
	threads0, threads1 map[int]threadStat
}

// cpu is a process's CPU time so far (ns) and the number of times its
// threads were scheduled (slices).
type cpu struct{ ns, slices float64 }

func main() {
	proto := flag.String("proto", "http1", "http1 or grpc")
	rounds := flag.Int("rounds", 200, "rounds; each runs one batch on every server")
	batch := flag.Int("batch", 100, "connections per server per round")
	warm := flag.Int("warm", 200, "connections per server before counting")
	clients := flag.Int("clients", 1, "clients connecting at once")
	delay := flag.Duration("delay", 0, "HTTP/1.1: how long a client waits to write its request once connected")
	perThread := flag.Bool("threads", false, "also print each server's threads: CPU time, times scheduled, voluntary and involuntary context switches, per connection")
	flag.Parse()
	if *proto != "http1" && *proto != "grpc" || flag.NArg() < 2 || *rounds < 10 || *batch < 1 || *clients < 1 {
		log.Fatal("usage: cpupair [-proto http1|grpc] [-rounds N>=10] [-batch N] NAME=BINARY,SETUP NAME=BINARY,SETUP...")
	}
	pin := runtime.NumCPU() >= 2
	if _, err := exec.LookPath("taskset"); err != nil {
		pin = false
	}
	defer stopServers()
	for _, arg := range flag.Args() {
		name, spec, ok1 := strings.Cut(arg, "=")
		bin, setup, ok2 := strings.Cut(spec, ",")
		if !ok1 || !ok2 {
			fatalf("cpupair: %q: want NAME=BINARY,SETUP", arg)
		}
		s, err := start(name, bin, setup, *proto, pin)
		if err != nil {
			fatalf("%v", err)
		}
		servers = append(servers, s)
	}
	if pin {
		// The clients on every CPU but the servers'.
		others := fmt.Sprintf("1-%d", runtime.NumCPU()-1)
		if out, err := exec.Command("taskset", "-a", "-p", "-c", others, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			fatalf("cpupair: taskset: %v: %s", err, out)
		}
	}
	one := client(*proto, *delay)
	for _, s := range servers {
		for range *warm {
			if err := one(s.addr); err != nil {
				fatalf("cpupair: %s: %v", s.name, err)
			}
		}
	}
	// Counting starts here: the warm-up's work is not in the user and
	// system times.
	for _, s := range servers {
		s.stat0 = procStat(s)
		if *perThread {
			s.threads0 = threadStats(s)
		}
	}
	order := make([]*server, len(servers))
	copy(order, servers)
	for r := range *rounds {
		before := cpuTimes(servers)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		b0 := before
		for _, s := range order {
			if err := runBatch(one, s.addr, *batch, *clients); err != nil {
				fatalf("cpupair: round %d: %s: %v", r, s.name, err)
			}
			b1 := cpuTimes(servers)
			for i, o := range servers {
				if o == s {
					o.own += b1[i].ns - b0[i].ns
				} else {
					o.idle += b1[i].ns - b0[i].ns
				}
			}
			b0 = b1
		}
		for i, s := range servers {
			s.ns = append(s.ns, b0[i].ns-before[i].ns)
			s.slices += b0[i].slices - before[i].slices
		}
	}
	for _, s := range servers {
		s.stat1 = procStat(s)
		if *perThread {
			s.threads1 = threadStats(s)
		}
	}
	report(os.Stdout, servers, *proto, *rounds, *batch, *clients)
	if *perThread {
		reportThreads(os.Stdout, servers, float64(*rounds**batch))
	}
}

// servers are the servers started so far; stopServers kills them.
var servers []*server

func stopServers() {
	for _, s := range servers {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// fatalf stops the servers, then logs and exits.
func fatalf(format string, args ...any) {
	stopServers()
	log.Fatalf(format, args...)
}

// start runs a server and waits for its address.
func start(name, bin, setup, proto string, pin bool) (*server, error) {
	args := []string{bin, "-proto", proto, "-setup", setup}
	if pin {
		args = append([]string{"taskset", "-c", "0"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	// Killed with cpupair, should it die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cpupair: %s: %w", name, err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("cpupair: %s: no address: %w", name, err)
	}
	go io.Copy(io.Discard, out)
	return &server{name: name, addr: strings.TrimSpace(line), cmd: cmd}, nil
}

// client returns a function that makes one connection to addr, one call
// on it, and closes it: cpuserve.Call, the clients of cpu.sh and
// cpucount.sh.
//
// With a delay above zero, the HTTP/1.1 client writes its request that
// long after its connection is established, as a client farther away
// than loopback would reach the server, and reads the whole response: the
// server, having accepted the connection, has to wait for the request.
func client(proto string, delay time.Duration) func(addr string) error {
	if proto == "http1" && delay > 0 {
		return func(addr string) error {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			time.Sleep(delay)
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: cpupair\r\nConnection: close\r\n\r\n"); err != nil {
				return err
			}
			b, err := io.ReadAll(c)
			if err == nil && !bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) {
				err = fmt.Errorf("response %q", b)
			}
			return err
		}
	}
	return func(addr string) error { return cpuserve.Call(proto, addr) }
}

// runBatch makes n connections to addr with one, from clients goroutines
// at once.
func runBatch(one func(string) error, addr string, n, clients int) error {
	if clients == 1 {
		for range n {
			if err := one(addr); err != nil {
				return err
			}
		}
		return nil
	}
	errc := make(chan error, clients)
	var next atomic.Int64
	for range clients {
		go func() {
			for next.Add(1) <= int64(n) {
				if err := one(addr); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	var first error
	for range clients {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// cpuTimes returns each server's CPU time so far: the sum over its threads
// of their schedstat (see readSchedstat).
func cpuTimes(servers []*server) []cpu {
	t := make([]cpu, len(servers))
	for i, s := range servers {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", s.cmd.Process.Pid))
		if len(files) == 0 {
			fatalf("cpupair: %s: no schedstat (Linux only)", s.name)
		}
		for _, f := range files {
			if ns, n, ok := readSchedstat(f); ok {
				t[i].ns += ns
				t[i].slices += n
			}
		}
	}
	return t
}

// readSchedstat reads a thread's schedstat: its first field (nanoseconds
// on a CPU) and third (timeslices). ok is false if the thread has ended.
func readSchedstat(path string) (ns, timeslices float64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	v := strings.Fields(string(b))
	if len(v) < 3 {
		fatalf("cpupair: %s: %q", path, b)
	}
	ns, err1 := strconv.ParseFloat(v[0], 64)
	timeslices, err2 := strconv.ParseFloat(v[2], 64)
	if err1 != nil || err2 != nil {
		fatalf("cpupair: %s: %q", path, b)
	}
	return ns, timeslices, true
}

// procStat returns a server's utime and stime so far, in clock ticks
// (/proc/PID/stat): the kernel splits CPU time between the two by sampling
// at each tick, so the split is only as good as the number of ticks.
func procStat(s *server) [2]float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		fatalf("cpupair: %s: %v", s.name, err)
	}
	// The fields after the command name, which is in parentheses:
	// utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		fatalf("cpupair: %s: /proc/%d/stat: %q", s.name, s.cmd.Process.Pid, b)
	}
	return [2]float64{ut, st}
}

// threadStat is what the kernel counts of one thread: nanoseconds on a
// CPU and timeslices (schedstat), voluntary and involuntary context
// switches (status).
type threadStat struct{ ns, slices, vol, invol float64 }

// threadStats returns the counts of each of a server's threads, by thread
// id.
func threadStats(s *server) map[int]threadStat {
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", s.cmd.Process.Pid))
	m := make(map[int]threadStat, len(dirs))
	for _, d := range dirs {
		tid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		var t threadStat
		var ok bool
		t.ns, t.slices, ok = readSchedstat(filepath.Join(d, "schedstat"))
		st, err := os.ReadFile(filepath.Join(d, "status"))
		if !ok || err != nil {
			continue // a thread that ended
		}
		for _, line := range strings.Split(string(st), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "voluntary_ctxt_switches":
				t.vol, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			case "nonvoluntary_ctxt_switches":
				t.invol, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		m[tid] = t
	}
	return m
}

// nameWidth is the width of the servers' name column.
func nameWidth(servers []*server) int {
	width := 13
	for _, s := range servers {
		width = max(width, len(s.name))
	}
	return width
}

// reportThreads prints, for each server, what each of its threads did per
// connection over the rounds, busiest first. Threads are named by their
// id less the process's: the runtime starts its monitor (sysmon) first, so
// that "+1" is normally sysmon, and "+0" the main thread.
func reportThreads(w io.Writer, servers []*server, conns float64) {
	width := nameWidth(servers)
	fmt.Fprintln(w, "per thread and connection: thread (id - pid; +1 is normally sysmon): cpu-ns slices voluntary involuntary")
	for _, s := range servers {
		type row struct {
			tid int
			d   threadStat
		}
		var rows []row
		for tid, a := range s.threads1 {
			b := s.threads0[tid]
			d := threadStat{(a.ns - b.ns) / conns, (a.slices - b.slices) / conns, (a.vol - b.vol) / conns, (a.invol - b.invol) / conns}
			if d.slices >= 0.005 {
				rows = append(rows, row{tid, d})
			}
		}
		slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.d.ns, a.d.ns) })
		fmt.Fprintf(w, "%-*s", width, s.name)
		for _, r := range rows {
			fmt.Fprintf(w, "  %+d: %.0f %.2f %.2f %.2f", r.tid-s.cmd.Process.Pid, r.d.ns, r.d.slices, r.d.vol, r.d.invol)
		}
		fmt.Fprintln(w)
	}
}

func report(w io.Writer, servers []*server, proto string, rounds, batch, clients int) {
	ref := servers[0]
	conns := float64(rounds * batch)
	fmt.Fprintf(w, "%s: %d rounds of %d connections per server from %d clients at once, in a random order each round\n", proto, rounds, batch, clients)
	width := nameWidth(servers)
	fmt.Fprintf(w, "%-*s %11s  %-30s %6s  %9s %9s %9s %7s\n", width, "server", "cpu-ns/conn", "median ratio to "+ref.name+" [95% CI]", "mean",
		"own-ns", "idle-ns", "usr%", "slices")
	for _, s := range servers {
		var sum float64
		for _, v := range s.ns {
			sum += v
		}
		ratio := ""
		var mean float64
		if s != ref {
			ratios := make([]float64, rounds)
			for r := range ratios {
				ratios[r] = s.ns[r] / ref.ns[r]
				mean += ratios[r]
			}
			mean /= float64(rounds)
			slices.Sort(ratios)
			lo, hi := medianCI(len(ratios))
			ratio = fmt.Sprintf("%.3f [%.3f, %.3f]", median(ratios), ratios[lo], ratios[hi])
		} else {
			mean = 1
		}
		usr, sys := s.stat1[0]-s.stat0[0], s.stat1[1]-s.stat0[1]
		usrShare := "-"
		if usr+sys > 0 {
			usrShare = fmt.Sprintf("%.0f", 100*usr/(usr+sys))
		}
		fmt.Fprintf(w, "%-*s %11.0f  %-30s %6.3f  %9.0f %9.0f %9s %7.2f\n", width, s.name, sum/conns, ratio, mean,
			s.own/conns, s.idle/conns, usrShare, s.slices/conns)
	}
	fmt.Fprintln(w, "cpu-ns/conn: CPU time per connection over all rounds; own-ns, idle-ns: its parts while the")
	fmt.Fprintln(w, "server's own batches ran and while the others' did; usr%: user time's share (tick-sampled);")
	fmt.Fprintln(w, "slices: times its threads were scheduled, per connection.")
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// medianCI returns the indexes, in a sorted sample of n, of a 95 %
// confidence interval for the median: the order statistics n/2 -+
// 1.96*sqrt(n)/2 (the normal approximation to the binomial, fine for
// n >= 10), which assume nothing of the distribution.
func medianCI(n int) (lo, hi int) {
	d := 1.96 * math.Sqrt(float64(n)) / 2
	lo = max(int(math.Floor(float64(n)/2-d)), 0)
	hi = min(int(math.Ceil(float64(n)/2+d)), n-1)
	return lo, hi
}
