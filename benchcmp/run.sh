#!/usr/bin/env bash
# Compares github.com/cmux-go/cmux with github.com/soheilhy/cmux v0.1.5 on
# the full per-connection path, in memory and over loopback TCP, and writes
# RESULTS.md beside this script:
#   1. the sanity test (every case, both libraries, in memory and TCP);
#   2. go test -bench, COUNT times, GOMAXPROCS=1, and benchstat -col /lib;
#      BenchmarkTCPPath at a fixed TCP_BENCHTIME (each connection leaves a
#      socket in TIME_WAIT), in COUNT rounds so that the libraries alternate;
#   3. callgrind on the test binary, per case and library, at CG_N and at
#      CG_SMALL connections (TCP: CG_TCP_N and CG_TCP_SMALL): instructions
#      per connection are (Ir(N) - Ir(SMALL)) / (N - SMALL);
#   4. the ratio tables (cmd/report).
# About 10 minutes on 2 idle cores. Scratch files go to out/ (not committed).
set -euo pipefail
cd "$(dirname "$0")"

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
TCP_BENCHTIME=${TCP_BENCHTIME:-10000x}
SOCK_BENCHTIME=${SOCK_BENCHTIME:-10000x}
IDLE_BENCHTIME=${IDLE_BENCHTIME:-3x}
CG_N=${CG_N:-20000}
CG_SMALL=${CG_SMALL:-1000}
CG_TCP_N=${CG_TCP_N:-5000}
CG_TCP_SMALL=${CG_TCP_SMALL:-500}
CG_SOCK_N=${CG_SOCK_N:-6000}
CG_SOCK_SMALL=${CG_SOCK_SMALL:-1000}
START=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo unknown)
# step NAME prints a step's head with the time since the start.
step() { echo "== $1 ($(($(date +%s) - START)) s)"; }
OUT=out
mkdir -p "$OUT"
rm -f "$OUT"/cg.* "$OUT"/callgrind.tsv

export GOMAXPROCS=1

# One test binary for every step, so that all the numbers are of one build
# of the root package, which others may be changing meanwhile. rootrev
# names that build: the commit and, if the package's files (its non-test
# .go files, go.mod, go.sum) have changes not committed, a hash of them.
rootrev() {
	local rev dirty
	local files=(':(glob)*.go' ':(exclude,glob)*_test.go' go.mod go.sum)
	rev=$(git -C .. rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
	dirty=$(cd .. && { git diff HEAD -- "${files[@]}"
		git ls-files -o --exclude-standard -z -- "${files[@]}" | xargs -0 -r cat; } | sha256sum | cut -c1-12)
	if [ "$dirty" = "$(printf '' | sha256sum | cut -c1-12)" ]; then
		echo "$rev"
	else
		echo "$rev with uncommitted changes to the package (hash $dirty)"
	fi
}
step "test binary"
T="$OUT/benchcmp.test"
for try in 1 2 3 4 5; do
	REV=$(rootrev)
	go test -c -o "$T" . && [ "$(rootrev)" = "$REV" ] && break
	[ "$try" = 5 ] && { echo "the root package kept changing (or did not build)"; exit 1; }
	sleep 10
done
echo "cmux at $REV"

step "sanity test"
"$T" -test.count=1 -test.run .

step "benchmarks: -count $COUNT, GOMAXPROCS=$GOMAXPROCS"
"$T" -test.run '^$' -test.bench '^BenchmarkFullPath$' -test.count "$COUNT" -test.benchmem -test.benchtime "$BENCHTIME" | tee "$OUT/bench.txt"
"$T" -test.run '^$' -test.bench '^BenchmarkSockPath$' -test.count "$COUNT" -test.benchmem -test.benchtime "$SOCK_BENCHTIME" |
	grep '^Benchmark' | tee -a "$OUT/bench.txt"
for i in $(seq "$COUNT"); do
	"$T" -test.run '^$' -test.bench '^BenchmarkTCPPath$' -test.count 1 -test.benchmem -test.benchtime "$TCP_BENCHTIME" |
		grep '^Benchmark' | tee -a "$OUT/bench.txt"
done
"$T" -test.run '^$' -test.bench '^BenchmarkIdleConns$' -test.count "$COUNT" -test.benchtime "$IDLE_BENCHTIME" |
	grep '^Benchmark' | tee -a "$OUT/bench.txt"

LOAD1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo unknown)

step "benchstat"
BENCHSTAT=$(command -v benchstat || true)
if [ -z "$BENCHSTAT" ]; then
	BENCHSTAT="$(go env GOPATH)/bin/benchstat"
	if [ ! -x "$BENCHSTAT" ]; then
		go install golang.org/x/perf/cmd/benchstat@latest
	fi
fi
# Columns are the libraries in order of appearance: v015 first, so the
# deltas are cmux against v0.1.5.
"$BENCHSTAT" -col /lib "$OUT/bench.txt" | tee "$OUT/benchstat.txt"

step "callgrind: $CG_SMALL and $CG_N connections per case and library (sockets: $CG_SOCK_SMALL and $CG_SOCK_N; TCP: $CG_TCP_SMALL and $CG_TCP_N)"
if ! command -v valgrind >/dev/null; then
	apt-get update -qq && apt-get install -y -qq valgrind
fi
CASES=$(sed -n 's|^BenchmarkFullPath/case=\([^/]*\)/lib=.*|\1|p' "$OUT/bench.txt" | awk '!seen[$0]++')

# callgrind BENCH CASE LIB N appends "BENCH CASE LIB N Ir" to callgrind.tsv,
# BENCH being FullPath, SockPath or TCPPath.
callgrind() {
	local b=$1 c=$2 lib=$3 n=$4 f="$OUT/cg.$1.$2.$3.$4"
	# Go's async preemption signals trip an assertion in callgrind.
	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$f" \
		"$T" -test.run '^$' -test.benchtime "${n}x" \
		-test.bench "^Benchmark$b\$/^case=$c\$/^lib=$lib\$" >"$f.log" 2>&1 ||
		{ cat "$f.log"; return 1; }
	grep -q "^Benchmark$b/case=$c/lib=$lib" "$f.log" ||
		{ echo "callgrind $b $c $lib $n: the benchmark did not run"; cat "$f.log"; return 1; }
	echo "$b $c $lib $n $(sed -n 's/^totals: *//p' "$f")" >>"$OUT/callgrind.tsv"
	echo "  $b $c $lib ${n}x done"
}
# The harnesses alone (BenchmarkHarness), whose instructions the report
# takes out to give the mux's own.
for run in "FullPath $CG_SMALL" "FullPath $CG_N" "SockPath $CG_SOCK_SMALL" "SockPath $CG_SOCK_N"; do
	set -- $run
	callgrind Harness "$1" none "$2"
done
for c in $CASES; do
	for run in "FullPath $CG_SMALL" "FullPath $CG_N" "SockPath $CG_SOCK_SMALL" "SockPath $CG_SOCK_N" \
		"TCPPath $CG_TCP_SMALL" "TCPPath $CG_TCP_N"; do
		set -- $run
		# Up to three at a time: instruction counts do not depend on sharing
		# cores.
		# A library without the case's matchers (v0.1.5 and the routing
		# cases) skipped its benchmark: it has no line in bench.txt.
		pids=()
		for lib in v015 cmux cmuxca; do
			grep -q "^Benchmark$1/case=$c/lib=$lib[[:space:]]" "$OUT/bench.txt" || continue
			callgrind "$1" "$c" "$lib" "$2" &
			pids+=($!)
		done
		for p in "${pids[@]}"; do
			wait "$p"
		done
	done
done
rm -f "$OUT"/cg.*[0-9]

step "RESULTS.md"
report() { go run ./cmd/report -bench "$OUT/bench.txt" -callgrind "$OUT/callgrind.tsv" -table "$1"; }
FULL=$(report full)
FULLCA=$(report fullca)
SOCK=$(report sock)
TCP=$(report tcp)
IDLE=$(report idle)
CPU=$(sed -n 's/^cpu: //p' "$OUT/bench.txt" | head -1)
{
	cat <<EOF
# cmux vs soheilhy/cmux v0.1.5: full per-connection path

Generated by \`benchcmp/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); do not edit by hand.

- $(go version)
- cpu: ${CPU:-unknown}, $(nproc) cores; GOMAXPROCS=1
- \`go test -bench\`: -count $COUNT, -benchtime $BENCHTIME (sockets: $SOCK_BENCHTIME; TCP: $TCP_BENCHTIME, in $COUNT rounds; idle: $IDLE_BENCHTIME); values below are medians
- callgrind: instr/conn = (Ir(${CG_N}x) - Ir(${CG_SMALL}x)) / ($CG_N - $CG_SMALL) (sockets: ${CG_SOCK_N}x and ${CG_SOCK_SMALL}x; TCP: ${CG_TCP_N}x and ${CG_TCP_SMALL}x), whole process, user space only, GODEBUG=asyncpreemptoff=1
- cmux at $REV
- run.sh took $(( ($(date +%s) - START) / 60 )) min $(( ($(date +%s) - START) % 60 )) s
- load average (1 min) at the start of run.sh: $LOAD0; at the end of the benchmarks: $LOAD1. The benchmarks make about 1; more means that other processes took CPU time from them, which ns/op (wall time) shows and the TCP table's cpu ns/op and the instruction counts hardly do

Each connection: root Accept -> mux -> matchers -> child Accept -> server
Close without reading. Every ratio is cmux / v0.1.5: below 1 means cmux
costs less.

## Full path (in memory)

Over an in-memory listener and connection (see harness_test.go). ns/op,
B/op and allocs/op include the harness's own connection (one allocation
per connection, alike for both).

$FULL

The last column takes out the harness alone (BenchmarkHarness: the same
connections accepted and closed with no mux). A memConn is not a socket:
nothing tells whether its Read would wait. cmux matches it on the goroutine
that accepted it, after waking a worker that would take over the root's
Accept if the matching waited (the turn, see acceptors.go), so that a
connection whose bytes have not arrived never holds up the others while
Accept is still called from one goroutine at a time. Here the one
processor stays busy, so the worker seldom gets to run (in one run of
HTTP1Fast, 39 wake-ups for 20,000 connections), and each connection goes
from the root's Accept to the child's without a goroutine in between.
v0.1.5 starts a goroutine per connection. Any needs no bytes and is
decided in the accept loop.

## Full path (in memory), with ConcurrentAccept

The same, cmux made with the ConcurrentAccept option (lib=cmuxca), which
lets it call the root's Accept from two goroutines at once. The goroutine
that accepted a memConn reads and matches it while the other waits in
Accept (two, blocked on the memListener's channel, take turns), which
spares the worker's wake-up of the default. It is an option because
v0.1.5 calls Accept from one goroutine, and a root listener written for
that may not be safe for concurrent use.

$FULLCA

## Full path (in-memory sockets)

The same path over Unix socketpairs (see sock_test.go): the client's end
has written the whole flight before the root's Accept returns the
server's end, as a socket's flight is there when a TCP root accepts it
late in a burst. A socket can be read without waiting, so cmux decides
every case in its accept loop. The harness's socketpair, net.FileConn and
closes cost both libraries alike and bring the whole-path ratios close to
1; the last column takes them out. Run with GOMAXPROCS=1, the benchmark's
goroutine, which makes the connections, and the accept loop hand the
processor to each other and the server's goroutine waits: connections
queue for the child listener, ns/op follows that more than the mux, and
B/op counts the sniff buffers that cmux's queued connections hold (their
whole first flight, read in one system call) and the pool reallocates
after a collection (at GOMAXPROCS=2, B/op is below v0.1.5's).

$SOCK

## TCP loopback

A real TCP root listener on 127.0.0.1; each connection is dialed by one of
4 client goroutines, which writes the flight, reads until the server has
closed, and closes (see tcp_test.go). ns/op, B/op and allocs/op are the
whole process's, clients included (alike for both); cpu ns/op is its CPU
time (getrusage), and usr and sys ns/op split that into user space and
kernel: most of it is the kernel's. callgrind counts user space only.
The server closes without reading: where the mux left part of the flight
unread in the socket, the kernel resets the connection; where it read it
all, the close is a FIN and the server's socket goes to TIME_WAIT, which
costs the kernel more (resets/conn; twovf/op in the benchstat output
counts closes that skipped TIME_WAIT because its table was full).

$TCP

## Idle connections (accepted, nothing sent yet; 1000 at once)

heapB: live heap per connection after GC, the harness's share
(harnessB) taken out; stackB: goroutine stack per connection.

$IDLE

## benchstat -col /lib

\`\`\`
$(cat "$OUT/benchstat.txt")
\`\`\`
EOF
} >RESULTS.md
echo "wrote $(pwd)/RESULTS.md"
