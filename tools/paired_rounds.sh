#!/bin/bash
# Paired, alternating rounds against the C peers of ../shared/peers, for machines too noisy for
# one run: each round measures the C program and ours back to back, and the summary gives the
# median of the per-round ratios.
#
#   tools/paired_rounds.sh server  ROUNDS SECONDS CONNS   # //socket:echo_server vs epoll_echo
#   tools/paired_rounds.sh client  ROUNDS SECONDS         # //loadgen vs pingpong_client (1000 conns)
#
# Needs the peers built (PEERS_BIN, default /tmp/peers-bin, by ../shared/peers/build.sh) and the
# project built with -c opt. Prints one line per round and program, then the medians.
set -euo pipefail
MODE=${1:?server or client}; ROUNDS=${2:-6}; SECONDS_PER=${3:-4}; CONNS=${4:-1000}
PEERS=${PEERS_BIN:-/tmp/peers-bin}
BIN=$(bazel info -c opt bazel-bin 2>/dev/null)
TCK=$(getconf CLK_TCK)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime

# server: ROUND NAME CMD... -> "round name msgs/s server_cpu_ns_per_msg"
measure_server() {
  local round=$1 name=$2 port=$3; shift 3
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep 1
  local c0 out c1 mps
  c0=$(cpu_ticks $pid)
  out=$("$PEERS/pingpong_client" 127.0.0.1 "$port" "$CONNS" 64 "$SECONDS_PER")
  c1=$(cpu_ticks $pid)
  kill $pid; wait $pid 2>/dev/null || true
  mps=${out#msgs_per_s=}; mps=${mps%% *}
  echo "$round $name $mps $(( (c1 - c0) * 1000000000 / TCK / (mps * SECONDS_PER + 1) ))"
}

port=9600
for round in $(seq 1 "$ROUNDS"); do
  if [ "$MODE" = server ]; then
    port=$((port + 1)); measure_server "$round" c "$port" "$PEERS/epoll_echo" "$port"
    port=$((port + 1)); measure_server "$round" ours "$port" "$BIN/socket/echo_server" --port="$port"
  else
    port=$((port + 1))
    "$PEERS/epoll_echo" "$port" >/dev/null 2>&1 &
    server=$!
    sleep 0.5
    out=$("$PEERS/pingpong_client" 127.0.0.1 "$port" 1000 64 "$SECONDS_PER")
    mps=${out#msgs_per_s=}; echo "$round c ${mps%% *} 0"
    mps=$("$BIN/loadgen/loadgen" --target=127.0.0.1:$port --clients=1000 \
          --duration="${SECONDS_PER}s" --warmup=1s 2>&1 | awk '/throughput/ {print $2}')
    echo "$round ours $mps 0"
    kill $server; wait $server 2>/dev/null || true
  fi
done | tee "$OUT"

# Per-round ratios of ours to c (messages per second, CPU per message), then their medians.
awk '{v[$1" "$2] = $3; u[$1" "$2] = $4; r[$1] = 1}
     END {for (k in r) if ((k" c") in v && (k" ours") in v && v[k" c"] > 0)
            print v[k" ours"] / v[k" c"], (u[k" c"] > 0 ? u[k" ours"] / u[k" c"] : 0)}' "$OUT" > "$OUT.ratios"
median() { sort -n | awk '{a[NR] = $1} END {printf "%.3f (%.3f..%.3f, %d rounds)", a[int((NR + 1) / 2)], a[1], a[NR], NR}'; }
echo "median msgs/s ratio $(cut -d' ' -f1 "$OUT.ratios" | median)"
if [ "$MODE" = server ]; then
  echo "median server CPU per message ratio $(cut -d' ' -f2 "$OUT.ratios" | median)"
fi
rm -f "$OUT.ratios"
