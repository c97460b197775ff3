#include "socket/resolve.h"

#include <errno.h>
#include <netdb.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "hub/threadpool.h"

namespace gevent {

absl::StatusOr<std::vector<SocketAddress>> SystemLookup(const std::string& host, uint16_t port,
                                                        int family) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  const int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (gai != 0) {
    std::string text = gai_strerror(gai);
    if (gai == EAI_SYSTEM) text += ": " + ErrnoText(errno);
    const absl::StatusCode code = (gai == EAI_NONAME || gai == EAI_NODATA)
                                      ? absl::StatusCode::kNotFound
                                      : absl::StatusCode::kUnavailable;
    return absl::Status(code, absl::StrCat("gevent::Resolve ", host, ": ", text));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, &freeaddrinfo);
  std::vector<SocketAddress> addresses;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    addresses.push_back(SocketAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen));
  }
  if (addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("gevent::Resolve ", host, ": no addresses"));
  }
  return addresses;
}

absl::StatusOr<std::vector<SocketAddress>> Resolve(absl::string_view host, uint16_t port,
                                                   int family,
                                                   std::optional<absl::Duration> timeout,
                                                   const ResolverOptions& resolver) {
  if (absl::StatusOr<SocketAddress> numeric = SocketAddress::FromIp(host, port); numeric.ok()) {
    if (family != AF_UNSPEC && numeric->family() != family) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gevent::Resolve ", host, ": the address is not of the requested family"));
    }
    return std::vector<SocketAddress>{*numeric};
  }
  if (host.empty()) return absl::InvalidArgumentError("gevent::Resolve: empty host name");
  ThreadPool& pool = resolver.pool != nullptr ? *resolver.pool : HubThreadPool();
  LookupFunction lookup = resolver.lookup ? resolver.lookup : LookupFunction(&SystemLookup);
  ThreadResult<absl::StatusOr<std::vector<SocketAddress>>> pending =
      pool.Spawn([lookup = std::move(lookup), h = std::string(host), port, family] {
        return lookup(h, port, family);
      });
  if (!pending.Wait(timeout)) {
    // The worker finishes on its own; nothing waits for it, so nothing here blocks.
    pending.Abandon();
    return absl::DeadlineExceededError(absl::StrCat("gevent::Resolve ", host, ": timed out after ",
                                                    absl::FormatDuration(*timeout)));
  }
  // Done: Get cannot time out; it rethrows what a user's lookup threw.
  return *pending.Get();
}

absl::StatusOr<Socket> CreateConnection(absl::string_view host, uint16_t port,
                                        std::optional<absl::Duration> timeout,
                                        const CreateConnectionOptions& options) {
  const std::string prefix = absl::StrCat("gevent::CreateConnection ", host, ":", port, ": ");
  std::optional<absl::Time> deadline;
  if (timeout.has_value()) deadline = absl::Now() + *timeout;
  auto remaining = [&]() -> std::optional<absl::Duration> {
    if (!deadline.has_value()) return std::nullopt;
    return std::max(*deadline - absl::Now(), absl::ZeroDuration());
  };
  absl::StatusOr<std::vector<SocketAddress>> addresses =
      Resolve(host, port, AF_UNSPEC, remaining(), options.resolver);
  if (!addresses.ok()) {
    return absl::Status(addresses.status().code(),
                        absl::StrCat(prefix, addresses.status().message()));
  }
  absl::Status last;
  for (const SocketAddress& address : *addresses) {
    absl::StatusOr<Socket> s = Socket::Create(address.family(), SOCK_STREAM);
    if (!s.ok()) {
      last = s.status();
      continue;
    }
    if (options.source.has_value()) {
      if (absl::Status b = s->Bind(*options.source); !b.ok()) {
        last = b;
        continue;
      }
    }
    std::optional<absl::Duration> left = remaining();
    absl::Status c = s->Connect(address, left.has_value() ? IoTimeout(*left) : IoTimeout::Forever());
    if (!c.ok()) {
      last = c;
      if (absl::IsDeadlineExceeded(c)) break;  // The whole call's time is up.
      continue;
    }
    if (options.no_delay && address.family() != AF_UNIX) (void)s->SetNoDelay(true);
    s->SetTimeout(timeout);
    return s;
  }
  absl::Status out(last.code(), absl::StrCat(prefix, last.message()));
  if (std::optional<int> err = ErrnoOf(last)) out = WithErrno(std::move(out), *err);
  return out;
}

}  // namespace gevent
