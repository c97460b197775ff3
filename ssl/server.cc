#include "ssl/server.h"

#include <stdexcept>
#include <utility>

#include "absl/status/status.h"
#include "ssl/error.h"

namespace gevent {
namespace {

void Count(SslServerStats* stats, std::atomic<uint64_t> SslServerStats::*counter) {
  if (stats != nullptr) (stats->*counter).fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

SslServerStatsSnapshot SslServerStats::Snapshot() const {
  SslServerStatsSnapshot s;
  s.handshakes = handshakes.load(std::memory_order_relaxed);
  s.failed_timeout = failed_timeout.load(std::memory_order_relaxed);
  s.failed_protocol = failed_protocol.load(std::memory_order_relaxed);
  s.failed_closed = failed_closed.load(std::memory_order_relaxed);
  s.failed_other = failed_other.load(std::memory_order_relaxed);
  return s;
}

StreamHandler MakeSslHandler(SslHandler handler, SslServerOptions options,
                             std::shared_ptr<SslServerStats> stats) {
  if (!handler) throw std::invalid_argument("gevent::MakeSslHandler: empty handler");
  if (options.context == nullptr || options.context->role() != SslRole::kServer) {
    throw std::invalid_argument("gevent::MakeSslHandler: needs a server SslContext");
  }
  if (options.handshake_timeout <= absl::ZeroDuration()) {
    throw std::invalid_argument("gevent::MakeSslHandler: handshake_timeout must be > 0");
  }
  return [handler = std::move(handler), options = std::move(options), stats = std::move(stats)](
             Socket connection, const SocketAddress& peer) {
    absl::StatusOr<std::unique_ptr<SslSocket>> tls =
        SslSocket::Server(std::move(connection), options.context);
    if (!tls.ok()) {
      Count(stats.get(), &SslServerStats::failed_other);
      return;
    }
    SslSocket& conn = **tls;
    absl::Status shaken = conn.Handshake(options.handshake_timeout);
    if (!shaken.ok()) {
      if (absl::IsDeadlineExceeded(shaken)) {
        Count(stats.get(), &SslServerStats::failed_timeout);
      } else if (SslErrorCode(shaken).has_value() && !IsSslUnexpectedEof(shaken)) {
        Count(stats.get(), &SslServerStats::failed_protocol);
      } else if (absl::IsUnavailable(shaken) || absl::IsFailedPrecondition(shaken)) {
        Count(stats.get(), &SslServerStats::failed_closed);
      } else {
        Count(stats.get(), &SslServerStats::failed_other);
      }
      return;  // ~SslSocket closes the connection.
    }
    Count(stats.get(), &SslServerStats::handshakes);
    handler(conn, peer);
    if (conn.socket().is_open()) (void)conn.ShutdownWrite(options.close_timeout);
  };
}

}  // namespace gevent
