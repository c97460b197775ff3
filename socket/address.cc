#include "socket/address.h"

#include <arpa/inet.h>
#include <string.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace gevent {

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* addr, socklen_t len) {
  SocketAddress a;
  if (addr == nullptr || len > capacity()) return a;
  std::memcpy(&a.storage_, addr, len);
  a.len_ = len;
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::FromIp(absl::string_view ip, uint16_t port) {
  std::string text(ip);
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  a = SocketAddress();
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("gevent::SocketAddress: \"", ip, "\" is not a numeric IPv4 or IPv6 address"));
}

SocketAddress SocketAddress::Loopback(uint16_t port, int family) {
  return *FromIp(family == AF_INET6 ? "::1" : "127.0.0.1", port);
}

SocketAddress SocketAddress::Any(uint16_t port, int family) {
  return *FromIp(family == AF_INET6 ? "::" : "0.0.0.0", port);
}

absl::StatusOr<SocketAddress> SocketAddress::Unix(absl::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty()) {
    return absl::InvalidArgumentError("gevent::SocketAddress: empty Unix socket path");
  }
  if (path.size() > sizeof(un->sun_path) - (path[0] == '@' ? 0 : 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gevent::SocketAddress: Unix socket path \"", path, "\" is too long (",
                     path.size(), " bytes, at most ", sizeof(un->sun_path) - 1, ")"));
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    un->sun_path[0] = '\0';  // Linux abstract namespace: the length counts, no terminator.
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("gevent::SocketAddress::Parse(\"", text, "\"): ", why));
  };
  if (text.empty()) return bad("empty address");
  if (absl::StartsWith(text, "unix:")) return Unix(text.substr(5));
  if (text[0] == '/' || text[0] == '@' || absl::StartsWith(text, "./")) return Unix(text);

  absl::string_view host;
  absl::string_view port_text;
  if (text[0] == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("missing ']' after an IPv6 address");
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest[0] != ':') return bad("expected \":port\" after ']'");
    port_text = rest.substr(1);
    if (host.find(':') == absl::string_view::npos) return bad("brackets hold an IPv6 address");
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return bad("expected host:port");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return bad("an IPv6 address needs brackets: [addr]:port");
    }
    if (host.empty() || host == "*") host = "0.0.0.0";
  }
  if (port_text.empty()) return bad("missing port");
  uint32_t port = 0;
  if (!std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return bad(absl::StrCat("bad port \"", port_text, "\" (expected 0..65535)"));
  }
  absl::StatusOr<SocketAddress> a = FromIp(host, static_cast<uint16_t>(port));
  if (!a.ok()) {
    return bad(absl::StrCat("\"", host,
                            "\" is not a numeric IP address (host names are resolved by "
                            "gevent::Resolve / CreateConnection)"));
  }
  return a;
}

uint16_t SocketAddress::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

SocketAddress SocketAddress::WithPort(uint16_t port) const {
  SocketAddress a = *this;
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  }
  return a;
}

std::string SocketAddress::ip() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
              sizeof buf);
    return buf;
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
              sizeof buf);
    return buf;
  }
  return "";
}

std::string SocketAddress::ToString() const {
  switch (family()) {
    case AF_INET:
      return absl::StrCat(ip(), ":", port());
    case AF_INET6:
      return absl::StrCat("[", ip(), "]:", port());
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      const size_t path_len = len_ > offsetof(sockaddr_un, sun_path)
                                  ? len_ - offsetof(sockaddr_un, sun_path)
                                  : 0;
      if (path_len == 0) return "unix:(unnamed)";
      if (un->sun_path[0] == '\0') {
        return absl::StrCat("@", absl::string_view(un->sun_path + 1, path_len - 1));
      }
      return std::string(un->sun_path, strnlen(un->sun_path, path_len));
    }
    default:
      return "(empty)";
  }
}

namespace internal {

bool QueryAddress(int fd, bool peer, SocketAddress* out) {
  socklen_t len = SocketAddress::capacity();
  const int rc = peer ? getpeername(fd, out->mutable_sockaddr(), &len)
                      : getsockname(fd, out->mutable_sockaddr(), &len);
  if (rc != 0) return false;
  out->set_size(len);
  return true;
}

std::string DescribeFd(int fd) {
  SocketAddress a;
  if (QueryAddress(fd, /*peer=*/true, &a) || QueryAddress(fd, /*peer=*/false, &a)) {
    return absl::StrCat(a.ToString(), " (fd ", fd, ")");
  }
  return absl::StrCat("(fd ", fd, ")");
}

}  // namespace internal
}  // namespace gevent
