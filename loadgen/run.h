// loadgen::RunLoad — one whole load-generator run, as a library call (the binary and the tests
// share it).
//
//   loadgen::Config config;            // or ParseCommandLineOrExit(argc, argv)
//   absl::StatusOr<loadgen::RunResult> r = loadgen::RunLoad(config, {.progress = stdout});
//
// Sequence: resolve --target once (getaddrinfo; a failure is returned as NotFound
// "--target=nohost:1: Name or service not known", exit 3); calibrate the switch and yield costs
// (a few ms on a thread of their own); start the
// embedded echo server (gevent::EchoServer from //socket:echo, on --server_threads threads,
// 127.0.0.1 and an ephemeral port) unless --target is given; start --client_threads client
// threads (clients spread evenly); print a progress line every second; after --warmup take the
// baseline; after --duration more take the final figures, stop the clients and the server. The
// run always ends on time: clients never wait on anything but their own sockets with timeouts,
// and the main thread only sleeps until the next tick.
//
// End-of-run drain: a conversing client stops sending, half-closes (SHUT_WR) and reads to the
// server's end of stream before closing, so the server sees clean closes, not resets for echoes
// left unread; clients not conversing are killed. Bounded: kDrainBound (1 s, client.h), after
// which whatever still runs is killed; the embedded server then gets 1 s to end its handlers.
//
// Dead target: if no client has made a single connection --connect_timeout after the start,
// the clients are stopped and RunLoad returns Unavailable "no connection to 127.0.0.1:19999
// within 5s: Connection refused" (the last connect error's text), exit 3, as wrk2 does.
//
// Signals (RunOptions::handle_signals, which Main sets): SIGINT and SIGTERM are blocked in the
// calling thread before any thread is created (so every thread inherits the mask) and their
// handlers installed explicitly (a run from a script may inherit SIGINT ignored). The main
// thread's sleep between ticks is a sigtimedwait: the first signal ends the measured window at
// once, the clients are stopped as at the end (drain included), and the result is marked
// interrupted with the real measured duration (zero messages and seconds if the signal came
// during the warm-up). Main prints the report and writes --json as usual, then exits 128 + the
// signal (130 SIGINT, 143 SIGTERM). After the first signal (or once the measured window is
// over) the signals are unblocked in the main thread and a signal there runs a handler that
// calls _exit(128 + signal) at once.
//
// Exit codes (Main, config.h): 0 clean run; 1 the run counted errors or completed no message;
// 2 usage error; 3 set-up failure: fd limit, embedded server, --target does not resolve, dead
// target, --json not writable (checked by creating the file before the run: "--json=PATH:
// No such file or directory"; the file is left empty if the run then fails to start);
// 130 / 143 interrupted. A --rate that is missed does not change the exit code (as with wrk2);
// the report's "rate" line says "rate missed" below 95% of the rate asked.
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
  // handle_signals: SIGINT / SIGTERM end the run early (see the file comment). Changes the
  // process's signal mask and handlers; for the binary (Main), not for in-process tests.
  bool handle_signals = false;
};

// RunLoad runs `config` (which must have passed Validate) and returns its figures. Errors are
// returned only for set-up failures (the target does not resolve, the embedded server cannot
// start, the dead-target rule); errors during the run are counted in RunResult::errors.
absl::StatusOr<RunResult> RunLoad(const Config& config, const RunOptions& options = {});

// ExitCodeFor: kExitOk if the run counted no error and completed messages, else kExitRunErrors.
int ExitCodeFor(const RunResult& result);

// Main is the whole program after flag parsing: fd limit, RunLoad, report on stdout, JSON file.
// Returns the process exit code (above).
int Main(const Config& config);

}  // namespace loadgen

#endif  // LOADGEN_RUN_H_
