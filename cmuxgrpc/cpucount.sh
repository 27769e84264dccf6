#!/usr/bin/env bash
# What the server does per new connection, counted rather than timed:
# user-space instructions (callgrind) and system calls (strace), for the
# setups of cpu.sh (bare, mux, mux+Listener) and the same clients (one call
# per connection, in another process). Counts do not vary with the
# machine's load as cpu.sh's times do; they leave out what a system call
# costs inside the kernel, which is most of a new connection's CPU.
#
# The server (internal/cpuserver) runs under valgrind or strace; the
# clients run natively. Counting starts after the clients' warm-up
# (callgrind_control -z; strace attaches then) and ends once they are done.
# Under valgrind the server is slow enough that a connection's first bytes
# are always there when the mux looks. Under strace that depends on timing:
# a connection whose bytes are late costs the mux one system call more
# than one whose bytes are there (a peek, recvfrom, see readable_unix.go).
#
#	cmuxgrpc/cpucount.sh               # N=1000 connections per setup
#	N=300 cmuxgrpc/cpucount.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
N=${N:-1000}
for tool in valgrind strace; do
	command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
go build -o "$T/cpuserver" ./internal/cpuserver
go test -c -o "$T/clients.test" .
CPUS=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	CPUS=(taskset -c "1-$(($(nproc) - 1))")
fi

# run TOOL PROTO SETUP prints "PROTO SETUP what-per-conn..." for TOOL.
run() {
	local tool=$1 proto=$2 setup=$3 d="$T/$1.$2.$3"
	mkdir -p "$d"
	mkfifo "$d/sin" "$d/cin"
	exec 3<>"$d/sin" 4<>"$d/cin"
	case $tool in
	callgrind)
		GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
			"$T/cpuserver" -proto "$proto" -setup "$setup" <&3 >"$d/sout" 2>"$d/slog" &
		;;
	strace)
		GOMAXPROCS=1 "$T/cpuserver" -proto "$proto" -setup "$setup" <&3 >"$d/sout" 2>"$d/slog" &
		;;
	esac
	local sp=$!
	wait_for() { # wait_for FILE WORD TENTHS
		for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
		echo "cpucount: no $2 in $1" >&2; cat "$d/slog" >&2; return 1
	}
	wait_for "$d/sout" 127.0.0.1 600
	CMUXGRPC_CPU_CLIENTS="$proto $(head -1 "$d/sout") $N" "${CPUS[@]}" "$T/clients.test" \
		-test.run '^TestCPUClients$' <&4 >"$d/cout" 2>&1 &
	local cp=$!
	wait_for "$d/cout" GO 1200
	sleep 1
	local st=
	if [ "$tool" = callgrind ]; then
		callgrind_control -z "$sp" >/dev/null 2>&1
	else
		strace -f -c -o "$d/strace" $(ls /proc/"$sp"/task | sed 's/^/-p /') 2>/dev/null &
		st=$!
		sleep 1
	fi
	echo run >&4
	wait_for "$d/cout" DONE 6000
	sleep 1
	if [ "$tool" = callgrind ]; then
		callgrind_control -d "$sp" >/dev/null 2>&1
		sleep 1
		local ir own
		ir=$(sed -n 's/^summary: *//p;s/^totals: *//p' "$d"/cg.out.* | head -1)
		# The mux's own: lines of this repository's files but cpuserve's
		# and cpuserver's (the servers). (callgrind sometimes files a function's
		# cost under another's name after a goroutine switch: the file
		# tells them apart.)
		own=$(callgrind_annotate --auto=no --threshold=100 "$d"/cg.out.* 2>/dev/null | awk -v root="$ROOT/" '
			/file:function/ { f = 1; next }
			f && /^ *[0-9]/ {
				# "  12,345 ( 1.23%)  /path/file.go:function [object]"
				p = $0
				sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", p)
				if (index(p, root) == 1 && p !~ /internal\/cpuserve/) { v = $1; gsub(",", "", v); s += v }
			}
			END { print s + 0 }')
		echo "$proto $setup $((ir / N)) $((own / N))"
	else
		kill -INT "$st"
		wait "$st" || true
		local counts
		counts=$(awk -v n="$N" '
			# % time, seconds, usecs/call, calls, [errors,] syscall
			/^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ && $NF != "total" { c[$NF] = $4; tot += $4 }
			END {
				printf "total=%.2f\n", tot / n
				for (k in c) if (c[k] / n >= 0.05) printf "%s=%.2f\n", k, c[k] / n
			}' "$d/strace" | sort | paste -sd' ')
		echo "$proto $setup $counts"
	fi
	# The server runs until killed; the clients hold their fifo open for
	# writing too, so no end of input comes.
	kill "$sp" "$cp" 2>/dev/null || true
	wait "$sp" "$cp" 2>/dev/null || true
	exec 3>&- 4>&-
}

# each TOOL runs TOOL on every setup.
each() {
	for proto in http1 grpc; do
		for setup in bare mux mux+Listener; do
			[ "$proto" = http1 ] && [ "$setup" = mux+Listener ] && continue
			run "$1" "$proto" "$setup"
		done
	done
}

echo "user-space instructions per connection (callgrind, N=$N)"
echo "  (own: in the files of this repository: the mux, cmuxgrpc)"
each callgrind | awk '{ if ($2 == "bare") b[$1] = $3; printf "  %-6s %-13s %8d  %.3fx bare   own %6d\n", $1, $2, $3, $3 / b[$1], $4 }'
echo
echo "system calls per connection (strace -c, N=$N; those of 0.05 or more per connection)"
each strace | sed 's/^/  /'
