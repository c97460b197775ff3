#include "socket/resolve.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/hub_test_fixture.h"
#include "hub/threadpool.h"
#include "socket/socket.h"
#include "socket/testing.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;
using testing::Listener;

class ResolveTest : public HubTestFixture {};

TEST_F(ResolveTest, CreateConnectionToANumericAddress) {
  Socket listener = Listener();
  const uint16_t port = listener.LocalAddress()->port();
  absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", port, absl::Seconds(5));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->timeout(), absl::Seconds(5));
  EXPECT_EQ(*c->GetOption(IPPROTO_TCP, TCP_NODELAY), 1);
  absl::StatusOr<Socket> accepted = listener.Accept();
  ASSERT_TRUE(accepted.ok());
}

TEST_F(ResolveTest, CreateConnectionResolvesOnAThreadPool) {
  Socket listener = Listener();
  const uint16_t port = listener.LocalAddress()->port();
  ThreadPool pool(1);
  CreateConnectionOptions options;
  options.resolver_pool = &pool;
  // "localhost" may resolve to ::1 first, where nobody listens: the next address is tried.
  absl::StatusOr<Socket> c = CreateConnection("localhost", port, absl::Seconds(5), options);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->PeerAddress()->ToString(), absl::StrCat("127.0.0.1:", port));
}

TEST_F(ResolveTest, CreateConnectionReportsTheLastError) {
  absl::StatusOr<Socket> holder = Socket::Create(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(holder->Bind(SocketAddress::Loopback(0)).ok());
  const uint16_t port = holder->LocalAddress()->port();
  absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", port);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr(absl::StrCat("gevent::CreateConnection 127.0.0.1:", port, ": ")));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("[ECONNREFUSED]"));
  EXPECT_EQ(SocketErrno(c.status()), ECONNREFUSED);
}

TEST_F(ResolveTest, ResolveParsesNumericHostsWithoutAThread) {
  absl::StatusOr<std::vector<SocketAddress>> r = Resolve("::1", 53);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].ToString(), "[::1]:53");
  EXPECT_TRUE(absl::IsInvalidArgument(Resolve("::1", 53, AF_INET).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Resolve("", 53).status()));
}

}  // namespace
}  // namespace gevent
