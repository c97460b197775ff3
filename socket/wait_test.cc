#include "socket/wait.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"
#include "hub/timeout.h"
#include "socket/socket.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

// Pipe: a non-blocking pipe that no Socket owns — an fd "some other code" holds.
struct Pipe {
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) std::abort();
    read_fd = fds[0];
    write_fd = fds[1];
  }
  ~Pipe() {
    if (read_fd >= 0) close(read_fd);
    if (write_fd >= 0) close(write_fd);
  }
  // Fill writes until the pipe is full.
  void Fill() const {
    static const std::string chunk(4096, 'x');
    while (write(write_fd, chunk.data(), chunk.size()) > 0) {
    }
  }
  int read_fd;
  int write_fd;
};

class WaitTest : public HubTestFixture {};

TEST_F(WaitTest, WaitReadParksUntilAnotherGreenletWrites) {
  Pipe p;
  std::vector<std::string> order;
  GreenletRef reader = Spawn([&] {
    order.push_back("wait");
    EXPECT_TRUE(WaitRead(p.read_fd, absl::Seconds(10)).ok());
    order.push_back("readable");
  });
  Spawn([&] {
    order.push_back("write");
    ASSERT_EQ(write(p.write_fd, "a", 1), 1);
  });
  Wait();
  EXPECT_THAT(order, ::testing::ElementsAre("wait", "write", "readable"));
  EXPECT_TRUE(reader->successful());
}

TEST_F(WaitTest, ReadyAtOnceDoesNotPark) {
  Pipe p;
  ASSERT_EQ(write(p.write_fd, "a", 1), 1);
  EXPECT_TRUE(WaitRead(p.read_fd).ok());
  EXPECT_TRUE(WaitWrite(p.write_fd, absl::ZeroDuration()).ok());
  EXPECT_TRUE(WaitReadWrite(p.read_fd, absl::ZeroDuration()).ok());
}

TEST_F(WaitTest, TimeoutIsDeadlineExceededNamingTheCallAndFd) {
  Pipe p;
  absl::Status s = WaitRead(p.read_fd, absl::Milliseconds(5));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("gevent::WaitRead"));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("(fd ", p.read_fd, ")")));
  absl::Status now = WaitRead(p.read_fd, absl::ZeroDuration());
  EXPECT_TRUE(absl::IsDeadlineExceeded(now)) << now;
  EXPECT_THAT(now.message(), HasSubstr("would block"));
  // The wait let go of its registration: the same fd can be waited on again.
  ASSERT_EQ(write(p.write_fd, "a", 1), 1);
  EXPECT_TRUE(WaitRead(p.read_fd, absl::Seconds(10)).ok());
}

TEST_F(WaitTest, WaitWriteParksUntilThereIsRoom) {
  Pipe p;
  p.Fill();
  bool drained = false;
  Spawn([&] {
    EXPECT_TRUE(WaitWrite(p.write_fd, absl::Seconds(10)).ok());
    EXPECT_TRUE(drained);
  });
  Spawn([&] {
    char buf[4096];  // Greenlet stacks are small.
    while (read(p.read_fd, buf, sizeof buf) > 0) {
    }
    drained = true;
  });
  Wait();
  EXPECT_TRUE(drained);
}

TEST_F(WaitTest, WaitReadWriteEndsOnEitherSide) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  // A raw fd that nothing in the stack owns: the socket's fd, detached.
  const int fd = pair->first.Detach();
  // Fill its send buffer so that it is neither readable nor writable.
  static const std::string chunk(65536, 'x');
  while (send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  EXPECT_TRUE(absl::IsDeadlineExceeded(WaitReadWrite(fd, absl::Milliseconds(2))));
  Spawn([&] { EXPECT_TRUE(WaitReadWrite(fd, absl::Seconds(10)).ok()); });
  Spawn([&] { ASSERT_TRUE(pair->second.SendAll("r").ok()); });  // Readable first.
  Wait();
  close(fd);
}

TEST_F(WaitTest, AReaderAndAWriterOfOneFdEachEndOnTheirOwnSide) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const int fd = pair->first.Detach();  // Owned by no Socket from here on.
  static const std::string chunk(65536, 'x');
  while (send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  std::vector<std::string> order;
  Event reader_done;
  Spawn([&] {
    EXPECT_TRUE(WaitRead(fd, absl::Seconds(10)).ok());
    order.push_back("readable");
    reader_done.Set();
  });
  Spawn([&] {
    // The reader leaving first must not end this wait (they share one registration).
    absl::Status s = WaitWrite(fd, absl::Seconds(10));
    EXPECT_TRUE(s.ok()) << s;
    order.push_back("writable");
  });
  Spawn([&] {
    ASSERT_TRUE(pair->second.SendAll("r").ok());
    ASSERT_TRUE(reader_done.Wait(absl::Seconds(10)));
    order.push_back("drain");
    char buf[4096];
    for (;;) {
      absl::StatusOr<size_t> n = pair->second.RecvInto(absl::MakeSpan(buf), absl::ZeroDuration());
      if (!n.ok() || *n == 0) break;
    }
  });
  Wait();
  EXPECT_THAT(order, ::testing::ElementsAre("readable", "drain", "writable"));
  close(fd);
}

TEST_F(WaitTest, ASecondReaderIsConcurrentObjectUse) {
  Pipe p;
  GreenletRef first = Spawn([&] { EXPECT_TRUE(WaitRead(p.read_fd, absl::Seconds(10)).ok()); });
  Spawn([&] {
    try {
      (void)WaitRead(p.read_fd, absl::Seconds(10));
      ADD_FAILURE() << "a second reader was allowed";
    } catch (const ConcurrentObjectUseError& e) {
      EXPECT_THAT(e.what(), HasSubstr("another greenlet is already waiting to read"));
    }
    ASSERT_EQ(write(p.write_fd, "a", 1), 1);
  });
  Wait();
  EXPECT_TRUE(first->successful());
}

TEST_F(WaitTest, CancelWaitWakesTheWaiterWithTheCloseErrorAndLetsGoOfTheFd) {
  auto p = std::make_unique<Pipe>();
  const int fd = p->read_fd;
  absl::Status got;
  Spawn([&] { got = WaitRead(fd); });
  Spawn([&] {
    EXPECT_EQ(CancelWait(fd), 1);
    p.reset();  // The owner closes the fd right after announcing it.
  });
  Wait();
  EXPECT_TRUE(absl::IsFailedPrecondition(got)) << got;
  EXPECT_THAT(got.message(), HasSubstr("File descriptor was closed in another greenlet"));
  EXPECT_EQ(ErrnoOf(got), EBADF);
  // The fd number is free again, and a new fd with it is waited on afresh.
  Pipe again;
  ASSERT_EQ(write(again.write_fd, "a", 1), 1);
  EXPECT_TRUE(WaitRead(again.read_fd, absl::Seconds(10)).ok());
}

TEST_F(WaitTest, CancelWaitWithAnErrorOfTheCallersAndMisuse) {
  Pipe p;
  EXPECT_EQ(CancelWait(p.read_fd), 0);  // Nobody waits.
  EXPECT_THROW(CancelWait(p.read_fd, absl::OkStatus()), UsageError);
  absl::Status got;
  Spawn([&] { got = WaitRead(p.read_fd); });
  Spawn([&] { EXPECT_EQ(CancelWait(p.read_fd, absl::CancelledError("shutting down")), 1); });
  Wait();
  EXPECT_TRUE(absl::IsCancelled(got)) << got;
}

TEST_F(WaitTest, BadDescriptors) {
  absl::Status negative = WaitRead(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(negative)) << negative;
  // The hub's own descriptors first, so that they do not take the numbers closed below.
  ASSERT_TRUE(GetHub().edge_poller().ok());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  close(fds[1]);
  absl::Status closed = WaitRead(fds[0], absl::Seconds(10));
  EXPECT_TRUE(absl::IsFailedPrecondition(closed)) << closed;
  EXPECT_EQ(ErrnoOf(closed), EBADF);
}

TEST_F(WaitTest, ARegularFileIsAlwaysReady) {
  char path[] = "/tmp/gevent-wait-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  EXPECT_TRUE(WaitRead(fd, absl::Seconds(10)).ok());
  EXPECT_TRUE(WaitWrite(fd, absl::Seconds(10)).ok());
  close(fd);
}

TEST_F(WaitTest, ATimeoutThrownIntoTheWaiterLeavesNothingBehind) {
  Pipe p;
  Spawn([&] {
    try {
      Timeout t(absl::Milliseconds(2));
      (void)WaitRead(p.read_fd);
      ADD_FAILURE() << "the wait outlived its Timeout";
    } catch (const TimeoutError&) {
    }
  });
  Wait();
  // No waiter and no registration is left: a new wait parks and ends normally.
  Spawn([&] { EXPECT_TRUE(WaitRead(p.read_fd, absl::Seconds(10)).ok()); });
  Spawn([&] { ASSERT_EQ(write(p.write_fd, "a", 1), 1); });
  Wait();
}

// A socket's fd: the wait shares the socket's readiness and its rules.
TEST_F(WaitTest, OnASocketsFdTheSocketsRulesHold) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  Socket& a = pair->first;
  Socket& b = pair->second;
  Spawn([&] {
    char buf[8];
    absl::StatusOr<size_t> n = a.RecvInto(absl::MakeSpan(buf), absl::Seconds(10));
    EXPECT_TRUE(n.ok()) << n.status();
  });
  Spawn([&] {
    EXPECT_THROW((void)WaitRead(a.fd(), absl::Seconds(10)), ConcurrentObjectUseError);
    ASSERT_TRUE(b.SendAll("x").ok());
  });
  Wait();
  // Closing the socket wakes a WaitRead on its fd with the close error.
  absl::Status got;
  Spawn([&] { got = WaitRead(a.fd()); });
  Spawn([&] { ASSERT_TRUE(a.Close().ok()); });
  Wait();
  EXPECT_TRUE(absl::IsFailedPrecondition(got)) << got;
  EXPECT_THAT(got.message(), HasSubstr("closed in another greenlet"));
}

TEST_F(WaitTest, FromTheHubGreenletIsBlockingInHub) {
  Pipe p;
  bool threw = false;
  GetHub().Schedule([&] {
    try {
      (void)WaitRead(p.read_fd);
    } catch (const BlockingInHubError&) {
      threw = true;
    }
  });
  Wait();
  EXPECT_TRUE(threw);
}

}  // namespace
}  // namespace gevent
