#!/usr/bin/env python3
"""TLS (//ssl) against plain TCP and against OpenSSL's own tools, side by side in one run.

  echo       `loadgen --tls` vs `loadgen` (embedded echo server, 64-byte messages, 100 and 1000
             connections): msgs/s and the server's CPU per message as loadgen reports them (the
             server threads' CPU clock over the measured interval, handshakes done in the
             warm-up). Target: TLS >= 0.75x plain msgs/s.
  bulk       one TLS 1.3 connection (TLS_AES_128_GCM_SHA256) between two hub threads over
             loopback, 16 KiB writes (//ssl:ssl_bulk_bench) vs `openssl speed -evp aes-128-gcm
             -bytes 16384` (one core encrypting, no I/O): the machine's crypto limit.
             Target: >= 0.4x. The same transfer over plain TCP (--plain) is measured too: the
             I/O ceiling of one loopback connection, which TLS cannot exceed.
  handshake  full TLS 1.3 handshakes/s with an ECDSA P-256 certificate, measured by
             `openssl s_time -new` against `openssl s_server` and against our echo_server
             (--tls_cert/--tls_key) in turn. Target: ours >= 1.0x s_server. Both are set beside
             `openssl speed ecdsap256` (signs/s: the server's one signature per handshake).

Rounds alternate the order of the two sides of a row; medians are printed.

  bazel run //benchmarks:tls -- [--rounds=3] [--seconds=5]
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def runfile(path):
    base = os.environ.get("RUNFILES_DIR") or (os.path.abspath(sys.argv[0]) + ".runfiles")
    candidate = os.path.join(base, "gevent_cpp", path)
    return candidate if os.path.exists(candidate) else path


def openssl():
    path = shutil.which("openssl")
    if not path:
        sys.exit("openssl not found: install Debian's openssl (tools/setup.sh)")
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what):
    deadline = time.monotonic() + 10
    while True:  # bounded readiness poll: connect every 5 ms, up to 10 s
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("%s did not start" % what)
        time.sleep(0.005)


def echo(tmp, clients, tls, seconds):
    out_json = os.path.join(tmp, "echo.json")
    subprocess.run([runfile("loadgen/loadgen"), "--progress=false", "--clients=%d" % clients,
                    "--duration=%ds" % seconds, "--warmup=2s", "--json=" + out_json] +
                   (["--tls"] if tls else []), check=True, capture_output=True)
    r = json.load(open(out_json))
    if r["errors"]:
        sys.exit("loadgen reported %d errors: %s" % (r["errors"], r["errors_by_kind"]))
    return r["messages_per_second"], r["server_cpu_us_per_message"]


def crypto_limit(seconds):
    out = subprocess.run([openssl(), "speed", "-evp", "aes-128-gcm", "-bytes", "16384",
                          "-seconds", str(seconds)], check=True, capture_output=True,
                         text=True).stdout
    kbytes = float(re.search(r"^AES-128-GCM\s+([\d.]+)k", out, re.M).group(1))
    return kbytes * 1000 / 1e9  # GB/s


def bulk(seconds, plain=False):
    out = subprocess.run([runfile("ssl/ssl_bulk_bench"), "--seconds=%d" % seconds] +
                         (["--plain"] if plain else []),
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"gb_per_second=([\d.]+)", out).group(1))


def s_time(port, seconds):
    out = subprocess.run([openssl(), "s_time", "-connect", "127.0.0.1:%d" % port, "-new",
                          "-time", str(seconds)], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if not m:
        sys.exit("could not read s_time's output:\n" + out)
    return int(m.group(1)) / int(m.group(2))


def handshakes(tmp, which, seconds):
    port = free_port()
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    if which == "s_server":
        cmd = [openssl(), "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", cert, "-key", key,
               "-tls1_3", "-quiet", "-naccept", "100000000"]
    else:
        cmd = [runfile("socket/echo_server"), "--port=%d" % port, "--host=127.0.0.1",
               "--tls_cert=" + cert, "--tls_key=" + key]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, which)
        return s_time(port, seconds)
    finally:
        proc.terminate()
        proc.wait(10)


def ecdsa_signs(seconds):
    out = subprocess.run([openssl(), "speed", "-seconds", str(seconds), "ecdsap256"],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)", out).group(1))


def paired(rounds, a, b):
    """Runs a() and b() `rounds` times, alternating which goes first; returns both lists."""
    ra, rb = [], []
    for r in range(rounds):
        for which in ((a, ra), (b, rb)) if r % 2 == 0 else ((b, rb), (a, ra)):
            which[1].append(which[0]())
    return ra, rb


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="tls_bench")
    med = statistics.median
    try:
        subprocess.run([openssl(), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                        os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem"),
                        "-subj", "/CN=localhost", "-days", "1"], check=True, capture_output=True)
        lines = []
        for clients in (100, 1000):
            plain, tls = paired(args.rounds, lambda: echo(tmp, clients, False, args.seconds),
                                lambda: echo(tmp, clients, True, args.seconds))
            for name, runs in (("plain", plain), ("tls", tls)):
                print("echo %4d conns %-5s rounds: %s" % (clients, name, ", ".join(
                    "%.0f msg/s %.2f us srv CPU/msg" % r for r in runs)))
            pm, tm = (med(x[0] for x in plain), med(x[1] for x in plain)), \
                     (med(x[0] for x in tls), med(x[1] for x in tls))
            lines.append("echo %4d connections: TLS %.0f msg/s (%.2f us server CPU/msg) vs plain "
                         "%.0f msg/s (%.2f us): %.3fx msgs/s, %.2fx server CPU/msg" % (
                             clients, tm[0], tm[1], pm[0], pm[1], tm[0] / pm[0], tm[1] / pm[1]))
        limit, ours = paired(args.rounds, lambda: crypto_limit(args.seconds),
                             lambda: bulk(args.seconds))
        plain = [bulk(args.seconds, plain=True) for _ in range(args.rounds)]
        print("bulk rounds: openssl speed %s GB/s, ours %s GB/s, plain TCP %s GB/s" % (
            ", ".join("%.2f" % x for x in limit), ", ".join("%.2f" % x for x in ours),
            ", ".join("%.2f" % x for x in plain)))
        lines.append("bulk, one connection: %.2f GB/s vs openssl speed aes-128-gcm %.2f GB/s: "
                     "%.3fx (plain TCP, same transfer: %.2f GB/s = %.3fx of openssl speed; TLS "
                     "at %.3fx of it)" % (med(ours), med(limit), med(ours) / med(limit),
                                          med(plain), med(plain) / med(limit),
                                          med(ours) / med(plain)))
        theirs, ours = paired(args.rounds, lambda: handshakes(tmp, "s_server", args.seconds),
                              lambda: handshakes(tmp, "ours", args.seconds))
        signs = ecdsa_signs(args.seconds)
        print("handshake rounds: s_server %s/s, ours %s/s" % (
            ", ".join("%.0f" % x for x in theirs), ", ".join("%.0f" % x for x in ours)))
        lines.append("full handshakes (s_time -new, TLS 1.3, ECDSA P-256): ours %.0f/s vs "
                     "s_server %.0f/s: %.3fx; ecdsap256 signs/s %.0f (ours at %.1f%%, s_server "
                     "at %.1f%% of it)" % (med(ours), med(theirs), med(ours) / med(theirs), signs,
                                           100 * med(ours) / signs, 100 * med(theirs) / signs))
        print("\nmedians over %d rounds of %d s:" % (args.rounds, args.seconds))
        for line in lines:
            print("  " + line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
