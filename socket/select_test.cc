#include "socket/select.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/spawn.h"

namespace gevent {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    close(r);
    close(w);
  }
};

TEST(PollTest, ReadyAtOnceAndWritable) {
  Pipe p;
  pollfd fds[2] = {{p.r, POLLIN, 0}, {p.w, POLLOUT, 0}};
  absl::StatusOr<int> n = Poll(fds, 2, absl::Seconds(1));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_EQ(fds[1].revents, POLLOUT);
}

TEST(PollTest, TimeoutReturnsZeroAfterTheTimeout) {
  Pipe p;
  pollfd fds[1] = {{p.r, POLLIN, 0}};
  const absl::Time start = absl::Now();
  absl::StatusOr<int> n = Poll(fds, 1, absl::Milliseconds(30));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  // Zero: no wait.
  EXPECT_EQ(*Poll(fds, 1, absl::ZeroDuration()), 0);
}

TEST(PollTest, OtherGreenletsRunAndWakeThePoll) {
  Pipe p;
  int ticks = 0;
  GreenletRef writer = Spawn([&] {
    for (int i = 0; i < 3; ++i) {
      ++ticks;
      Sleep(absl::Milliseconds(2));
    }
    ASSERT_EQ(write(p.w, "x", 1), 1);
  });
  pollfd fds[2] = {{p.r, POLLIN, 0}, {-1, POLLIN, 0}};
  absl::StatusOr<int> n = Poll(fds, 2, absl::Seconds(5));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(fds[0].revents, POLLIN);
  EXPECT_EQ(fds[1].revents, 0);  // Negative fd: ignored.
  EXPECT_EQ(ticks, 3);
  writer->Join();
}

TEST(PollTest, RegularFileIsReadyAndBadFdIsNval) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  int bad = dup(0);
  close(bad);
  pollfd fds[2] = {{fileno(f), POLLIN | POLLOUT, 0}, {bad, POLLIN, 0}};
  absl::StatusOr<int> n = Poll(fds, 2, std::nullopt);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(fds[0].revents, POLLIN | POLLOUT);
  EXPECT_EQ(fds[1].revents, POLLNVAL);
  std::fclose(f);
}

TEST(PollTest, WakePollersWakesAWaitOnAClosedFd) {
  Pipe p;
  int other = dup(p.r);
  GreenletRef closer = Spawn([&] {
    Sleep(absl::Milliseconds(5));
    EXPECT_EQ(internal::WakePollers(other), 1);
    close(other);
  });
  pollfd fds[1] = {{other, POLLIN, 0}};
  absl::StatusOr<int> n = Poll(fds, 1, absl::Seconds(5));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(fds[0].revents, POLLNVAL);
  closer->Join();
}

TEST(PollTest, HangupWakesAReader) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  GreenletRef g = Spawn([&] {
    Sleep(absl::Milliseconds(2));
    close(sv[1]);
  });
  pollfd fds[1] = {{sv[0], POLLIN, 0}};
  absl::StatusOr<int> n = Poll(fds, 1, absl::Seconds(5));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(fds[0].revents & (POLLIN | POLLHUP));
  g->Join();
  close(sv[0]);
}

TEST(SelectTest, ConvertsSetsAndCounts) {
  Pipe p;
  GreenletRef writer = Spawn([&] {
    Sleep(absl::Milliseconds(2));
    ASSERT_EQ(write(p.w, "x", 1), 1);
  });
  fd_set r, w;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_SET(p.r, &r);
  absl::StatusOr<int> n = Select(p.r + 1, &r, &w, nullptr, absl::Seconds(5));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(FD_ISSET(p.r, &r));
  writer->Join();
  // Both sides at once: readable and writable.
  FD_SET(p.r, &r);
  FD_SET(p.w, &w);
  const int nfds = std::max(p.r, p.w) + 1;
  n = Select(nfds, &r, &w, nullptr, absl::ZeroDuration());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  // Timeout: 0 and empty sets.
  char c;
  ASSERT_EQ(read(p.r, &c, 1), 1);
  FD_SET(p.r, &r);
  n = Select(p.r + 1, &r, nullptr, nullptr, absl::Milliseconds(5));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_FALSE(FD_ISSET(p.r, &r));
}

TEST(SelectTest, BadFdIsEbadfAndBadNfdsEinval) {
  int bad = dup(0);
  close(bad);
  fd_set r;
  FD_ZERO(&r);
  FD_SET(bad, &r);
  absl::StatusOr<int> n = Select(bad + 1, &r, nullptr, nullptr, absl::ZeroDuration());
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(ErrnoOf(n.status()), EBADF);
  n = Select(-1, nullptr, nullptr, nullptr, absl::ZeroDuration());
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(ErrnoOf(n.status()), EINVAL);
}

}  // namespace
}  // namespace gevent
