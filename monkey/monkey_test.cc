#include "monkey/monkey.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <utility>
#include <ostream>
#include <cstring>
#include <csignal>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/spawn.h"
#include "socket/internal/readiness.h"

extern "C" ssize_t __read_chk(int, void*, size_t, size_t);
extern "C" ssize_t __recv_chk(int, void*, size_t, size_t, int);

namespace {

using gevent::GreenletRef;
using gevent::Spawn;

struct Pair {
  int a = -1, b = -1;
  explicit Pair(int type = SOCK_STREAM) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, type, 0, sv), 0);
    a = sv[0];
    b = sv[1];
  }
  ~Pair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
};

// Before PatchAll: exactly the real call (a non-blocking read of an empty socket: EAGAIN).
TEST(MonkeyTest, A_PassThroughBeforePatchAll) {
  ASSERT_FALSE(gevent::monkey::IsPatched());
  Pair p;
  fcntl(p.a, F_SETFL, O_NONBLOCK);
  char c;
  errno = 0;
  EXPECT_EQ(read(p.a, &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(fcntl(p.a, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  gevent::monkey::PatchAll();
  gevent::monkey::PatchAll();
  EXPECT_TRUE(gevent::monkey::IsPatched());
}

class Patched : public ::testing::Test {
 protected:
  void SetUp() override { gevent::monkey::PatchAll(); }
};

TEST_F(Patched, BlockedReadLetsOthersRun) {
  Pair p;
  int ticks = 0;
  GreenletRef ticker = Spawn([&] {
    for (int i = 0; i < 5; ++i) {
      ++ticks;
      gevent::Sleep(absl::Milliseconds(1));
    }
    ASSERT_EQ(write(p.b, "hi", 2), 2);
  });
  char buf[8];
  EXPECT_EQ(read(p.a, buf, sizeof buf), 2);  // Main greenlet: cooperative.
  EXPECT_EQ(ticks, 5);
  // The user's view of the flags: blocking, though the kernel's fd is non-blocking.
  EXPECT_EQ(fcntl(p.a, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(fcntl64(p.a, F_GETFL) & O_NONBLOCK, 0);
  ticker->Join();
}

TEST_F(Patched, UserNonBlockingKeepsEagain) {
  Pair p;
  ASSERT_EQ(fcntl(p.a, F_SETFL, fcntl(p.a, F_GETFL) | O_NONBLOCK), 0);
  char c;
  errno = 0;
  EXPECT_EQ(read(p.a, &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(recv(p.a, &c, 1, 0), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(fcntl(p.a, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  // ioctl(FIONBIO) both ways.
  int off = 0;
  ASSERT_EQ(ioctl(p.a, FIONBIO, &off), 0);
  EXPECT_EQ(fcntl(p.a, F_GETFL) & O_NONBLOCK, 0);
  int on = 1;
  ASSERT_EQ(ioctl(p.a, FIONBIO, &on), 0);
  errno = 0;
  EXPECT_EQ(read(p.a, &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  // SOCK_NONBLOCK at socketpair.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  EXPECT_EQ(recv(sv[0], &c, 1, 0), -1);
  EXPECT_EQ(errno, EAGAIN);
  close(sv[0]);
  close(sv[1]);
}

TEST_F(Patched, BadFdErrorsAreTheRealOnes) {
  int bad = dup(0);
  close(bad);
  char c;
  for (int i = 0; i < 2; ++i) {
    errno = 0;
    EXPECT_EQ(read(bad, &c, 1), -1);
    EXPECT_EQ(errno, EBADF);
    errno = 0;
    EXPECT_EQ(write(bad, &c, 1), -1);
    EXPECT_EQ(errno, EBADF);
    errno = 0;
    EXPECT_EQ(recv(bad, &c, 1, 0), -1);
    EXPECT_EQ(errno, EBADF);
    errno = 0;
    EXPECT_EQ(close(bad), -1);
    EXPECT_EQ(errno, EBADF);
    errno = 0;
    EXPECT_EQ(fcntl(bad, F_GETFL), -1);
    EXPECT_EQ(errno, EBADF);
  }
  // A socket call on a pipe: ENOTSOCK from the real call.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  errno = 0;
  EXPECT_EQ(recv(fds[0], &c, 1, 0), -1);
  EXPECT_EQ(errno, ENOTSOCK);
  close(fds[0]);
  close(fds[1]);
}

TEST_F(Patched, RcvTimeoutGivesEagainAfterTheTimeout) {
  Pair p;
  timeval tv{0, 50000};
  ASSERT_EQ(setsockopt(p.a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  int ticks = 0;
  GreenletRef ticker = Spawn([&] {
    for (int i = 0; i < 10; ++i) {
      ++ticks;
      gevent::Sleep(absl::Milliseconds(1));
    }
  });
  char c;
  const absl::Time start = absl::Now();
  errno = 0;
  EXPECT_EQ(read(p.a, &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(49));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_EQ(ticks, 10);
  ticker->Join();
}

TEST_F(Patched, CloseFromAnotherGreenletWakesWithEbadf) {
  Pair p;
  int fd = dup(p.a);
  GreenletRef closer = Spawn([&] {
    gevent::Sleep(absl::Milliseconds(5));
    EXPECT_EQ(close(fd), 0);
  });
  char c;
  errno = 0;
  EXPECT_EQ(read(fd, &c, 1), -1);
  EXPECT_EQ(errno, EBADF);
  closer->Join();
}

// A wait keeps the fd registered with the hub for the next one (no epoll_ctl per wait), and
// close takes it out: the next fd given the same number is waited on afresh, not through a stale
// registration (which would never see its events).
TEST_F(Patched, AKeptRegistrationGoesWithClose) {
  for (int round = 0; round < 3; ++round) {
    Pair p;
    GreenletRef writer = Spawn([&] {
      gevent::Sleep(absl::Milliseconds(1));
      ASSERT_EQ(write(p.b, "x", 1), 1);
      gevent::Sleep(absl::Milliseconds(1));
      ASSERT_EQ(write(p.b, "y", 1), 1);
    });
    char c;
    ASSERT_EQ(read(p.a, &c, 1), 1) << round;
    EXPECT_EQ(c, 'x');
    EXPECT_NE(gevent::internal::Readiness::Find(p.a), nullptr) << "kept after the wait";
    ASSERT_EQ(read(p.a, &c, 1), 1) << round;
    EXPECT_EQ(c, 'y');
    writer->Join();
    const int fd = p.a;
    EXPECT_EQ(close(p.a), 0);
    p.a = -1;
    EXPECT_EQ(gevent::internal::Readiness::Find(fd), nullptr) << "gone with the close";
  }
}

TEST_F(Patched, BlockingWriteCompletesCooperatively) {
  Pair p;
  const std::string big(4 << 20, 'x');
  size_t received = 0;
  GreenletRef reader = Spawn([&] {
    std::vector<char> buf(65536);
    while (received < big.size()) {
      const ssize_t n = read(p.b, buf.data(), buf.size());
      if (n <= 0) break;
      received += static_cast<size_t>(n);
    }
  });
  EXPECT_EQ(write(p.a, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  reader->Join();
  EXPECT_EQ(received, big.size());
  // writev and sendmsg likewise.
  received = 0;
  reader = Spawn([&] {
    std::vector<char> buf(65536);
    while (received < 2 * big.size()) {
      const ssize_t n = recv(p.b, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      received += static_cast<size_t>(n);
    }
  });
  iovec iov[2] = {{const_cast<char*>(big.data()), big.size() / 2},
                  {const_cast<char*>(big.data()), big.size() / 2}};
  EXPECT_EQ(writev(p.a, iov, 2), static_cast<ssize_t>(big.size()));
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  EXPECT_EQ(sendmsg(p.a, &msg, 0), static_cast<ssize_t>(big.size()));
  reader->Join();
  EXPECT_EQ(received, 2 * big.size());
}

TEST_F(Patched, EveryReadAndSendFormIsCooperative) {
  Pair p;
  GreenletRef writer = Spawn([&] {
    for (int i = 0; i < 6; ++i) {
      gevent::Sleep(absl::Milliseconds(1));
      ASSERT_EQ(send(p.b, "ab", 2, 0), 2);
    }
  });
  char buf[2];
  EXPECT_EQ(recv(p.a, buf, 2, 0), 2);
  EXPECT_EQ(recvfrom(p.a, buf, 2, 0, nullptr, nullptr), 2);
  iovec iov{buf, 2};
  EXPECT_EQ(readv(p.a, &iov, 1), 2);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  EXPECT_EQ(recvmsg(p.a, &msg, 0), 2);
  EXPECT_EQ(__read_chk(p.a, buf, 2, sizeof buf), 2);
  EXPECT_EQ(__recv_chk(p.a, buf, 2, sizeof buf, 0), 2);
  writer->Join();
  // MSG_DONTWAIT: the real call.
  errno = 0;
  EXPECT_EQ(recv(p.a, buf, 2, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
}

// Each I/O hook, on the hub thread (cooperative) and on a thread without a hub (the real call),
// in the same situations: the same return value and errno. The fds are made the same way for
// both runs; the thread runs first.
struct Outcome {
  ssize_t ret;
  int err;
  bool operator==(const Outcome& o) const { return ret == o.ret && err == o.err; }
};
std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "(" << o.ret << ", " << std::strerror(o.err) << ")";
}

using IoCall = ssize_t (*)(int fd);
ssize_t CallRead(int fd) { char b[8]; return read(fd, b, sizeof b); }
ssize_t CallReadv(int fd) { char b[8]; iovec v{b, sizeof b}; return readv(fd, &v, 1); }
ssize_t CallRecv(int fd) { char b[8]; return recv(fd, b, sizeof b, 0); }
ssize_t CallRecvfrom(int fd) { char b[8]; return recvfrom(fd, b, sizeof b, 0, nullptr, nullptr); }
ssize_t CallRecvmsg(int fd) {
  char b[8];
  iovec v{b, sizeof b};
  msghdr m{};
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  return recvmsg(fd, &m, 0);
}
ssize_t CallReadChk(int fd) { char b[8]; return __read_chk(fd, b, sizeof b, sizeof b); }
ssize_t CallRecvChk(int fd) { char b[8]; return __recv_chk(fd, b, sizeof b, sizeof b, 0); }
ssize_t CallWrite(int fd) { return write(fd, "ab", 2); }
ssize_t CallWritev(int fd) { iovec v{const_cast<char*>("ab"), 2}; return writev(fd, &v, 1); }
ssize_t CallSend(int fd) { return send(fd, "ab", 2, MSG_NOSIGNAL); }
ssize_t CallSendto(int fd) { return sendto(fd, "ab", 2, MSG_NOSIGNAL, nullptr, 0); }
ssize_t CallSendmsg(int fd) {
  iovec v{const_cast<char*>("ab"), 2};
  msghdr m{};
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  return sendmsg(fd, &m, MSG_NOSIGNAL);
}

// Situation: makes the fd to call on (and whatever keeps it so); returns it.
enum class Situation { kClosedFd, kUserNonBlockingEmpty, kDataReady, kPeerClosed, kPipeNotSocket };

Outcome RunIn(Situation situation, IoCall call) {
  Pair p;
  int fd = p.a;
  int pipe_fds[2] = {-1, -1};
  switch (situation) {
    case Situation::kClosedFd:
      fd = dup(p.a);
      close(fd);
      break;
    case Situation::kUserNonBlockingEmpty:
      fcntl(p.a, F_SETFL, fcntl(p.a, F_GETFL) | O_NONBLOCK);
      break;
    case Situation::kDataReady:
      EXPECT_EQ(write(p.b, "xyz", 3), 3);
      break;
    case Situation::kPeerClosed:
      close(p.b);
      p.b = -1;
      break;
    case Situation::kPipeNotSocket:
      EXPECT_EQ(pipe(pipe_fds), 0);
      EXPECT_EQ(write(pipe_fds[1], "xyz", 3), 3);
      fd = pipe_fds[0];
      break;
  }
  errno = 0;
  const ssize_t ret = call(fd);
  Outcome out{ret, ret < 0 ? errno : 0};
  for (int f : pipe_fds) {
    if (f >= 0) close(f);
  }
  return out;
}

TEST_F(Patched, EveryIoHookGivesTheRealResultAndErrno) {
  gevent::GetHub();  // The main greenlet's calls are then the cooperative ones.
  signal(SIGPIPE, SIG_IGN);  // write/writev to a closed peer: EPIPE, for both runs.
  const std::vector<std::pair<const char*, IoCall>> reads = {
      {"read", CallRead},         {"readv", CallReadv},     {"recv", CallRecv},
      {"recvfrom", CallRecvfrom}, {"recvmsg", CallRecvmsg}, {"__read_chk", CallReadChk},
      {"__recv_chk", CallRecvChk}};
  const std::vector<std::pair<const char*, IoCall>> writes = {
      {"write", CallWrite}, {"writev", CallWritev},   {"send", CallSend},
      {"sendto", CallSendto}, {"sendmsg", CallSendmsg}};
  std::vector<Situation> read_situations = {Situation::kClosedFd, Situation::kUserNonBlockingEmpty,
                                            Situation::kDataReady, Situation::kPeerClosed,
                                            Situation::kPipeNotSocket};
  std::vector<Situation> write_situations = {Situation::kClosedFd, Situation::kDataReady,
                                             Situation::kPeerClosed};
  auto compare = [](const char* name, IoCall call, Situation situation) {
    Outcome real{};
    std::thread without_hub([&] { real = RunIn(situation, call); });
    without_hub.join();
    const Outcome hooked = RunIn(situation, call);
    EXPECT_EQ(hooked, real) << name << " in situation " << static_cast<int>(situation);
  };
  for (const auto& [name, call] : reads) {
    for (Situation s : read_situations) compare(name, call, s);
  }
  for (const auto& [name, call] : writes) {
    for (Situation s : write_situations) compare(name, call, s);
  }
  signal(SIGPIPE, SIG_DFL);
}

TEST_F(Patched, ConnectAndAcceptAreCooperative) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int accepted = -1;
  GreenletRef server = Spawn([&] {
    accepted = accept(listener, nullptr, nullptr);
    char c;
    if (accepted >= 0) {
      EXPECT_EQ(read(accepted, &c, 1), 1);
    }
  });
  GreenletRef client = Spawn([&] {
    gevent::Sleep(absl::Milliseconds(2));
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(write(fd, "z", 1), 1);
    close(fd);
  });
  server->Join();
  client->Join();
  EXPECT_GE(accepted, 0);
  EXPECT_EQ(fcntl(accepted, F_GETFL) & O_NONBLOCK, 0);
  close(accepted);
  // A refused connect: the real errno.
  close(listener);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  errno = 0;
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), -1);
  EXPECT_EQ(errno, ECONNREFUSED);
  close(fd);
}

TEST_F(Patched, PollSelectAndSleepAreCooperative) {
  Pair p;
  int ticks = 0;
  GreenletRef ticker = Spawn([&] {
    for (int i = 0; i < 3; ++i) {
      ++ticks;
      gevent::Sleep(absl::Milliseconds(1));
    }
    ASSERT_EQ(write(p.b, "x", 1), 1);
  });
  pollfd pfd{p.a, POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(pfd.revents, POLLIN);
  EXPECT_EQ(ticks, 3);
  ticker->Join();
  fd_set r;
  FD_ZERO(&r);
  FD_SET(p.a, &r);
  timeval tv{1, 0};
  EXPECT_EQ(select(p.a + 1, &r, nullptr, nullptr, &tv), 1);
  char c;
  ASSERT_EQ(read(p.a, &c, 1), 1);
  timespec ts{0, 10000000};
  EXPECT_EQ(ppoll(&pfd, 1, &ts, nullptr), 0);
  // Sleeps: another greenlet runs during each.
  ticks = 0;
  ticker = Spawn([&] {
    for (int i = 0; i < 100; ++i) {
      ++ticks;
      gevent::Sleep(absl::Milliseconds(1));
    }
  });
  const int before = ticks;
  usleep(5000);
  EXPECT_GT(ticks, before);
  const int mid = ticks;
  timespec req{0, 5000000}, rem{1, 1};
  EXPECT_EQ(nanosleep(&req, &rem), 0);
  EXPECT_EQ(rem.tv_sec, 0);
  EXPECT_EQ(rem.tv_nsec, 0);
  EXPECT_GT(ticks, mid);
  req.tv_nsec = -1;
  errno = 0;
  EXPECT_EQ(nanosleep(&req, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  ticker->Join();
}

TEST_F(Patched, ThreadWithoutHubIsReal) {
  Pair p;
  char c = 0;
  ssize_t n = -2;
  std::thread t([&] { n = read(p.a, &c, 1); });  // Blocks for real.
  usleep(20000);
  ASSERT_EQ(write(p.b, "q", 1), 1);
  t.join();
  EXPECT_EQ(n, 1);
  EXPECT_EQ(c, 'q');
  // An fd whose O_NONBLOCK the hooks set still blocks on a thread without a hub.
  char d = 0;
  std::thread t2([&] { n = read(p.a, &d, 1); });
  usleep(20000);
  ASSERT_EQ(write(p.b, "r", 1), 1);
  t2.join();
  EXPECT_EQ(n, 1);
  EXPECT_EQ(d, 'r');
}

TEST_F(Patched, HookInALoopCallbackIsTheRealCall) {
  Pair p;
  ASSERT_EQ(write(p.b, "k", 1), 1);
  ssize_t n = -2;
  char c = 0;
  bool in_hub = false;
  gevent::GetHub().Schedule([&] {
    in_hub = gevent::GetHub().InHub();
    n = read(p.a, &c, 1);
    pollfd pfd{p.a, POLLIN, 0};
    poll(&pfd, 1, 1);  // Real: at most 1 ms, no switch.
  });
  gevent::Sleep(absl::Milliseconds(5));
  EXPECT_TRUE(in_hub);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(c, 'k');
}

TEST_F(Patched, ResolverRunsOnThePool) {
  addrinfo* res = nullptr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  ASSERT_EQ(getaddrinfo("localhost", nullptr, &hints, &res), 0);
  ASSERT_NE(res, nullptr);
  freeaddrinfo(res);
  char host[256];
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(getnameinfo(reinterpret_cast<sockaddr*>(&sin), sizeof sin, host, sizeof host, nullptr,
                        0, NI_NUMERICHOST),
            0);
  EXPECT_STREQ(host, "127.0.0.1");
  hostent* h = gethostbyname("localhost");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->h_addrtype, AF_INET);
  hostent he, *result = nullptr;
  char buf[4096];
  int herr = 0;
  EXPECT_EQ(gethostbyname_r("localhost", &he, buf, sizeof buf, &result, &herr), 0);
  EXPECT_NE(result, nullptr);
  EXPECT_EQ(gethostbyname2_r("localhost", AF_INET, &he, buf, sizeof buf, &result, &herr), 0);
  EXPECT_NE(result, nullptr);
  in_addr lo{htonl(INADDR_LOOPBACK)};
  EXPECT_EQ(gethostbyaddr_r(&lo, sizeof lo, AF_INET, &he, buf, sizeof buf, &result, &herr), 0);
  EXPECT_EQ(getaddrinfo("no-such-host.invalid", nullptr, &hints, &res) != 0, true);
}

// Under ThreadSanitizer, starting a greenlet costs its fiber: __tsan_create_fiber maps and
// initialises a ~790 KB ThreadState on the hub thread, measured (strace -tt) at ~5.7 ms per
// greenlet on this 2-vCPU machine, against microseconds otherwise. The 100 lookup greenlets start
// back to back in one pass of the loop, so the ticker waited 314-812 ms for that pass alone
// (thread creation was 6-30 ms for the 2-3 workers actually started; the hub thread never blocked
// on a futex; the lookups themselves ran on the workers). Under TSan the lateness is therefore
// measured from the moment every lookup is in flight, which still catches a lookup that runs on
// the hub (TSan's first getaddrinfo alone takes ~700 ms: the NSS modules are loaded under its
// interceptors); measured so, the worst lateness was 14-27 ms under TSan, bound 100 ms. Elsewhere
// it is measured from the start, bound 20 ms.
#if defined(__SANITIZE_THREAD__)
constexpr bool kMeasureOnceAllInFlight = true;
constexpr absl::Duration kLatenessBound = absl::Milliseconds(100);
#else
constexpr bool kMeasureOnceAllInFlight = false;
constexpr absl::Duration kLatenessBound = absl::Milliseconds(20);
#endif

TEST_F(Patched, HundredLookupsDoNotDelayATimer) {
  constexpr int kLookups = 100;
  std::atomic<bool> done{false};
  int in_flight = 0;  // Lookup greenlets that entered getaddrinfo (hub thread only).
  absl::Duration worst = absl::ZeroDuration();
  GreenletRef ticker = Spawn([&] {
    absl::Time last = absl::Now();
    bool measuring = !kMeasureOnceAllInFlight;
    while (!done) {
      gevent::Sleep(absl::Milliseconds(1));
      const absl::Time now = absl::Now();
      // Under TSan: the first interval measured starts after the pass that started the lookups.
      if (measuring) worst = std::max(worst, now - last - absl::Milliseconds(1));
      if (in_flight == kLookups) measuring = true;
      last = now;
    }
  });
  std::vector<GreenletRef> lookups;
  int ok = 0;
  for (int i = 0; i < kLookups; ++i) {
    lookups.push_back(Spawn([&] {
      addrinfo* res = nullptr;
      ++in_flight;
      if (getaddrinfo("localhost", "80", nullptr, &res) == 0) {
        ++ok;
        freeaddrinfo(res);
      }
    }));
  }
  for (auto& g : lookups) g->Join();
  done = true;
  ticker->Join();
  EXPECT_EQ(ok, kLookups);
  EXPECT_LT(worst, kLatenessBound) << "worst lateness " << worst;
  if (getenv("GEVENT_MEASURE") != nullptr) fprintf(stderr, "worst lateness %s\n", absl::FormatDuration(worst).c_str());
}

}  // namespace
