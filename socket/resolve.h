// gevent::Resolve and gevent::CreateConnection — names to addresses, and a connected client socket
// (gevent.socket.getaddrinfo, gevent.socket.create_connection).
//
//   absl::StatusOr<gevent::Socket> s = gevent::CreateConnection("localhost", 8080, absl::Seconds(5));
//
// Hub thread only. Errors follow base/errors.h: NotFound for a name that does not resolve,
// DeadlineExceeded when the timeout expires, the connect errors of Socket::Connect.
#ifndef GEVENT_SOCKET_RESOLVE_H_
#define GEVENT_SOCKET_RESOLVE_H_

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "socket/address.h"
#include "socket/socket.h"

namespace gevent {

class ThreadPool;

// Resolve looks `host` up with getaddrinfo on a worker thread (the calling greenlet parks; the
// hub keeps running) and returns its addresses with `port`, in getaddrinfo's order. A numeric
// host is parsed without a thread. `family`: AF_UNSPEC (both), AF_INET or AF_INET6. `pool`: the
// thread pool to use (its hub must be this thread's); null makes a one-thread pool for the call.
// Errors: NotFound "gevent::Resolve <host>: <gai text>" and friends; DeadlineExceeded. Note: a
// lookup that times out still occupies its worker until getaddrinfo returns (with a null pool,
// the call returns only then).
absl::StatusOr<std::vector<SocketAddress>> Resolve(
    absl::string_view host, uint16_t port, int family = AF_UNSPEC,
    std::optional<absl::Duration> timeout = std::nullopt, ThreadPool* pool = nullptr);

// CreateConnectionOptions: what CreateConnection does besides connecting.
struct CreateConnectionOptions {
  bool no_delay = true;                       // TCP_NODELAY on the connected socket
  std::optional<SocketAddress> source;        // bind to this first (gevent's source_address)
  ThreadPool* resolver_pool = nullptr;        // see Resolve
};

// CreateConnection resolves `host` and connects to each address in turn until one works
// (gevent.socket.create_connection). `timeout` bounds the whole call (resolution included) and
// becomes the connected socket's default timeout. When every address fails, the error of the
// last one is returned, prefixed "gevent::CreateConnection <host>:<port>: ".
absl::StatusOr<Socket> CreateConnection(absl::string_view host, uint16_t port,
                                        std::optional<absl::Duration> timeout = std::nullopt,
                                        const CreateConnectionOptions& options = {});

}  // namespace gevent

#endif  // GEVENT_SOCKET_RESOLVE_H_
