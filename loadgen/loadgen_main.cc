// loadgen: greenlet clients against an echo server; throughput, latency and switch cost.
//
//   bazel run //loadgen                                   # embedded server, 1000 clients, 10 s
//   bazel run //loadgen -- --target=127.0.0.1:9000 --clients=10000
//
// Exit codes: 0 clean run, 1 the run counted errors, 2 usage error, 3 set-up failure (fd limit,
// server start, target unresolvable or dead, --json file), 130 / 143 SIGINT / SIGTERM (run.h).
#include "loadgen/config.h"
#include "loadgen/run.h"

int main(int argc, char** argv) {
  const loadgen::Config config = loadgen::ParseCommandLineOrExit(argc, argv);
  return loadgen::Main(config);
}
