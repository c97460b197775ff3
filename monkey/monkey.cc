// The hooks of //monkey (see monkey.h). Fortification would make <unistd.h> define read and
// friends inline: this file defines them.
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "monkey/monkey.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "hub/hub.h"
#include "hub/threadpool.h"
#include "socket/internal/readiness.h"
#include "socket/select.h"
#include "socket/wait.h"

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace gevent {
namespace monkey {
namespace {

std::atomic<bool> g_patched{false};

// ----- the real functions -----

template <typename Fn>
Fn Real(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (__builtin_expect(p == nullptr, 0)) {
    p = dlsym(RTLD_NEXT, name);
    slot.store(p, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(p);
}

#define GEVENT_REAL(name)                                                       \
  [] {                                                                          \
    static std::atomic<void*> slot{nullptr};                                    \
    return ::gevent::monkey::Real<decltype(&::name)>(slot, #name);                              \
  }()

// ----- the cooperative context -----

// CoopHub: the hub to park on, or null when the call must be the real one.
Hub* CoopHub() {
  if (!g_patched.load(std::memory_order_relaxed)) return nullptr;
  Hub* hub = HubIfExists();
  if (hub == nullptr || hub->InHub()) return nullptr;
  return hub;
}

// ----- per-fd state -----

enum class Kind : unsigned char { kPass, kStream, kTty };

struct FdState {
  Kind kind = Kind::kPass;
  bool user_nonblock = false;  // The user asked for O_NONBLOCK (or it was set when we first saw it).
  bool we_set = false;         // The hook set the kernel's O_NONBLOCK.
  std::optional<absl::Duration> rcv_timeout;
  std::optional<absl::Duration> snd_timeout;
};

std::mutex g_mu;  // Not absl::Mutex: visible to ThreadSanitizer. Held across fork (atfork).
absl::flat_hash_map<int, FdState>& Table() {
  static auto* table = new absl::flat_hash_map<int, FdState>();
  return *table;
}

bool Lookup(int fd, FdState* out) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = Table().find(fd);
  if (it == Table().end()) return false;
  *out = it->second;
  return true;
}

void Forget(int fd) {
  std::lock_guard<std::mutex> lock(g_mu);
  Table().erase(fd);
}

void CopyState(int from, int to) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = Table().find(from);
  if (it == Table().end()) {
    Table().erase(to);
  } else {
    FdState copy = it->second;
    Table()[to] = copy;
  }
}

int RealFcntl(int fd, int cmd, long arg) { return GEVENT_REAL(fcntl)(fd, cmd, arg); }

// Probe: the fd's state, made on first sight (fstat, F_GETFL; O_NONBLOCK set on a socket or
// pipe). False when the fd is not open (the real call then reports it).
bool Probe(int fd, FdState* out) {
  if (Lookup(fd, out)) return true;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return false;
  const int flags = RealFcntl(fd, F_GETFL, 0);
  if (flags < 0) return false;
  FdState s;
  if (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)) {
    s.kind = Kind::kStream;
  } else if (S_ISCHR(st.st_mode) && isatty(fd)) {
    s.kind = Kind::kTty;
  }
  s.user_nonblock = (flags & O_NONBLOCK) != 0;
  if (s.kind == Kind::kStream && !s.user_nonblock) {
    if (RealFcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return false;
    s.we_set = true;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  auto [it, inserted] = Table().try_emplace(fd, s);
  *out = it->second;
  return true;
}

template <typename F>
void Update(int fd, F&& f) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = Table().find(fd);
  if (it != Table().end()) f(it->second);
}

// ----- waiting -----

enum class Dir { kRead, kWrite };

// SetErrnoFrom: errno for a failed wait: EAGAIN for a timeout, the status's errno otherwise.
void SetErrnoFrom(const absl::Status& s) {
  if (absl::IsDeadlineExceeded(s)) {
    errno = EAGAIN;
  } else {
    errno = ErrnoOf(s).value_or(EBADF);
  }
}

std::optional<absl::Duration> Left(const std::optional<absl::Time>& deadline) {
  if (!deadline.has_value()) return std::nullopt;
  return std::max(*deadline - absl::Now(), absl::ZeroDuration());
}

// BlockingPoll: a real blocking wait for an fd whose O_NONBLOCK we set, outside a cooperative
// context: the caller keeps the blocking semantics it asked for. 1 ready, 0 timed out, -1 errno.
int BlockingPoll(int fd, Dir dir, const std::optional<absl::Time>& deadline) {
  pollfd p{fd, static_cast<short>(dir == Dir::kRead ? POLLIN : POLLOUT), 0};
  const std::optional<absl::Duration> left = Left(deadline);
  int ms = -1;
  if (left.has_value()) ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(*left, absl::Milliseconds(1))));
  return internal::RealPoll(&p, 1, ms);
}

std::optional<absl::Time> DeadlineOf(const FdState& s, Dir dir) {
  const std::optional<absl::Duration> t = dir == Dir::kRead ? s.rcv_timeout : s.snd_timeout;
  if (!t.has_value()) return std::nullopt;
  return absl::Now() + *t;
}

// DoIo: one blocking-style call. `call()` returns >= 0 or -1 with errno. `progress`: for a
// stream write, called with each success; returns true when the write is complete (the hook
// then returns the total).
template <typename Call>
ssize_t DoIo(int fd, Dir dir, Call&& call) {
  if (!g_patched.load(std::memory_order_relaxed)) return call();
  Hub* hub = CoopHub();
  FdState st;
  if (hub == nullptr) {
    ssize_t n = call();
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return n;
    const int saved = errno;
    if (!Lookup(fd, &st) || !st.we_set || st.user_nonblock) {
      errno = saved;
      return n;
    }
    const std::optional<absl::Time> deadline = DeadlineOf(st, dir);
    for (;;) {
      const int r = BlockingPoll(fd, dir, deadline);
      if (r == 0) {
        errno = EAGAIN;
        return -1;
      }
      if (r < 0) return -1;  // EINTR, as the blocking call would report it.
      n = call();
      if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return n;
    }
  }
  if (!Probe(fd, &st) || st.kind == Kind::kPass || st.user_nonblock) return call();
  const std::optional<absl::Time> deadline = DeadlineOf(st, dir);
  if (st.kind == Kind::kTty) {
    if (dir == Dir::kWrite) return call();
    if (absl::Status s = WaitRead(fd, Left(deadline)); !s.ok()) {
      SetErrnoFrom(s);
      return -1;
    }
    return call();
  }
  for (;;) {
    const ssize_t n = call();
    if (n >= 0) return n;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    const std::optional<absl::Duration> left = Left(deadline);
    if (left.has_value() && *left <= absl::ZeroDuration()) {
      errno = EAGAIN;
      return -1;
    }
    // The call just said EAGAIN: wait for the next edge, and keep the fd registered for the
    // next wait (close and dup2 unpin it).
    absl::Status s = gevent::internal::PinnedWait(
        fd, dir == Dir::kRead ? gevent::internal::Side::kRead : gevent::internal::Side::kWrite,
        left, dir == Dir::kRead ? "gevent::monkey read" : "gevent::monkey write");
    if (!s.ok()) {
      SetErrnoFrom(s);
      return -1;
    }
  }
}

// WriteAll: a blocking write to a stream completes: repeat DoIo over the rest (`call(done)`
// writes from offset `done`). Short only on an error, a timeout or EINTR after progress.
template <typename Call>
ssize_t WriteAll(int fd, size_t total, Call&& call) {
  FdState st;
  const bool stream = g_patched.load(std::memory_order_relaxed) && Lookup(fd, &st) &&
                      st.kind == Kind::kStream && !st.user_nonblock;
  size_t done = 0;
  for (;;) {
    const ssize_t n = DoIo(fd, Dir::kWrite, [&] { return call(done); });
    if (n < 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
    done += static_cast<size_t>(n);
    // A datagram or a non-stream fd: one call. (The state is probed by the first DoIo.)
    if (!stream && !(Lookup(fd, &st) && st.kind == Kind::kStream && !st.user_nonblock)) {
      return static_cast<ssize_t>(done);
    }
    if (done >= total || n == 0) return static_cast<ssize_t>(done);
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type != SOCK_STREAM) {
      return static_cast<ssize_t>(done);
    }
  }
}

// Advance: the iovecs after `done` bytes of `iov`.
std::vector<iovec> Advance(const iovec* iov, int count, size_t done) {
  std::vector<iovec> rest;
  for (int i = 0; i < count; ++i) {
    if (done >= iov[i].iov_len) {
      done -= iov[i].iov_len;
      continue;
    }
    rest.push_back({static_cast<char*>(iov[i].iov_base) + done, iov[i].iov_len - done});
    done = 0;
  }
  return rest;
}

size_t TotalOf(const iovec* iov, int count) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  return total;
}

// ----- the resolver on the pool -----

// OnPool runs fn() on the hub's pool and parks until it finished; an exception thrown into the
// greenlet meanwhile is rethrown once the function is done (it writes into the caller's memory).
template <typename F>
auto OnPool(Hub& hub, F&& fn) {
  auto result = HubThreadPool(hub).Spawn(std::forward<F>(fn));
  std::exception_ptr thrown;
  for (;;) {
    try {
      if (result.Wait()) break;
    } catch (...) {
      if (!thrown) thrown = std::current_exception();
    }
  }
  if (thrown) std::rethrow_exception(thrown);
  return *result.Get();
}

struct HostBuffer {
  hostent host;
  std::vector<char> buf;
};
thread_local std::unique_ptr<HostBuffer> tls_host;

// ----- fork -----

void PrepareFork() { g_mu.lock(); }
void ParentAfterFork() { g_mu.unlock(); }
void ChildAfterFork() {
  new (&g_mu) std::mutex();  // The parent's other threads may have held it: a fresh one.
  Reinit();
}

}  // namespace

void PatchAll() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(&PrepareFork, &ParentAfterFork, &ChildAfterFork); });
  g_patched.store(true, std::memory_order_release);
}

bool IsPatched() { return g_patched.load(std::memory_order_acquire); }

}  // namespace monkey

void Reinit() {
  Hub* hub = HubIfExists();
  if (hub == nullptr) return;
  hub->loop().Fork();
  if (EdgePoller* poller = hub->existing_edge_poller()) (void)poller->ReopenAfterFork();
  internal::ForgetHubThreadPoolAfterFork(*hub);
}

}  // namespace gevent

// ===================== the hooks =====================

using gevent::monkey::CoopHub;
using gevent::monkey::Dir;
using gevent::monkey::DoIo;
using gevent::monkey::FdState;
using gevent::monkey::Kind;
using gevent::monkey::g_patched;
namespace gm = gevent::monkey;

namespace {
bool Patched() { return g_patched.load(std::memory_order_relaxed); }

int PollHook(pollfd* fds, nfds_t n, std::optional<absl::Duration> timeout) {
  absl::StatusOr<int> r = gevent::Poll(fds, n, timeout);
  if (!r.ok()) {
    errno = gevent::ErrnoOf(r.status()).value_or(EINVAL);
    return -1;
  }
  return *r;
}

std::optional<absl::Duration> FromTimespec(const timespec* ts) {
  if (ts == nullptr) return std::nullopt;
  return absl::DurationFromTimespec(*ts);
}

// CancelWaiters: close/dup2 onto `fd`: wake its readiness waits and Polls (EBADF / POLLNVAL).
void CancelWaiters(int fd) {
  if (!Patched()) return;
  gevent::Hub* hub = gevent::HubIfExists();
  if (hub == nullptr) return;
  gevent::internal::Unpin(fd);  // First: a registration kept for later waits goes.
  gevent::CancelWait(fd);
  gevent::internal::WakePollers(fd);
}
}  // namespace

extern "C" {

ssize_t read(int fd, void* buf, size_t n) {
  return DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(read)(fd, buf, n); });
}

ssize_t write(int fd, const void* buf, size_t n) {
  if (!Patched()) return GEVENT_REAL(write)(fd, buf, n);
  return gm::WriteAll(fd, n, [&](size_t done) {
    return GEVENT_REAL(write)(fd, static_cast<const char*>(buf) + done, n - done);
  });
}

ssize_t readv(int fd, const iovec* iov, int count) {
  return DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(readv)(fd, iov, count); });
}

ssize_t writev(int fd, const iovec* iov, int count) {
  if (!Patched()) return GEVENT_REAL(writev)(fd, iov, count);
  return gm::WriteAll(fd, gm::TotalOf(iov, count), [&](size_t done) {
    if (done == 0) return GEVENT_REAL(writev)(fd, iov, count);
    std::vector<iovec> rest = gm::Advance(iov, count, done);
    return GEVENT_REAL(writev)(fd, rest.data(), static_cast<int>(rest.size()));
  });
}

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (flags & MSG_DONTWAIT) return GEVENT_REAL(recv)(fd, buf, n, flags);
  return DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(recv)(fd, buf, n, flags); });
}

ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* from, socklen_t* len) {
  if (flags & MSG_DONTWAIT) return GEVENT_REAL(recvfrom)(fd, buf, n, flags, from, len);
  return DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(recvfrom)(fd, buf, n, flags, from, len); });
}

ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  if (flags & MSG_DONTWAIT) return GEVENT_REAL(recvmsg)(fd, msg, flags);
  return DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(recvmsg)(fd, msg, flags); });
}

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (!Patched() || (flags & MSG_DONTWAIT)) return GEVENT_REAL(send)(fd, buf, n, flags);
  return gm::WriteAll(fd, n, [&](size_t done) {
    return GEVENT_REAL(send)(fd, static_cast<const char*>(buf) + done, n - done, flags);
  });
}

ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t len) {
  if (!Patched() || (flags & MSG_DONTWAIT)) return GEVENT_REAL(sendto)(fd, buf, n, flags, to, len);
  return gm::WriteAll(fd, n, [&](size_t done) {
    return GEVENT_REAL(sendto)(fd, static_cast<const char*>(buf) + done, n - done, flags, to, len);
  });
}

ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (!Patched() || (flags & MSG_DONTWAIT)) return GEVENT_REAL(sendmsg)(fd, msg, flags);
  const int count = static_cast<int>(msg->msg_iovlen);
  return gm::WriteAll(fd, gm::TotalOf(msg->msg_iov, count), [&](size_t done) {
    if (done == 0) return GEVENT_REAL(sendmsg)(fd, msg, flags);
    std::vector<iovec> rest = gm::Advance(msg->msg_iov, count, done);
    msghdr copy = *msg;
    copy.msg_iov = rest.data();
    copy.msg_iovlen = rest.size();
    copy.msg_control = nullptr;  // Ancillary data went with the first bytes.
    copy.msg_controllen = 0;
    return GEVENT_REAL(sendmsg)(fd, &copy, flags);
  });
}

ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}

ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __chk_fail();
  return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, sockaddr* from,
                       socklen_t* len) {
  if (n > buflen) __chk_fail();
  return recvfrom(fd, buf, n, flags, from, len);
}

int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  const ssize_t r = DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(accept4)(fd, addr, len, flags); });
  if (r >= 0 && Patched()) gm::Forget(static_cast<int>(r));
  return static_cast<int>(r);
}

int accept(int fd, sockaddr* addr, socklen_t* len) {
  const ssize_t r = DoIo(fd, Dir::kRead, [&] { return GEVENT_REAL(accept)(fd, addr, len); });
  if (r >= 0 && Patched()) gm::Forget(static_cast<int>(r));
  return static_cast<int>(r);
}

int connect(int fd, const sockaddr* addr, socklen_t len) {
  auto real = GEVENT_REAL(connect);
  if (!Patched()) return real(fd, addr, len);
  gevent::Hub* hub = CoopHub();
  FdState st;
  const bool managed = hub != nullptr ? gm::Probe(fd, &st) : gm::Lookup(fd, &st);
  if (!managed || st.kind != Kind::kStream || st.user_nonblock) return real(fd, addr, len);
  const std::optional<absl::Time> deadline = gm::DeadlineOf(st, Dir::kWrite);
  for (;;) {
    if (real(fd, addr, len) == 0) return 0;
    const int err = errno;
    if (err != EINPROGRESS && err != EAGAIN) return -1;
    if (hub != nullptr) {
      absl::Status s = gevent::WaitWrite(fd, gm::Left(deadline));
      if (!s.ok()) {
        if (absl::IsDeadlineExceeded(s)) {
          errno = EINPROGRESS;
        } else {
          gm::SetErrnoFrom(s);
        }
        return -1;
      }
    } else {
      const int r = gm::BlockingPoll(fd, Dir::kWrite, deadline);
      if (r == 0) {
        errno = EINPROGRESS;
        return -1;
      }
      if (r < 0) return -1;
    }
    if (err == EAGAIN) continue;  // A Unix socket's full backlog: try again.
    int so_error = 0;
    socklen_t l = sizeof(so_error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &l) != 0) return -1;
    if (so_error != 0) {
      errno = so_error;
      return -1;
    }
    return 0;
  }
}

int socket(int domain, int type, int protocol) noexcept {
  const int fd = GEVENT_REAL(socket)(domain, type, protocol);
  if (fd >= 0 && Patched()) gm::Forget(fd);
  return fd;
}

int socketpair(int domain, int type, int protocol, int sv[2]) noexcept {
  const int r = GEVENT_REAL(socketpair)(domain, type, protocol, sv);
  if (r == 0 && Patched()) {
    gm::Forget(sv[0]);
    gm::Forget(sv[1]);
  }
  return r;
}

int pipe(int fds[2]) noexcept {
  const int r = GEVENT_REAL(pipe)(fds);
  if (r == 0 && Patched()) {
    gm::Forget(fds[0]);
    gm::Forget(fds[1]);
  }
  return r;
}

int pipe2(int fds[2], int flags) noexcept {
  const int r = GEVENT_REAL(pipe2)(fds, flags);
  if (r == 0 && Patched()) {
    gm::Forget(fds[0]);
    gm::Forget(fds[1]);
  }
  return r;
}

int close(int fd) {
  if (Patched()) {
    CancelWaiters(fd);
    gm::Forget(fd);
  }
  return GEVENT_REAL(close)(fd);
}

int dup(int fd) noexcept {
  const int r = GEVENT_REAL(dup)(fd);
  if (r >= 0 && Patched()) gm::CopyState(fd, r);
  return r;
}

int dup2(int fd, int fd2) noexcept {
  if (Patched() && fd != fd2) CancelWaiters(fd2);
  const int r = GEVENT_REAL(dup2)(fd, fd2);
  if (r >= 0 && Patched() && fd != fd2) gm::CopyState(fd, r);
  return r;
}

int dup3(int fd, int fd2, int flags) noexcept {
  if (Patched() && fd != fd2) CancelWaiters(fd2);
  const int r = GEVENT_REAL(dup3)(fd, fd2, flags);
  if (r >= 0 && Patched()) gm::CopyState(fd, r);
  return r;
}

}  // extern "C"

namespace {
// FcntlHook: fcntl and fcntl64 (same commands on 64-bit Linux).
template <typename RealFn>
int FcntlHook(RealFn real, int fd, int cmd, void* arg) {
  const long larg = reinterpret_cast<long>(arg);
  if (!Patched()) return real(fd, cmd, arg);
  switch (cmd) {
    case F_GETFL: {
      const int flags = real(fd, cmd, arg);
      FdState st;
      if (flags >= 0 && gm::Lookup(fd, &st) && st.we_set && !st.user_nonblock) {
        return flags & ~O_NONBLOCK;
      }
      return flags;
    }
    case F_SETFL: {
      FdState st;
      if (!gm::Probe(fd, &st) || st.kind != Kind::kStream) return real(fd, cmd, arg);
      const bool user_nonblock = (larg & O_NONBLOCK) != 0;
      const int r = real(fd, cmd, reinterpret_cast<void*>(larg | O_NONBLOCK));
      if (r == 0) {
        gm::Update(fd, [&](FdState& s) {
          s.user_nonblock = user_nonblock;
          if (!user_nonblock) s.we_set = true;
        });
      }
      return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const int r = real(fd, cmd, arg);
      if (r >= 0) gm::CopyState(fd, r);
      return r;
    }
    default:
      return real(fd, cmd, arg);
  }
}
}  // namespace

extern "C" {

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  static std::atomic<void*> slot{nullptr};
  auto real = gm::Real<int (*)(int, int, void*)>(slot, "fcntl");
  return FcntlHook(real, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  static std::atomic<void*> slot{nullptr};
  auto real = gm::Real<int (*)(int, int, void*)>(slot, "fcntl64");
  if (real == nullptr) real = gm::Real<int (*)(int, int, void*)>(slot, "fcntl");
  return FcntlHook(real, fd, cmd, arg);
}

int ioctl(int fd, unsigned long request, ...) noexcept {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  static std::atomic<void*> slot{nullptr};
  auto real = gm::Real<int (*)(int, unsigned long, void*)>(slot, "ioctl");
  if (!Patched() || request != FIONBIO || arg == nullptr) return real(fd, request, arg);
  FdState st;
  if (!gm::Probe(fd, &st) || st.kind != Kind::kStream) return real(fd, request, arg);
  const bool user_nonblock = *static_cast<int*>(arg) != 0;
  int one = 1;
  const int r = real(fd, request, &one);
  if (r == 0) {
    gm::Update(fd, [&](FdState& s) {
      s.user_nonblock = user_nonblock;
      if (!user_nonblock) s.we_set = true;
    });
  }
  return r;
}

int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept {
  const int r = GEVENT_REAL(setsockopt)(fd, level, name, value, len);
  if (r == 0 && Patched() && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
      len >= sizeof(timeval)) {
    const timeval tv = *static_cast<const timeval*>(value);
    std::optional<absl::Duration> t;
    if (tv.tv_sec != 0 || tv.tv_usec != 0) t = absl::DurationFromTimeval(tv);
    FdState st;
    if (gm::Probe(fd, &st)) {
      gm::Update(fd, [&](FdState& s) { (name == SO_RCVTIMEO ? s.rcv_timeout : s.snd_timeout) = t; });
    }
  }
  return r;
}

int poll(pollfd* fds, nfds_t n, int timeout) {
  if (timeout == 0 || CoopHub() == nullptr) return GEVENT_REAL(poll)(fds, n, timeout);
  std::optional<absl::Duration> t;
  if (timeout > 0) t = absl::Milliseconds(timeout);
  return PollHook(fds, n, t);
}

int __poll(pollfd* fds, nfds_t n, int timeout) { return poll(fds, n, timeout); }

int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof(*fds) < n) __chk_fail();
  return poll(fds, n, timeout);
}

int ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) {
  if (mask != nullptr || CoopHub() == nullptr || (ts != nullptr && ts->tv_sec == 0 && ts->tv_nsec == 0)) {
    return GEVENT_REAL(ppoll)(fds, n, ts, mask);
  }
  if (ts != nullptr && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)) {
    errno = EINVAL;
    return -1;
  }
  return PollHook(fds, n, FromTimespec(ts));
}

int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) {
  if (CoopHub() == nullptr || (tv != nullptr && tv->tv_sec == 0 && tv->tv_usec == 0)) {
    return GEVENT_REAL(select)(nfds, r, w, e, tv);
  }
  if (tv != nullptr && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)) {
    errno = EINVAL;
    return -1;
  }
  std::optional<absl::Duration> t;
  std::optional<absl::Time> deadline;
  if (tv != nullptr) {
    t = absl::DurationFromTimeval(*tv);
    deadline = absl::Now() + *t;
  }
  absl::StatusOr<int> n = gevent::Select(nfds, r, w, e, t);
  if (tv != nullptr) *tv = absl::ToTimeval(*gm::Left(deadline));  // Linux reports the rest.
  if (!n.ok()) {
    errno = gevent::ErrnoOf(n.status()).value_or(EINVAL);
    return -1;
  }
  return *n;
}

int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts, const sigset_t* mask) {
  if (mask != nullptr || CoopHub() == nullptr || (ts != nullptr && ts->tv_sec == 0 && ts->tv_nsec == 0)) {
    return GEVENT_REAL(pselect)(nfds, r, w, e, ts, mask);
  }
  absl::StatusOr<int> n = gevent::Select(nfds, r, w, e, FromTimespec(ts));
  if (!n.ok()) {
    errno = gevent::ErrnoOf(n.status()).value_or(EINVAL);
    return -1;
  }
  return *n;
}

unsigned int sleep(unsigned int seconds) {
  if (CoopHub() == nullptr) return GEVENT_REAL(sleep)(seconds);
  gevent::Sleep(absl::Seconds(seconds));
  return 0;
}

int usleep(useconds_t usec) {
  if (CoopHub() == nullptr) return GEVENT_REAL(usleep)(usec);
  gevent::Sleep(absl::Microseconds(usec));
  return 0;
}

int nanosleep(const timespec* req, timespec* rem) {
  if (CoopHub() == nullptr || req == nullptr) return GEVENT_REAL(nanosleep)(req, rem);
  if (req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1000000000L) {
    errno = EINVAL;
    return -1;
  }
  gevent::Sleep(absl::DurationFromTimespec(*req));
  if (rem != nullptr) *rem = timespec{0, 0};
  return 0;
}

int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  auto real = GEVENT_REAL(getaddrinfo);
  gevent::Hub* hub = CoopHub();
  if (hub == nullptr) return real(node, service, hints, res);
  auto [rc, err] = gm::OnPool(*hub, [&] {
    const int r = real(node, service, hints, res);
    return std::pair<int, int>(r, errno);
  });
  errno = err;
  return rc;
}

int getnameinfo(const sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen, char* serv,
                socklen_t servlen, int flags) {
  auto real = GEVENT_REAL(getnameinfo);
  gevent::Hub* hub = CoopHub();
  if (hub == nullptr) return real(sa, salen, host, hostlen, serv, servlen, flags);
  auto [rc, err] = gm::OnPool(*hub, [&] {
    const int r = real(sa, salen, host, hostlen, serv, servlen, flags);
    return std::pair<int, int>(r, errno);
  });
  errno = err;
  return rc;
}

int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result,
                    int* h_errnop) {
  auto real = GEVENT_REAL(gethostbyname_r);
  gevent::Hub* hub = CoopHub();
  if (hub == nullptr) return real(name, ret, buf, buflen, result, h_errnop);
  return gm::OnPool(*hub, [&] { return real(name, ret, buf, buflen, result, h_errnop); });
}

int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t buflen,
                     hostent** result, int* h_errnop) {
  auto real = GEVENT_REAL(gethostbyname2_r);
  gevent::Hub* hub = CoopHub();
  if (hub == nullptr) return real(name, af, ret, buf, buflen, result, h_errnop);
  return gm::OnPool(*hub, [&] { return real(name, af, ret, buf, buflen, result, h_errnop); });
}

int gethostbyaddr_r(const void* addr, socklen_t len, int type, hostent* ret, char* buf,
                    size_t buflen, hostent** result, int* h_errnop) {
  auto real = GEVENT_REAL(gethostbyaddr_r);
  gevent::Hub* hub = CoopHub();
  if (hub == nullptr) return real(addr, len, type, ret, buf, buflen, result, h_errnop);
  return gm::OnPool(*hub,
                    [&] { return real(addr, len, type, ret, buf, buflen, result, h_errnop); });
}

hostent* gethostbyname(const char* name) {
  gevent::Hub* hub = CoopHub();
  if (hub == nullptr) return GEVENT_REAL(gethostbyname)(name);
  auto fresh = std::make_unique<gm::HostBuffer>();
  fresh->buf.resize(1024);
  for (;;) {
    hostent* result = nullptr;
    int herr = 0;
    const int rc = gethostbyname_r(name, &fresh->host, fresh->buf.data(), fresh->buf.size(),
                                   &result, &herr);
    if (rc == ERANGE && fresh->buf.size() < (1u << 20)) {
      fresh->buf.resize(fresh->buf.size() * 2);
      continue;
    }
    if (result == nullptr) {
      h_errno = herr;
      return nullptr;
    }
    gm::tls_host = std::move(fresh);  // Valid until the next call on this thread.
    return &gm::tls_host->host;
  }
}

}  // extern "C"
