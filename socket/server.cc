#include "socket/server.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/watchers.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "hub/pool.h"
#include "hub/spawn.h"

namespace gevent {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(10);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);
// With a spare the queue is drained on every failure, so a long sleep would only keep clients
// that arrive meanwhile waiting in the backlog; a short one still keeps an exhausted server from
// spinning (each failure costs a few system calls per refused connection).
constexpr absl::Duration kMaxBackoffWithSpare = absl::Milliseconds(100);
constexpr absl::Duration kLogEvery = absl::Seconds(1);
constexpr int kFallbackBacklog = 4096;

int OpenSpare() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

int ReadSomaxconn() {
  std::FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "re");
  if (f == nullptr) return kFallbackBacklog;
  long value = 0;
  const bool ok = std::fscanf(f, "%ld", &value) == 1 && value > 0;
  std::fclose(f);
  if (!ok) return kFallbackBacklog;
  return static_cast<int>(std::min<long>(value, 65535));
}

bool IsOutOfDescriptors(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// Counts a running handler for as long as it lives (also when it is killed).
struct ActiveGuard {
  explicit ActiveGuard(ServerCounters* c) : counters(c) {
    counters->active.fetch_add(1, std::memory_order_relaxed);
  }
  ~ActiveGuard() { counters->active.fetch_sub(1, std::memory_order_relaxed); }
  ServerCounters* counters;
};

// BoundSocket makes a socket of `type` bound to `address`, with SO_REUSEADDR / SO_REUSEPORT as
// asked (not for Unix paths, where they mean nothing).
absl::StatusOr<Socket> BoundSocket(const SocketAddress& address, int type, bool reuse_address,
                                   bool reuse_port) {
  absl::StatusOr<Socket> s = Socket::Create(address.family(), type);
  if (!s.ok()) return s.status();
  if (address.family() != AF_UNIX) {
    if (reuse_address) {
      if (absl::Status r = s->SetReuseAddr(true); !r.ok()) return r;
    }
    if (reuse_port) {
      if (absl::Status r = s->SetReusePort(true); !r.ok()) return r;
    }
  }
  if (absl::Status b = s->Bind(address); !b.ok()) return b;
  return s;
}

}  // namespace

ServerStats ServerCounters::Snapshot() const {
  ServerStats s;
  s.accepted = accepted.load(std::memory_order_relaxed);
  s.active = active.load(std::memory_order_relaxed);
  s.accept_errors = accept_errors.load(std::memory_order_relaxed);
  s.fd_backoffs = fd_backoffs.load(std::memory_order_relaxed);
  s.fd_refused = fd_refused.load(std::memory_order_relaxed);
  return s;
}

int DefaultBacklog() {
  static const int backlog = ReadSomaxconn();
  return backlog;
}

// ----- StreamServer -----

StreamServer::StreamServer(SocketAddress address, StreamHandler handler,
                           StreamServerOptions options)
    : address_(std::move(address)),
      handler_(std::move(handler)),
      options_(std::move(options)),
      counters_(std::make_shared<ServerCounters>()) {
  if (!handler_) throw std::invalid_argument("gevent::StreamServer: the handler is empty");
}

StreamServer::StreamServer(Socket listener, StreamHandler handler, StreamServerOptions options)
    : handler_(std::move(handler)),
      options_(std::move(options)),
      listener_(std::move(listener)),
      own_listener_(false),
      counters_(std::make_shared<ServerCounters>()) {
  if (!handler_) throw std::invalid_argument("gevent::StreamServer: the handler is empty");
  if (absl::StatusOr<SocketAddress> a = listener_.LocalAddress(); a.ok()) address_ = *a;
}

StreamServer::~StreamServer() {
  if (started_ && !stopped_) Stop(absl::ZeroDuration());
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

absl::Status StreamServer::Start() {
  if (started_ || stopped_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gevent::StreamServer::Start ", address_.ToString(), ": the server was already ",
        stopped_ ? "stopped" : "started"));
  }
  if (own_listener_) {
    if (address_.empty()) {
      return absl::InvalidArgumentError("gevent::StreamServer::Start: no address to listen on");
    }
    absl::StatusOr<Socket> s =
        BoundSocket(address_, SOCK_STREAM, options_.reuse_address, options_.reuse_port);
    if (!s.ok()) return s.status();
    listener_ = std::move(*s);
  }
  if (options_.idle_timeout.has_value() && *options_.idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gevent::StreamServer::Start ", address_.ToString(), ": idle_timeout must be > 0, got ",
        absl::FormatDuration(*options_.idle_timeout)));
  }
  const int backlog = options_.backlog > 0 ? options_.backlog : DefaultBacklog();
  if (absl::Status l = listener_.Listen(backlog); !l.ok()) return l;
  // Opened while descriptors are plentiful; without it EMFILE only backs off.
  if (spare_fd_ < 0) spare_fd_ = OpenSpare();
  if (absl::StatusOr<SocketAddress> bound = listener_.LocalAddress(); bound.ok()) {
    address_ = *bound;
  }
  if (options_.pool_size > 0) {
    handlers_ = std::make_unique<Pool>(options_.pool_size);
  } else {
    handlers_ = std::make_unique<Group>();
  }
  stop_event_ = std::make_unique<Event>();
  started_ = true;
  acceptor_ = Spawn(SpawnOptions{{64 * 1024, greenlet::StackKind::kGuarded},
                                 "StreamServer.accept " + address_.ToString()},
                    [this] { AcceptLoop(); });
  return absl::OkStatus();
}

void StreamServer::AcceptLoop() {
  Pool* pool = options_.pool_size > 0 ? static_cast<Pool*>(handlers_.get()) : nullptr;
  absl::Duration backoff = kFirstBackoff;
  while (!stopped_) {
    // A full pool stops accepting: new connections wait in the kernel's backlog.
    if (pool != nullptr) pool->WaitAvailable();
    if (stopped_) return;
    SocketAddress peer;
    absl::StatusOr<Socket> conn = listener_.Accept(&peer, IoTimeout::Forever());
    if (conn.ok()) {
      backoff = kFirstBackoff;
      counters_->accepted.fetch_add(1, std::memory_order_relaxed);
      SpawnHandler(std::move(*conn), peer);
      continue;
    }
    if (stopped_ || !listener_.is_open()) return;
    const int err = SocketErrno(conn.status()).value_or(0);
    if (IsOutOfDescriptors(err)) {
      // Refuse what waits (when a spare is there), then wait for descriptors to come back,
      // serving what is open.
      const bool spare = (err == EMFILE || err == ENFILE) && RefuseQueued(err);
      counters_->fd_backoffs.fetch_add(1, std::memory_order_relaxed);
      Sleep(backoff);
      backoff = std::min(backoff * 2, spare ? kMaxBackoffWithSpare : kMaxBackoff);
      continue;
    }
    counters_->accept_errors.fetch_add(1, std::memory_order_relaxed);
    if (err == EBADF || err == EINVAL || err == ENOTSOCK || err == EOPNOTSUPP) {
      // The listener itself is unusable: accepting again would spin.
      throw std::runtime_error(
          absl::StrCat("gevent::StreamServer: accept loop ends: ", conn.status().ToString()));
    }
  }
}

bool StreamServer::RefuseQueued(int err) {
  if (spare_fd_ < 0) spare_fd_ = OpenSpare();  // Descriptors may have come back since.
  if (spare_fd_ < 0) return false;
  ::close(spare_fd_);
  spare_fd_ = -1;
  uint64_t refused = 0;
  // Until the queue is empty (EAGAIN), or another thread took the freed slot (EMFILE again).
  // Raw accept4: no Socket (nor epoll registration) for a connection closed at once; the
  // listener's next Accept tries the call before it parks, so its readiness needs no update.
  for (;;) {
    const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;
    }
    ::close(fd);
    ++refused;
  }
  spare_fd_ = OpenSpare();
  if (spare_fd_ < 0) {
    std::fprintf(stderr, "gevent::StreamServer %s: cannot reopen the spare descriptor: %s\n",
                 address_.ToString().c_str(), strerror(errno));
  }
  if (refused > 0) {
    counters_->fd_refused.fetch_add(refused, std::memory_order_relaxed);
    if (refused_unlogged_ == 0) window_start_ = absl::Now();
    refused_unlogged_ += refused;
    refused_errno_ = err;
  }
  LogRefused(/*flush=*/false);
  return true;
}

void StreamServer::LogRefused(bool flush) {
  if (refused_unlogged_ == 0) return;
  const absl::Time now = absl::Now();
  if (!flush && now - last_log_ < kLogEvery) return;
  // Over the time since the last line, or since the first refusal after a quiet spell.
  const absl::Time since = last_log_ > window_start_ ? last_log_ : window_start_;
  std::fprintf(stderr,
               "gevent::StreamServer %s: out of file descriptors (%s): refused %llu connections "
               "in the last %.1f s\n",
               address_.ToString().c_str(), refused_errno_ == ENFILE ? "ENFILE" : "EMFILE",
               static_cast<unsigned long long>(refused_unlogged_),
               absl::ToDoubleSeconds(now - since));
  last_log_ = now;
  refused_unlogged_ = 0;
}

void StreamServer::SpawnHandler(Socket connection, const SocketAddress& peer) {
  if (options_.no_delay && address_.family() != AF_UNIX) (void)connection.SetNoDelay(true);
  std::optional<absl::Duration> timeout = options_.connection_timeout;
  if (options_.idle_timeout.has_value() &&
      (!timeout.has_value() || *options_.idle_timeout < *timeout)) {
    timeout = options_.idle_timeout;
  }
  if (timeout.has_value()) connection.SetTimeout(timeout);
  GreenletRef g = Greenlet::Create(
      [this, conn = std::move(connection), peer]() mutable -> std::any {
        ActiveGuard active(counters_.get());
        handler_(std::move(conn), peer);
        return {};
      },
      SpawnOptions{options_.stack, {}});
  // Never blocks: the accept loop waited for a free slot before accepting.
  (void)handlers_->Add(g, /*block=*/false);
  g->Start();
}

absl::Status StreamServer::ServeForever() {
  if (!started_) {
    if (absl::Status s = Start(); !s.ok()) return s;
  }
  if (!stopped_) stop_event_->Wait();
  return absl::OkStatus();
}

void StreamServer::Stop(absl::Duration grace) {
  if (stopped_) return;
  if (!started_) {
    stopped_ = true;
    (void)listener_.Close();
    return;
  }
  if (GreenletRef self = GetCurrent(); self != nullptr && handlers_->Contains(self)) {
    throw std::logic_error(
        "gevent::StreamServer::Stop: called from one of the server's own handlers, which would "
        "wait for itself; use StopLater");
  }
  stopped_ = true;
  LogRefused(/*flush=*/true);
  (void)listener_.Close();  // Wakes the accept greenlet if it waits in Accept.
  if (acceptor_ != nullptr) acceptor_->Kill();  // ... or in the pool, or in a back-off sleep.
  if (!handlers_->Join(grace)) handlers_->KillAll();
  stop_event_->Set();
}

void StreamServer::StopLater(absl::Duration grace) {
  Spawn([this, grace] { Stop(grace); });
}

// ----- DatagramServer -----

DatagramServer::DatagramServer(SocketAddress address, DatagramHandler handler,
                               DatagramServerOptions options)
    : address_(std::move(address)), handler_(std::move(handler)), options_(options) {
  if (!handler_) throw std::invalid_argument("gevent::DatagramServer: the handler is empty");
  if (options_.max_datagram == 0) {
    throw std::invalid_argument("gevent::DatagramServer: max_datagram must be > 0");
  }
}

DatagramServer::~DatagramServer() {
  if (started_ && !stopped_) Stop();
}

absl::Status DatagramServer::Start() {
  if (started_ || stopped_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gevent::DatagramServer::Start ", address_.ToString(), ": the server was already ",
        stopped_ ? "stopped" : "started"));
  }
  absl::StatusOr<Socket> s =
      BoundSocket(address_, SOCK_DGRAM, options_.reuse_address, options_.reuse_port);
  if (!s.ok()) return s.status();
  socket_ = std::move(*s);
  if (absl::StatusOr<SocketAddress> bound = socket_.LocalAddress(); bound.ok()) address_ = *bound;
  stop_event_ = std::make_unique<Event>();
  started_ = true;
  receiver_ = Spawn([this] { ReceiveLoop(); });
  return absl::OkStatus();
}

void DatagramServer::ReceiveLoop() {
  std::unique_ptr<char[]> buffer(new char[options_.max_datagram]);
  while (!stopped_) {
    SocketAddress from;
    absl::StatusOr<size_t> n = socket_.RecvFrom(absl::MakeSpan(buffer.get(), options_.max_datagram),
                                                &from, IoTimeout::Forever());
    if (!n.ok()) {
      if (stopped_ || !socket_.is_open()) return;
      continue;  // E.g. ECONNREFUSED reported for an earlier SendTo: not fatal for a server.
    }
    ++datagrams_;
    handler_(absl::string_view(buffer.get(), *n), from, socket_);
  }
}

absl::Status DatagramServer::ServeForever() {
  if (!started_) {
    if (absl::Status s = Start(); !s.ok()) return s;
  }
  if (!stopped_) stop_event_->Wait();
  return absl::OkStatus();
}

void DatagramServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  (void)socket_.Close();
  if (!started_) return;
  if (receiver_ != nullptr && receiver_ != GetCurrent()) receiver_->Join();
  stop_event_->Set();
}

// ----- MultiThreadServer -----

struct MultiThreadServer::Worker {
  SocketAddress address;
  std::thread thread;
  // `started` is set under `mu` once the server is listening (or failed). std::mutex rather than
  // absl::Notification: ThreadSanitizer sees through libstdc++'s pthread calls, not through the
  // system Abseil's futex waits.
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  absl::Status start_status;              // Written before `started` is set.
  std::shared_ptr<ServerCounters> counters;
  SocketAddress bound;
  AsyncWatcher* stop_async = nullptr;     // Valid from `started` until the thread ends.
  std::atomic<bool> stop_requested{false};
  std::atomic<int64_t> grace_ns{0};       // Written before stop_async->Send().
};

MultiThreadServer::MultiThreadServer(SocketAddress address, StreamHandler handler, size_t threads,
                                     StreamServerOptions options)
    : address_(std::move(address)),
      handler_(std::move(handler)),
      thread_count_(threads),
      options_(std::move(options)) {
  if (!handler_) throw std::invalid_argument("gevent::MultiThreadServer: the handler is empty");
  if (threads == 0) throw std::invalid_argument("gevent::MultiThreadServer: threads must be >= 1");
  options_.reuse_port = true;
}

MultiThreadServer::~MultiThreadServer() { Stop(absl::ZeroDuration()); }

void MultiThreadServer::RunWorker(Worker* worker) {
  {
    Hub& hub = GetHub();
    Event stop;
    // Referenced: keeps this hub's loop alive (no LoopExit) until the owner asks to stop.
    AsyncWatcher async(hub.loop(), [&stop] { stop.Set(); });
    async.Start();
    StreamServer server(worker->address, handler_, options_);
    worker->start_status = server.Start();
    worker->counters = server.counters();
    worker->bound = server.address();
    worker->stop_async = &async;
    const bool ok = worker->start_status.ok();
    {
      std::lock_guard<std::mutex> lock(worker->mu);
      worker->started = true;
    }
    worker->cv.notify_all();
    // Wait for the owner's stop even after a failed start: `async` must outlive its Send.
    stop.Wait();
    { std::lock_guard<std::mutex> lock(worker->mu); }  // The owner's Send is over.
    if (ok) server.Stop(absl::Nanoseconds(worker->grace_ns.load()));
  }
  DestroyHub();
}

absl::Status MultiThreadServer::Start() {
  if (started_) {
    return absl::FailedPreconditionError("gevent::MultiThreadServer::Start: already started");
  }
  started_ = true;
  absl::Status status;
  for (size_t i = 0; i < thread_count_; ++i) {
    auto worker = std::make_unique<Worker>();
    // With port 0, the first listener's port is the one the others share.
    worker->address = i == 0 ? address_ : address_.WithPort(workers_.front()->bound.port());
    Worker* w = worker.get();
    workers_.push_back(std::move(worker));
    w->thread = std::thread([this, w] { RunWorker(w); });
    {
      std::unique_lock<std::mutex> lock(w->mu);
      w->cv.wait(lock, [w] { return w->started; });
    }
    if (!w->start_status.ok()) {
      status = w->start_status;
      break;
    }
    if (i == 0) address_ = w->bound;
  }
  if (!status.ok()) Stop(absl::ZeroDuration());
  return status;
}

void MultiThreadServer::Stop(absl::Duration grace) {
  for (auto& w : workers_) {
    if (w->thread.joinable() && !w->stop_requested.exchange(true)) {
      // Under `mu`, which the worker takes before tearing down: ThreadSanitizer cannot see the
      // ordering that ev_async_send provides (libev is not instrumented).
      std::lock_guard<std::mutex> lock(w->mu);
      w->grace_ns.store(absl::ToInt64Nanoseconds(grace));
      w->stop_async->Send();
    }
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

ServerStats MultiThreadServer::stats() const {
  ServerStats total;
  for (const auto& w : workers_) {
    if (w->counters == nullptr) continue;
    ServerStats s = w->counters->Snapshot();
    total.accepted += s.accepted;
    total.active += s.active;
    total.accept_errors += s.accept_errors;
    total.fd_backoffs += s.fd_backoffs;
    total.fd_refused += s.fd_refused;
  }
  return total;
}

}  // namespace gevent
