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
namespace {

struct LookupResult {
  int gai_error = 0;
  int sys_errno = 0;
  std::vector<SocketAddress> addresses;
};

LookupResult Lookup(const std::string& host, uint16_t port, int family) {
  LookupResult result;
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  result.gai_error = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (result.gai_error != 0) {
    result.sys_errno = errno;
    return result;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, &freeaddrinfo);
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    result.addresses.push_back(SocketAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen));
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<SocketAddress>> Resolve(absl::string_view host, uint16_t port,
                                                   int family,
                                                   std::optional<absl::Duration> timeout,
                                                   ThreadPool* pool) {
  if (absl::StatusOr<SocketAddress> numeric = SocketAddress::FromIp(host, port); numeric.ok()) {
    if (family != AF_UNSPEC && numeric->family() != family) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gevent::Resolve ", host, ": the address is not of the requested family"));
    }
    return std::vector<SocketAddress>{*numeric};
  }
  if (host.empty()) return absl::InvalidArgumentError("gevent::Resolve: empty host name");
  std::unique_ptr<ThreadPool> own_pool;
  if (pool == nullptr) {
    own_pool = std::make_unique<ThreadPool>(1);
    pool = own_pool.get();
  }
  ThreadResult<LookupResult> pending =
      pool->Spawn([h = std::string(host), port, family] { return Lookup(h, port, family); });
  if (!pending.Wait(timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("gevent::Resolve ", host, ": timed out after ",
                                                    absl::FormatDuration(*timeout)));
  }
  LookupResult result = *std::move(pending.Get());  // Done: Get cannot time out.
  if (result.gai_error != 0) {
    std::string text = gai_strerror(result.gai_error);
    if (result.gai_error == EAI_SYSTEM) text += ": " + ErrnoText(result.sys_errno);
    absl::StatusCode code = absl::StatusCode::kUnavailable;
    if (result.gai_error == EAI_NONAME || result.gai_error == EAI_NODATA) {
      code = absl::StatusCode::kNotFound;
    }
    return absl::Status(code, absl::StrCat("gevent::Resolve ", host, ": ", text));
  }
  if (result.addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("gevent::Resolve ", host, ": no addresses"));
  }
  return result.addresses;
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
      Resolve(host, port, AF_UNSPEC, remaining(), options.resolver_pool);
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
