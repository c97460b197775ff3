#include "socket/select.h"

#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "core/watchers.h"
#include "hub/hub.h"

namespace gevent {
namespace {

// The Polls of this thread that are parked, by fd (few at a time: a vector is enough).
struct Parked {
  int fd;
  Waiter* waiter;
};
thread_local std::vector<Parked>* tls_parked = nullptr;

int PollNowRetrying(pollfd* fds, nfds_t n) {
  int r;
  do {
    r = internal::RealPoll(fds, n, 0);
  } while (r < 0 && errno == EINTR);
  return r;
}

constexpr short kReadEvents = POLLIN | POLLRDNORM | POLLRDBAND | POLLRDHUP;
constexpr short kWriteEvents = POLLOUT | POLLWRNORM | POLLWRBAND;

}  // namespace

int internal::RealPoll(pollfd* fds, nfds_t n, int timeout_ms) {
  timespec ts;
  timespec* tsp = nullptr;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
    tsp = &ts;
  }
  return static_cast<int>(syscall(SYS_ppoll, fds, n, tsp, nullptr, 0));
}

int internal::WakePollers(int fd) {
  if (tls_parked == nullptr) return 0;
  int woken = 0;
  for (const Parked& p : *tls_parked) {
    if (p.fd == fd) {
      p.waiter->Wake();
      ++woken;
    }
  }
  return woken;
}

absl::StatusOr<int> Poll(pollfd* fds, nfds_t n, std::optional<absl::Duration> timeout) {
  int ready = PollNowRetrying(fds, n);
  if (ready < 0) return ErrnoError(errno, "gevent::Poll", absl::StrCat("(", n, " fds)"));
  if (ready > 0 || (timeout.has_value() && *timeout <= absl::ZeroDuration())) return ready;

  Hub& hub = GetHub();
  std::optional<absl::Time> deadline;
  if (timeout.has_value()) deadline = absl::Now() + *timeout;
  Waiter waiter(hub);
  std::vector<std::unique_ptr<IoWatcher>> watchers;
  if (tls_parked == nullptr) tls_parked = new std::vector<Parked>();
  struct Unpark {
    Waiter* waiter;
    ~Unpark() {
      auto& v = *tls_parked;
      for (std::size_t i = 0; i < v.size();) {
        if (v[i].waiter == waiter) {
          v[i] = v.back();
          v.pop_back();
        } else {
          ++i;
        }
      }
    }
  } unpark{&waiter};
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    int events = 0;
    if (fds[i].events & kReadEvents) events |= EV_READ;
    if (fds[i].events & kWriteEvents) events |= EV_WRITE;
    tls_parked->push_back({fds[i].fd, &waiter});
    if (events == 0) continue;
    watchers.push_back(std::make_unique<IoWatcher>(hub.loop(), fds[i].fd, events,
                                                   [w = &waiter](int) { w->Wake(); }));
    watchers.back()->Start();
  }
  for (;;) {
    std::optional<absl::Duration> left;
    if (deadline.has_value()) left = std::max(*deadline - absl::Now(), absl::ZeroDuration());
    const bool woken = waiter.Get(left);
    ready = PollNowRetrying(fds, n);
    if (ready < 0) return ErrnoError(errno, "gevent::Poll", absl::StrCat("(", n, " fds)"));
    if (ready > 0 || !woken) return ready;
    if (deadline.has_value() && absl::Now() >= *deadline) return 0;
    // A spurious wake-up (consumed by someone else meanwhile): wait again.
  }
}

absl::StatusOr<int> Select(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds,
                           std::optional<absl::Duration> timeout) {
  if (nfds < 0 || nfds > FD_SETSIZE) {
    return ErrnoError(EINVAL, "gevent::Select", absl::StrCat("(nfds ", nfds, ")"));
  }
  std::vector<pollfd> fds;
  for (int fd = 0; fd < nfds; ++fd) {
    short events = 0;
    if (readfds != nullptr && FD_ISSET(fd, readfds)) events |= POLLIN;
    if (writefds != nullptr && FD_ISSET(fd, writefds)) events |= POLLOUT;
    if (exceptfds != nullptr && FD_ISSET(fd, exceptfds)) events |= POLLPRI;
    if (events != 0) fds.push_back({fd, events, 0});
  }
  absl::StatusOr<int> polled = Poll(fds.data(), fds.size(), timeout);
  if (!polled.ok()) return polled.status();
  for (const pollfd& p : fds) {
    if (p.revents & POLLNVAL) {
      return ErrnoError(EBADF, "gevent::Select", absl::StrCat("(fd ", p.fd, ")"));
    }
  }
  if (readfds != nullptr) FD_ZERO(readfds);
  if (writefds != nullptr) FD_ZERO(writefds);
  if (exceptfds != nullptr) FD_ZERO(exceptfds);
  int count = 0;
  for (const pollfd& p : fds) {
    if (readfds != nullptr && (p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(p.fd, readfds);
      ++count;
    }
    if (writefds != nullptr && (p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) {
      FD_SET(p.fd, writefds);
      ++count;
    }
    if (exceptfds != nullptr && (p.events & POLLPRI) && (p.revents & POLLPRI)) {
      FD_SET(p.fd, exceptfds);
      ++count;
    }
  }
  return count;
}

}  // namespace gevent
