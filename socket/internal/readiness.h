// gevent::internal::Readiness — one descriptor's readiness on the hub, and the one retry loop
// that every cooperative fd operation runs (Socket's calls, gevent::WaitRead on any fd).
//
// A Readiness is registered with the hub's edge-triggered descriptor set (core/edge_poller.h) for
// as long as it lives, and the set's registry finds it by fd (EdgePoller::Find): a wait on an fd
// that a Socket owns uses the socket's own Readiness, so its one-waiter-per-side rule and its
// close-while-waiting rule hold whichever API waits.
//
// The edge rule. The kernel reports a change once (an edge), and never checks a reported
// descriptor again on the next poll as a level-triggered set would (a large share of its work per
// message with thousands of connections). So a side may park only after the fd was seen not ready
// on it (EAGAIN, a short read or write of a stream) since the last event for it: `ready` records
// that. Io follows the rule by construction; WaitReady polls the fd first unless it was seen not
// ready with no event since.
//
// An event does not switch into the waiting greenlet: it queues the side's `wake` entry on the
// hub's ready queue, marked from_poll. After the poll the hub runs the whole batch, each greenlet
// handing over straight to the next when it parks (one switch per wake-up instead of two), and
// while one runs, the hub prefetches the next one's stack and the lines named by `warm` and
// `lines_after`: with thousands of connections every greenlet a poll wakes is cold in cache.
//
// Lifetime: hub thread only. Close() (Unregister plus waking every waiter with the close error)
// must run before the fd is closed or handed on; a waiter woken by it never touches the
// Readiness again, so it may be destroyed right after.
#ifndef GEVENT_SOCKET_INTERNAL_READINESS_H_
#define GEVENT_SOCKET_INTERNAL_READINESS_H_

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/edge_poller.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/hub.h"
#include "socket/io_timeout.h"

namespace gevent::internal {

// Which readiness a wait is for. kEither: readable or writable, whichever comes first.
enum class Side { kRead, kWrite, kEither };

class Readiness : public EdgePoller::Handle {
 public:
  // The fd is not registered yet (Register). `stream`: SOCK_STREAM semantics (a short read means
  // not ready; a hang-up is final).
  Readiness(Hub& hub, EdgePoller& poller, int fd, bool stream);
  Readiness(const Readiness&) = delete;
  Readiness& operator=(const Readiness&) = delete;
  // ~Readiness: Close() if still registered.
  ~Readiness();

  // Register adds the fd to the hub's edge poller (input edges; output edges on the first wait
  // for room). Errors: those of EdgePoller::Add (AlreadyExists if some Readiness has it already,
  // InvalidArgument for an fd epoll cannot watch, a regular file say).
  absl::Status Register();

  // Find: the Readiness registered for `fd` on the calling thread's hub, or null.
  static Readiness* Find(int fd);

  // Io: the one retry loop. Calls `call()` — a system call returning >= 0, or -1 with errno —
  // until it succeeds (returns its result), fails with an errno other than EINTR and EAGAIN
  // (returns on_error(errno)), or a wait for readiness on `side` fails (returns its status: see
  // Wait). `wait_first`: the caller allows a wait before the first call when the side was seen
  // not ready with no event since (the edge rule: the call would most likely fail with EAGAIN);
  // a zero timeout always makes the call. `deadline` spans several Io calls of one operation
  // (SendAll's chunks); null: this call alone.
  // Inline: a call the kernel completes at once is the system call and nothing else.
  template <typename Call, typename OnError>
  absl::StatusOr<size_t> Io(Side side, IoTimeout timeout, bool wait_first, const char* operation,
                            std::optional<absl::Time>* deadline, Call&& call, OnError&& on_error);

  // Wait parks until `side` is ready, after the caller saw it not ready (the edge rule). OK when
  // ready; DeadlineExceeded naming the operation and the fd once `deadline` (set from `timeout`
  // on the first wait of an operation) passes; FailedPrecondition "File descriptor was closed in
  // another greenlet [EBADF]" after Close() (the Readiness may then be gone: touch nothing); the
  // error given to Cancel. Throws ConcurrentObjectUseError when another greenlet waits on that
  // side already, UsageError from another thread's hub, BlockingInHubError on the hub greenlet.
  absl::Status Wait(Side side, std::optional<absl::Time>* deadline,
                    std::optional<absl::Duration> timeout, const char* operation);

  // WaitReady: Wait without having seen the side not ready — polls the fd first unless it was
  // seen not ready with no event since. gevent's wait_read / wait_write.
  absl::Status WaitReady(Side side, std::optional<absl::Duration> timeout, const char* operation);

  // Cancel wakes the greenlets parked on `side` (kEither: both sides); their waits return
  // `error` (gevent's cancel_wait; the public callers reject an OK one). The fd stays registered.
  // Returns how many were woken.
  int Cancel(Side side, absl::Status error);

  // ReadyNow asks the kernel (poll with a zero timeout) whether `fd` is ready on `side`: true
  // also for an error or hang-up the next call reports; the errno status if poll fails (EBADF).
  static absl::StatusOr<bool> ReadyNow(int fd, Side side, const char* operation);

  // TimedOutError: DeadlineExceeded "<operation> <where>: timed out after <timeout>" (noting a
  // non-blocking call that would block), with ETIMEDOUT attached. Every wait's expiry.
  static absl::Status TimedOutError(const char* operation, absl::string_view where,
                                    std::optional<absl::Duration> timeout);

  // Close unregisters the fd and wakes every waiter with the close error (see Wait). Idempotent.
  void Close();
  // Unregister takes the fd out of the hub's edge poller (and its registry) now; waiters stay.
  void Unregister();

  // transient: made by a wait on an fd that nothing in the stack owns (gevent::WaitRead), for
  // as long as some greenlet waits through it: each holds a use (AddUse), the last to let go
  // (ReleaseUse returns true) deletes it.
  bool transient() const { return transient_; }
  void set_transient() { transient_ = true; }
  // pinned: a transient Readiness that PinnedWait keeps between waits (it holds one use).
  bool pinned() const { return pinned_; }
  void set_pinned(bool pinned) { pinned_ = pinned; }
  void AddUse() { ++uses_; }
  bool ReleaseUse() { return --uses_ == 0; }

  // MarkNotReady: the caller saw `side` not ready (a short read or write of a stream): the next Io
  // with wait_first waits for an event before calling. A read side that hung up stays ready.
  void MarkNotReady(Side side) {
    if (side == Side::kRead) {
      read_.ready = read_.hangup;
    } else {
      write_.ready = false;
    }
  }

  // seen_ready: false once `side` (kRead or kWrite) was seen not ready with no event since: a
  // call on it now would most likely fail with EAGAIN (the edge rule, for callers making their
  // own system calls, as //ssl's BIO does).
  bool seen_ready(Side side) const { return side == Side::kRead ? read_.ready : write_.ready; }

  int fd() const { return fd_; }
  bool stream() const { return stream_; }
  Hub& hub() const { return *hub_; }
  // The default timeout of Io calls given IoTimeout::SocketDefault() (Socket::SetTimeout).
  std::optional<absl::Duration> default_timeout() const { return default_timeout_; }
  void set_default_timeout(std::optional<absl::Duration> t) { default_timeout_ = t; }

 private:
  struct WaitNode;
  enum class WaitResult { kReady, kTimedOut, kClosed, kCancelled };

  // Direction: one side — its readiness, its timeout timer and its waiter.
  struct alignas(64) Direction {
    Direction(Hub& h, const void* owner);
    // Edge: the kernel reported a change on this side (from the poll, see OnEvents).
    void Edge() {
      ready = true;
      if (waiter != nullptr) {
        wake.resume = waiter;
        hub->ScheduleNode(&wake);  // Does nothing if still queued from the last poll.
      }
    }

    // Layout: what a wake-up touches comes first and in as few lines as it fits: the queue entry
    // and the waiter (line 0), then the hub, the wait node and the readiness flag (line 1). The
    // timer, used only by waits with a timeout, last.
    ReadyNode wake;
    // waiter: waiting->greenlet, kept here so that an event does not read the parked stack.
    greenlet::Greenlet* waiter = nullptr;
    Hub* hub;
    WaitNode* waiting = nullptr;
    // ready: an event came since this side was last seen not ready (the edge rule). Starts true:
    // a new descriptor's first call just tries.
    bool ready = true;
    // hangup (read side of a stream): the peer shut its side, or the connection is gone
    // (EPOLLRDHUP). From then on every read returns at once (data, 0 or the error) and no further
    // event comes, so the side never waits again: a short read does not mean "not ready" any more.
    bool hangup = false;
    TimerWatcher timer;
    absl::Status cancel_error;  // Set by Cancel for the waiter it wakes.
  };

  static void OnEvents(EdgePoller::Handle* handle, std::uint32_t events);
  WaitResult Park(Direction& d, Direction* also, std::optional<absl::Time>* deadline,
                  std::optional<absl::Duration> timeout, const char* operation);
  // WaitFailed: the status of a wait that did not end ready. Out of line, like the misuse errors
  // of Park: the frames between a parked greenlet's switch and its caller are what its wake-up
  // reads first, and the hub prefetches only the first 1 KiB of them (Scheduler::PrefetchQueued).
  ABSL_ATTRIBUTE_NOINLINE static absl::Status WaitFailed(WaitResult result, Direction& d, int fd,
                                                         std::optional<absl::Duration> timeout,
                                                         const char* operation);
  // WakeWaiter resumes the greenlet parked on `d` (all its sides), closed or with `error`.
  void WakeWaiter(Direction& d, bool closed, const absl::Status& error);
  Direction& DirectionOf(Side side) { return side == Side::kWrite ? write_ : read_; }

  Hub* hub_;
  EdgePoller* poller_;
  int fd_;
  bool stream_;
  bool registered_ = false;
  bool transient_ = false;
  bool pinned_ = false;
  int uses_ = 0;  // Of a transient Readiness: the greenlets waiting through it.
  bool output_watched_ = false;  // Output events asked for (the first wait to write does).
  std::optional<absl::Duration> default_timeout_;
  Direction read_;
  Direction write_;
};

// For a layer that sees every close of the fds it waits on (//monkey's hooks), waits that cost
// no epoll_ctl (implemented in socket/wait.cc, beside WaitRead):
// PinnedWait: the caller's call on `fd` (an fd no Socket owns) just failed with EAGAIN: parks
// until an event on `side` (no poll first: the edge rule), and leaves the fd registered with
// this hub's edge poller for the next wait. Errors as gevent::WaitRead's.
absl::Status PinnedWait(int fd, Side side, std::optional<absl::Duration> timeout,
                        const char* operation);
// Unpin: `fd` is about to be closed or replaced (close, dup2): its registration on this hub
// goes now, or with its last waiter. Call it before CancelWait, which wakes those waiters.
void Unpin(int fd);

// ----- implementation -----

template <typename Call, typename OnError>
inline absl::StatusOr<size_t> Readiness::Io(Side side, IoTimeout timeout, bool wait_first,
                                            const char* operation,
                                            std::optional<absl::Time>* deadline, Call&& call,
                                            OnError&& on_error) {
  std::optional<absl::Time> own_deadline;
  if (deadline == nullptr) deadline = &own_deadline;
  if (wait_first && !DirectionOf(side).ready) {
    const std::optional<absl::Duration> t = timeout.Resolve(default_timeout_);
    if (!(t.has_value() && *t <= absl::ZeroDuration())) {
      if (absl::Status s = Wait(side, deadline, t, operation); !s.ok()) return s;
    }
  }
  for (;;) {
    const ssize_t n = call();
    if (ABSL_PREDICT_TRUE(n >= 0)) return static_cast<size_t>(n);
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN) return on_error(err);
    // After a close the Readiness may be gone: Wait's error returns without touching it.
    if (absl::Status s = Wait(side, deadline, timeout.Resolve(default_timeout_), operation);
        !s.ok()) {
      return s;
    }
  }
}

}  // namespace gevent::internal

#endif  // GEVENT_SOCKET_INTERNAL_READINESS_H_
