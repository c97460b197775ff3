#include "core/edge_poller.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/errors.h"

namespace gevent {

absl::StatusOr<std::unique_ptr<EdgePoller>> EdgePoller::Create(Loop& loop) {
  const int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "gevent::EdgePoller::Create", "", "epoll_create1: ");
  return std::unique_ptr<EdgePoller>(new EdgePoller(loop, fd));
}

EdgePoller::EdgePoller(Loop& loop, int epoll_fd)
    : loop_(loop), epoll_fd_(epoll_fd), watcher_(loop, epoll_fd, EV_READ, [this](int) {
        Dispatch();
      }) {
  watcher_.Start();
  watcher_.Unref();
}

EdgePoller::~EdgePoller() {
  watcher_.Stop();
  syscall(SYS_close, epoll_fd_);  // The real close, never an interposed one (//monkey).
}

absl::Status EdgePoller::Add(int fd, Handle* handle) {
  absl::Status added = Control(EPOLL_CTL_ADD, fd, handle, EPOLLIN | EPOLLRDHUP | EPOLLET, "Add");
  if (added.ok()) handles_[fd] = handle;
  return added;
}

absl::Status EdgePoller::WatchOutput(int fd, Handle* handle) {
  return Control(EPOLL_CTL_MOD, fd, handle, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                 "WatchOutput");
}

absl::Status EdgePoller::Control(int op, int fd, Handle* handle, std::uint32_t events,
                                 const char* what) {
  if (fd < 0) {
    throw UsageError(absl::StrCat("gevent::EdgePoller::", what, ": fd must be >= 0, got ", fd));
  }
  if (handle == nullptr || handle->on_events == nullptr) {
    throw UsageError(
        absl::StrCat("gevent::EdgePoller::", what, ": the handle and its on_events must be set"));
  }
  epoll_event event{};
  event.events = events;
  event.data.ptr = handle;
  if (epoll_ctl(epoll_fd_, op, fd, &event) != 0) {
    const int err = errno;
    absl::Status status = ErrnoError(err, absl::StrCat("gevent::EdgePoller::", what),
                                     absl::StrCat("(fd ", fd, ")"));
    // epoll's EPERM: a descriptor it cannot watch, such as a regular file — a bad value, not a
    // permission.
    if (err == EPERM) return WithErrno(absl::InvalidArgumentError(status.message()), err);
    return status;
  }
  return absl::OkStatus();
}

void EdgePoller::Remove(int fd) {
  // ENOENT / EBADF: not registered, or closed already (closing unregisters it).
  (void)epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  handles_.erase(fd);
}

EdgePoller::Handle* EdgePoller::Find(int fd) const {
  auto it = handles_.find(fd);
  return it == handles_.end() ? nullptr : it->second;
}

int EdgePoller::Dispatch() {
  int n;
  do {
    n = epoll_wait(epoll_fd_, events_, kMaxEvents, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    loop_.ReportError("edge poller",
                      std::make_exception_ptr(std::system_error(errno, std::generic_category(),
                                                                "gevent::EdgePoller: epoll_wait")));
    return 0;
  }
  for (int i = 0; i < n; ++i) {
    Handle* handle = static_cast<Handle*>(events_[i].data.ptr);
    handle->on_events(handle, events_[i].events);
  }
  return n;
}

}  // namespace gevent

namespace gevent {

absl::Status EdgePoller::ReopenAfterFork() {
  const int fresh = epoll_create1(EPOLL_CLOEXEC);
  if (fresh < 0) return ErrnoError(errno, "gevent::EdgePoller::ReopenAfterFork");
  watcher_.Stop();
  syscall(SYS_close, epoll_fd_);  // The parent's set lives on in the parent.
  epoll_fd_ = fresh;
  watcher_.Set(fresh, EV_READ);
  watcher_.Start();
  watcher_.Unref();
  for (auto it = handles_.begin(); it != handles_.end();) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    event.data.ptr = it->second;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, it->first, &event) != 0) {
      handles_.erase(it++);
    } else {
      ++it;
    }
  }
  return absl::OkStatus();
}

}  // namespace gevent
