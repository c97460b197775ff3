// After fork() the child's hub works: cooperative I/O between two greenlets in the child; the
// parent's hub still works too.
#include <errno.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/spawn.h"
#include "monkey/monkey.h"

namespace {

// PingPong: a reader greenlet blocks in read() on a socketpair while this one sleeps then writes.
bool PingPong() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
  char got = 0;
  gevent::GreenletRef reader = gevent::Spawn([&] {
    if (read(sv[0], &got, 1) != 1) got = '!';
  });
  usleep(2000);  // Cooperative: the reader parks in read meanwhile.
  if (write(sv[1], "x", 1) != 1) return false;
  reader->Join();
  close(sv[0]);
  close(sv[1]);
  return got == 'x';
}

TEST(ForkTest, ChildHubWorksAndParentToo) {
  gevent::monkey::PatchAll();
  ASSERT_TRUE(PingPong());  // The hub, its edge poller and loop exist before the fork.
  // The child reports through a pipe, not its exit status: libev's default loop has a SIGCHLD
  // handler whose callback reaps any child (waitpid(-1, WNOHANG), seen with strace), so a child
  // that exits while the parent's PingPong runs the loop is gone before our waitpid (ECHILD).
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const char ok = PingPong() && PingPong() ? 'y' : 'n';
    _exit(write(report[1], &ok, 1) == 1 ? 0 : 1);
  }
  close(report[1]);
  ASSERT_TRUE(PingPong());  // The parent, while the child runs.
  char child_ok = 0;
  EXPECT_EQ(read(report[0], &child_ok, 1), 1);  // Cooperative: parks until the child reports.
  EXPECT_EQ(child_ok, 'y');
  close(report[0]);
  int status = 0;
  const pid_t reaped = waitpid(pid, &status, 0);
  if (reaped == pid) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  } else {
    EXPECT_EQ(errno, ECHILD);  // Reaped by libev's SIGCHLD handling.
  }
  EXPECT_TRUE(PingPong());
}

}  // namespace
