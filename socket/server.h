// gevent::StreamServer, gevent::DatagramServer and gevent::MultiThreadServer — servers on
// cooperative sockets (gevent.server).
//
//   gevent::StreamServerOptions options;
//   options.pool_size = 1000;
//   gevent::StreamServer server(*gevent::SocketAddress::Parse("127.0.0.1:0"),
//       [](gevent::Socket conn, const gevent::SocketAddress& peer) { ... },   // own greenlet
//       options);
//   absl::Status s = server.Start();          // bound, listening, accepting in a greenlet
//   uint16_t port = server.port();            // the kernel's choice for port 0
//   ...
//   server.Stop(absl::Seconds(1));            // stop accepting, let handlers finish, kill the rest
//
// StreamServer. An accept greenlet takes connections and spawns one greenlet per connection
// running the handler with the accepted socket (the handler owns it; it is closed when the
// handler returns, unless moved elsewhere). With a pool size, at most that many handlers run at
// once: when the pool is full the server stops accepting (the kernel's backlog holds new
// connections) until a handler finishes. Handlers that throw are reported by the spawn error
// handler (hub/spawn.h); the server keeps running.
//
// Out of descriptors ("accept()ing when you can't", libev's and libuv's answer). Each accept
// loop keeps one spare descriptor (/dev/null). When accept fails with EMFILE/ENFILE it closes
// the spare, then accepts and at once closes every connection waiting in the kernel's queue (the
// client sees a prompt end of stream or reset, not a connect that hangs until its own timeout),
// reopens the spare and sleeps 10 ms, doubling up to 100 ms while accept keeps failing; open
// connections keep being served, and a connection that arrives once descriptors are back is
// served. Refused connections are counted (ServerStats::fd_refused) and logged to stderr at most
// once a second per server, with the count since the last line. Without a spare (it could not be
// reopened) the loop only backs off, 10 ms doubling up to 1 s (gevent's behaviour), and waiting
// clients stay queued. ENOBUFS/ENOMEM back off the same way (no queue to drain: memory, not
// descriptors, is short).
//
// Backlog. 0 (the default) means the kernel's net.core.somaxconn, read from /proc at Start (as
// Go does): the kernel caps any larger value there anyway, and a short queue drops SYNs under a
// burst (each client then waits a retransmit, 1 s and more).
//
// Idle timeout (StreamServerOptions::idle_timeout, nginx's keepalive/client_body timeouts): it
// becomes the default timeout of each accepted socket (the shorter of it and connection_timeout
// when both are set), so a handler's receive on a connection where no byte arrives for that long
// returns DeadlineExceeded — as does a send the client does not read for that long. A handler
// closes the connection then (returning does: the handler owns the socket); EchoConnection counts
// it as idle-closed, not as an error. The server itself never closes a connection under a handler.
//
// DatagramServer. One greenlet receives datagrams on a UDP (or Unix datagram) socket and calls
// the handler inline for each: the handler gets the data, the sender and the socket (to reply
// with SendTo). A handler that blocks delays the next datagram; spawn from it if that matters.
//
// MultiThreadServer. `threads` OS threads, each with its own hub and its own StreamServer on an
// SO_REUSEPORT listener bound to the same address (the kernel spreads connections among them).
// Its methods are called from the thread that owns it (any thread, not necessarily a hub
// thread); the handler runs on the server threads, so it must be safe to call from several
// threads at once (each call gets its own socket).
//
// Lifetime and thread-safety: StreamServer and DatagramServer are hub thread only and must be
// stopped (Stop, or the destructor, which stops with a zero grace period) on that thread before
// the hub goes. Stop must not be called from one of the server's own handler greenlets (it would
// wait for itself): that throws std::logic_error; use StopLater() there.
#ifndef GEVENT_SOCKET_SERVER_H_
#define GEVENT_SOCKET_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "greenlet/stack.h"
#include "socket/socket.h"

namespace gevent {

class Greenlet;
class Group;
class Event;
class Hub;

// StreamHandler: runs in its own greenlet for each accepted connection; owns `connection`.
using StreamHandler = std::function<void(Socket connection, const SocketAddress& peer)>;

// DatagramHandler: runs in the server's receive greenlet for each datagram.
using DatagramHandler =
    std::function<void(absl::string_view data, const SocketAddress& from, Socket& socket)>;

struct StreamServerOptions {
  // backlog: listen(2) backlog; 0: the kernel's net.core.somaxconn (DefaultBacklog()), which
  // also caps larger values.
  int backlog = 0;
  // pool_size: most handlers running at once; 0 = no limit.
  size_t pool_size = 0;
  // stack: each handler greenlet's stack. Guarded by default; kUnguarded scales to many more
  // connections per process (see docs/architecture.md, "Machine limits").
  greenlet::StackOptions stack{64 * 1024, greenlet::StackKind::kGuarded};
  // reuse_address / reuse_port: SO_REUSEADDR / SO_REUSEPORT on the listener.
  bool reuse_address = true;
  bool reuse_port = false;
  // no_delay: TCP_NODELAY on accepted TCP connections.
  bool no_delay = true;
  // connection_timeout: default timeout of accepted sockets (nullopt: none).
  std::optional<absl::Duration> connection_timeout;
  // idle_timeout: how long a connection may wait for its peer (see the file comment); nullopt:
  // forever. Must be > 0.
  std::optional<absl::Duration> idle_timeout;
};

// DefaultBacklog: net.core.somaxconn from /proc/sys/net/core/somaxconn, read once per process;
// 4096 (the kernel's default since 5.4) if it cannot be read.
int DefaultBacklog();

// ServerStats: a snapshot of a server's counters.
struct ServerStats {
  uint64_t accepted = 0;         // connections accepted
  uint64_t active = 0;           // handlers running now
  uint64_t accept_errors = 0;    // accept failures other than EAGAIN
  uint64_t fd_backoffs = 0;      // EMFILE/ENFILE back-off sleeps
  uint64_t fd_refused = 0;       // connections accepted and closed at once for lack of descriptors
};

// ServerCounters: the live counters behind ServerStats. Updated on the server's thread with
// relaxed atomics (once per connection, not per byte), so any thread may read them.
struct ServerCounters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> fd_backoffs{0};
  std::atomic<uint64_t> fd_refused{0};
  ServerStats Snapshot() const;
};

class StreamServer {
 public:
  // StreamServer binds nothing yet (Start does). `handler` must not be empty.
  StreamServer(SocketAddress address, StreamHandler handler, StreamServerOptions options = {});
  // StreamServer over a listener the caller made (bound; listening or not — Start listens if
  // needed). The address is read from it.
  StreamServer(Socket listener, StreamHandler handler, StreamServerOptions options = {});
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;
  // ~StreamServer: Stop(zero grace) if running.
  ~StreamServer();

  // Start binds and listens (unless given a listener) and spawns the accept greenlet. Returns
  // the bind/listen error, or FailedPrecondition if already started or stopped.
  absl::Status Start();
  // ServeForever: Start (if not started), then parks until the server is stopped (Stop from
  // another greenlet, or StopLater from anywhere, handlers included). Returns Start's error.
  absl::Status ServeForever();
  // Stop closes the listener at once (no new connections), waits up to `grace` for running
  // handlers to finish, then kills the rest with GreenletExit and waits for them to unwind.
  // Idempotent. It parks, so call it from a greenlet (the hub greenlet gets BlockingInHubError);
  // from one of this server's own handlers it throws std::logic_error.
  void Stop(absl::Duration grace = absl::Seconds(1));
  // StopLater spawns a greenlet that calls Stop(grace) (usable from a handler or a loop
  // callback). The server must stay alive until that greenlet has run.
  void StopLater(absl::Duration grace = absl::Seconds(1));

  // address: the bound address once started (port 0 replaced by the kernel's); before Start, the
  // requested one. port: address().port().
  const SocketAddress& address() const { return address_; }
  uint16_t port() const { return address_.port(); }
  bool started() const { return started_; }
  bool stopped() const { return stopped_; }
  // stats: a snapshot of the counters. counters: the live counters (shared, outlive the server).
  ServerStats stats() const { return counters_->Snapshot(); }
  const std::shared_ptr<ServerCounters>& counters() const { return counters_; }

 private:
  void AcceptLoop();
  void SpawnHandler(Socket connection, const SocketAddress& peer);
  // RefuseQueued: the spare-descriptor round after EMFILE/ENFILE (see the file comment); returns
  // whether a spare was there to use.
  bool RefuseQueued(int err);
  void LogRefused(bool flush);

  SocketAddress address_;
  StreamHandler handler_;
  StreamServerOptions options_;
  Socket listener_;
  bool own_listener_ = true;
  bool started_ = false;
  bool stopped_ = false;
  std::shared_ptr<ServerCounters> counters_;
  std::shared_ptr<Greenlet> acceptor_;
  std::unique_ptr<Group> handlers_;  // a Pool when options_.pool_size > 0
  std::unique_ptr<Event> stop_event_;
  int spare_fd_ = -1;               // The reserve descriptor; -1 when it could not be opened.
  uint64_t refused_unlogged_ = 0;   // Refusals since the last log line.
  int refused_errno_ = 0;           // The errno of the last of them.
  absl::Time last_log_ = absl::InfinitePast();
  absl::Time window_start_;         // The first refusal since the last line.
};

struct DatagramServerOptions {
  // max_datagram: receive buffer size (longer datagrams are truncated).
  size_t max_datagram = 65536;
  bool reuse_address = true;
  bool reuse_port = false;
};

class DatagramServer {
 public:
  DatagramServer(SocketAddress address, DatagramHandler handler,
                 DatagramServerOptions options = {});
  DatagramServer(const DatagramServer&) = delete;
  DatagramServer& operator=(const DatagramServer&) = delete;
  ~DatagramServer();

  // Start binds (SOCK_DGRAM) and spawns the receive greenlet.
  absl::Status Start();
  // ServeForever: Start, then park until Stop.
  absl::Status ServeForever();
  // Stop closes the socket (the receive greenlet ends; a handler running now finishes first).
  void Stop();

  const SocketAddress& address() const { return address_; }
  uint16_t port() const { return address_.port(); }
  uint64_t datagrams() const { return datagrams_; }

 private:
  void ReceiveLoop();

  SocketAddress address_;
  DatagramHandler handler_;
  DatagramServerOptions options_;
  Socket socket_;
  bool started_ = false;
  bool stopped_ = false;
  uint64_t datagrams_ = 0;
  std::shared_ptr<Greenlet> receiver_;
  std::unique_ptr<Event> stop_event_;
};

// MultiThreadServer: see the file comment. options.reuse_port is forced on.
class MultiThreadServer {
 public:
  MultiThreadServer(SocketAddress address, StreamHandler handler, size_t threads,
                    StreamServerOptions options = {});
  MultiThreadServer(const MultiThreadServer&) = delete;
  MultiThreadServer& operator=(const MultiThreadServer&) = delete;
  // ~MultiThreadServer: Stop(zero grace) if running.
  ~MultiThreadServer();

  // Start launches the threads and returns once every one is listening (or the first error;
  // then the threads already started are stopped). With port 0 the first listener's port is
  // used for the others.
  absl::Status Start();
  // Stop stops every thread's server with `grace` (see StreamServer::Stop) and joins the threads.
  void Stop(absl::Duration grace = absl::Seconds(1));

  const SocketAddress& address() const { return address_; }
  uint16_t port() const { return address_.port(); }
  size_t threads() const { return thread_count_; }
  // stats: the sum over threads (a snapshot; any time after Start).
  ServerStats stats() const;

 private:
  struct Worker;
  void RunWorker(Worker* worker);

  SocketAddress address_;
  StreamHandler handler_;
  size_t thread_count_;
  StreamServerOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_SERVER_H_
