#!/usr/bin/env bash
# Server CPU per new connection, behind the mux and bare (BenchmarkNewConnCPU),
# in ROUNDS rounds that each run every setup once, so that a change in the
# machine's load between runs falls on bare and mux alike. Prints each
# round's figures and, per setup, the median over rounds of its ratio to
# bare in the same round. About 20 s per round on 2 idle cores.
#
#	cmuxgrpc/cpu.sh            # 8 rounds
#	ROUNDS=4 cmuxgrpc/cpu.sh
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-8}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
go test -c -o "$T/cmuxgrpc.test" .
# The server on CPU 0 (GOMAXPROCS 1), its clients on the others: with the
# two sharing every CPU, the figures of one setup vary by 20-30 % between
# runs. PIN=0 turns this off.
PIN=${PIN:-1}
RUN=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	RUN=(taskset -c 0)
	export CMUXGRPC_CHILD_CPUS="1-$(($(nproc) - 1))"
fi
for i in $(seq "$ROUNDS"); do
	"${RUN[@]}" "$T/cmuxgrpc.test" -test.run '^$' -test.bench '^BenchmarkNewConnCPU$' -test.benchtime 1x |
		awk -v r="$i" '/^BenchmarkNewConnCPU/ { sub(/-[0-9]+$/, "", $1); sub(/^BenchmarkNewConnCPU\//, "", $1); print r, $1, $5 }' |
		tee -a "$T/rounds.txt"
done
echo
echo "setup                 median ratio to bare (per round)   median server-cpu-ns/conn"
awk '
{ v[$1 " " $2] = $3; setups[$2] = 1; rounds[$1] = 1 }
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	for (s in setups) {
		split(s, p, "/"); bare = p[1] "/bare"
		n = 0; m = 0
		for (r in rounds) {
			if ((r " " s) in v) { m++; abs[m] = v[r " " s] }
			if ((r " " s) in v && (r " " bare) in v) { n++; rat[n] = v[r " " s] / v[r " " bare] }
		}
		printf "%-20s  %.3f (%d rounds)                   %.0f\n", s, median(rat, n), n, median(abs, m)
	}
}' "$T/rounds.txt" | sort
