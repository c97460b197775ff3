// loadgen: greenlet clients against an echo server; throughput, latency and switch cost.
//
//   bazel run //loadgen                                   # embedded server, 1000 clients, 10 s
//   bazel run //loadgen -- --target=127.0.0.1:9000 --clients=10000
//   loadgen merge a.json b.json [--json=all.json]         # runs merged across machines (merge.h)
//
// Exit codes: 0 clean run, 1 the run counted errors, 2 usage error, 3 set-up failure (fd limit,
// server start, target unresolvable or dead, --json file), 130 / 143 SIGINT / SIGTERM (run.h).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "loadgen/config.h"
#include "loadgen/merge.h"
#include "loadgen/run.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "merge") == 0) {
    return loadgen::MergeMain(std::vector<std::string>(argv + 1, argv + argc), stdout, stderr);
  }
  const loadgen::Config config = loadgen::ParseCommandLineOrExit(argc, argv);
  return loadgen::Main(config);
}
