#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds and tests with, when they are missing.
#
# Quiet and does nothing when everything is installed, so tools/test.sh and .ci/run call it every
# time. Installing needs root: run `sudo tools/setup.sh` once on a fresh machine.
set -euo pipefail

# What each package is for (see third_party/ for how Bazel uses them).
packages=(
  bazel-bootstrap       # Bazel 4.2.3, the only Bazel Debian offers (/usr/bin/bazel)
  bazel-rules-java      # rules_java: Bazel registers the JDK toolchains even for C++ builds
  g++                   # the C++ toolchain Bazel autodetects
  pkg-config            # used when adding system libraries to third_party/
  libev-dev             # core: the event loop
  libabsl-dev           # Abseil (Status, strings, containers, synchronization)
  libboost-context-dev  # greenlet: fcontext stack switching
  libgtest-dev          # tests
  libgmock-dev          # tests (matchers)
  libbenchmark-dev      # benchmarks (//greenlet:greenlet_benchmark, //core:core_benchmark)
  python3               # tools/test.sh counts test cases; examples_test serves HTTP with http.server
  libhiredis-dev        # monkey integration tests, benchmarks/redis_monkey: the Redis client (hiredis)
  redis-server          # monkey integration tests, examples_test, benchmarks: the Redis server they start
  redis-tools           # benchmarks/redis_monkey: redis-benchmark, the reference client
  libpq-dev             # monkey integration tests, examples: the PostgreSQL client (libpq)
  postgresql            # monkey integration tests, examples_test: initdb/postgres for a throwaway cluster
  libcurl4-openssl-dev  # monkey integration tests: the HTTP client (libcurl's easy interface)
  strace                # benchmarks/redis_monkey: syscalls per request (strace -c -f)
  nginx-light           # loadgen integration tests: the HTTP server they start (foreground, own config)
  wrk                   # loadgen vs wrk benchmark: the reference HTTP load generator
  libssl-dev            # //ssl: OpenSSL 3 (libssl, libcrypto), the TLS library under gevent::SslSocket
  openssl               # //ssl tests: the openssl CLI (s_server, s_client) as a TLS peer no one here wrote
  curl                  # //ssl tests: the curl CLI as an HTTPS client of our TLS server (--cacert)
)

say() { echo "setup: $*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

if ! command -v dpkg > /dev/null || ! command -v apt-get > /dev/null; then
  die "this script needs dpkg and apt-get (it targets Debian 12); install by hand: ${packages[*]}"
fi

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg -s "$pkg" 2> /dev/null | grep -qx 'Status: install ok installed'; then
    missing+=("$pkg")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

say "missing packages needed to build and test: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  die "installing them needs root. Run: sudo $0  (or: sudo apt-get install ${missing[*]})"
fi

export DEBIAN_FRONTEND=noninteractive
say "running apt-get update (to know the current package versions)"
apt-get update -q >&2 ||
  die "apt-get update failed (no network or a broken /etc/apt/sources.list?); see the output above"
say "running apt-get install -y ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
  die "apt-get install failed for: ${missing[*]}; see the output above"

still_missing=()
for pkg in "${missing[@]}"; do
  dpkg -s "$pkg" 2> /dev/null | grep -qx 'Status: install ok installed' || still_missing+=("$pkg")
done
[[ ${#still_missing[@]} -eq 0 ]] || die "still not installed after apt-get: ${still_missing[*]}"
say "installed: ${missing[*]}"
