#!/usr/bin/env python3
"""Blocking hiredis through //monkey vs hiredis's async API on libev vs redis-benchmark.

One redis-server (Debian's redis-server, started here on a Unix socket in a temporary folder,
no persistence) serves all three clients in one run; each client makes 100 concurrent connections
on one thread and alternates SET/GET of 64-byte values, one request in flight per connection:
  greenlet        benchmarks/redis_monkey_bench --mode=greenlet (100 greenlets, PatchAll)
  async           benchmarks/redis_monkey_bench --mode=async (100 redisAsyncContexts, one ev loop)
  redis-benchmark redis-benchmark -s SOCK -c 100 -n N -t set,get -d 64 (Debian's redis-tools)
Rounds alternate the order (forward, backward, ...). Client CPU is getrusage(RUSAGE_CHILDREN)
around each client process (user+sys); syscalls per request come from one extra run of each
client under `strace -c -f` (Debian's strace). Prints every round and the medians.

  bazel run //benchmarks:redis_monkey -- [--rounds=5] [--requests=200000]
"""
import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLIENTS = 100


def runfile(path):
    base = os.environ.get("RUNFILES_DIR") or (os.path.abspath(sys.argv[0]) + ".runfiles")
    candidate = os.path.join(base, "gevent_cpp", path)
    return candidate if os.path.exists(candidate) else path


def start_redis(tmp):
    binary = "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        sys.exit("redis-server not found: install Debian's redis-server (tools/setup.sh)")
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", tmp, "--maxclients", "4000"],
        stdout=open(os.path.join(tmp, "redis.log"), "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:  # bounded readiness poll: connect + PING every 5 ms, up to 10 s
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(1)
            s.connect(sock)
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                s.close()
                return proc, sock
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("redis-server did not start; see " + os.path.join(tmp, "redis.log"))
        time.sleep(0.005)


def command(client, sock, requests):
    if client == "redis-benchmark":
        # -t set,get runs `requests/2` SETs then as many GETs.
        return ["redis-benchmark", "-s", sock, "-c", str(CLIENTS), "-n", str(requests // 2),
                "-t", "set,get", "-d", "64", "-q"]
    return [runfile("benchmarks/redis_monkey_bench"), "--mode=" + client, "--socket=" + sock,
            "--clients=%d" % CLIENTS, "--requests=%d" % (requests // CLIENTS)]


def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def run(client, sock, requests):
    cpu0 = children_cpu()
    t0 = time.monotonic()
    out = subprocess.run(command(client, sock, requests), check=True, capture_output=True,
                         text=True).stdout
    wall = time.monotonic() - t0
    cpu = children_cpu() - cpu0
    if client == "redis-benchmark":
        # Its own figures per test; requests/s over both tests = requests / (sum of the times).
        rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
        rps = requests / sum((requests / 2) / r for r in rates)
    else:
        rps = float(re.search(r"rps=([\d.]+)", out).group(1))
    return rps, cpu / requests * 1e6, wall


def syscalls(client, sock, requests, tmp):
    if not shutil.which("strace"):
        return None
    out = os.path.join(tmp, "strace.txt")
    subprocess.run(["strace", "-c", "-f", "-o", out] + command(client, sock, requests),
                   check=True, capture_output=True)
    for line in open(out):
        fields = line.split()
        if fields and fields[-1] == "total":
            return int(fields[3]) / requests
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=200000)
    args = p.parse_args()
    clients = ["greenlet", "async", "redis-benchmark"]
    tmp = tempfile.mkdtemp(prefix="redis_monkey")
    proc, sock = start_redis(tmp)
    try:
        results = {c: [] for c in clients}
        for r in range(args.rounds):
            order = clients if r % 2 == 0 else list(reversed(clients))
            for c in order:
                rps, cpu_us, wall = run(c, sock, args.requests)
                results[c].append((rps, cpu_us))
                print("round %d %-15s %9.0f req/s %7.2f us CPU/req (%.2f s)" % (r + 1, c, rps,
                                                                             cpu_us, wall))
                sys.stdout.flush()
        med = {c: (statistics.median(x[0] for x in results[c]),
                   statistics.median(x[1] for x in results[c])) for c in clients}
        sysc = {c: syscalls(c, sock, args.requests // 4, tmp) for c in clients}
        print("\nmedians over %d rounds, %d requests each, %d connections:" % (
            args.rounds, args.requests, CLIENTS))
        for c in clients:
            s = "n/a (no strace)" if sysc[c] is None else "%.2f" % sysc[c]
            print("  %-15s %9.0f req/s %7.2f us CPU/req  %s syscalls/req" % (c, med[c][0],
                                                                            med[c][1], s))
        g, a = med["greenlet"], med["async"]
        print("  greenlet/async: %.3fx req/s, %.3fx CPU per request" % (g[0] / a[0], g[1] / a[1]))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
