#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "base/errno.h"
#include "base/errors.h"
#include "base/syscall.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

TEST(ErrnoError, NamesOperationWhereTextAndErrno) {
  absl::Status s = ErrnoError(ECONNREFUSED, "gevent::Socket::Connect", "to 127.0.0.1:1");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "gevent::Socket::Connect to 127.0.0.1:1: Connection refused [ECONNREFUSED]");
  EXPECT_EQ(ErrnoOf(s), ECONNREFUSED);
}

TEST(ErrnoError, EmptyWhereAndExtra) {
  absl::Status s = ErrnoError(EBADF, "op", "", "the socket is closed: ");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "op: the socket is closed: Bad file descriptor [EBADF]");
}

TEST(ErrnoCode, TimeoutsAreDeadlineExceededAndTheRestFollowTheRule) {
  EXPECT_EQ(ErrnoCode(EAGAIN), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrnoCode(ETIMEDOUT), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrnoCode(EPIPE), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoCode(EMFILE), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoCode(EADDRINUSE), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoCode(EACCES), absl::StatusCode::kPermissionDenied);
  // Not in the stack's own table: abseil's mapping.
  EXPECT_EQ(ErrnoCode(ENOSPC), absl::ErrnoToStatus(ENOSPC, "").code());
}

TEST(ErrnoText, UnknownErrnoStillReadable) {
  EXPECT_THAT(ErrnoText(EINTR), HasSubstr("[EINTR]"));
  EXPECT_THAT(ErrnoText(100000), HasSubstr("[errno 100000]"));
}

TEST(ErrnoOf, AbsentOnStatusesWithoutOne) {
  EXPECT_EQ(ErrnoOf(absl::OkStatus()), std::nullopt);
  EXPECT_EQ(ErrnoOf(absl::UnavailableError("x")), std::nullopt);
  EXPECT_EQ(ErrnoOf(WithErrno(absl::DeadlineExceededError("t"), ETIMEDOUT)), ETIMEDOUT);
  // An OK status carries nothing.
  EXPECT_EQ(ErrnoOf(WithErrno(absl::OkStatus(), EINVAL)), std::nullopt);
}

TEST(UsageError, IsALogicError) {
  try {
    throw UsageError("misuse");
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "misuse");
  }
}

TEST(Syscalls, RecvFromSendToAndPollNow) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  EXPECT_EQ(sys::PollNow(fds[0], POLLIN), 0);
  char buf[8];
  EXPECT_EQ(sys::RecvFrom(fds[0], buf, sizeof buf, 0, nullptr, nullptr), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(sys::SendTo(fds[1], "hi", 2, MSG_NOSIGNAL, nullptr, 0), 2);
  EXPECT_EQ(sys::PollNow(fds[0], POLLIN), 1);
  EXPECT_EQ(sys::RecvFrom(fds[0], buf, sizeof buf, 0, nullptr, nullptr), 2);
  EXPECT_EQ(std::memcmp(buf, "hi", 2), 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(sys::PollNow(fds[0], POLLIN), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace gevent
