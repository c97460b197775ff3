#include "socket/socket.h"
#include "socket/testing.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"
#include "hub/threadpool.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

static_assert(!std::is_copy_constructible_v<Socket>);
static_assert(std::is_nothrow_move_constructible_v<Socket>);
static_assert(std::is_nothrow_move_assignable_v<Socket>);

class SocketTest : public HubTestFixture {};

using testing::Listener;

bool HaveIpv6Loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  SocketAddress a = SocketAddress::Loopback(0, AF_INET6);
  const bool ok = ::bind(fd, a.sockaddr_ptr(), a.size()) == 0;
  ::close(fd);
  return ok;
}

std::pair<Socket, Socket> ConnectedPair(int family = AF_INET) {
  Socket listener = Listener(family);
  absl::StatusOr<SocketAddress> where = listener.LocalAddress();
  EXPECT_TRUE(where.ok());
  absl::StatusOr<Socket> client = Socket::Create(family, SOCK_STREAM);
  EXPECT_TRUE(client.ok());
  // The kernel completes a loopback connect into the backlog; Accept then finds it.
  EXPECT_TRUE(client->Connect(*where).ok());
  absl::StatusOr<Socket> server = listener.Accept();
  EXPECT_TRUE(server.ok()) << server.status();
  return {std::move(*client), std::move(*server)};
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

TEST_F(SocketTest, TcpIpv4RoundTripAndAddresses) {
  auto [client, server] = ConnectedPair(AF_INET);
  ASSERT_TRUE(client.SendAll("hello").ok());
  char buf[16];
  absl::StatusOr<size_t> n = server.RecvInto(absl::MakeSpan(buf));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(std::string(buf, *n), "hello");
  EXPECT_EQ(client.PeerAddress()->ToString(), server.LocalAddress()->ToString());
  EXPECT_EQ(server.PeerAddress()->ToString(), client.LocalAddress()->ToString());
  EXPECT_EQ(client.family(), AF_INET);
  EXPECT_EQ(client.type(), SOCK_STREAM);
}

TEST_F(SocketTest, TcpIpv6RoundTrip) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback (::1) on this machine";
  auto [client, server] = ConnectedPair(AF_INET6);
  ASSERT_TRUE(server.SendAll("over v6").ok());
  absl::StatusOr<std::string> got = client.Recv(64);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "over v6");
  EXPECT_EQ(client.PeerAddress()->ip(), "::1");
}

TEST_F(SocketTest, RecvParksUntilAnotherGreenletSends) {
  auto [client, server] = ConnectedPair();
  std::string received;
  GreenletRef reader = Spawn([&server = server, &received] {
    absl::StatusOr<std::string> got = server.Recv(100);
    ASSERT_TRUE(got.ok()) << got.status();
    received = *got;
  });
  Sleep(absl::ZeroDuration());  // The reader runs and parks: nothing has been sent.
  EXPECT_FALSE(reader->dead());
  ASSERT_TRUE(client.SendAll("wake up").ok());
  reader->Join();
  EXPECT_EQ(received, "wake up");
}

// Readiness is edge-triggered (an event per change): these check that no change is lost.
TEST_F(SocketTest, DataThatArrivesWhileNobodyWaitsIsReadAfterAShortRead) {
  auto [client, server] = ConnectedPair();
  ASSERT_TRUE(client.SendAll("a").ok());
  char buf[100];
  absl::StatusOr<size_t> n = server.RecvInto(absl::MakeSpan(buf));  // Short: "not ready" now.
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_EQ(absl::string_view(buf, *n), "a");
  ASSERT_TRUE(client.SendAll("b").ok());
  // The hub polls while this greenlet sleeps: the event for "b" comes with nobody waiting.
  Sleep(absl::Milliseconds(1));
  // Would wait forever if that event were lost.
  n = server.RecvInto(absl::MakeSpan(buf), IoTimeout(absl::Seconds(10)));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(absl::string_view(buf, *n), "b");
}

TEST_F(SocketTest, EndOfStreamReportedWithTheLastDataIsNotLost) {
  auto [client, server] = ConnectedPair();
  std::vector<std::string> reads;
  GreenletRef reader = Spawn([&server = server, &reads] {
    for (;;) {
      absl::StatusOr<std::string> got = server.Recv(100, IoTimeout(absl::Seconds(10)));
      ASSERT_TRUE(got.ok()) << got.status();
      reads.push_back(*got);
      if (got->empty()) return;
    }
  });
  Sleep(absl::ZeroDuration());  // The reader parks.
  // Both before the next poll: one event reports the data and the hang-up together, and the
  // short read of "abc" must not make the reader wait for another.
  ASSERT_TRUE(client.SendAll("abc").ok());
  ASSERT_TRUE(client.Shutdown(SHUT_WR).ok());
  reader->Join();
  EXPECT_EQ(reads, (std::vector<std::string>{"abc", ""}));
}

TEST_F(SocketTest, TimersFireWhileSocketsAreAlwaysReady) {
  // Two greenlets ping-pong a byte, so every poll of the sockets finds work; the hub must still
  // poll libev, whose timer ends this greenlet's sleep.
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  auto& [a, b] = *pair;
  constexpr int kGiveUp = 200000;  // Rounds; about 2 s here, against a 5 ms sleep.
  bool slept = false;
  int rounds = 0;
  GreenletRef pinger = Spawn([&a = a, &slept, &rounds] {
    char c;
    while (!slept && rounds < kGiveUp) {
      ASSERT_TRUE(a.SendAll("x").ok());
      ASSERT_TRUE(a.RecvInto(&c, 1).ok());
      ++rounds;
    }
  });
  GreenletRef ponger = Spawn([&b = b] {
    char c;
    for (;;) {
      absl::StatusOr<size_t> n = b.RecvInto(&c, 1);
      if (!n.ok() || *n == 0 || !b.SendAll("x").ok()) return;
    }
  });
  Sleep(absl::Milliseconds(5));
  slept = true;
  pinger->Join();
  ASSERT_TRUE(a.Close().ok());
  ponger->Join();
  EXPECT_GT(rounds, 0);
  EXPECT_LT(rounds, kGiveUp) << "the sleep did not end while the sockets were busy";
}

// A hub that waits for one peer at a time blocks in one poll per wake-up: it does not first
// probe the sockets, then libev, both without blocking, and find nothing twice per message.
TEST_F(SocketTest, AHubServingOnePeerBlocksOncePerWakeUpWithoutEmptyProbes) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  auto& [mine, theirs] = *pair;
  const int peer_fd = theirs.Detach();
  std::thread peer([peer_fd] {  // Blocking echo of one byte at a time, in another thread.
    char c;
    if (fcntl(peer_fd, F_SETFL, 0) != 0) {
      ADD_FAILURE() << "fcntl: " << errno;  // Closing below ends the other side's reads.
    } else {
      while (read(peer_fd, &c, 1) == 1 && write(peer_fd, &c, 1) == 1) {
      }
    }
    close(peer_fd);
  });
  constexpr int kRounds = 200;
  const HubStats before = GetHub().stats();
  auto round_trip = [&mine = mine] {
    char c = 'x';
    if (!mine.SendAll(absl::string_view(&c, 1)).ok()) return false;
    absl::StatusOr<size_t> n = mine.RecvInto(&c, 1);
    return n.ok() && *n == 1 && c == 'x';
  };
  // No early return before the join: a failed round ends the loop instead.
  int rounds = 0;
  while (rounds < kRounds && round_trip()) ++rounds;
  const HubStats after = GetHub().stats();
  EXPECT_TRUE(mine.Close().ok());
  peer.join();
  ASSERT_EQ(rounds, kRounds) << "the echo failed";
  // Each wake-up is one blocking poll; a non-blocking one may come first only before the hub
  // has seen that a single peer is all it serves.
  EXPECT_LE(after.polls - before.polls, static_cast<std::uint64_t>(kRounds) + 2);
  EXPECT_LE((after.polls - after.blocking_polls) - (before.polls - before.blocking_polls), 2u);
}

TEST_F(SocketTest, AnOpenIdleSocketDoesNotKeepTheHubAlive) {
  auto [client, server] = ConnectedPair();
  GreenletRef reader = Spawn([&server = server] { ASSERT_EQ(*server.Recv(100), "one"); });
  Sleep(absl::ZeroDuration());
  ASSERT_TRUE(client.SendAll("one").ok());
  reader->Join();
  // Nobody waits on `server` now: running the hub until it has no work must return at once...
  EXPECT_TRUE(Wait(absl::Seconds(10)));
  // ... also after data arrives that nobody waits for yet.
  ASSERT_TRUE(client.SendAll("two").ok());
  EXPECT_TRUE(Wait(absl::Seconds(10)));
  EXPECT_EQ(*server.Recv(100), "two");
}

TEST_F(SocketTest, HalfCloseGivesEndOfStreamAfterTheData) {
  auto [client, server] = ConnectedPair();
  ASSERT_TRUE(client.SendAll("last words").ok());
  ASSERT_TRUE(client.Shutdown(SHUT_WR).ok());
  char buf[64];
  ASSERT_TRUE(server.RecvExactly(absl::MakeSpan(buf, 10)).ok());
  EXPECT_EQ(std::string(buf, 10), "last words");
  EXPECT_EQ(*server.RecvInto(absl::MakeSpan(buf)), 0u);
  // The other direction still works.
  ASSERT_TRUE(server.SendAll("ack").ok());
  EXPECT_EQ(*client.Recv(10), "ack");
  absl::Status short_read = server.RecvExactly(absl::MakeSpan(buf, 4));
  EXPECT_TRUE(absl::IsOutOfRange(short_read)) << short_read;
  EXPECT_THAT(std::string(short_read.message()), HasSubstr("ended after 0 of 4 bytes"));
}

TEST_F(SocketTest, ShutdownRejectsABadHow) {
  auto [client, server] = ConnectedPair();
  absl::Status s = client.Shutdown(42);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("SHUT_RD, SHUT_WR or SHUT_RDWR, got 42"));
}

// ----- timeouts -----

TEST_F(SocketTest, RecvTimesOutWithTheSocketDefault) {
  auto [client, server] = ConnectedPair();
  server.SetTimeout(absl::Milliseconds(20));
  EXPECT_EQ(server.timeout(), absl::Milliseconds(20));
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> got = server.Recv(10);
  ASSERT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(19));
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("gevent::Socket::RecvInto 127.0.0.1:"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("timed out after 20ms"));
  EXPECT_EQ(SocketErrno(got.status()), ETIMEDOUT);
  // The socket still works after a timeout.
  ASSERT_TRUE(client.SendAll("late").ok());
  EXPECT_EQ(*server.Recv(10), "late");
}

TEST_F(SocketTest, PerCallTimeoutOverridesTheDefault) {
  auto [client, server] = ConnectedPair();
  server.SetTimeout(absl::Hours(1));
  char buf[8];
  absl::StatusOr<size_t> n = server.RecvInto(absl::MakeSpan(buf), absl::Milliseconds(5));
  EXPECT_TRUE(absl::IsDeadlineExceeded(n.status())) << n.status();
  // And "forever" overrides a short default: the data sent by another greenlet arrives.
  server.SetTimeout(absl::ZeroDuration());
  GreenletRef writer = Spawn([&client = client] { ASSERT_TRUE(client.SendAll("x").ok()); });
  n = server.RecvInto(absl::MakeSpan(buf), IoTimeout::Forever());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1u);
  writer->Join();
}

TEST_F(SocketTest, ZeroTimeoutIsNonBlocking) {
  auto [client, server] = ConnectedPair();
  server.SetTimeout(absl::ZeroDuration());
  const uint64_t parks = GetHub().stats().switches_to_hub;
  absl::StatusOr<std::string> got = server.Recv(10);
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("would block"));
  EXPECT_EQ(GetHub().stats().switches_to_hub, parks);  // It never parked.
  ASSERT_TRUE(client.SendAll("now").ok());
  // Data already there is read at once, even with a zero timeout (after a short read too).
  EXPECT_EQ(*server.Recv(1), "n");
  EXPECT_EQ(*server.Recv(10), "ow");
  EXPECT_TRUE(absl::IsDeadlineExceeded(server.Recv(10).status()));
}

TEST_F(SocketTest, SendAllHasOneDeadlineForAllTheData) {
  auto [client, server] = ConnectedPair();
  ASSERT_TRUE(client.SetSendBufferSize(4096).ok());
  // Nobody reads: the buffers fill and SendAll runs out of time.
  const std::string big = Pattern(8 << 20);
  absl::Status s = client.SendAll(big, absl::Milliseconds(30));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("gevent::Socket::SendAll"));
}

TEST_F(SocketTest, SendReturnsAPartialCountWhenTheBufferFills) {
  auto [client, server] = ConnectedPair();
  ASSERT_TRUE(client.SetSendBufferSize(4096).ok());
  ASSERT_TRUE(server.SetReceiveBufferSize(4096).ok());
  const std::string big = Pattern(4 << 20);
  absl::StatusOr<size_t> sent = client.Send(big);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_GT(*sent, 0u);
  EXPECT_LT(*sent, big.size());
}

TEST_F(SocketTest, SendAllWritesEverythingThroughASmallBuffer) {
  auto [client, server] = ConnectedPair();
  ASSERT_TRUE(client.SetSendBufferSize(4096).ok());
  // Without it, Nagle's algorithm and delayed ACKs stall tiny TCP windows for 40 ms a time.
  ASSERT_TRUE(client.SetNoDelay(true).ok());
  const std::string data = Pattern(3 << 20);
  GreenletRef writer = Spawn([&client = client, &data] {
    ASSERT_TRUE(client.SendAll(data).ok());
    ASSERT_TRUE(client.Shutdown(SHUT_WR).ok());
  });
  std::string got;
  char buf[1000];  // Reads smaller than the writer's chunks: both sides park many times.
  for (;;) {
    absl::StatusOr<size_t> n = server.RecvInto(absl::MakeSpan(buf));
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    got.append(buf, *n);
  }
  writer->Join();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

// ----- closing and concurrent use -----

TEST_F(SocketTest, CloseWakesAGreenletWaitingToRead) {
  auto [client, server] = ConnectedPair();
  absl::Status result;
  GreenletRef reader = Spawn([&server = server, &result] {
    result = server.Recv(10).status();
  });
  Sleep(absl::ZeroDuration());  // The reader parks.
  ASSERT_FALSE(reader->dead());
  const int fd = server.fd();
  ASSERT_TRUE(server.Close().ok());
  EXPECT_FALSE(server.is_open());
  reader->Join();
  EXPECT_TRUE(absl::IsFailedPrecondition(result)) << result;
  EXPECT_THAT(std::string(result.message()),
              HasSubstr("File descriptor was closed in another greenlet"));
  EXPECT_THAT(std::string(result.message()), HasSubstr(absl::StrCat("(fd ", fd, ")")));
  EXPECT_EQ(SocketErrno(result), EBADF);
}

TEST_F(SocketTest, DestroyingASocketWakesItsWaitersWhichDoNotTouchIt) {
  auto pair = std::make_unique<std::pair<Socket, Socket>>(ConnectedPair());
  ASSERT_TRUE(pair->first.SetSendBufferSize(4096).ok());
  absl::Status read_result;
  absl::Status write_result;
  Socket* server = &pair->second;
  Socket* client = &pair->first;
  GreenletRef reader = Spawn([server, &read_result] { read_result = server->Recv(10).status(); });
  const std::string big = Pattern(8 << 20);
  GreenletRef writer = Spawn([client, &big, &write_result] { write_result = client->SendAll(big); });
  Sleep(absl::ZeroDuration());
  ASSERT_FALSE(reader->dead());
  ASSERT_FALSE(writer->dead());
  pair.reset();  // Both sockets, with a greenlet parked on each, are freed (ASan checks reuse).
  reader->Join();
  writer->Join();
  EXPECT_THAT(std::string(read_result.message()), HasSubstr("closed in another greenlet"));
  EXPECT_THAT(std::string(write_result.message()), HasSubstr("closed in another greenlet"));
}

TEST_F(SocketTest, CloseWakesAGreenletWaitingToAccept) {
  Socket listener = Listener();
  absl::Status result;
  GreenletRef acceptor = Spawn([&] { result = listener.Accept().status(); });
  Sleep(absl::ZeroDuration());
  ASSERT_TRUE(listener.Close().ok());
  acceptor->Join();
  EXPECT_THAT(std::string(result.message()),
              HasSubstr("gevent::Socket::Accept (fd"));
  EXPECT_THAT(std::string(result.message()), HasSubstr("closed in another greenlet"));
}

TEST_F(SocketTest, TwoGreenletsReadingOneSocketIsAUsageError) {
  auto [client, server] = ConnectedPair();
  GreenletRef first = Spawn([&server = server] { (void)server.Recv(10); });
  Sleep(absl::ZeroDuration());
  ASSERT_FALSE(first->dead());
  try {
    (void)server.Recv(10);
    ADD_FAILURE() << "a second reader was allowed";
  } catch (const ConcurrentObjectUseError& e) {
    EXPECT_THAT(e.what(), HasSubstr("another greenlet is already waiting to read from this socket"));
  }
  // One reader and one writer at once are fine: the first reader gets the data.
  ASSERT_TRUE(client.SendAll("x").ok());
  first->Join();
}

TEST_F(SocketTest, KillingAParkedReaderLeavesTheSocketUsable) {
  auto [client, server] = ConnectedPair();
  GreenletRef reader = Spawn([&server = server] { (void)server.Recv(10); });
  Sleep(absl::ZeroDuration());
  reader->Kill();
  EXPECT_TRUE(reader->dead());
  ASSERT_TRUE(client.SendAll("again").ok());
  EXPECT_EQ(*server.Recv(10), "again");  // No leftover waiter: a new reader may park.
}

// One poll queues the wake-ups of every reader it finds ready before any of them runs. Here two
// readers become ready together, and whichever runs first acts on the other while the other's
// wake-up is still queued: closing its socket must give it the close error (and free nothing it
// still uses: ASan checks), killing it must leave its data in its socket.
struct TwoQueuedReaders {
  std::pair<Socket, Socket> a = *Socket::Pair();
  std::pair<Socket, Socket> b = *Socket::Pair();
  Socket* readers[2] = {&a.second, &b.second};
  absl::StatusOr<std::string> results[2];
  int first = -1;

  // Runs both readers; `act(other)` is called by the first one to get its data.
  template <typename Act>
  void Run(Act act) {
    GreenletRef greenlets[2];
    for (int i = 0; i < 2; ++i) {
      greenlets[i] = Spawn([this, i, &act, &greenlets] {
        results[i] = readers[i]->Recv(10);
        if (first < 0) {
          first = i;
          act(1 - i, greenlets[1 - i]);
        }
      });
    }
    Sleep(absl::ZeroDuration());  // Both park.
    EXPECT_TRUE(a.first.SendAll("x").ok());
    EXPECT_TRUE(b.first.SendAll("y").ok());
    for (GreenletRef& g : greenlets) g->Join();
  }
};

TEST_F(SocketTest, ClosingASocketWhoseReaderIsQueuedGivesThatReaderTheCloseError) {
  TwoQueuedReaders t;
  t.Run([&t](int other, GreenletRef&) { EXPECT_TRUE(t.readers[other]->Close().ok()); });
  ASSERT_GE(t.first, 0);
  EXPECT_EQ(*t.results[t.first], t.first == 0 ? "x" : "y");
  const absl::Status other = t.results[1 - t.first].status();
  EXPECT_THAT(std::string(other.message()), HasSubstr("closed in another greenlet")) << other;
}

TEST_F(SocketTest, KillingAReaderWhoseWakeUpIsQueuedLosesNoData) {
  TwoQueuedReaders t;
  t.Run([](int, GreenletRef& other) { other->Kill(); });
  ASSERT_GE(t.first, 0);
  const int other = 1 - t.first;
  const std::string sent = other == 0 ? "x" : "y";
  // The kill reaches the other reader through the ready queue, after its queued wake-up or
  // instead of it: either it got its byte, or the byte is still in its socket for a new reader.
  if (t.results[other].ok()) {
    EXPECT_EQ(*t.results[other], sent);
  } else {
    absl::StatusOr<std::string> again = t.readers[other]->Recv(10, absl::ZeroDuration());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, sent);
  }
}

// Readiness and the expiry of the same wait, found in one loop turn: whichever the loop runs
// first decides the result, and the other must not leave a stale wake-up behind (the fixture
// checks the ready queue is empty) or lose the byte.
TEST_F(SocketTest, ReadinessAndTimeoutInOneLoopTurnLoseNoData) {
  auto [writer, reader] = *Socket::Pair();
  absl::StatusOr<std::string> got;
  GreenletRef g = Spawn([&reader = reader, &got] { got = reader.Recv(10, absl::Milliseconds(2)); });
  Sleep(absl::ZeroDuration());  // Parks with its timer running.
  ASSERT_TRUE(writer.SendAll("x").ok());
  // Hold the thread past the timeout (a greenlet that does not yield), so that the next poll
  // finds both the readiness and the expired timer.
  absl::SleepFor(absl::Milliseconds(10));
  g->Join();
  if (got.ok()) {
    EXPECT_EQ(*got, "x");
  } else {
    EXPECT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
    absl::StatusOr<std::string> again = reader.Recv(10, absl::ZeroDuration());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, "x");
  }
  EXPECT_EQ(GetHub().ready_count(), 0u);
}

TEST_F(SocketTest, WaitReadableReturnsWhenDataArrivesAndReadsNothing) {
  auto [writer, reader] = *Socket::Pair();
  absl::Status ready = absl::UnknownError("not run");
  GreenletRef g = Spawn([&reader = reader, &ready] { ready = reader.WaitReadable(); });
  Sleep(absl::ZeroDuration());
  ASSERT_FALSE(g->dead());  // Parked: nothing to read yet.
  ASSERT_TRUE(writer.SendAll("abc").ok());
  g->Join();
  EXPECT_TRUE(ready.ok()) << ready;
  EXPECT_EQ(*reader.Recv(10, absl::ZeroDuration()), "abc");  // The bytes are all still there.
}

TEST_F(SocketTest, WaitReadableTimesOutAndWaitWritableIsReadyAtOnce) {
  auto [a, b] = *Socket::Pair();
  const absl::Status timed_out = b.WaitReadable(absl::Milliseconds(1));
  EXPECT_TRUE(absl::IsDeadlineExceeded(timed_out)) << timed_out;
  EXPECT_THAT(std::string(timed_out.message()), HasSubstr("WaitReadable"));
  EXPECT_TRUE(a.WaitWritable(absl::Seconds(5)).ok());
}

TEST_F(SocketTest, CancelWaitGivesTheWaiterTheErrorAndLeavesTheSocketUsable) {
  auto [writer, reader] = *Socket::Pair();
  absl::StatusOr<std::string> got;
  GreenletRef g = Spawn([&reader = reader, &got] { got = reader.Recv(10); });
  Sleep(absl::ZeroDuration());
  EXPECT_FALSE(reader.CancelWait(Socket::Side::kWrite, absl::AbortedError("x")));  // Nobody.
  EXPECT_TRUE(reader.CancelWait(Socket::Side::kRead, absl::AbortedError("response overdue")));
  g->Join();
  EXPECT_TRUE(absl::IsAborted(got.status())) << got.status();
  EXPECT_EQ(got.status().message(), "response overdue");
  // Still open, and a new reader may park: no leftover waiter, wake-up or timer.
  EXPECT_TRUE(reader.is_open());
  GreenletRef again = Spawn([&reader = reader, &got] { got = reader.Recv(10); });
  Sleep(absl::ZeroDuration());
  ASSERT_TRUE(writer.SendAll("late").ok());
  again->Join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "late");
}

TEST_F(SocketTest, CancelWaitRejectsAnOkStatus) {
  auto [a, b] = *Socket::Pair();
  EXPECT_THROW(a.CancelWait(Socket::Side::kRead, absl::OkStatus()), UsageError);
}

TEST_F(SocketTest, OperationsOnAClosedSocketFailClearly) {
  Socket s;
  EXPECT_FALSE(s.is_open());
  EXPECT_EQ(s.fd(), -1);
  char buf[4];
  for (absl::Status st : {s.RecvInto(absl::MakeSpan(buf)).status(), s.Send("x").status(),
                          s.SendAll("x"), s.Connect(SocketAddress::Loopback(1)),
                          s.Bind(SocketAddress::Loopback(0)), s.Listen(), s.Accept().status(),
                          s.Shutdown(SHUT_RDWR), s.SetNoDelay(true),
                          s.LocalAddress().status()}) {
    EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("the socket is closed"));
    EXPECT_THAT(std::string(st.message()), HasSubstr("[EBADF]"));
  }
  EXPECT_TRUE(s.Close().ok());  // Closing twice is fine.
  absl::StatusOr<Socket> real = Socket::Create(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(real.ok());
  ASSERT_TRUE(real->Close().ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(real->Send("x").status()));
}

TEST_F(SocketTest, MovedSocketKeepsItsWaiter) {
  auto [client, server] = ConnectedPair();
  auto holder = std::make_unique<Socket>(std::move(server));
  std::string got;
  GreenletRef reader = Spawn([&holder, &got] { got = *holder->Recv(10); });
  Sleep(absl::ZeroDuration());
  Socket moved = std::move(*holder);  // The parked state lives on the heap, unmoved.
  ASSERT_TRUE(client.SendAll("moved").ok());
  reader->Join();
  EXPECT_EQ(got, "moved");
  EXPECT_TRUE(moved.is_open());
}

// ----- connect errors -----

TEST_F(SocketTest, ConnectRefusedReportsTheRealError) {
  // A bound socket that does not listen holds the port, so the connect is refused for sure.
  absl::StatusOr<Socket> holder = Socket::Create(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(holder->Bind(SocketAddress::Loopback(0)).ok());
  SocketAddress target = *holder->LocalAddress();
  absl::StatusOr<Socket> client = Socket::Create(AF_INET, SOCK_STREAM);
  absl::Status s = client->Connect(target);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("gevent::Socket::Connect to " + target.ToString()));
  EXPECT_THAT(std::string(s.message()), HasSubstr("Connection refused [ECONNREFUSED]"));
  EXPECT_EQ(SocketErrno(s), ECONNREFUSED);
}

TEST_F(SocketTest, ConnectTimesOutAgainstAFullBacklog) {
  // A listener that never accepts, with the smallest backlog: once its queue is full the kernel
  // drops further SYNs, so a connect stays in progress until the timeout.
  Socket listener = Listener(AF_INET, /*backlog=*/0);
  SocketAddress target = *listener.LocalAddress();
  std::vector<Socket> clients;
  absl::Status last;
  for (int i = 0; i < 16 && last.ok(); ++i) {
    absl::StatusOr<Socket> c = Socket::Create(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(c.ok());
    last = c->Connect(target, absl::Milliseconds(100));
    clients.push_back(std::move(*c));
  }
  ASSERT_FALSE(last.ok()) << "16 connects to a full backlog all succeeded";
  EXPECT_TRUE(absl::IsDeadlineExceeded(last)) << last;
  EXPECT_THAT(std::string(last.message()),
              HasSubstr("gevent::Socket::Connect to " + target.ToString()));
  EXPECT_THAT(std::string(last.message()), HasSubstr("timed out after 100ms"));
}

TEST_F(SocketTest, BindToAnAddressInUseFails) {
  Socket listener = Listener();
  SocketAddress taken = *listener.LocalAddress();
  absl::StatusOr<Socket> other = Socket::Create(AF_INET, SOCK_STREAM);
  absl::Status s = other->Bind(taken);
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("Address already in use [EADDRINUSE]"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(taken.ToString()));
}

// ----- UDP and Unix -----

TEST_F(SocketTest, UdpRoundTrip) {
  absl::StatusOr<Socket> a = Socket::Create(AF_INET, SOCK_DGRAM);
  absl::StatusOr<Socket> b = Socket::Create(AF_INET, SOCK_DGRAM);
  ASSERT_TRUE(a->Bind(SocketAddress::Loopback(0)).ok());
  ASSERT_TRUE(b->Bind(SocketAddress::Loopback(0)).ok());
  const SocketAddress a_addr = *a->LocalAddress();
  const SocketAddress b_addr = *b->LocalAddress();
  GreenletRef responder = Spawn([&] {
    char buf[64];
    SocketAddress from;
    absl::StatusOr<size_t> n = b->RecvFrom(absl::MakeSpan(buf), &from);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(from, a_addr);
    ASSERT_TRUE(b->SendTo(absl::StrCat("re:", absl::string_view(buf, *n)), from).ok());
  });
  ASSERT_EQ(*a->SendTo("ping", b_addr), 4u);
  char buf[64];
  SocketAddress from;
  absl::StatusOr<size_t> n = a->RecvFrom(absl::MakeSpan(buf), &from, absl::Seconds(10));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(std::string(buf, *n), "re:ping");
  EXPECT_EQ(from, b_addr);
  responder->Join();
}

// TempPath: a short path for a Unix socket (Bazel's TEST_TMPDIR is longer than sun_path allows).
std::string TempPath(const std::string& name) {
  std::string path = absl::StrCat("/tmp/", name, ".", getpid());
  ::unlink(path.c_str());
  return path;
}

TEST_F(SocketTest, UnixStreamSocketsByPathAndAbstractName) {
  for (std::string text : {TempPath("gevent-sock"), absl::StrCat("@gevent-test-", getpid())}) {
    absl::StatusOr<SocketAddress> where = SocketAddress::Parse(text);
    ASSERT_TRUE(where.ok()) << where.status();
    absl::StatusOr<Socket> listener = Socket::Create(AF_UNIX, SOCK_STREAM);
    ASSERT_TRUE(listener->Bind(*where).ok());
    ASSERT_TRUE(listener->Listen().ok());
    EXPECT_EQ(listener->LocalAddress()->ToString(), text);
    GreenletRef server = Spawn([&] {
      absl::StatusOr<Socket> conn = listener->Accept();
      ASSERT_TRUE(conn.ok()) << conn.status();
      absl::StatusOr<std::string> got = conn->Recv(100);
      ASSERT_TRUE(got.ok());
      ASSERT_TRUE(conn->SendAll(absl::StrCat("unix:", *got)).ok());
    });
    absl::StatusOr<Socket> client = Socket::Create(AF_UNIX, SOCK_STREAM);
    ASSERT_TRUE(client->Connect(*where).ok());
    ASSERT_TRUE(client->SendAll("hi").ok());
    char buf[16];
    ASSERT_TRUE(client->RecvExactly(absl::MakeSpan(buf, 7)).ok());
    EXPECT_EQ(std::string(buf, 7), "unix:hi");
    server->Join();
    if (text[0] == '/') ::unlink(text.c_str());
  }
}

TEST_F(SocketTest, SocketpairAndUnixDatagrams) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair(SOCK_DGRAM);
  ASSERT_TRUE(pair.ok());
  ASSERT_TRUE(pair->first.SendAll("one").ok());
  ASSERT_TRUE(pair->first.SendAll("two").ok());
  // Datagram boundaries are kept (no short-read shortcut for datagram sockets).
  EXPECT_EQ(*pair->second.Recv(100), "one");
  EXPECT_EQ(*pair->second.Recv(100), "two");
}

// ----- adopting and detaching -----

TEST_F(SocketTest, AdoptAndDetach) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);  // Blocking fds.
  absl::StatusOr<Socket> a = Socket::Adopt(fds[0]);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_UNIX);
  EXPECT_EQ(a->type(), SOCK_STREAM);
  EXPECT_NE(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
  // A Recv on the adopted fd parks instead of blocking the thread.
  a->SetTimeout(absl::Milliseconds(5));
  EXPECT_TRUE(absl::IsDeadlineExceeded(a->Recv(4).status()));
  const int fd = a->Detach();
  EXPECT_EQ(fd, fds[0]);
  EXPECT_FALSE(a->is_open());
  EXPECT_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);  // Still open: Detach did not close it.
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(a->Detach(), -1);
}

TEST_F(SocketTest, AdoptRejectsWhatIsNotASocket) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  absl::StatusOr<Socket> s = Socket::Adopt(p[0]);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("not a socket"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("[ENOTSOCK]"));
  EXPECT_EQ(fcntl(p[0], F_GETFD), 0) << "the fd must stay open when Adopt fails";
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_TRUE(absl::IsInvalidArgument(Socket::Adopt(-1).status()));
}

TEST_F(SocketTest, OptionsRoundTrip) {
  auto [client, server] = ConnectedPair();
  ASSERT_TRUE(client.SetNoDelay(true).ok());
  EXPECT_EQ(*client.GetOption(IPPROTO_TCP, TCP_NODELAY), 1);
  ASSERT_TRUE(client.SetKeepAlive(true).ok());
  EXPECT_EQ(*client.GetOption(SOL_SOCKET, SO_KEEPALIVE), 1);
  ASSERT_TRUE(client.SetReuseAddr(true).ok());
  ASSERT_TRUE(client.SetReusePort(true).ok());
  EXPECT_EQ(*client.GetOption(SOL_SOCKET, SO_REUSEPORT), 1);
  absl::Status bad = client.SetOption(SOL_SOCKET, 12345, 1);
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), HasSubstr("option 12345"));
}

}  // namespace
}  // namespace gevent
