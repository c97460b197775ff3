// gevent::SocketAddress — an IPv4, IPv6 or Unix-domain socket address, parsed and printed.
//
//   absl::StatusOr<gevent::SocketAddress> a = gevent::SocketAddress::Parse("[::1]:8080");
//   a->ToString();   // "[::1]:8080"
//
// A value type: copyable, no hub, any thread. Host names are not resolved here (socket/resolve.h).
#ifndef GEVENT_SOCKET_ADDRESS_H_
#define GEVENT_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gevent {

// SocketAddress: an IPv4, IPv6 or Unix-domain address (a sockaddr_storage and its length).
// A value type; copyable. Default-constructed it is empty (family AF_UNSPEC).
class SocketAddress {
 public:
  SocketAddress() = default;

  // Parse reads a numeric address:
  //   "127.0.0.1:80"   IPv4 and port        ":80" / "*:80"   IPv4 any address (0.0.0.0)
  //   "[::1]:80"       IPv6 and port        "[::]:80"        IPv6 any address
  //   "/run/x.sock"    Unix path (anything starting with '/' or "./"), "unix:rel/path" also works
  //   "@name"          Linux abstract Unix address
  // Host names are not resolved here (see Resolve / CreateConnection). InvalidArgument, with the
  // text and the problem, for anything else (missing or bad port, port > 65535, bad IP, a Unix
  // path longer than sun_path).
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text);

  // FromIp: a numeric IPv4 or IPv6 address (no brackets) and a port. InvalidArgument otherwise.
  static absl::StatusOr<SocketAddress> FromIp(absl::string_view ip, uint16_t port);

  // Loopback / Any: 127.0.0.1 or ::1 / 0.0.0.0 or :: with `port`; family AF_INET or AF_INET6.
  static SocketAddress Loopback(uint16_t port, int family = AF_INET);
  static SocketAddress Any(uint16_t port, int family = AF_INET);

  // Unix: a Unix-domain path ('@' first: abstract). InvalidArgument if empty or too long.
  static absl::StatusOr<SocketAddress> Unix(absl::string_view path);

  // FromSockaddr copies `len` bytes of `addr` (len <= sizeof(sockaddr_storage), else empty).
  static SocketAddress FromSockaddr(const sockaddr* addr, socklen_t len);

  // family: AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC (empty).
  int family() const { return storage_.ss_family; }
  bool empty() const { return len_ == 0; }
  // port: the port of an IP address (host order), 0 for other families.
  uint16_t port() const;
  // WithPort: a copy with the port replaced (IP families only).
  SocketAddress WithPort(uint16_t port) const;
  // ip: "127.0.0.1" / "::1" (no brackets), "" for other families.
  std::string ip() const;
  // ToString: "127.0.0.1:80", "[::1]:80", "/path", "@abstract", "unix:(unnamed)", "(empty)".
  // Parse(ToString()) gives the address back for IP, path and abstract addresses.
  std::string ToString() const;

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* mutable_sockaddr() { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const { return len_; }
  // set_size: after filling mutable_sockaddr() (e.g. by recvfrom).
  void set_size(socklen_t len) { len_ = len; }
  static constexpr socklen_t capacity() { return sizeof(sockaddr_storage); }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) { return !(a == b); }

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

namespace internal {
// QueryAddress: the fd's peer (getpeername) or local (getsockname) address; false with errno set
// when the call fails.
bool QueryAddress(int fd, bool peer, SocketAddress* out);
// DescribeFd: "<peer address> (fd N)", or the local address when there is no peer, or "(fd N)":
// how error messages name a descriptor.
std::string DescribeFd(int fd);
}  // namespace internal

}  // namespace gevent

#endif  // GEVENT_SOCKET_ADDRESS_H_
