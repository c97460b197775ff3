// Test helpers shared by the socket layer's tests.
#ifndef GEVENT_SOCKET_TESTING_H_
#define GEVENT_SOCKET_TESTING_H_

#include <sys/socket.h>

#include <utility>

#include "gtest/gtest.h"
#include "socket/socket.h"

namespace gevent::testing {

// A listening TCP socket on the loopback of `family`, port chosen by the kernel.
inline Socket Listener(int family = AF_INET, int backlog = 16) {
  absl::StatusOr<Socket> s = Socket::Create(family, SOCK_STREAM);
  EXPECT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->Bind(SocketAddress::Loopback(0, family)).ok());
  EXPECT_TRUE(s->Listen(backlog).ok());
  return std::move(*s);
}

// RefusedPort: a loopback TCP port that was just free: bound, read and closed without listening,
// so a connect there is refused (for a dead target).
inline int RefusedPort() {
  absl::StatusOr<Socket> probe = Socket::Create(AF_INET, SOCK_STREAM);
  EXPECT_TRUE(probe.ok()) << probe.status();
  EXPECT_TRUE(probe->Bind(SocketAddress::Loopback(0)).ok());
  const int port = probe->LocalAddress()->port();
  EXPECT_TRUE(probe->Close().ok());
  return port;
}

}  // namespace gevent::testing

#endif  // GEVENT_SOCKET_TESTING_H_
