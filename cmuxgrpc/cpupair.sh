#!/usr/bin/env bash
# Server CPU time per new connection, measured so that the machine's
# changing load falls on every setup alike (see internal/cpupair): the
# servers run at once, pinned to CPU 0 with GOMAXPROCS=1, and the clients
# take turns among them in batches, in a random order each round. For
# each protocol: a bare listener (twice: "bare2" is a control, whose ratio
# to "bare" shows the method's own bias), this module's mux, and
# soheilhy/cmux v0.1.5 with the same servers and matchers (gRPC: and this
# module's mux with cmuxgrpc.Listener). Prints the median over rounds of
# each setup's ratio to bare, with a 95 % confidence interval.
#
#	cmuxgrpc/cpupair.sh                      # about 2 minutes
#	ROUNDS=600 GRPC_ROUNDS=400 cmuxgrpc/cpupair.sh
#	CLIENTS=4 cmuxgrpc/cpupair.sh            # 4 clients connecting at once
#	PROBES=1 cmuxgrpc/cpupair.sh             # HTTP/1.1 with cpuserve.Probes
#	DEFER=1 cmuxgrpc/cpupair.sh              # listeners with TCP_DEFER_ACCEPT
#	THREADS=1 cmuxgrpc/cpupair.sh            # and what each thread did
#
# DEFER=1 serves the setups on listeners with TCP_DEFER_ACCEPT (Linux), whose
# Accept returns a connection once its first bytes are there ("+defer"),
# and compares them with a bare listener without it.
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-300}
GRPC_ROUNDS=${GRPC_ROUNDS:-200}
CLIENTS=${CLIENTS:-1}
FLAGS=(-clients "$CLIENTS")
[ -n "${THREADS:-}" ] && FLAGS+=(-threads)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
go build -o "$T/cpupair" ./internal/cpupair
go build -o "$T/cpuserver" ./internal/cpuserver
(cd ../benchcmp && go build -o "$T/cpuserver-v015" ./cmd/cpuserver)
S=$T/cpuserver V=$T/cpuserver-v015
if [ -n "${PROBES:-}" ]; then
	"$T/cpupair" -proto http1 "${FLAGS[@]}" -rounds "$ROUNDS" -batch 100 \
		bare="$S",bare mux="$S",mux muxhttp="$S",muxhttp muxany="$S",muxany hand="$S",hand wrap="$S",wrap peek="$S",peek wait="$S",wait
	exit
fi
if [ -n "${DEFER:-}" ]; then
	"$T/cpupair" -proto http1 "${FLAGS[@]}" -rounds "$ROUNDS" -batch 100 \
		bare="$S",bare mux="$S",mux bare+defer="$S",bare+defer mux+defer="$S",mux+defer v015+defer="$V",v015+defer
	echo
	"$T/cpupair" -proto grpc "${FLAGS[@]}" -rounds "$GRPC_ROUNDS" -batch 50 \
		bare="$S",bare mux="$S",mux mux+Listener="$S",mux+Listener bare+defer="$S",bare+defer \
		mux+defer="$S",mux+defer mux+Listener+defer="$S",mux+Listener+defer v015+defer="$V",v015+defer
	exit
fi
"$T/cpupair" -proto http1 "${FLAGS[@]}" -rounds "$ROUNDS" -batch 100 \
	bare="$S",bare mux="$S",mux v015="$V",v015 bare2="$S",bare
echo
"$T/cpupair" -proto grpc "${FLAGS[@]}" -rounds "$GRPC_ROUNDS" -batch 50 \
	bare="$S",bare mux="$S",mux mux+Listener="$S",mux+Listener v015="$V",v015 bare2="$S",bare
