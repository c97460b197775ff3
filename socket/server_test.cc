#include "socket/server.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"
#include "socket/resolve.h"
#include "socket/socket.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

class ServerTest : public HubTestFixture {};

// WaitUntil parks in 1 ms steps until `done()` holds or `limit` passes; returns done(). For
// conditions that only the server's own greenlets change (no event to wait on from outside).
template <typename F>
bool WaitUntil(F done, absl::Duration limit = absl::Seconds(10)) {
  const absl::Time end = absl::Now() + limit;
  while (!done() && absl::Now() < end) Sleep(absl::Milliseconds(1));
  return done();
}

void Echo(Socket conn, const SocketAddress&) {
  char buf[4096];
  for (;;) {
    absl::StatusOr<size_t> n = conn.RecvInto(absl::MakeSpan(buf));
    if (!n.ok() || *n == 0) return;
    if (!conn.SendAll(absl::string_view(buf, *n)).ok()) return;
  }
}

// Sends `message` and reads the same number of bytes back.
absl::StatusOr<std::string> RoundTrip(Socket& s, absl::string_view message,
                                      absl::Duration timeout = absl::Seconds(10)) {
  if (absl::Status st = s.SendAll(message, timeout); !st.ok()) return st;
  std::string back(message.size(), '\0');
  if (absl::Status st = s.RecvExactly(absl::MakeSpan(back), timeout); !st.ok()) return st;
  return back;
}

Socket Connect(uint16_t port) {
  absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", port, absl::Seconds(10));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : Socket();
}

TEST_F(ServerTest, StreamServerOnPortZeroReportsItsPortAndServes) {
  StreamServer server(SocketAddress::Loopback(0), &Echo);
  EXPECT_EQ(server.port(), 0);
  ASSERT_TRUE(server.Start().ok());
  ASSERT_NE(server.port(), 0);
  EXPECT_EQ(server.address().ToString(), absl::StrCat("127.0.0.1:", server.port()));
  Socket a = Connect(server.port());
  Socket b = Connect(server.port());
  EXPECT_EQ(*RoundTrip(a, "first"), "first");
  EXPECT_EQ(*RoundTrip(b, "second"), "second");
  EXPECT_EQ(server.stats().accepted, 2u);
  EXPECT_EQ(server.stats().active, 2u);
  ASSERT_TRUE(a.Close().ok());
  ASSERT_TRUE(b.Close().ok());
  server.Stop(absl::Seconds(30));  // The handlers see the end of their streams and return.
  EXPECT_TRUE(server.stopped());
  EXPECT_EQ(server.stats().active, 0u);
}

TEST_F(ServerTest, StartTwiceAndBindingATakenPortFail) {
  StreamServer server(SocketAddress::Loopback(0), &Echo);
  ASSERT_TRUE(server.Start().ok());
  absl::Status again = server.Start();
  EXPECT_TRUE(absl::IsFailedPrecondition(again));
  EXPECT_THAT(std::string(again.message()), HasSubstr("already started"));
  StreamServer clash(server.address(), &Echo);
  absl::Status s = clash.Start();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("[EADDRINUSE]"));
  server.Stop();
  absl::Status after = server.Start();
  EXPECT_THAT(std::string(after.message()), HasSubstr("already stopped"));
}

TEST_F(ServerTest, PoolOfTwoDoesNotServeAThirdClientUntilASlotFrees) {
  Event release;
  int started = 0;
  StreamServerOptions options;
  options.pool_size = 2;
  StreamServer server(
      SocketAddress::Loopback(0),
      [&](Socket conn, const SocketAddress& peer) {
        ++started;
        release.Wait();
        Echo(std::move(conn), peer);
      },
      options);
  ASSERT_TRUE(server.Start().ok());
  Socket c1 = Connect(server.port());
  Socket c2 = Connect(server.port());
  ASSERT_TRUE(WaitUntil([&] { return started == 2; }));
  // The kernel completes the third connection into the backlog; the server must not take it.
  Socket c3 = Connect(server.port());
  ASSERT_TRUE(c3.SendAll("3").ok());
  char b;
  absl::Status s = c3.RecvExactly(absl::MakeSpan(&b, 1), absl::Milliseconds(100));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_EQ(started, 2);
  EXPECT_EQ(server.stats().accepted, 2u);
  // One slot frees: the third client is accepted and served.
  release.Set();
  ASSERT_TRUE(c1.Close().ok());
  ASSERT_TRUE(c3.RecvExactly(absl::MakeSpan(&b, 1), absl::Seconds(10)).ok());
  EXPECT_EQ(b, '3');
  EXPECT_EQ(started, 3);
  EXPECT_EQ(server.stats().accepted, 3u);
  server.Stop(absl::ZeroDuration());
}

TEST_F(ServerTest, StopLetsRunningHandlersFinishWithinTheGrace) {
  Event release;
  bool finished = false;
  StreamServer server(SocketAddress::Loopback(0), [&](Socket conn, const SocketAddress&) {
    release.Wait();
    ASSERT_TRUE(conn.SendAll("bye").ok());
    finished = true;
  });
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = server.port();
  Socket c = Connect(port);
  ASSERT_TRUE(WaitUntil([&] { return server.stats().active == 1; }));
  GreenletRef stopper = Spawn([&] { server.Stop(absl::Seconds(30)); });
  Sleep(absl::ZeroDuration());  // Stop has closed the listener and waits for the handler.
  EXPECT_FALSE(stopper->dead());
  absl::StatusOr<Socket> late = Socket::Create(AF_INET, SOCK_STREAM);
  absl::Status refused = late->Connect(SocketAddress::Loopback(port));
  EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
  release.Set();
  stopper->Join();
  EXPECT_TRUE(finished);
  char buf[3];
  ASSERT_TRUE(c.RecvExactly(absl::MakeSpan(buf)).ok());
  EXPECT_EQ(std::string(buf, 3), "bye");
}

TEST_F(ServerTest, StopKillsHandlersThatOutliveTheGrace) {
  bool unwound = false;
  StreamServer server(SocketAddress::Loopback(0), [&](Socket conn, const SocketAddress&) {
    struct Flag {
      bool* f;
      ~Flag() { *f = true; }
    } flag{&unwound};
    char b;
    (void)conn.RecvInto(&b, 1);  // The client never sends.
    ADD_FAILURE() << "the handler should have been killed while parked";
  });
  ASSERT_TRUE(server.Start().ok());
  Socket c = Connect(server.port());
  ASSERT_TRUE(WaitUntil([&] { return server.stats().active == 1; }));
  server.Stop(absl::Milliseconds(20));
  EXPECT_TRUE(unwound);
  EXPECT_EQ(server.stats().active, 0u);
  // The handler's socket was closed by the unwinding: the client sees the end of the stream.
  char b;
  EXPECT_EQ(*c.RecvInto(&b, 1, absl::Seconds(10)), 0u);
}

// The load generator's report: ~20 clients pipeline four 1000-byte messages and close, and Stop
// with a zero grace comes right after, before the handlers have seen the end of their streams.
// Stop must leave no handler behind: each one finished or was killed and unwound before Stop
// returns (a handler left on its stack would outlive its thread's hub).
TEST_F(ServerTest, StopWithZeroGraceRightAfterClientsCloseUnwindsEveryHandler) {
  constexpr int kClients = 20;
  constexpr int kPipelined = 4;
  const std::string message(1000, 'm');
  for (int round = 0; round < 20; ++round) {
    int alive = 0;
    StreamServer server(SocketAddress::Loopback(0), [&](Socket conn, const SocketAddress& peer) {
      ++alive;
      struct Count {
        int* n;
        ~Count() { --*n; }
      } count{&alive};
      Echo(std::move(conn), peer);
    });
    ASSERT_TRUE(server.Start().ok());
    std::vector<Socket> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(Connect(server.port()));
    for (Socket& c : clients) {
      for (int m = 0; m < kPipelined; ++m) ASSERT_TRUE(c.SendAll(message).ok());
    }
    for (Socket& c : clients) {
      std::string back(message.size(), '\0');
      ASSERT_TRUE(c.RecvExactly(absl::MakeSpan(back), absl::Seconds(30)).ok());
    }
    ASSERT_EQ(alive, kClients);
    for (Socket& c : clients) ASSERT_TRUE(c.Close().ok());
    server.Stop(absl::ZeroDuration());
    EXPECT_EQ(alive, 0) << "round " << round;
    EXPECT_EQ(server.stats().active, 0u) << "round " << round;
  }
}

TEST_F(ServerTest, StopFromAHandlerIsAUsageErrorAndStopLaterWorks) {
  std::string error;
  StreamServer* server_ptr = nullptr;
  StreamServer server(SocketAddress::Loopback(0), [&](Socket, const SocketAddress&) {
    try {
      server_ptr->Stop();
    } catch (const std::logic_error& e) {
      error = e.what();
    }
    server_ptr->StopLater(absl::Seconds(5));
  });
  server_ptr = &server;
  GreenletRef serving = Spawn([&] { ASSERT_TRUE(server.ServeForever().ok()); });
  ASSERT_TRUE(WaitUntil([&] { return server.started(); }));
  Socket c = Connect(server.port());
  serving->Join();  // ServeForever returned: StopLater stopped the server.
  EXPECT_TRUE(server.stopped());
  EXPECT_THAT(error, HasSubstr("called from one of the server's own handlers"));
}

TEST_F(ServerTest, HandlerExceptionsDoNotStopTheServer) {
  int errors = 0;
  SpawnErrorHandler previous =
      SetSpawnErrorHandler([&](Greenlet&, std::exception_ptr) { ++errors; });
  int calls = 0;
  StreamServer server(SocketAddress::Loopback(0), [&](Socket conn, const SocketAddress& peer) {
    if (++calls == 1) throw std::runtime_error("handler failed");
    Echo(std::move(conn), peer);
  });
  ASSERT_TRUE(server.Start().ok());
  Socket first = Connect(server.port());
  char b;
  EXPECT_EQ(*first.RecvInto(&b, 1, absl::Seconds(10)), 0u);  // Closed by the failed handler.
  Socket second = Connect(server.port());
  EXPECT_EQ(*RoundTrip(second, "still up"), "still up");
  EXPECT_EQ(errors, 1);
  server.Stop(absl::ZeroDuration());
  SetSpawnErrorHandler(previous);
}

// Lowers RLIMIT_NOFILE for the test and restores it.
class NoFileLimit {
 public:
  explicit NoFileLimit(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    ok_ = setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~NoFileLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

int HighestOpenFd() {
  int highest = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  return highest;
}

// Accepting when one can't: with the process out of descriptors, clients that connect are
// refused at once (the spare descriptor lets the server accept and close them) instead of
// hanging in the kernel's queue; open connections keep being served; once descriptors come back a
// new client is served.
TEST_F(ServerTest, OutOfDescriptorsRefusesWaitingClientsAtOnceAndServesOnceTheyComeBack) {
  StreamServer server(SocketAddress::Loopback(0), &Echo);
  ASSERT_TRUE(server.Start().ok());
  Socket existing = Connect(server.port());
  ASSERT_EQ(*RoundTrip(existing, "before"), "before");

  // The clients' sockets are made while descriptors are plentiful (connect takes none).
  constexpr int kFlood = 40;
  constexpr int kProbes = 5;
  std::vector<Socket> flood;
  std::vector<Socket> probes;
  for (int i = 0; i < kFlood + kProbes; ++i) {
    absl::StatusOr<Socket> c = Socket::Create(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(c.ok()) << c.status();
    (i < kFlood ? flood : probes).push_back(std::move(*c));
  }
  absl::StatusOr<Socket> after = Socket::Create(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(after.ok()) << after.status();

  // Room for 4 more descriptors in the whole process: the server accepts 4 of the flood.
  std::vector<int> fillers;
  {
    NoFileLimit limit(static_cast<rlim_t>(HighestOpenFd() + 1 + 8));
    ASSERT_TRUE(limit.ok());
    for (;;) {
      int fd = dup(existing.fd());
      if (fd < 0) {
        ASSERT_EQ(errno, EMFILE);
        break;
      }
      fillers.push_back(fd);
    }
    ASSERT_GE(fillers.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      ::close(fillers.back());
      fillers.pop_back();
    }
    for (Socket& c : flood) {
      ASSERT_TRUE(c.Connect(SocketAddress::Loopback(server.port())).ok());
    }
    ASSERT_TRUE(WaitUntil([&] { return server.stats().fd_refused > 0; }))
        << "the server refused none of the flood";

    // Clients arriving now get an end of stream (or a reset) within a second, not a hang.
    for (Socket& probe : probes) {
      ASSERT_TRUE(probe.Connect(SocketAddress::Loopback(server.port())).ok());
      const absl::Time start = absl::Now();
      char byte;
      absl::StatusOr<size_t> n = probe.RecvInto(&byte, 1, absl::Seconds(1));
      EXPECT_TRUE((n.ok() && *n == 0) || absl::IsUnavailable(n.status())) << n.status();
      EXPECT_LT(absl::Now() - start, absl::Seconds(1));
    }
    EXPECT_GE(server.stats().fd_refused, static_cast<uint64_t>(kProbes));
    EXPECT_GE(server.stats().fd_backoffs, 1u);
    // The open connection is served meanwhile.
    EXPECT_EQ(*RoundTrip(existing, "during"), "during");

    // The flood goes: its server-side descriptors come back, and a new client is served within
    // a second.
    flood.clear();
    ASSERT_TRUE(WaitUntil([&] { return server.stats().active == 1; }));
    ASSERT_TRUE(after->Connect(SocketAddress::Loopback(server.port())).ok());
    absl::StatusOr<std::string> back = RoundTrip(*after, "after", absl::Seconds(1));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, "after");
  }
  for (int fd : fillers) ::close(fd);
  EXPECT_EQ(server.stats().accept_errors, 0u);
  server.Stop(absl::ZeroDuration());
}

// The default backlog is the kernel's own cap, not a guess below it.
TEST_F(ServerTest, DefaultBacklogIsTheKernelsSomaxconn) {
  std::FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "r");
  if (f == nullptr) GTEST_SKIP() << "no /proc/sys/net/core/somaxconn";
  int somaxconn = 0;
  ASSERT_EQ(std::fscanf(f, "%d", &somaxconn), 1);
  std::fclose(f);
  EXPECT_EQ(DefaultBacklog(), std::min(somaxconn, 65535));
  EXPECT_EQ(StreamServerOptions{}.backlog, 0);
}

// A connection on which nothing arrives for idle_timeout sees its receive time out (and the
// handler closes it); one that keeps talking is not affected.
TEST_F(ServerTest, IdleTimeoutEndsTheWaitOfASilentConnectionOnly) {
  int timed_out = 0;
  StreamServerOptions options;
  options.idle_timeout = absl::Milliseconds(200);
  StreamServer server(
      SocketAddress::Loopback(0),
      [&](Socket conn, const SocketAddress&) {
        char buf[64];
        for (;;) {
          absl::StatusOr<size_t> n = conn.RecvInto(absl::MakeSpan(buf));
          if (!n.ok()) {
            if (absl::IsDeadlineExceeded(n.status())) ++timed_out;
            return;
          }
          if (*n == 0 || !conn.SendAll(absl::string_view(buf, *n)).ok()) return;
        }
      },
      options);
  ASSERT_TRUE(server.Start().ok());
  Socket silent = Connect(server.port());
  Socket active = Connect(server.port());
  const absl::Time start = absl::Now();
  // The active client talks every 50 ms for twice the timeout.
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(*RoundTrip(active, "x", absl::Seconds(5)), "x") << i;
    Sleep(absl::Milliseconds(50));
  }
  char byte;
  absl::StatusOr<size_t> n = silent.RecvInto(&byte, 1, absl::Seconds(5));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  EXPECT_EQ(timed_out, 1);
  EXPECT_EQ(*RoundTrip(active, "y", absl::Seconds(5)), "y");
  server.Stop(absl::ZeroDuration());
}

TEST_F(ServerTest, IdleTimeoutMustBePositive) {
  StreamServerOptions options;
  options.idle_timeout = absl::ZeroDuration();
  StreamServer server(SocketAddress::Loopback(0), &Echo, options);
  absl::Status s = server.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("idle_timeout must be > 0, got 0"));
}

TEST_F(ServerTest, DatagramServerReplies) {
  DatagramServer server(SocketAddress::Loopback(0),
                        [](absl::string_view data, const SocketAddress& from, Socket& socket) {
                          (void)socket.SendTo(absl::StrCat("echo:", data), from);
                        });
  ASSERT_TRUE(server.Start().ok());
  ASSERT_NE(server.port(), 0);
  absl::StatusOr<Socket> client = Socket::Create(AF_INET, SOCK_DGRAM);
  for (const char* message : {"a", "bb"}) {
    ASSERT_TRUE(client->SendTo(message, server.address()).ok());
    char buf[64];
    absl::StatusOr<size_t> n = client->RecvFrom(absl::MakeSpan(buf), nullptr, absl::Seconds(10));
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(std::string(buf, *n), absl::StrCat("echo:", message));
  }
  EXPECT_EQ(server.datagrams(), 2u);
  server.Stop();
}

TEST_F(ServerTest, MultiThreadServerSharesOnePortAcrossThreads) {
  MultiThreadServer server(SocketAddress::Loopback(0), &Echo, 2);
  ASSERT_TRUE(server.Start().ok());
  ASSERT_NE(server.port(), 0);
  std::vector<Socket> clients;
  for (int i = 0; i < 16; ++i) clients.push_back(Connect(server.port()));
  for (int i = 0; i < 16; ++i) {
    const std::string m = absl::StrCat("client ", i);
    EXPECT_EQ(*RoundTrip(clients[i], m), m);
  }
  EXPECT_EQ(server.stats().accepted, 16u);
  server.Stop(absl::Milliseconds(10));
  char b;
  EXPECT_EQ(*clients[0].RecvInto(&b, 1, absl::Seconds(10)), 0u);  // Closed by the stop.
}

TEST_F(ServerTest, MultiThreadServerReportsABindError) {
  StreamServer taken(SocketAddress::Loopback(0), &Echo);
  ASSERT_TRUE(taken.Start().ok());
  // The busy port has no SO_REUSEPORT, so every reuse-port bind to it fails.
  MultiThreadServer server(taken.address(), &Echo, 2);
  absl::Status s = server.Start();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  taken.Stop();
}

}  // namespace
}  // namespace gevent
