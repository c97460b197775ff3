// echo_server: echoes every byte back to every client (see socket/echo.h for the behaviour).
//
//   bazel run //socket:echo_server -- --port=9000 --threads=2
//
// Runs until SIGINT or SIGTERM, then stops accepting, closes the open connections and prints one
// summary line. The signals are watched by libev signal watchers on the main thread's hub (libev
// turns the signal into a loop wake-up; no work happens in a signal handler).
//
// Flags follow the binaries' rule (base/flags.h): a bad one prints one line naming it, its value
// and what is allowed, and exits 2; --help exits 0.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/flags.h"
#include "core/watchers.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "socket/address.h"
#include "socket/echo.h"
#include "ssl/context.h"
#include "ssl/echo.h"
#include "ssl/server.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "numeric address to listen on (0.0.0.0, ::, ...)");
ABSL_FLAG(int, port, 9000, "port to listen on, 0..65535 (0: any free port, printed at start)");
ABSL_FLAG(int, threads, 1,
          "server threads, each with its own hub and SO_REUSEPORT listener; at most 4 per core, "
          "and as many as RLIMIT_NOFILE leaves room for");
ABSL_FLAG(int, pool_size, 0, "most connections served at once per thread (0: no limit)");
ABSL_FLAG(int, backlog, 0,
          "listen backlog, 1..65535 (capped by net.core.somaxconn); 0: net.core.somaxconn, read "
          "at start-up (4096 if /proc/sys/net/core/somaxconn cannot be read)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "close a connection on which no byte arrives (or that does not read) for this long, "
          "e.g. 60s, 500ms; 0: never");
ABSL_FLAG(int, buffer_size, 16 * 1024, "most bytes echoed at a time per connection, 1..16777216");
ABSL_FLAG(std::string, tls_cert, "",
          "serve TLS with this PEM certificate chain (leaf first); needs --tls_key");
ABSL_FLAG(std::string, tls_key, "", "the PEM private key of --tls_cert");
ABSL_FLAG(absl::Duration, tls_handshake_timeout, absl::Seconds(10),
          "with TLS: drop a client whose handshake takes longer than this (> 0)");

namespace {

constexpr const char* kProgram = "echo_server";
constexpr int kThreadsPerCore = 4;
// Descriptors each server thread holds whatever its load: its listener and its loop's epoll and
// eventfd, and one to spare. kFdMargin more for stdio, the main loop and the connections.
constexpr std::int64_t kFdsPerThread = 4;
constexpr std::int64_t kFdMargin = 64;
constexpr int kMaxBufferSize = 16 << 20;

// The most --threads allowed, and why: kThreadsPerCore per core, and what fits in the soft
// RLIMIT_NOFILE.
std::pair<std::int64_t, std::string> MaxThreads() {
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  std::int64_t max = kThreadsPerCore * static_cast<std::int64_t>(cores);
  std::string why = absl::StrCat(kThreadsPerCore, " per core, ", cores, " cores");
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    const std::int64_t soft = static_cast<std::int64_t>(limit.rlim_cur);
    const std::int64_t fit = std::max<std::int64_t>(0, (soft - kFdMargin) / kFdsPerThread);
    if (fit < max) {
      max = fit;
      why = absl::StrCat("RLIMIT_NOFILE is ", soft, ", ", kFdsPerThread, " descriptors per thread + ",
                         kFdMargin);
    }
  }
  return {max, why};
}

absl::Status ValidateFlags() {
  const int port = absl::GetFlag(FLAGS_port);
  if (absl::Status s = gevent::CheckFlagRange("--port", port, 0, 65535); !s.ok()) return s;
  const std::string host = absl::GetFlag(FLAGS_host);
  if (!gevent::SocketAddress::FromIp(host, 0).ok()) {
    return gevent::FlagError("--host", host, "must be a numeric IPv4 or IPv6 address");
  }
  const auto [max_threads, why] = MaxThreads();
  if (absl::Status s =
          gevent::CheckFlagRange("--threads", absl::GetFlag(FLAGS_threads), 1, max_threads, why);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          gevent::CheckFlagRange("--pool_size", absl::GetFlag(FLAGS_pool_size), 0, INT32_MAX);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = gevent::CheckFlagRange("--backlog", absl::GetFlag(FLAGS_backlog), 0, 65535,
                                              "0: net.core.somaxconn");
      !s.ok()) {
    return s;
  }
  if (const absl::Duration idle = absl::GetFlag(FLAGS_idle_timeout); idle < absl::ZeroDuration()) {
    return gevent::FlagError("--idle_timeout", absl::FormatDuration(idle), "must be >= 0 (0: never)");
  }
  const bool cert = !absl::GetFlag(FLAGS_tls_cert).empty();
  const bool key = !absl::GetFlag(FLAGS_tls_key).empty();
  if (cert != key) {
    return cert ? gevent::FlagError("--tls_key", "", "is needed with --tls_cert")
                : gevent::FlagError("--tls_cert", "", "is needed with --tls_key");
  }
  if (absl::GetFlag(FLAGS_tls_handshake_timeout) <= absl::ZeroDuration()) {
    return gevent::FlagError("--tls_handshake_timeout",
                             absl::FormatDuration(absl::GetFlag(FLAGS_tls_handshake_timeout)),
                             "must be > 0");
  }
  return gevent::CheckFlagRange("--buffer_size", absl::GetFlag(FLAGS_buffer_size), 1,
                                kMaxBufferSize);
}

// TlsContext: the server context of --tls_cert/--tls_key, or a FlagError naming the flag whose
// file OpenSSL rejected, with OpenSSL's reason.
absl::StatusOr<std::shared_ptr<gevent::SslContext>> TlsContext() {
  gevent::SslContextOptions o;
  o.role = gevent::SslRole::kServer;
  o.cert_chain_file = absl::GetFlag(FLAGS_tls_cert);
  o.key_file = absl::GetFlag(FLAGS_tls_key);
  absl::StatusOr<std::shared_ptr<gevent::SslContext>> ctx = gevent::SslContext::Create(o);
  if (ctx.ok()) return ctx;
  const absl::string_view why = ctx.status().message();
  const bool about_cert = absl::StrContains(why, "cert_chain_file");
  return gevent::FlagError(about_cert ? "--tls_cert" : "--tls_key",
                           about_cert ? o.cert_chain_file : o.key_file, why);
}

}  // namespace

int main(int argc, char** argv) {
  gevent::UsageSpec usage;
  usage.purpose =
      "echo server on gevent_cpp's cooperative sockets; runs until SIGINT or SIGTERM.\n"
      "  echo_server --port=9000 --threads=2";
  usage.file_part = "socket/echo_server_main";
  usage.footer = "Exit codes: 0 stopped by a signal, 1 start-up failure, 2 usage error.";
  gevent::ParseFlagsOrExit(kProgram, argc, argv, usage);
  if (absl::Status s = ValidateFlags(); !s.ok()) gevent::ExitWithFlagError(kProgram, s);

  const int port = absl::GetFlag(FLAGS_port);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int pool_size = absl::GetFlag(FLAGS_pool_size);
  const int buffer_size = absl::GetFlag(FLAGS_buffer_size);
  std::shared_ptr<gevent::SslContext> tls;
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    absl::StatusOr<std::shared_ptr<gevent::SslContext>> ctx = TlsContext();
    if (!ctx.ok()) gevent::ExitWithFlagError(kProgram, ctx.status());
    tls = *ctx;
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
  if (const absl::Duration idle = absl::GetFlag(FLAGS_idle_timeout); idle > absl::ZeroDuration()) {
    options.idle_timeout = idle;
  }
  options.echo.buffer_size = static_cast<size_t>(buffer_size);
  if (tls != nullptr) {
    gevent::SslServerOptions tls_options;
    tls_options.context = tls;
    tls_options.handshake_timeout = absl::GetFlag(FLAGS_tls_handshake_timeout);
    options.make_handler = gevent::MakeSslEchoHandlerFactory(tls_options);
    // OpenSSL's handshake needs more stack than the plain echo loop: guarded, so an overflow
    // is a crash, not silent corruption.
    options.stack = greenlet::StackOptions{256 * 1024, greenlet::StackKind::kGuarded};
  }
  // One thread: the loop below serves the connections too, and the process stays
  // single-threaded (see EchoServerOptions::on_calling_thread).
  options.on_calling_thread = threads == 1;
  gevent::EchoServer server(options);
  if (absl::Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("echo_server: listening on %s with %d thread(s)%s\n",
              server.address().ToString().c_str(), threads, tls != nullptr ? ", TLS" : "");
  std::fflush(stdout);

  // Parks the main greenlet: the hub runs the loop (and, with one thread, the connections).
  signalled.Wait();
  on_int.Stop();
  on_term.Stop();

  server.Stop(absl::Milliseconds(100));
  const gevent::EchoStatsSnapshot echo = server.stats();
  const gevent::ServerStats accepted = server.server_stats();
  // Descriptor exhaustion and idle closes are not errors, but an operator needs to see them.
  std::printf("echo_server: %s: %llu connections, %llu bytes echoed, %llu connection errors, "
              "%llu accept errors, %llu fd back-offs, %llu refused for lack of fds, "
              "%llu idle closes\n",
              received == SIGINT ? "SIGINT" : "SIGTERM",
              static_cast<unsigned long long>(accepted.accepted),
              static_cast<unsigned long long>(echo.bytes),
              static_cast<unsigned long long>(echo.errors),
              static_cast<unsigned long long>(accepted.accept_errors),
              static_cast<unsigned long long>(accepted.fd_backoffs),
              static_cast<unsigned long long>(accepted.fd_refused),
              static_cast<unsigned long long>(echo.idle_closed));
  std::fflush(stdout);
  return 0;
}
