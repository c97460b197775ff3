#!/usr/bin/env python3
"""//loadgen against the tools people already use, on the same server in one run.

  redis  loadgen --protocol=redis --ratio=1:1 vs redis-benchmark -t set,get (Debian redis-tools),
         50 connections, pipeline 1 and 16, 64-byte values, one client thread each, against one
         redis-server (Debian's, started here on a loopback port, no persistence).
  http   loadgen --protocol=http vs wrk -t1 (Debian wrk), 100 connections, against one nginx
         (Debian's, started here with a config in a temporary folder, serving a 64-byte file with
         one worker process and access logging off).

The peer tool runs twice per round; its second copy against the first is the row's noise floor.
Client CPU is getrusage(RUSAGE_CHILDREN) around each client process (user+sys, the whole
process: threads, start-up and reporting included), divided by the requests it made. Rounds
alternate the order of the two tools of a row (forward, backward, ...); medians are printed with
each tool's latency percentiles beside ours (redis-benchmark prints p50/p95/p99 per test, wrk
p50/p75/p90/p99; loadgen prints p50/p90/p99/p99.9 of all requests).

  bazel run //benchmarks:loadgen_peers -- [--rounds=3] [--seconds=5]
"""
import argparse
import json
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

REDIS_CONNECTIONS = 50
HTTP_CONNECTIONS = 100
VALUE_SIZE = 64


def runfile(path):
    base = os.environ.get("RUNFILES_DIR") or (os.path.abspath(sys.argv[0]) + ".runfiles")
    candidate = os.path.join(base, "gevent_cpp", path)
    return candidate if os.path.exists(candidate) else path


def need(binary, package):
    path = shutil.which(binary) or (binary if os.access(binary, os.X_OK) else None)
    if not path:
        sys.exit("%s not found: install Debian's %s (tools/setup.sh)" % (binary, package))
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, log, what):
    deadline = time.monotonic() + 10
    while True:  # bounded readiness poll: connect every 5 ms, up to 10 s
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("%s did not start; see %s" % (what, log))
        time.sleep(0.005)


def start_redis(tmp):
    binary = need("redis-server", "redis-server")
    port = free_port()
    log = os.path.join(tmp, "redis.log")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", tmp], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_port(port, proc, log, "redis-server")
    return proc, port


def start_nginx(tmp):
    binary = need("/usr/sbin/nginx", "nginx-light")
    port = free_port()
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    with open(os.path.join(root, "file"), "w") as f:
        f.write("x" * 63 + "\n")
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        # Started as root, nginx's worker would switch to `nobody`, who cannot read a mkdtemp
        # folder (0700): keep the worker as the user running the benchmark.
        f.write(("user root;\n" if os.getuid() == 0 else "") + """worker_processes 1;
daemon off;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(tmp)s/body;
  proxy_temp_path %(tmp)s/proxy;
  fastcgi_temp_path %(tmp)s/fastcgi;
  uwsgi_temp_path %(tmp)s/uwsgi;
  scgi_temp_path %(tmp)s/scgi;
  keepalive_requests 1000000000;
  server { listen 127.0.0.1:%(port)d; root %(root)s; }
}
""" % {"tmp": tmp, "port": port, "root": root})
    log = os.path.join(tmp, "nginx.out")
    proc = subprocess.Popen([binary, "-p", tmp, "-c", conf], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    wait_port(port, proc, log, "nginx")
    return proc, port


def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def timed(cmd):
    cpu0 = children_cpu()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return out, children_cpu() - cpu0


def run_loadgen(tmp, flags, seconds):
    out_json = os.path.join(tmp, "loadgen.json")
    _, cpu = timed([runfile("loadgen/loadgen"), "--progress=false", "--warmup=0s",
                    "--duration=%ds" % seconds, "--client_threads=1", "--json=" + out_json] +
                   flags)
    r = json.load(open(out_json))
    if r["errors"]:
        sys.exit("loadgen reported %d errors: %s" % (r["errors"], r["errors_by_kind"]))
    lat = r["latency_us"]
    return {"rps": r["messages_per_second"], "cpu_us": cpu / r["messages"] * 1e6,
            "lat": "p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f us" % (lat["p50"], lat["p90"],
                                                                lat["p99"], lat["p999"])}


def run_redis_benchmark(port, pipeline, rps_guess, seconds):
    # -t set,get: n SETs, then n GETs; n sized from the last round so each test takes ~seconds/2.
    n = max(10000, int(rps_guess * seconds / 2))
    out, cpu = timed(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c",
                      str(REDIS_CONNECTIONS), "-n", str(n), "-P", str(pipeline), "-t", "set,get",
                      "-d", str(VALUE_SIZE), "-r", "100000"])
    rates = [float(x) for x in re.findall(r"throughput summary: ([\d.]+) requests per second",
                                          out)]
    lats = re.findall(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)"
                      r"\s+([\d.]+)\s+([\d.]+)", out)
    if len(rates) != 2 or len(lats) != 2:
        sys.exit("could not read redis-benchmark's output:\n" + out)
    total = 2 * n
    rps = total / sum(n / r for r in rates)
    lat = "; ".join("%s p50 %.0f p95 %.0f p99 %.0f us" % (name, float(l[2]) * 1000,
                                                          float(l[3]) * 1000, float(l[4]) * 1000)
                    for name, l in zip(("SET", "GET"), lats))
    return {"rps": rps, "cpu_us": cpu / total * 1e6, "lat": lat}


def wrk_micros(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def run_wrk(port, seconds):
    out, cpu = timed(["wrk", "-t1", "-c%d" % HTTP_CONNECTIONS, "-d%ds" % seconds, "--latency",
                      "http://127.0.0.1:%d/file" % port])
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or not rps or "Non-2xx" in out or "Socket errors" in out:
        sys.exit("wrk failed or saw errors:\n" + out)
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    lat = " ".join("p%s %.0f" % (k, wrk_micros(pct[k])) for k in ("50", "75", "90", "99")) + " us"
    return {"rps": float(rps.group(1)), "cpu_us": cpu / int(m.group(1)) * 1e6, "lat": lat}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    args = p.parse_args()
    need("redis-benchmark", "redis-tools")
    need("wrk", "wrk")
    tmp = tempfile.mkdtemp(prefix="loadgen_peers")
    procs = []
    try:
        redis, redis_port = start_redis(tmp)
        procs.append(redis)
        nginx_tmp = os.path.join(tmp, "nginx")
        os.makedirs(nginx_tmp)
        nginx, nginx_port = start_nginx(nginx_tmp)
        procs.append(nginx)
        target_redis = "--target=127.0.0.1:%d" % redis_port
        rows = []
        for pipeline in (1, 16):
            rows.append(("redis -c %d -P %d" % (REDIS_CONNECTIONS, pipeline), "redis-benchmark",
                         lambda guess, pl=pipeline: run_loadgen(tmp, [
                             "--protocol=redis", target_redis, "--ratio=1:1",
                             "--keyspace=100000", "--value_size=%d" % VALUE_SIZE,
                             "--clients=%d" % REDIS_CONNECTIONS, "--pipeline=%d" % pl],
                             args.seconds),
                         lambda guess, pl=pipeline: run_redis_benchmark(redis_port, pl, guess,
                                                                        args.seconds)))
        rows.append(("http -c %d" % HTTP_CONNECTIONS, "wrk",
                     lambda guess: run_loadgen(tmp, [
                         "--protocol=http", "--target=127.0.0.1:%d" % nginx_port,
                         "--path=/file", "--clients=%d" % HTTP_CONNECTIONS], args.seconds),
                     lambda guess: run_wrk(nginx_port, args.seconds)))
        summary = []
        for name, peer, ours_fn, peer_fn in rows:
            # The peer runs twice per round: the second copy's ratio to the first is the noise
            # floor of that row (how far two runs of one tool differ on this machine).
            results = {"loadgen": [], peer: [], peer + " (2nd)": []}
            guess = 50000
            for r in range(args.rounds):
                order = [("loadgen", ours_fn), (peer, peer_fn), (peer + " (2nd)", peer_fn)]
                if r % 2:
                    order.reverse()
                for tool, fn in order:
                    res = fn(guess)
                    guess = res["rps"]
                    results[tool].append(res)
                    print("%-18s round %d %-15s %9.0f req/s %6.2f us CPU/req  %s" % (
                        name, r + 1, tool, res["rps"], res["cpu_us"], res["lat"]))
                    sys.stdout.flush()
            med = {t: (statistics.median(x["rps"] for x in v),
                       statistics.median(x["cpu_us"] for x in v), v[-1]["lat"])
                   for t, v in results.items()}
            summary.append((name, peer, med))
        print("\nmedians over %d rounds of %d s:" % (args.rounds, args.seconds))
        for name, peer, med in summary:
            ours, theirs, again = med["loadgen"], med[peer], med[peer + " (2nd)"]
            print("  %-18s loadgen %9.0f req/s %6.2f us CPU/req | %-15s %9.0f req/s %6.2f us "
                  "CPU/req | ratio %.3fx req/s, %.3fx CPU/req | noise floor (2nd %s / 1st) "
                  "%.3fx req/s, %.3fx CPU/req" % (
                      name, ours[0], ours[1], peer, theirs[0], theirs[1], ours[0] / theirs[0],
                      ours[1] / theirs[1], peer, again[0] / theirs[0], again[1] / theirs[1]))
            print("  %-18s   loadgen latency: %s" % ("", ours[2]))
            print("  %-18s   %s latency: %s" % ("", peer, theirs[2]))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
