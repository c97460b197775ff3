// echo_server: echoes every byte back to every client (see socket/echo.h for the behaviour).
//
//   bazel run //socket:echo_server -- --port=9000 --threads=2
//
// Runs until SIGINT or SIGTERM, then stops accepting, closes the open connections and prints one
// summary line. The signals are watched by libev signal watchers on the main thread's hub (libev
// turns the signal into a loop wake-up; no work happens in a signal handler).
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "core/watchers.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "socket/echo.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "numeric address to listen on (0.0.0.0, ::, ...)");
ABSL_FLAG(int, port, 9000, "port to listen on (0: any free port, printed at start)");
ABSL_FLAG(int, threads, 1, "server threads, each with its own hub and SO_REUSEPORT listener");
ABSL_FLAG(int, pool_size, 0, "most connections served at once per thread (0: no limit)");
ABSL_FLAG(int, backlog, 1024, "listen backlog (capped by net.core.somaxconn)");
ABSL_FLAG(int, buffer_size, 16 * 1024, "most bytes echoed at a time per connection");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Echo server on gevent_cpp's cooperative sockets.");
  absl::ParseCommandLine(argc, argv);

  const int port = absl::GetFlag(FLAGS_port);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int pool_size = absl::GetFlag(FLAGS_pool_size);
  const int buffer_size = absl::GetFlag(FLAGS_buffer_size);
  if (port < 0 || port > 65535 || threads < 1 || pool_size < 0 || buffer_size < 1) {
    std::fprintf(stderr,
                 "echo_server: bad flags: need 0 <= --port <= 65535, --threads >= 1, "
                 "--pool_size >= 0, --buffer_size >= 1\n");
    return 2;
  }

  // The main thread's hub comes first so that it owns libev's default loop (signals).
  gevent::Hub& hub = gevent::GetHub();

  // Signals are caught from before the server exists: a SIGTERM right after the "listening" line
  // must still give the summary. libev turns them into loop events on this thread.
  int received = 0;
  gevent::Event signalled;
  gevent::SignalWatcher on_int(hub.loop(), SIGINT, [&] {
    received = SIGINT;
    signalled.Set();
  });
  gevent::SignalWatcher on_term(hub.loop(), SIGTERM, [&] {
    received = SIGTERM;
    signalled.Set();
  });
  on_int.Start();
  on_term.Start();

  gevent::EchoServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = static_cast<uint16_t>(port);
  options.threads = static_cast<size_t>(threads);
  options.pool_size = static_cast<size_t>(pool_size);
  options.backlog = absl::GetFlag(FLAGS_backlog);
  options.echo.buffer_size = static_cast<size_t>(buffer_size);
  // One thread: the loop below serves the connections too, and the process stays
  // single-threaded (see EchoServerOptions::on_calling_thread).
  options.on_calling_thread = threads == 1;
  gevent::EchoServer server(options);
  if (absl::Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("echo_server: listening on %s with %d thread(s)\n",
              server.address().ToString().c_str(), threads);
  std::fflush(stdout);

  // Parks the main greenlet: the hub runs the loop (and, with one thread, the connections).
  signalled.Wait();
  on_int.Stop();
  on_term.Stop();

  server.Stop(absl::Milliseconds(100));
  const gevent::EchoStatsSnapshot echo = server.stats();
  const gevent::ServerStats accepted = server.server_stats();
  std::printf("echo_server: %s: %llu connections, %llu bytes echoed, %llu connection errors, "
              "%llu accept errors\n",
              received == SIGINT ? "SIGINT" : "SIGTERM",
              static_cast<unsigned long long>(accepted.accepted),
              static_cast<unsigned long long>(echo.bytes),
              static_cast<unsigned long long>(echo.errors),
              static_cast<unsigned long long>(accepted.accept_errors));
  std::fflush(stdout);
  return 0;
}
