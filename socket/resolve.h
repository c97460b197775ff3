// gevent::Resolve and gevent::CreateConnection — names to addresses, and a connected client socket
// (gevent.socket.getaddrinfo, gevent.socket.create_connection).
//
//   absl::StatusOr<gevent::Socket> s = gevent::CreateConnection("localhost", 8080, absl::Seconds(5));
//
// Hub thread only. Errors follow base/errors.h: NotFound for a name that does not resolve,
// DeadlineExceeded when the timeout expires, the connect errors of Socket::Connect.
//
// A lookup never blocks the hub: it runs on a worker of a thread pool (the hub's shared
// HubThreadPool unless one is given) while the calling greenlet parks. One that times out is
// abandoned (ThreadResult::Abandon): the call returns at its timeout, the worker finishes
// getaddrinfo on its own, the answer is dropped, and the lookup does not keep the loop alive.
#ifndef GEVENT_SOCKET_RESOLVE_H_
#define GEVENT_SOCKET_RESOLVE_H_

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "socket/address.h"
#include "socket/socket.h"

namespace gevent {

class ThreadPool;

// LookupFunction: what runs on the worker for a name that is not numeric: returns `host`'s
// addresses with `port` for `family` (AF_UNSPEC, AF_INET or AF_INET6), or the error. It runs on
// worker threads, several at once: it must be thread-safe. SystemLookup is the default.
using LookupFunction = std::function<absl::StatusOr<std::vector<SocketAddress>>(
    const std::string& host, uint16_t port, int family)>;

// SystemLookup: getaddrinfo (SOCK_STREAM, AI_ADDRCONFIG), blocking. Errors: NotFound
// "gevent::Resolve <host>: <gai_strerror text>" for EAI_NONAME/EAI_NODATA and an empty answer,
// Unavailable for the other failures (EAI_AGAIN, EAI_SYSTEM with its errno text...).
absl::StatusOr<std::vector<SocketAddress>> SystemLookup(const std::string& host, uint16_t port,
                                                        int family);

// ResolverOptions: where and how a lookup runs.
struct ResolverOptions {
  ThreadPool* pool = nullptr;  // Null: HubThreadPool(). Its hub must be this thread's.
  LookupFunction lookup;       // Empty: SystemLookup.
};

// Resolve returns `host`'s addresses with `port`, in the lookup's order; the calling greenlet
// parks while a worker looks it up (the hub keeps running). A numeric host is parsed at once,
// without a worker. `family`: AF_UNSPEC (both), AF_INET or AF_INET6. Errors: the lookup's;
// InvalidArgument for an empty host or a numeric one of another family; DeadlineExceeded
// "gevent::Resolve <host>: timed out after <timeout>" (the lookup is abandoned, see above).
absl::StatusOr<std::vector<SocketAddress>> Resolve(
    absl::string_view host, uint16_t port, int family = AF_UNSPEC,
    std::optional<absl::Duration> timeout = std::nullopt, const ResolverOptions& resolver = {});

// CreateConnectionOptions: what CreateConnection does besides connecting.
struct CreateConnectionOptions {
  bool no_delay = true;                       // TCP_NODELAY on the connected socket
  std::optional<SocketAddress> source;        // bind to this first (gevent's source_address)
  ResolverOptions resolver;                   // see Resolve
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
