// gevent::EchoConnection / gevent::EchoServer — the echo service behind //socket:echo_server,
// as a library so that other programs (the load generator) can run it in-process.
//
//   // On a hub you already run:
//   auto stats = std::make_shared<gevent::EchoStats>();
//   gevent::StreamServer server(address, gevent::MakeEchoHandler(stats), options);
//
//   // Or on threads of its own (each with its own hub), from any thread:
//   gevent::EchoServerOptions options;          // 127.0.0.1, any port, one thread
//   gevent::EchoServer echo(options);
//   absl::Status s = echo.Start();
//   Connect to echo.port() ...;
//   echo.Stop();
//   gevent::EchoStatsSnapshot s = echo.stats();
//
// Behaviour of one connection: every byte received is sent back, in order, through a fixed-size
// buffer (EchoOptions::buffer_size): the handler reads at most that much, sends it all (parking
// while the client does not read — back-pressure, nothing is buffered beyond that), then reads
// again. When the client half-closes (end of stream) everything read has already been echoed, so
// the handler closes the connection. A receive that times out (the socket's default timeout:
// StreamServerOptions::idle_timeout, EchoServerOptions::idle_timeout) is an idle client: the
// handler closes the connection and counts it in `idle_closed`, not as an error. A reset or any
// other error ends the handler quietly (it is counted, not reported as a failure).
//
// Thread-safety: EchoStats is atomic (one instance may be shared by servers on several threads).
// EchoServer's methods are for the thread that owns it.
#ifndef GEVENT_SOCKET_ECHO_H_
#define GEVENT_SOCKET_ECHO_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "greenlet/stack.h"
#include "socket/server.h"
#include "socket/socket.h"
#include "socket/stream.h"

namespace gevent {

// EchoStatsSnapshot: plain copy of EchoStats.
struct EchoStatsSnapshot {
  uint64_t connections = 0;   // connections handled (counted when the handler starts)
  uint64_t bytes = 0;         // bytes echoed (received and sent back)
  uint64_t errors = 0;        // connections that ended with an error (reset, send timeout...)
  uint64_t idle_closed = 0;   // connections closed because no byte arrived within the timeout
};

// EchoStats: counters shared by echo handlers (relaxed atomics). A handler adds its bytes every
// 256 KiB and when it ends, so `bytes` lags a little behind open connections.
struct EchoStats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> idle_closed{0};
  EchoStatsSnapshot Snapshot() const;
};

// kEchoSmallBuffer: a connection starts with a buffer of this size on its handler's stack and
// moves to a heap buffer of EchoOptions::buffer_size the first time a read fills it (so small
// messages touch one page per connection, large ones get large reads). Small enough that the
// frames a wake-up returns through and the buffer fit in what the hub prefetches (1 KiB).
inline constexpr size_t kEchoSmallBuffer = 256;

// EchoOptions: per-connection behaviour.
struct EchoOptions {
  // buffer_size: the most bytes read (and then sent back) at a time, which is also the most the
  // server holds per connection.
  size_t buffer_size = 16 * 1024;
};

// EchoConnection echoes `connection` until the client closes, goes idle or an error; returns OK
// at a clean end of stream or an idle close, else the error that ended it. Counts into `stats` if
// not null. Hub thread only. The Socket overload is the plain server's hot path (no virtual
// call); the Stream one runs the same loop over any stream, TLS included (gevent::SslSocket,
// where the end of stream is the client's close_notify).
absl::Status EchoConnection(Socket& connection, EchoStats* stats, const EchoOptions& options = {});
absl::Status EchoConnection(Stream& connection, EchoStats* stats, const EchoOptions& options = {});

// MakeEchoHandler: a StreamHandler running EchoConnection (stats may be null). Safe to call from
// several threads at once (as MultiThreadServer does).
StreamHandler MakeEchoHandler(std::shared_ptr<EchoStats> stats, EchoOptions options = {});

// EchoHandlerFactory: makes the per-connection handler from the shared stats and the echo options
// (called once per server thread; what it returns must be safe to call from several threads).
using EchoHandlerFactory =
    std::function<StreamHandler(std::shared_ptr<EchoStats> stats, const EchoOptions& options)>;

// EchoServerOptions: what //socket:echo_server's flags set.
struct EchoServerOptions {
  // make_handler: empty for plain TCP (MakeEchoHandler); //ssl's MakeSslEchoHandlerFactory
  // (ssl/echo.h) serves the same echo over TLS.
  EchoHandlerFactory make_handler;
  std::string host = "127.0.0.1";   // numeric address to bind ("0.0.0.0", "::", ...)
  uint16_t port = 0;                // 0: the kernel picks (read port() after Start)
  size_t threads = 1;               // threads, each with its own hub and SO_REUSEPORT listener
  size_t pool_size = 0;             // most connections served at once per thread (0: no limit)
  int backlog = 0;                  // 0: the kernel's net.core.somaxconn
  // idle_timeout: close a connection on which no byte arrives for this long (nullopt: never).
  std::optional<absl::Duration> idle_timeout;
  EchoOptions echo;
  // stack: per-connection stacks; unguarded by default so that tens of thousands of connections
  // fit under vm.max_map_count (the echo handler needs only a few KiB of stack).
  greenlet::StackOptions stack{64 * 1024, greenlet::StackKind::kUnguarded};
  // on_calling_thread: with threads == 1, serve on the hub of the thread that calls Start (a
  // StreamServer) instead of a thread of its own; that thread must then run its hub's loop for
  // anything to be served, and Start, Stop and the destructor must be called on it. What for: a
  // process with one thread. Linux takes a reference on a socket's file for every system call
  // on it (send, recv, epoll_wait) only when the process has more than one thread; with one, it
  // borrows the file without an atomic. Start fails with InvalidArgument if threads != 1.
  bool on_calling_thread = false;
};

// EchoServer: the echo service on its own threads (a MultiThreadServer), or on the calling
// thread's hub (EchoServerOptions::on_calling_thread). Start/Stop/stats are for the owning
// thread, which need not run a hub unless on_calling_thread is set.
class EchoServer {
 public:
  explicit EchoServer(EchoServerOptions options = {});
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;
  // ~EchoServer: Stop(zero grace).
  ~EchoServer();

  // Start listens on host:port and returns once every thread accepts. InvalidArgument for a
  // host that is not a numeric address; bind/listen errors as they come.
  absl::Status Start();
  // Stop: stop accepting, give open connections `grace` to finish, then close them; joins the
  // threads. Idempotent.
  void Stop(absl::Duration grace = absl::ZeroDuration());

  // port / address: where it listens (valid after a successful Start).
  uint16_t port() const;
  SocketAddress address() const;
  // stats: echo counters; server_stats: accept counters (both snapshots, any time).
  EchoStatsSnapshot stats() const { return stats_->Snapshot(); }
  ServerStats server_stats() const;

 private:
  EchoServerOptions options_;
  std::shared_ptr<EchoStats> stats_;
  std::unique_ptr<MultiThreadServer> server_;
  std::unique_ptr<StreamServer> local_;  // on_calling_thread
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_ECHO_H_
