// gevent::MakeSslHandler — TLS for StreamServer and MultiThreadServer (gevent's
// StreamServer(..., ssl_context=...)).
//
//   gevent::SslServerOptions tls;
//   tls.context = *gevent::SslContext::Create(server_options);   // role kServer
//   auto stats = std::make_shared<gevent::SslServerStats>();
//   gevent::StreamServer server(address,
//       gevent::MakeSslHandler([](gevent::SslSocket& conn, const gevent::SocketAddress& peer) {
//         ... conn.RecvInto / conn.SendAll ...
//       }, tls, stats));
//
// The returned StreamHandler runs in the connection's own greenlet (the server's pool slot): it
// wraps the accepted socket in a server SslSocket and runs the handshake under
// `handshake_timeout` (10 s by default) — so a client that connects and says nothing, or stops
// in the middle of its handshake, is dropped when it expires and frees its slot — then calls the
// handler with the session, which keeps the socket's default timeout (the server's
// idle_timeout / connection_timeout) for its own calls. When the handler returns the connection
// is closed (with close_notify if the handler did not end it itself and the session is intact;
// that send is bounded by `close_timeout`).
//
// A failed handshake is counted by reason (SslServerStats) and the connection closed; it is not
// reported anywhere else (a bad client is the world's doing, not the server's: base/errors.h).
//
// Thread-safety: the handler (and the stats object) may be shared by the threads of a
// MultiThreadServer; the context is immutable after Create.
#ifndef GEVENT_SSL_SERVER_H_
#define GEVENT_SSL_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/time/time.h"
#include "socket/address.h"
#include "socket/server.h"
#include "ssl/context.h"
#include "ssl/ssl_socket.h"

namespace gevent {

// SslHandler: runs after a successful handshake, in the connection's greenlet.
using SslHandler = std::function<void(SslSocket& connection, const SocketAddress& peer)>;

struct SslServerOptions {
  // context: a server context (SslRole::kServer). Required.
  std::shared_ptr<SslContext> context;
  // handshake_timeout: the whole handshake, from the accept; must be > 0.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // close_timeout: how long the close_notify at the end may wait for room.
  absl::Duration close_timeout = absl::Seconds(1);
};

// SslServerStatsSnapshot: a plain copy of SslServerStats.
struct SslServerStatsSnapshot {
  uint64_t handshakes = 0;          // handshakes completed
  uint64_t failed_timeout = 0;      // handshakes that did not end within handshake_timeout
  uint64_t failed_protocol = 0;     // not TLS, a bad or unsupported ClientHello, an alert...
  uint64_t failed_closed = 0;       // the client reset or closed during the handshake
  uint64_t failed_other = 0;        // anything else (out of memory, ...)
  uint64_t failed() const { return failed_timeout + failed_protocol + failed_closed + failed_other; }
};

// SslServerStats: live counters (relaxed atomics, one update per connection): any thread.
struct SslServerStats {
  std::atomic<uint64_t> handshakes{0};
  std::atomic<uint64_t> failed_timeout{0};
  std::atomic<uint64_t> failed_protocol{0};
  std::atomic<uint64_t> failed_closed{0};
  std::atomic<uint64_t> failed_other{0};
  SslServerStatsSnapshot Snapshot() const;
};

// MakeSslHandler: see the file comment. Throws std::invalid_argument (misuse) for an empty
// handler, a missing or client context, or a handshake_timeout <= 0. `stats` may be null.
StreamHandler MakeSslHandler(SslHandler handler, SslServerOptions options,
                             std::shared_ptr<SslServerStats> stats = nullptr);

}  // namespace gevent

#endif  // GEVENT_SSL_SERVER_H_
