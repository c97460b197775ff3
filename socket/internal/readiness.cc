#include "socket/internal/readiness.h"

#include <poll.h>
#include <sys/epoll.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/errors.h"
#include "base/syscall.h"
#include "socket/address.h"

namespace gevent::internal {
namespace {

// A wait's misuse errors, out of line: building their messages inline would widen the frame of
// every parked greenlet's Park (see WaitFailed).
[[noreturn]] ABSL_ATTRIBUTE_NOINLINE void ThrowSecondWaiter(const char* operation, bool read,
                                                            bool socket, int fd) {
  throw ConcurrentObjectUseError(absl::StrCat(
      operation, ": another greenlet is already waiting to ", read ? "read from" : "write to",
      socket ? " this socket" : " this descriptor", " (fd ", fd, "); one ",
      socket ? "socket" : "descriptor", " may have one reader and one writer at a time"));
}

[[noreturn]] ABSL_ATTRIBUTE_NOINLINE void ThrowForeignHub(const char* operation, int fd) {
  throw UsageError(absl::StrCat(operation, ": fd ", fd, " belongs to another thread's hub"));
}

}  // namespace

// WaitNode: a parked greenlet's entry, on its own stack. Close() marks it closed and queues it on
// the hub to resume the greenlet; from then on the parked side never touches the Readiness.
struct Readiness::WaitNode : ReadyNode {
  Hub* hub = nullptr;
  greenlet::Greenlet* greenlet = nullptr;
  TimerWatcher* timer = nullptr;  // The wait's timeout: its first side's timer.
  bool closed = false;
  bool cancelled = false;  // By Cancel: the Readiness lives on, its error is in the Direction.

  static void RunWake(ReadyNode* node) {
    auto* self = static_cast<WaitNode*>(node);
    self->hub->Resume(self->greenlet, self);
  }
};

Readiness::Direction::Direction(Hub& h, const void* owner)
    : hub(&h), timer(h.loop(), absl::ZeroDuration(), [this] { hub->Resume(waiter, &timer); }) {
  wake.from_poll = true;
  wake.warm = owner;  // The Readiness: the first thing the woken call reads.
  // Park's return then reads `waiting` (line 1, see Layout).
  wake.lines_after = 1;
}

Readiness::Readiness(Hub& hub, EdgePoller& poller, int fd, bool stream)
    : hub_(&hub),
      poller_(&poller),
      fd_(fd),
      stream_(stream),
      read_(hub, this),
      write_(hub, this) {
  on_events = &Readiness::OnEvents;
}

Readiness::~Readiness() { Close(); }

absl::Status Readiness::Register() {
  if (absl::Status added = poller_->Add(fd_, this); !added.ok()) return added;
  registered_ = true;
  return absl::OkStatus();
}

Readiness* Readiness::Find(int fd) {
  Hub* hub = HubIfExists();
  if (hub == nullptr) return nullptr;
  EdgePoller* poller = hub->existing_edge_poller();
  if (poller == nullptr) return nullptr;
  EdgePoller::Handle* handle = poller->Find(fd);
  // A Readiness is told by its callback (some other user of the poller may have the fd).
  if (handle == nullptr || handle->on_events != &Readiness::OnEvents) return nullptr;
  return static_cast<Readiness*>(handle);
}

void Readiness::OnEvents(EdgePoller::Handle* handle, std::uint32_t events) {
  Readiness* self = static_cast<Readiness*>(handle);
  // Streams only: a datagram socket shut for reading still says EAGAIN.
  if ((events & EPOLLRDHUP) && self->stream_) self->read_.hangup = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) self->read_.Edge();
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) self->write_.Edge();
}

Readiness::WaitResult Readiness::Park(Direction& d, Direction* also,
                                      std::optional<absl::Time>* deadline,
                                      std::optional<absl::Duration> timeout,
                                      const char* operation) {
  Hub& hub = *hub_;
  if (ABSL_PREDICT_FALSE(d.waiting != nullptr)) {
    ThrowSecondWaiter(operation, &d == &read_, !transient_, fd_);
  }
  if (ABSL_PREDICT_FALSE(also != nullptr && also->waiting != nullptr)) {
    ThrowSecondWaiter(operation, /*read=*/false, !transient_, fd_);
  }
  if (ABSL_PREDICT_FALSE(&hub != HubIfExists())) ThrowForeignHub(operation, fd_);
  std::optional<absl::Duration> remaining;
  if (timeout.has_value()) {
    hub.loop().UpdateNow();
    if (!deadline->has_value()) *deadline = hub.loop().Now() + *timeout;
    remaining = **deadline - hub.loop().Now();
    if (*remaining <= absl::ZeroDuration()) return WaitResult::kTimedOut;
  }
  WaitNode node;
  node.run = &WaitNode::RunWake;
  node.hub = &hub;
  node.greenlet = greenlet::Greenlet::Current();
  node.timer = &d.timer;
  if (ABSL_PREDICT_FALSE(d.hangup)) return WaitResult::kReady;  // No event would come.
  Direction* const write_side = &d == &write_ ? &d : also;
  if (ABSL_PREDICT_FALSE(write_side != nullptr && !output_watched_)) {
    // The first wait for room asks for output events (see EdgePoller::WatchOutput). That fails
    // only for a descriptor closed behind the Readiness's back, which the caller's retry reports.
    if (!poller_->WatchOutput(fd_, this).ok()) return WaitResult::kReady;
    output_watched_ = true;
  }
  for (Direction* side : {&d, also}) {
    if (side == nullptr) continue;
    side->waiting = &node;
    side->waiter = node.greenlet;
    side->ready = false;  // Seen not ready by the caller: only the next event wakes us.
  }
  hub.loop().Ref();  // While a greenlet waits, the loop must stay alive for it.
  if (remaining.has_value()) d.timer.Start(*remaining);
  const void* key;
  try {
    key = also == nullptr ? hub.Park({&d.wake, &d.timer, &node})
                          : hub.Park({&d.wake, &also->wake, &d.timer, &node});
  } catch (...) {
    // Killed, timed out by a gevent::Timeout, or parked on the hub greenlet.
    hub.Unschedule(&node);
    if (!node.closed && !node.cancelled) {  // A close or a Cancel has cleaned up already.
      hub.loop().Unref();
      d.timer.Stop();
      for (Direction* side : {&d, also}) {
        if (side == nullptr || side->waiting != &node) continue;
        hub.Unschedule(&side->wake);
        side->waiting = nullptr;
        side->waiter = nullptr;
      }
    }
    throw;
  }
  if (key == &node) {
    // Closed: the Readiness may be gone, touch nothing. Cancelled: Cancel cleaned up.
    return node.closed ? WaitResult::kClosed : WaitResult::kCancelled;
  }
  // Only a wait with a timeout reads the timer: with thousands of connections each line a
  // wake-up touches is a likely miss.
  if (remaining.has_value()) d.timer.Stop();
  d.waiting = nullptr;
  d.waiter = nullptr;
  hub.loop().Unref();
  if (ABSL_PREDICT_FALSE(also != nullptr)) {
    also->waiting = nullptr;
    also->waiter = nullptr;
    // The other side's readiness, queued in the same loop turn: it stays recorded in `ready`.
    hub.Unschedule(&d.wake);
    hub.Unschedule(&also->wake);
    if (key == &d.wake || key == &also->wake) return WaitResult::kReady;
  }
  if (ABSL_PREDICT_TRUE(key == &d.wake)) return WaitResult::kReady;
  hub.Unschedule(&d.wake);  // Readiness queued in the same loop turn as the expiry.
  return WaitResult::kTimedOut;
}

absl::Status Readiness::Wait(Side side, std::optional<absl::Time>* deadline,
                             std::optional<absl::Duration> timeout, const char* operation) {
  const int fd = fd_;
  Direction& d = DirectionOf(side);
  const WaitResult result =
      Park(d, side == Side::kEither ? &write_ : nullptr, deadline, timeout, operation);
  if (ABSL_PREDICT_TRUE(result == WaitResult::kReady)) return absl::OkStatus();
  return WaitFailed(result, d, fd, timeout, operation);
}

absl::Status Readiness::WaitFailed(WaitResult result, Direction& d, int fd,
                                   std::optional<absl::Duration> timeout, const char* operation) {
  switch (result) {
    case WaitResult::kReady:
      return absl::OkStatus();
    case WaitResult::kClosed:
      return ErrnoError(EBADF, operation, absl::StrCat("(fd ", fd, ")"),
                        "File descriptor was closed in another greenlet: ");
    case WaitResult::kCancelled:
      return std::move(d.cancel_error);
    case WaitResult::kTimedOut:
      break;
  }
  return TimedOutError(operation, DescribeFd(fd), timeout);
}

absl::Status Readiness::TimedOutError(const char* operation, absl::string_view where,
                                      std::optional<absl::Duration> timeout) {
  const bool non_blocking = timeout.has_value() && *timeout <= absl::ZeroDuration();
  return WithErrno(absl::DeadlineExceededError(absl::StrCat(
                       operation, " ", where, ": timed out after ",
                       absl::FormatDuration(timeout.value_or(absl::ZeroDuration())),
                       non_blocking ? " (non-blocking: would block)" : "")),
                   ETIMEDOUT);
}

absl::StatusOr<bool> Readiness::ReadyNow(int fd, Side side, const char* operation) {
  const short events = side == Side::kRead    ? POLLIN
                       : side == Side::kWrite ? POLLOUT
                                              : POLLIN | POLLOUT;
  const int n = sys::PollNow(fd, events);
  if (n < 0) return ErrnoError(errno, operation, absl::StrCat("(fd ", fd, ")"));
  return n > 0;
}

// The edge rule allows a park only once the side was seen not ready. Unless no event came since
// it was, this asks the kernel first.
absl::Status Readiness::WaitReady(Side side, std::optional<absl::Duration> timeout,
                                  const char* operation) {
  const bool seen_not_ready = side == Side::kEither ? !read_.ready && !write_.ready
                                                    : !DirectionOf(side).ready;
  if (!seen_not_ready) {
    absl::StatusOr<bool> ready = ReadyNow(fd_, side, operation);
    if (!ready.ok()) return ready.status();
    if (*ready) return absl::OkStatus();
  }
  std::optional<absl::Time> deadline;
  return Wait(side, &deadline, timeout, operation);
}

void Readiness::WakeWaiter(Direction& d, bool closed, const absl::Status& error) {
  WaitNode* node = d.waiting;
  if (node == nullptr) return;
  node->timer->Stop();
  // A kEither wait holds both sides: release both, and the loop reference once.
  for (Direction* side : {&read_, &write_}) {
    if (side->waiting == node) {
      side->waiting = nullptr;
      side->waiter = nullptr;
      side->cancel_error = error;  // Wait reads its first side's.
      hub_->Unschedule(&side->wake);
    }
  }
  hub_->loop().Unref();  // The waiter's reference (see Park).
  node->closed = closed;
  node->cancelled = !closed;
  hub_->ScheduleNode(node);
}

int Readiness::Cancel(Side side, absl::Status error) {
  int woken = 0;
  for (Direction* d : {&read_, &write_}) {
    if (side == Side::kRead && d != &read_) continue;
    if (side == Side::kWrite && d != &write_) continue;
    if (d->waiting == nullptr) continue;
    WakeWaiter(*d, /*closed=*/false, error);
    ++woken;
  }
  return woken;
}

void Readiness::Unregister() {
  if (!registered_) return;
  poller_->Remove(fd_);  // Before the fd is closed or handed out: no more events.
  registered_ = false;
}

void Readiness::Close() {
  Unregister();
  for (Direction* d : {&read_, &write_}) {
    d->timer.Stop();
    hub_->Unschedule(&d->wake);
    WakeWaiter(*d, /*closed=*/true, absl::OkStatus());
  }
}

}  // namespace gevent::internal
