// loadgen::RunLoad — one whole load-generator run, as a library call (the binary and the tests
// share it).
//
//   loadgen::Config config;            // or ParseCommandLineOrExit(argc, argv)
//   absl::StatusOr<loadgen::RunResult> r = loadgen::RunLoad(config, {.progress = stdout});
//
// Sequence: calibrate the switch and yield costs (a few ms on a thread of their own); start the
// embedded echo server (gevent::EchoServer from //socket:echo, on --server_threads threads,
// 127.0.0.1 and an ephemeral port) unless --target is given; start --client_threads client
// threads (clients spread evenly); print a progress line every second; after --warmup take the
// baseline; after --duration more take the final figures, stop the clients (killed, sockets
// closed) and the server. The run always ends on time: clients never wait on anything but their
// own sockets with timeouts, and the main thread only sleeps until the next tick.
//
// CPU time: the client figure is the sum of the client threads' CPU clocks over the measured
// window. With the embedded server, the server figure is the process's CPU time minus the client
// threads and the calling thread over the same window (the echo server's threads are not exposed
// by //socket); it is not measured for an external server.
//
// Thread-safety: call from one thread (it creates and joins its own threads); the calling thread
// must not be running a hub loop (it sleeps between ticks).
#ifndef LOADGEN_RUN_H_
#define LOADGEN_RUN_H_

#include <cstdio>

#include "absl/status/statusor.h"
#include "loadgen/config.h"
#include "loadgen/report.h"

namespace loadgen {

struct RunOptions {
  // progress: where the per-second lines go (null: nowhere). Config::progress false also
  // silences them.
  std::FILE* progress = nullptr;
  // calibrate: measure ns per switch / per yield first (tests turn it off to save time).
  bool calibrate = true;
};

// RunLoad runs `config` (which must have passed Validate) and returns its figures. Errors are
// returned only for set-up failures (the embedded server cannot start); errors during the run
// are counted in RunResult::errors.
absl::StatusOr<RunResult> RunLoad(const Config& config, const RunOptions& options = {});

// ExitCodeFor: kExitOk if the run counted no error and completed messages, else kExitRunErrors.
int ExitCodeFor(const RunResult& result);

// Main is the whole program after flag parsing: fd limit, RunLoad, report on stdout, JSON file.
// Returns the process exit code (config.h).
int Main(const Config& config);

}  // namespace loadgen

#endif  // LOADGEN_RUN_H_
