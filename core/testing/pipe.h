// TestPipe: a pipe for tests and benchmarks that need a real file descriptor to watch. Both ends
// are closed on destruction, also when an assertion leaves the test early. Aborts with the errno
// text if the pipe cannot be made (the process is out of descriptors: nothing else can work).
#ifndef GEVENT_CORE_TESTING_PIPE_H_
#define GEVENT_CORE_TESTING_PIPE_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace gevent::testutil {

class TestPipe {
 public:
  TestPipe() {
    int fds[2];
    if (pipe(fds) != 0) {
      std::perror("gevent::testutil::TestPipe: pipe");
      std::abort();
    }
    read_fd = fds[0];
    write_fd = fds[1];
  }
  TestPipe(const TestPipe&) = delete;
  TestPipe& operator=(const TestPipe&) = delete;
  ~TestPipe() {
    close(read_fd);
    close(write_fd);
  }

  int read_fd;
  int write_fd;
};

}  // namespace gevent::testutil

#endif  // GEVENT_CORE_TESTING_PIPE_H_
