#include "socket/echo.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"

namespace gevent {
namespace {

// Bytes are published to the shared counter in chunks: one atomic add per message would make
// the threads of a multi-threaded server fight over its cache line.
constexpr uint64_t kPublishBytesEvery = 256 * 1024;

struct ByteCounter {
  EchoStats* stats;
  uint64_t pending = 0;
  void Add(uint64_t n) {
    pending += n;
    if (pending >= kPublishBytesEvery) Flush();
  }
  void Flush() {
    if (stats != nullptr && pending != 0) {
      stats->bytes.fetch_add(pending, std::memory_order_relaxed);
    }
    pending = 0;
  }
  ~ByteCounter() { Flush(); }  // Also when the handler is killed.
};

}  // namespace

EchoStatsSnapshot EchoStats::Snapshot() const {
  EchoStatsSnapshot s;
  s.connections = connections.load(std::memory_order_relaxed);
  s.bytes = bytes.load(std::memory_order_relaxed);
  s.errors = errors.load(std::memory_order_relaxed);
  s.idle_closed = idle_closed.load(std::memory_order_relaxed);
  return s;
}

namespace {

// The loop, once for each connection type: the Socket instance makes direct (non-virtual) calls.
template <typename Connection>
absl::Status EchoLoop(Connection& connection, EchoStats* stats, const EchoOptions& options) {
  if (options.buffer_size == 0) {
    return absl::InvalidArgumentError("gevent::EchoConnection: buffer_size must be > 0");
  }
  if (stats != nullptr) stats->connections.fetch_add(1, std::memory_order_relaxed);
  // The whole of what the server holds for this client: read no more until it is sent back.
  // It starts as a small buffer on the greenlet's stack, where the bytes received land next to
  // the frames that every wake-up touches anyway: with thousands of connections, each page a
  // message touches is a TLB and cache miss. A client whose message fills it gets a heap buffer
  // of the full size from then on.
  char small[kEchoSmallBuffer];
  std::unique_ptr<char[]> large;
  char* buffer = small;
  size_t size = std::min(options.buffer_size, sizeof small);
  ByteCounter counted{stats};
  for (;;) {
    absl::StatusOr<size_t> n = connection.RecvInto(absl::MakeSpan(buffer, size));
    if (!n.ok()) {
      // Nothing arrived within the timeout: an idle client, closed like an end of stream.
      if (absl::IsDeadlineExceeded(n.status())) {
        if (stats != nullptr) stats->idle_closed.fetch_add(1, std::memory_order_relaxed);
        return absl::OkStatus();
      }
      if (stats != nullptr) stats->errors.fetch_add(1, std::memory_order_relaxed);
      return n.status();
    }
    // End of stream (a close or a half-close): everything read was already echoed.
    if (*n == 0) return absl::OkStatus();
    absl::Status sent = connection.SendAll(absl::string_view(buffer, *n));
    if (!sent.ok()) {
      if (stats != nullptr) stats->errors.fetch_add(1, std::memory_order_relaxed);
      return sent;
    }
    counted.Add(*n);
    if (ABSL_PREDICT_FALSE(*n == size && size < options.buffer_size)) {
      large.reset(new char[options.buffer_size]);
      buffer = large.get();
      size = options.buffer_size;
    }
  }
}

}  // namespace

absl::Status EchoConnection(Socket& connection, EchoStats* stats, const EchoOptions& options) {
  return EchoLoop(connection, stats, options);
}

absl::Status EchoConnection(Stream& connection, EchoStats* stats, const EchoOptions& options) {
  return EchoLoop(connection, stats, options);
}

StreamHandler MakeEchoHandler(std::shared_ptr<EchoStats> stats, EchoOptions options) {
  return [stats = std::move(stats), options](Socket connection, const SocketAddress&) {
    (void)EchoConnection(connection, stats.get(), options);
  };
}

EchoServer::EchoServer(EchoServerOptions options)
    : options_(std::move(options)), stats_(std::make_shared<EchoStats>()) {}

EchoServer::~EchoServer() { Stop(absl::ZeroDuration()); }

absl::Status EchoServer::Start() {
  if (server_ != nullptr || local_ != nullptr) {
    return absl::FailedPreconditionError("gevent::EchoServer::Start: already started");
  }
  absl::StatusOr<SocketAddress> address = SocketAddress::FromIp(options_.host, options_.port);
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gevent::EchoServer::Start: ", address.status().message()));
  }
  if (options_.threads == 0) {
    return absl::InvalidArgumentError("gevent::EchoServer::Start: threads must be >= 1");
  }
  if (options_.on_calling_thread && options_.threads != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gevent::EchoServer::Start: on_calling_thread needs threads == 1, got ", options_.threads));
  }
  StreamServerOptions server_options;
  server_options.backlog = options_.backlog;
  server_options.pool_size = options_.pool_size;
  server_options.stack = options_.stack;
  server_options.no_delay = true;
  server_options.idle_timeout = options_.idle_timeout;
  StreamHandler handler = options_.make_handler ? options_.make_handler(stats_, options_.echo)
                                                : MakeEchoHandler(stats_, options_.echo);
  if (options_.on_calling_thread) {
    local_ = std::make_unique<StreamServer>(*address, std::move(handler), server_options);
    return local_->Start();
  }
  server_ = std::make_unique<MultiThreadServer>(*address, std::move(handler), options_.threads,
                                                server_options);
  return server_->Start();
}

void EchoServer::Stop(absl::Duration grace) {
  if (server_ != nullptr) server_->Stop(grace);
  if (local_ != nullptr) local_->Stop(grace);
}

uint16_t EchoServer::port() const { return address().port(); }

SocketAddress EchoServer::address() const {
  if (server_ != nullptr) return server_->address();
  if (local_ != nullptr) return local_->address();
  return SocketAddress();
}

ServerStats EchoServer::server_stats() const {
  if (server_ != nullptr) return server_->stats();
  if (local_ != nullptr) return local_->stats();
  return ServerStats();
}

}  // namespace gevent
