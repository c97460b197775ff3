// After fork() the child's hub works: cooperative I/O between two greenlets in the child; the
// parent's hub still works too.
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
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const bool ok = PingPong() && PingPong();
    _exit(ok ? 0 : 1);
  }
  ASSERT_TRUE(PingPong());  // The parent, while the child runs.
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(PingPong());
}

}  // namespace
