// gevent::EdgePoller — readiness edges of many descriptors through one edge-triggered epoll set
// that the loop watches as a single descriptor (Linux only).
//
// What for: libev's epoll backend is level-triggered, and a level-triggered set makes the kernel
// check every descriptor it reported once more on the next epoll_wait, to see whether it is still
// ready. With thousands of busy sockets that second look (a poll of a cache-cold socket through
// an indirect call) is a large share of the kernel's work per message: a plain C echo server at
// 1000 connections spends about an eighth less CPU per message with EPOLLET on this kind of
// machine (0.87×, median of 6 alternating pairs). gevent::Socket registers its descriptors here instead of with one libev io watcher per
// side; timers, signals and other watchers stay with libev.
//
// How: the set is an epoll descriptor registered with the Loop by one IoWatcher. When libev
// reports it readable, Dispatch collects the ready descriptors without blocking and calls each
// one's Handle. The owner (the hub) may also call Dispatch directly between libev's polls.
//
// Edge semantics, the rule every user must keep: an event is reported once per change (new data,
// new room, an error, a hang-up), not while the state lasts. So a descriptor's user may wait for
// an event only after it has seen the descriptor not ready since the last event it was told
// about (EAGAIN, or a short read of a stream). Waiting on a descriptor that is already ready, with
// no change to come, waits forever. Spurious events are possible (a change already consumed);
// users retry the call and wait again.
//
// Lifetime: an EdgePoller must be destroyed before its Loop; every Handle must be Removed (or its
// descriptor closed, when no other descriptor refers to the same file) before the Handle is
// destroyed. Thread-safety: loop thread only, like the Loop.
//
// Errors (base/errors.h): Add or WatchOutput of a negative fd or a null handle is misuse and
// throws gevent::UsageError. A failed epoll_ctl returns gevent::ErrnoError's status (the
// operation, "(fd N)", the errno text and name, the errno attached): Add of a descriptor already
// registered is AlreadyExists; of one epoll cannot watch (a regular file, EPERM) InvalidArgument;
// of a closed one (EBADF) FailedPrecondition; WatchOutput of one not added NotFound; out of
// memory or of the epoll watch limit (ENOMEM, ENOSPC) ResourceExhausted.
#ifndef GEVENT_CORE_EDGE_POLLER_H_
#define GEVENT_CORE_EDGE_POLLER_H_

#include <sys/epoll.h>

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/loop.h"
#include "core/watchers.h"

namespace gevent {

class EdgePoller {
 public:
  // Handle: what a registered descriptor reports to. `on_events` receives the epoll event bits
  // (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP). It runs inside Dispatch, with other
  // handles' events of the same batch still to come: it must not Remove or destroy any handle,
  // run user code or switch greenlets — it records the change and queues work, nothing more.
  struct Handle {
    void (*on_events)(Handle* self, std::uint32_t events) = nullptr;
  };

  // The most events one Dispatch collects; more stay queued in the kernel for the next one.
  static constexpr int kMaxEvents = 512;

  // Create: a new set watched by `loop`. Its watcher is unreferenced: the set alone never keeps
  // Loop::Run going (a user that waits holds a Loop::Ref for as long as it waits). Errors: the
  // epoll_create1 failure as gevent::ErrnoError makes it (EMFILE: ResourceExhausted).
  static absl::StatusOr<std::unique_ptr<EdgePoller>> Create(Loop& loop);
  ~EdgePoller();
  EdgePoller(const EdgePoller&) = delete;
  EdgePoller& operator=(const EdgePoller&) = delete;

  // Add registers `fd` for input edges (and errors and hang-ups), reported to `handle`. If the
  // descriptor is ready already, the next Dispatch reports it.
  absl::Status Add(int fd, Handle* handle);
  // WatchOutput adds output edges (room to write) to the registration of `fd`, for good; as with
  // Add, a descriptor that has room already is reported by the next Dispatch. Not part of Add
  // because output edges are not free: a Unix socket reports one each time its peer reads, so a
  // user asks for them only once it has to wait for room. Errors as for Add (NotFound: `fd` was
  // not added).
  absl::Status WatchOutput(int fd, Handle* handle);
  // Remove unregisters `fd` (a no-op for a descriptor that is not registered, or already closed).
  // No event for it is reported afterwards.
  void Remove(int fd);
  // Find: the handle `fd` was added with, or null when it is not registered (one hash lookup;
  // how a wait on an fd finds the registration of the socket that owns it).
  Handle* Find(int fd) const;

  // Dispatch collects the ready descriptors without blocking and calls their handles. Returns
  // how many it reported (0 when none was ready; an epoll_wait failure other than EINTR is
  // passed to the loop's error handler and counts as none).
  int Dispatch();

  // fd: the epoll descriptor itself.
  int fd() const { return epoll_fd_; }

  // ReopenAfterFork: in the child after fork(), replaces the epoll set (shared with the parent
  // until now: an event consumed by one process is lost to the other) by a new one holding every
  // registered descriptor, for input and output edges (an output edge that was not asked for is
  // a spurious event, which users tolerate). Call it after Loop::Fork(), before the next poll.
  // Errors: epoll_create1's; a descriptor that cannot be re-added (closed) is dropped.
  absl::Status ReopenAfterFork();

 private:
  EdgePoller(Loop& loop, int epoll_fd);
  absl::Status Control(int op, int fd, Handle* handle, std::uint32_t events, const char* what);

  Loop& loop_;
  int epoll_fd_;  // Replaced only by ReopenAfterFork.
  IoWatcher watcher_;
  absl::flat_hash_map<int, Handle*> handles_;  // Every registered fd (see Find).
  epoll_event events_[kMaxEvents];
};

}  // namespace gevent

#endif  // GEVENT_CORE_EDGE_POLLER_H_
