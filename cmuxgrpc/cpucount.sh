#!/usr/bin/env bash
# What the server does per new connection, counted rather than timed:
# user-space instructions (callgrind) and system calls (strace), for the
# setups of cpu.sh (bare, mux, mux+Listener) and the same clients (one call
# per connection, in another process, on the CPUs but the first). The
# server runs with GOMAXPROCS=1, as cpu.sh's does (pinned to one CPU).
#
# The instruction counts do not move with the machine's load, as cpu.sh's
# times do, but for which path a connection takes (1-2 % from run to run).
# They leave out what a system call costs inside the kernel, which is most
# of a new connection's CPU. "own" is the part in the functions of this
# repository's packages (the mux, cmuxgrpc), the servers' handlers aside.
#
# The server (internal/cpuserver) runs under valgrind or strace; the
# clients run natively. Counting starts after the clients' warm-up
# (callgrind_control -z; strace attaches then) and ends once they are done.
# Under valgrind the server is slow enough that a connection's first bytes
# are always there when the mux looks. Under strace that depends on timing:
# a connection whose bytes are late costs the mux one system call more
# than one whose bytes are there (a peek, recvfrom, see readable_unix.go).
# The runtime's own calls (epoll_pwait, futex, nanosleep) come with time
# as much as with connections. Calls under 0.05 per connection are not
# printed, but count in the total.
#
# A last section counts side by side with github.com/soheilhy/cmux v0.1.5:
# benchcmp/cmd/cpuserver serves the same servers and matchers on a bare
# listener, behind this module's mux and behind v0.1.5's, the gRPC server
# reading the delivered connections directly (v0.1.5 has no
# cmuxgrpc.Listener).
#
#	cmuxgrpc/cpucount.sh               # N=1000 connections per setup
#	N=300 cmuxgrpc/cpucount.sh
set -euo pipefail
cd "$(dirname "$0")"
N=${N:-1000}
for tool in valgrind strace; do
	if ! command -v "$tool" >/dev/null; then
		echo "cpucount: installing $tool" >&2
		apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
	fi
done
T=$(mktemp -d)
# run starts its processes in a pipeline's subshell, whose jobs this shell
# does not see: it notes their pids in $T/pids.
trap 'kill $(cat "$T/pids" 2>/dev/null) 2>/dev/null || true; rm -rf "$T"' EXIT
go build -o "$T/cpuserver" ./internal/cpuserver
(cd ../benchcmp && go build -o "$T/cpuserver-v015" ./cmd/cpuserver)
SERVER=$T/cpuserver
go test -c -o "$T/clients.test" .
CPUS=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	CPUS=(taskset -c "1-$(($(nproc) - 1))")
fi

# own PATTERN prints the self cost of the functions whose names match
# PATTERN in a callgrind dump, then that of all functions and the dump's
# summary, which agree if the dump was read right. The cost line after a
# calls= line is the inclusive cost of a call, not its caller's own.
own() {
	awk -v pat="$1" '
		/^summary:/ { summary = $2; next }
		/^c?fn=/ {
			# fn=(id) name defines id; fn=(id) refers to it. cfn= names
			# a call target, and may be where a name is defined.
			call = $0 ~ /^cfn=/
			s = substr($0, call ? 5 : 4)
			name = s
			if (match(s, /^\([0-9]+\)/)) {
				id = substr(s, 1, RLENGTH)
				if (length(s) > RLENGTH) names[id] = substr(s, RLENGTH + 2)
				name = names[id]
			}
			if (!call) ours = name ~ pat && name !~ /internal\/cpuserve/
			next
		}
		/^calls=/ { skip = 1; next }
		/^[0-9+*-]/ {
			if (skip) { skip = 0; next }
			all += $2
			if (ours) mine += $2
		}
		END { printf "%d %d %d\n", mine, all, summary }' "$2"
}

# run TOOL PROTO SETUP prints "PROTO SETUP what-per-conn..." for TOOL.
run() {
	local tool=$1 proto=$2 setup=$3 d="$T/$1.$2.$3.$(basename "$SERVER")"
	mkdir -p "$d"
	mkfifo "$d/sin" "$d/cin"
	exec 3<>"$d/sin" 4<>"$d/cin"
	case $tool in
	callgrind)
		GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
			"$SERVER" -proto "$proto" -setup "$setup" <&3 >"$d/sout" 2>"$d/slog" &
		;;
	strace)
		GOMAXPROCS=1 "$SERVER" -proto "$proto" -setup "$setup" <&3 >"$d/sout" 2>"$d/slog" &
		;;
	esac
	local sp=$!
	echo "$sp" >>"$T/pids"
	wait_for() { # wait_for FILE WORD TENTHS
		for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
		echo "cpucount: $tool $proto $setup: no $2 in $(basename "$1")" >&2
		cat "$d/slog" "$d/cout" >&2 2>/dev/null
		return 1
	}
	wait_for "$d/sout" 127.0.0.1 600
	CMUXGRPC_CPU_CLIENTS="$proto $(head -1 "$d/sout") $N" "${CPUS[@]}" "$T/clients.test" \
		-test.run '^TestCPUClients$' <&4 >"$d/cout" 2>&1 &
	local cp=$!
	echo "$cp" >>"$T/pids"
	wait_for "$d/cout" GO 1200
	sleep 1
	local st=
	if [ "$tool" = callgrind ]; then
		callgrind_control -z "$sp" 2>&1 >/dev/null | sed "/^sending command/d" >&2
	else
		strace -f -c -o "$d/strace" $(ls /proc/"$sp"/task | sed 's/^/-p /') 2>/dev/null &
		st=$!
		echo "$st" >>"$T/pids"
		sleep 1
	fi
	echo run >&4
	wait_for "$d/cout" DONE 6000
	sleep 1
	if [ "$tool" = callgrind ]; then
		callgrind_control -d "$sp" 2>&1 >/dev/null | sed "/^sending command/d" >&2
		sleep 1
		local mine all summary
		read -r mine all summary < <(own '^github\.com/(cmux-go|soheilhy)/cmux[./]' "$d"/cg.out.*)
		if [ -z "$summary" ] || [ "$summary" -eq 0 ]; then
			echo "cpucount: $proto $setup: no callgrind summary" >&2
			return 1
		fi
		# The self costs add up to the summary, give or take a few
		# lines of the dump that are not costs.
		if [ $((all > summary ? all - summary : summary - all)) -gt $((summary / 1000)) ]; then
			echo "cpucount: $proto $setup: self costs add up to $all, not $summary: own is not reliable" >&2
			mine=-1
		fi
		echo "$proto $setup $((summary / N)) $((mine < 0 ? -1 : mine / N))"
	else
		kill -INT "$st" 2>/dev/null || true
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

echo "user-space instructions per connection (callgrind, N=$N; own: in the mux's (v0.1.5's too) and cmuxgrpc's functions)"
each callgrind | awk '{ if ($2 == "bare") b[$1] = $3; printf "  %-6s %-13s %8d  %.3fx bare   own %6d\n", $1, $2, $3, $3 / b[$1], $4 }'
echo
echo "system calls per connection (strace -c, N=$N; those of 0.05 or more per connection)"
each strace | sed 's/^/  /'

echo
echo "side by side with soheilhy/cmux v0.1.5 (benchcmp/cmd/cpuserver, N=$N)"
SERVER=$T/cpuserver-v015
for proto in http1 grpc; do
	for setup in bare mux v015; do run callgrind "$proto" "$setup"; done
done | awk '{ if ($2 == "bare") b = $3; printf "  %-6s %-13s %8d  %.3fx bare   own %6d\n", $1, $2, $3, $3 / b, $4 }'
for proto in http1 grpc; do
	for setup in bare mux v015; do run strace "$proto" "$setup"; done
done | sed 's/^/  /'
