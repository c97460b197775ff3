#!/bin/bash
# Paired, alternating rounds against the C peers of ../shared/peers, for machines too noisy for
# one run: each round measures the C program and ours back to back, and the summary gives the
# median of the per-round ratios.
#
#   tools/paired_rounds.sh server  ROUNDS SECONDS CONNS   # //socket:echo_server vs epoll_echo
#   tools/paired_rounds.sh client  ROUNDS SECONDS         # //loadgen vs pingpong_client (1000 conns)
#
# server: each round starts three servers — the C one, a second copy of it ("c2") and ours —
# drives each in turn with the same client, and stops them. The order (of starting and of
# driving) rotates every round, since on the VMs here the later of two identical servers measured
# 2-6% faster over 16 rounds; use a multiple of 3 rounds. The copy's ratios are the floor to read
# ours against: the same program on both sides, so they scatter only by what the machine does
# (single rounds of identical servers differ by up to a third here; medians of 24 rounds stayed
# within 4% of 1 in eight sets).
#
# BASE_BIN=folder: a second build of ours (say, the commit before a change, built with -c opt)
# joins every server round as "base", so that a change is measured before and after in one run;
# the order then rotates over four, so use a multiple of 4 rounds.
#
# Needs the peers built (PEERS_BIN, default /tmp/peers-bin, by ../shared/peers/build.sh) and the
# project built with -c opt (GEVENT_BIN: a folder holding socket/echo_server and loadgen/loadgen
# instead of bazel-bin). Prints one line per round and program, then the medians.
#
# PERF=1 also samples the whole machine with perf (Debian: linux-perf) for the middle of each
# round and adds the measured program's user and kernel time per message, in ns. The kernel's TCP
# work is the same for every program, so the user time is what a program itself adds; it is
# steadier than messages per second on a shared machine.
set -euo pipefail
MODE=${1:?server or client}; ROUNDS=${2:-6}; SECONDS_PER=${3:-4}; CONNS=${4:-1000}
case "$MODE" in
  server | client) ;;
  *) echo "paired_rounds.sh: unknown mode '$MODE' (server or client)" >&2; exit 2 ;;
esac
PEERS=${PEERS_BIN:-/tmp/peers-bin}
BIN=${GEVENT_BIN:-$(bazel info -c opt bazel-bin 2>/dev/null)}
TCK=$(getconf CLK_TCK)
PERF=${PERF:-0}
BASE=${BASE_BIN:-}
PERF_SECONDS=$((SECONDS_PER > 3 ? SECONDS_PER - 2 : 1))
OUT=$(mktemp)
trap 'rm -f "$OUT" "$OUT.perf" "$OUT.ratios"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime

# perf_begin: with PERF=1, records the machine from 1 s into the round for PERF_SECONDS.
perf_begin() {
  [ "$PERF" = 1 ] || return 0
  (sleep 1; exec perf record -q -o "$OUT.perf" -e cpu-clock -F 10000 -a -- sleep "$PERF_SECONDS") \
    >/dev/null 2>&1 &
  PERF_JOB=$!
}
# perf_split PID MSGS_PER_S -> "user_ns kernel_ns" per message of PID's samples ("- -" without
# PERF=1). One sample is 100 us at 10 kHz.
perf_split() {
  if [ "$PERF" != 1 ]; then echo "- -"; return; fi
  wait "$PERF_JOB" || true
  # perf script: one line per sample with the process id (perf report's "pid" is the thread).
  perf script -i "$OUT.perf" -F pid,ip,dso 2>/dev/null |
    awk -v pid="$1" -v m="$2" -v s="$PERF_SECONDS" '$1 == pid {
        if ($NF == "([kernel.kallsyms])") k++; else u++ }
      END {n = m * s + 1; printf "%.0f %.0f", u * 1e5 / n, k * 1e5 / n}'
}

# start_server NAME PORT CMD...: runs CMD in the background, its pid in SERVER_PID[NAME].
declare -A SERVER_PID SERVER_PORT
start_server() {
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 &
  SERVER_PID[$name]=$!
  SERVER_PORT[$name]=$port
}
stop_servers() {
  local pid
  for pid in "${SERVER_PID[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  SERVER_PID=()
}

# Every mode prints: ROUND NAME MSGS_PER_S SERVER_CPU_NS_PER_MSG USER_NS KERNEL_NS
# (server CPU not in client mode; user/kernel of the measured program with PERF=1).

# measure_server ROUND NAME: one round of the client against the running server NAME.
measure_server() {
  local round=$1 name=$2
  local pid=${SERVER_PID[$name]} c0 out c1 mps split
  c0=$(cpu_ticks "$pid")
  perf_begin
  out=$("$PEERS/pingpong_client" 127.0.0.1 "${SERVER_PORT[$name]}" "$CONNS" 64 "$SECONDS_PER")
  c1=$(cpu_ticks "$pid")
  mps=${out#msgs_per_s=}; mps=${mps%% *}
  split=$(perf_split "$pid" "$mps")
  echo "$round $name $mps $(( (c1 - c0) * 1000000000 / TCK / (mps * SECONDS_PER + 1) )) $split"
}

# client: ROUND NAME CMD... (the command prints its messages per second on stdout)
measure_client() {
  local round=$1 name=$2; shift 2
  "$@" >"$OUT.client" 2>&1 &
  local pid=$!
  perf_begin
  wait $pid || true
  local mps
  mps=$(awk '/^msgs_per_s=/ {sub("msgs_per_s=", ""); print $1} /throughput/ {print $2}' "$OUT.client")
  echo "$round $name ${mps:-0} 0 $(perf_split $pid "${mps:-0}")"
  rm -f "$OUT.client"
}

port=9600
# start_round NAME...: starts the servers of a round in the order given, on fresh ports.
start_round() {
  local name
  for name in "$@"; do
    port=$((port + 1))
    if [ "$name" = ours ]; then
      start_server ours $port "$BIN/socket/echo_server" --port=$port
    elif [ "$name" = base ]; then
      start_server base $port "$BASE/socket/echo_server" --port=$port
    else
      start_server "$name" $port "$PEERS/epoll_echo" $port
    fi
  done
  sleep 0.5
}
# The rounds run in the pipeline's subshell, which owns the servers: its own traps stop them, so
# that an interrupted run leaves none behind (background jobs of a script ignore SIGINT). tee
# ignores SIGINT and ends when the subshell does, so that the subshell's last lines still have
# somewhere to go.
{
trap stop_servers EXIT
trap "exit 130" INT TERM
for round in $(seq 1 "$ROUNDS"); do
  if [ "$MODE" = server ]; then
    # Rotate the order by one every round.
    names=(c c2 ours); [ -n "$BASE" ] && names+=(base)
    shift_by=$(( (round - 1) % ${#names[@]} ))
    order="${names[*]:$shift_by} ${names[*]:0:$shift_by}"
    start_round $order
    for name in $order; do measure_server "$round" "$name"; done
    stop_servers
  else
    start_round c
    measure_client "$round" c "$PEERS/pingpong_client" 127.0.0.1 "$port" 1000 64 "$SECONDS_PER"
    measure_client "$round" ours "$BIN/loadgen/loadgen" --target=127.0.0.1:$port --clients=1000 \
      --duration="${SECONDS_PER}s" --warmup=1s
    stop_servers
  fi
done
} | (trap '' INT; exec tee "$OUT")

# Per-round ratios to c (messages per second, CPU per message) of ours and of the copy c2, then
# their medians.
ratios() {
  awk -v x="$1" '{v[$1" "$2] = $3; u[$1" "$2] = $4; r[$1] = 1}
     END {for (k in r) if ((k" c") in v && (k" "x) in v && v[k" c"] > 0)
            print v[k" "x] / v[k" c"], (u[k" c"] > 0 ? u[k" "x] / u[k" c"] : 0)}' "$OUT"
}
median() {
  sort -n | awk '{a[NR] = $1} END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf "%.3f (%.3f..%.3f, %d rounds)", m, a[1], a[NR], NR}'
}
ratios ours > "$OUT.ratios"
echo "median msgs/s ratio $(cut -d' ' -f1 "$OUT.ratios" | median)"
if [ "$MODE" = server ]; then
  echo "median server CPU per message ratio $(cut -d' ' -f2 "$OUT.ratios" | median)"
  if [ -n "$BASE" ]; then
    ratios base > "$OUT.ratios"
    echo "base (BASE_BIN): median msgs/s ratio $(cut -d' ' -f1 "$OUT.ratios" | median)"
    echo "base (BASE_BIN): median server CPU per message ratio $(cut -d' ' -f2 "$OUT.ratios" | median)"
  fi
  ratios c2 > "$OUT.ratios"
  echo "noise floor (the C server against its copy): median msgs/s ratio" \
    "$(cut -d' ' -f1 "$OUT.ratios" | median)"
  echo "noise floor (the C server against its copy): median server CPU per message ratio" \
    "$(cut -d' ' -f2 "$OUT.ratios" | median)"
fi
if [ "$PERF" = 1 ]; then
  names="c ours"; [ "$MODE" = server ] && names="c c2 ours${BASE:+ base}"
  for name in $names; do
    echo "median $name user ns per message $(awk -v n=$name '$2 == n {print $5}' "$OUT" | median)," \
      "kernel $(awk -v n=$name '$2 == n {print $6}' "$OUT" | median)"
  done
fi
