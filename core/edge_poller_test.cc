#include "core/edge_poller.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/loop.h"
#include "core/testing/pipe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

// Recorder: a handle that keeps the event bits of each report.
struct Recorder : EdgePoller::Handle {
  Recorder() {
    on_events = [](EdgePoller::Handle* self, std::uint32_t events) {
      static_cast<Recorder*>(self)->reports.push_back(events);
    };
  }
  std::vector<std::uint32_t> reports;
};

std::unique_ptr<Loop> NewLoop() {
  absl::StatusOr<std::unique_ptr<Loop>> loop = Loop::Create();
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(*loop);
}

std::unique_ptr<EdgePoller> NewPoller(Loop& loop) {
  absl::StatusOr<std::unique_ptr<EdgePoller>> poller = EdgePoller::Create(loop);
  EXPECT_TRUE(poller.ok()) << poller.status();
  return std::move(*poller);
}

// Every test: a loop of its own, a set on it, and a pipe to watch.
class EdgePollerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Loop> loop = NewLoop();
  std::unique_ptr<EdgePoller> poller = NewPoller(*loop);
  testutil::TestPipe pipe;
};

void WriteByte(int fd) { ASSERT_EQ(write(fd, "x", 1), 1); }

TEST_F(EdgePollerTest, ReportsEachChangeOnceNotTheLastingState) {
  Recorder r;
  ASSERT_TRUE(poller->Add(pipe.read_fd, &r).ok());
  EXPECT_EQ(poller->Dispatch(), 0);  // Nothing to read yet.
  WriteByte(pipe.write_fd);
  EXPECT_EQ(poller->Dispatch(), 1);
  ASSERT_EQ(r.reports.size(), 1u);
  EXPECT_TRUE(r.reports[0] & EPOLLIN);
  // Still readable (the byte is unread), but nothing changed: no second report.
  EXPECT_EQ(poller->Dispatch(), 0);
  EXPECT_EQ(r.reports.size(), 1u);
  WriteByte(pipe.write_fd);  // A change: reported again although nothing was read.
  EXPECT_EQ(poller->Dispatch(), 1);
  EXPECT_EQ(r.reports.size(), 2u);
}

TEST_F(EdgePollerTest, ADescriptorReadyWhenAddedIsReportedOnce) {
  WriteByte(pipe.write_fd);
  Recorder r;
  ASSERT_TRUE(poller->Add(pipe.read_fd, &r).ok());
  EXPECT_EQ(poller->Dispatch(), 1);
  EXPECT_EQ(poller->Dispatch(), 0);
  EXPECT_EQ(r.reports.size(), 1u);
}

TEST_F(EdgePollerTest, ReportsOutputAndHangUp) {
  Recorder writer;
  ASSERT_TRUE(poller->Add(pipe.write_fd, &writer).ok());
  EXPECT_EQ(poller->Dispatch(), 0);  // Room to write is reported only when asked for.
  ASSERT_TRUE(poller->WatchOutput(pipe.write_fd, &writer).ok());
  EXPECT_EQ(poller->Dispatch(), 1);  // An empty pipe has room.
  ASSERT_EQ(writer.reports.size(), 1u);
  EXPECT_TRUE(writer.reports[0] & EPOLLOUT);

  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  Recorder reader;
  ASSERT_TRUE(poller->Add(fds[0], &reader).ok());
  close(fds[1]);  // The only writer goes: the read end hangs up.
  EXPECT_EQ(poller->Dispatch(), 1);
  ASSERT_EQ(reader.reports.size(), 1u);
  EXPECT_TRUE(reader.reports[0] & EPOLLHUP);
  poller->Remove(fds[0]);
  close(fds[0]);
}

TEST_F(EdgePollerTest, RemovedDescriptorsAreNotReported) {
  Recorder r;
  ASSERT_TRUE(poller->Add(pipe.read_fd, &r).ok());
  WriteByte(pipe.write_fd);
  poller->Remove(pipe.read_fd);  // Even a change that came before the removal.
  EXPECT_EQ(poller->Dispatch(), 0);
  WriteByte(pipe.write_fd);
  EXPECT_EQ(poller->Dispatch(), 0);
  EXPECT_TRUE(r.reports.empty());
  poller->Remove(pipe.read_fd);  // Twice, or never added: no effect.
  poller->Remove(12345);
}

TEST_F(EdgePollerTest, TheLoopDispatchesWhenTheSetBecomesReady) {
  EXPECT_EQ(loop->active_watcher_count(), 1u);  // The set's own watcher.
  // Unreferenced: on its own it does not keep the loop running.
  EXPECT_FALSE(loop->Run(RunMode::kDefault));
  Recorder r;
  ASSERT_TRUE(poller->Add(pipe.read_fd, &r).ok());
  WriteByte(pipe.write_fd);
  loop->Ref();  // As a waiting user does.
  loop->Run(RunMode::kOnce);
  loop->Unref();
  ASSERT_EQ(r.reports.size(), 1u);
  EXPECT_TRUE(r.reports[0] & EPOLLIN);
}

TEST_F(EdgePollerTest, AddRejectsBadArgumentsAndDescriptorsEpollCannotWatch) {
  Recorder r;
  try {
    (void)poller->Add(-1, &r);
    FAIL() << "no exception for fd -1";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("fd must be >= 0, got -1"));
  }
  EXPECT_THROW((void)poller->Add(pipe.read_fd, nullptr), UsageError);
  EdgePoller::Handle empty;
  EXPECT_THROW((void)poller->Add(pipe.read_fd, &empty), UsageError);

  ASSERT_TRUE(poller->Add(pipe.read_fd, &r).ok());
  absl::Status twice = poller->Add(pipe.read_fd, &r);
  EXPECT_EQ(twice.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(twice.message()),
              HasSubstr("(fd " + std::to_string(pipe.read_fd) + ")"));

  testutil::TestPipe other;
  absl::Status not_added = poller->WatchOutput(other.write_fd, &r);
  EXPECT_EQ(not_added.code(), absl::StatusCode::kNotFound) << not_added;
  EXPECT_THAT(std::string(not_added.message()), HasSubstr("WatchOutput (fd "));

  char path[] = "/tmp/edge_poller_test_XXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  absl::Status regular = poller->Add(file, &r);
  EXPECT_EQ(regular.code(), absl::StatusCode::kInvalidArgument) << regular;
  EXPECT_THAT(std::string(regular.message()), HasSubstr("(fd " + std::to_string(file) + ")"));
  close(file);
  absl::Status closed = poller->Add(file, &r);
  // A closed descriptor (EBADF) is FailedPrecondition (base/errors.h).
  EXPECT_EQ(closed.code(), absl::StatusCode::kFailedPrecondition) << closed;
}

TEST_F(EdgePollerTest, FindReturnsTheHandleOfARegisteredDescriptorOnly) {
  Recorder r;
  EXPECT_EQ(poller->Find(pipe.read_fd), nullptr);
  ASSERT_TRUE(poller->Add(pipe.read_fd, &r).ok());
  EXPECT_EQ(poller->Find(pipe.read_fd), &r);
  EXPECT_EQ(poller->Find(pipe.write_fd), nullptr);
  // A failed Add registers nothing.
  Recorder other;
  EXPECT_FALSE(poller->Add(pipe.read_fd, &other).ok());
  EXPECT_EQ(poller->Find(pipe.read_fd), &r);
  poller->Remove(pipe.read_fd);
  EXPECT_EQ(poller->Find(pipe.read_fd), nullptr);
}

}  // namespace
}  // namespace gevent
