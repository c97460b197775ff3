#include "socket/resolve.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"
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
  options.resolver.pool = &pool;
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

// A lookup that takes as long as the test wants (until `release`), as a stuck DNS server would.
struct SlowLookup {
  ThreadNotification release;
  std::atomic<int> calls{0};
  LookupFunction Function() {
    return [this](const std::string& host, uint16_t port, int family) {
      calls.fetch_add(1);
      release.WaitForNotification();
      return SystemLookup(host, port, family);
    };
  }
};

TEST_F(ResolveTest, ASlowLookupNeverFreezesTheHub) {
  SlowLookup slow;
  ResolverOptions resolver;
  resolver.lookup = slow.Function();
  // A greenlet ticking every 5 ms meanwhile: the largest gap between its ticks is how long the
  // hub was frozen.
  bool stop = false;
  absl::Duration worst_gap;
  GreenletRef ticker = Spawn([&] {
    absl::Time last = absl::Now();
    while (!stop) {
      Sleep(absl::Milliseconds(5));
      const absl::Time now = absl::Now();
      worst_gap = std::max(worst_gap, now - last);
      last = now;
    }
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<SocketAddress>> r =
      Resolve("localhost", 80, AF_UNSPEC, absl::Milliseconds(200), resolver);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("gevent::Resolve localhost: timed out after 200ms"));
  EXPECT_GE(took, absl::Milliseconds(200));
  EXPECT_LT(took, absl::Seconds(2));  // At its timeout, not when the lookup ends.
  // CreateConnection too, with the lookup still stuck: the second call gets a second worker.
  CreateConnectionOptions options;
  options.resolver = resolver;
  absl::StatusOr<Socket> c = CreateConnection("localhost", 80, absl::Milliseconds(100), options);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDeadlineExceeded) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("gevent::CreateConnection localhost:80"));
  stop = true;
  ticker->Join();
  EXPECT_LT(worst_gap, absl::Milliseconds(150)) << "the hub froze for " << worst_gap;
  // The abandoned lookups keep nothing alive: the hub has no work left although they still run.
  EXPECT_TRUE(GetHub().Join(absl::Seconds(5)));
  EXPECT_EQ(slow.calls.load(), 2);
  EXPECT_EQ(HubThreadPool().outstanding(), 2u);
  slow.release.Notify();
  HubThreadPool().Shutdown();  // Collects them, so the fixture sees no watcher left.
  EXPECT_EQ(HubThreadPool().outstanding(), 0u);
}

TEST_F(ResolveTest, LookupsShareTheHubPoolAndRunAtOnce) {
  SlowLookup slow;
  ResolverOptions resolver;
  resolver.lookup = slow.Function();
  constexpr int kLookups = 4;
  int resolved = 0;
  std::vector<GreenletRef> lookups;
  for (int i = 0; i < kLookups; ++i) {
    lookups.push_back(Spawn([&] {
      absl::StatusOr<std::vector<SocketAddress>> r =
          Resolve("localhost", 80, AF_INET, absl::Seconds(30), resolver);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->front().ToString(), "127.0.0.1:80");
      ++resolved;
    }));
  }
  // Release them only once all four are running: each has its own worker of the one pool.
  GreenletRef releaser = Spawn([&] {
    while (HubThreadPool().started() < static_cast<size_t>(kLookups)) Sleep(absl::ZeroDuration());
    slow.release.Notify();
  });
  for (GreenletRef& g : lookups) g->Join();
  EXPECT_EQ(resolved, kLookups);
  EXPECT_EQ(HubThreadPool().started(), static_cast<size_t>(kLookups));
}

TEST_F(ResolveTest, AFailingLookupNamesTheHost) {
  ResolverOptions resolver;
  resolver.lookup = [](const std::string& host, uint16_t, int) -> absl::StatusOr<std::vector<SocketAddress>> {
    return absl::NotFoundError("no such name: " + host);
  };
  absl::StatusOr<std::vector<SocketAddress>> r =
      Resolve("nohost.invalid", 1, AF_UNSPEC, std::nullopt, resolver);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("no such name: nohost.invalid"));
  // The real lookup of a name that cannot exist: getaddrinfo's text (RFC 2606's .invalid).
  absl::StatusOr<std::vector<SocketAddress>> real = Resolve("nohost.invalid", 1);
  EXPECT_FALSE(real.ok());
  EXPECT_THAT(std::string(real.status().message()), HasSubstr("gevent::Resolve nohost.invalid: "));
}

}  // namespace
}  // namespace gevent
