// gevent::Hub — the per-thread scheduler where greenlets meet the event loop (gevent.hub).
//
// Each thread has one hub, created on first use by GetHub(). The hub is a greenlet that runs the
// thread's libev loop (the default loop on the first thread that makes a hub, a new loop on every
// other thread). A blocking-style operation parks the calling greenlet and switches to the hub;
// the hub switches back when the watcher it waits on fires, or when the greenlet is scheduled
// again through the hub's ready queue.
//
//   gevent::Sleep(absl::Milliseconds(5));        // parks on a timer
//   hub.Wait(io_watcher);                         // parks until the fd is ready
//   gevent::Sleep(absl::ZeroDuration());          // lets every other ready greenlet run first
//
// Scheduling. The hub keeps a FIFO ready queue of greenlets and callbacks (Schedule, Sleep(0),
// Waiter::Wake) and runs it in order; entries queued meanwhile join the tail. Ready greenlets
// that keep yielding cannot starve I/O: the loop is polled whenever the queue empties, and
// otherwise about every 100 us (Hub::kPollInterval, checked every kPollEvery entries). How it
// hands over and when it polls: hub/internal/scheduler.h.
//
// LoopExit. When the queue is empty and the loop has no active watcher that keeps it alive,
// nothing can ever wake a parked greenlet: the hub raises LoopExit ("would block forever") in the
// greenlet that waits in Join() — normally the thread's main greenlet — instead of hanging.
// The hub's own watchers never keep the loop alive.
//
// Thread-safety: "hub thread only" for everything except RunCallbackThreadSafe, which any thread
// may call. Greenlets never migrate between threads.
//
// Misuse that is reported (gevent::UsageError subclasses below, see base/errors.h; the message
// names the mistake):
// blocking from inside the hub (a loop callback that calls a blocking function), a second
// greenlet waiting on a watcher that already has a waiter, and a parked greenlet resumed by a
// switch that is not its wake-up (a foreign value).
#ifndef GEVENT_HUB_HUB_H_
#define GEVENT_HUB_HUB_H_

#include <any>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "core/loop.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/internal/scheduler.h"

namespace gevent {

// LoopExit: the operation would block forever — the loop has nothing left that could wake the
// waiting greenlet (gevent.exceptions.LoopExit).
class LoopExit : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// BlockingInHubError: a blocking call was made on the hub greenlet itself (from a loop callback).
class BlockingInHubError : public UsageError {
 public:
  using UsageError::UsageError;
};

// ConcurrentObjectUseError: a second greenlet tried to wait on something that already has a
// waiter (gevent.exceptions.ConcurrentObjectUseError).
class ConcurrentObjectUseError : public UsageError {
 public:
  using UsageError::UsageError;
};

// InvalidSwitchError: a parked greenlet was switched into by something other than its wake-up.
class InvalidSwitchError : public UsageError {
 public:
  using UsageError::UsageError;
};

class Hub;

// BlockReport: what the blocked-hub monitor saw (see Hub::StartMonitor).
struct BlockReport {
  std::string greenlet;        // The spawned greenlet's name, or "the hub", "the main greenlet"...
  absl::Duration blocked_for;  // How long it had held the hub when reported (at least threshold).
};

// MonitorOptions: the blocked-hub monitor's threshold and where its reports go.
struct MonitorOptions {
  absl::Duration threshold = absl::Milliseconds(100);
  // Called on the monitor thread, once per blocking episode, while the greenlet still blocks.
  // Empty: one line on stderr. If it throws, see StartMonitor.
  std::function<void(const BlockReport&)> report;
};

// Hub: one per thread. Its engine (the ready queue, Park, the poll cadence) is
// internal::Scheduler, for the stack's own layers; what a program uses is below.
class Hub : public internal::Scheduler {
 public:
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  // ~Hub: unwinds the hub greenlet and destroys the loop (unless it is the default loop).
  // Precondition: no greenlet of this thread is parked on the hub and no watcher of its loop is
  // alive (they are the caller's, and must go first).
  ~Hub();

  // loop: this hub's event loop.
  Loop& loop() { return *loop_; }

  // greenlet: the hub's own greenlet.
  greenlet::Greenlet* greenlet() { return &greenlet_; }

  // InHub: true when the calling code runs on the hub greenlet (inside a loop callback).
  bool InHub() const { return greenlet::Greenlet::Current() == &greenlet_; }

  // Wait parks the current greenlet until `watcher` fires, then returns true; with a timeout,
  // returns false if it expires first. The watcher is started here (with a callback that resumes
  // this greenlet) and stopped on every way out, exceptions included.
  // Throws BlockingInHubError on the hub greenlet, ConcurrentObjectUseError if the watcher is
  // already active (another greenlet waits on it), LoopExit if nothing can ever fire it, and
  // whatever is thrown into the greenlet while it waits (a Timeout, GreenletExit...).
  template <typename WatcherT>
  bool Wait(WatcherT& watcher, std::optional<absl::Duration> timeout = std::nullopt);

  // Schedule queues `fn` to run on the hub, after every entry already queued. Hub thread only.
  // Exceptions from `fn` go to the loop's error handler. An empty `fn` throws UsageError.
  void Schedule(absl::AnyInvocable<void()> fn);

  // Yield puts the current greenlet at the end of the ready queue and switches to the hub: every
  // greenlet that was ready runs first (gevent.sleep(0)). On the hub greenlet, throws
  // BlockingInHubError.
  void Yield();

  // Join runs the hub until there is no work left — no ready entries, no active referenced
  // watchers — and returns true; with a timeout, returns false if it expires first. Call it from
  // the thread's main greenlet (or any greenlet that is not the hub).
  bool Join(std::optional<absl::Duration> timeout = std::nullopt);

  // RunCallbackThreadSafe queues `fn` to run on the hub thread (through an async watcher). Any
  // thread may call it. The hub does not wait for such callbacks unless something else keeps it
  // alive (see ThreadPool for a waited-for cross-thread call). An empty `fn` throws UsageError.
  void RunCallbackThreadSafe(absl::AnyInvocable<void()> fn);

  // StartMonitor starts the blocked-hub monitor: a thread that reports (MonitorOptions::report)
  // when one greenlet, or a loop callback, has kept the hub from running for longer than
  // `threshold` — it neither parked nor yielded, so no other greenlet and no I/O could run. A hub
  // that waits for I/O is idle, not blocked. Restarting replaces the options. Hub thread only;
  // the monitor stops with StopMonitor or with the hub. What it reads costs the hub two plain
  // stores per switch, started or not.
  //
  // A non-positive threshold throws UsageError. An exception thrown by the report callback does
  // not stop the monitor (nor end the process): it is handed to the hub thread (through
  // RunCallbackThreadSafe) and passed to the loop's error handler (Loop::SetErrorHandler) with
  // the kind "monitor", once the hub runs its loop again — after the blocking greenlet let go.
  // The default handler prints it to stderr. It is dropped if the hub is destroyed first.
  //
  // The report names the blocking greenlet while it still runs (it reads the name a spawned
  // greenlet was given; renaming a greenlet while the monitor runs is a race).
  void StartMonitor(MonitorOptions options);
  void StopMonitor();

  // stats: counters since the hub was created.
  const HubStats& stats() const { return stats_; }

  // ready_count: entries in the ready queue (including the batch being run).
  std::size_t ready_count() const { return ready_count_; }

  // own_watchers: the watchers the hub keeps active on its loop (unreferenced): the cross-thread
  // async watcher, and the sockets' edge poller once one was made.
  std::size_t own_watchers() const { return 1 + (edge_poller_ != nullptr ? 1 : 0); }

  // Attachment: an object another layer keeps one of per hub (hub/threadpool.h's HubThreadPool).
  // The hub owns it and destroys it first thing in ~Hub, while the loop still exists, in the
  // reverse order of attaching. Hub thread only.
  class Attachment {
   public:
    virtual ~Attachment() = default;
  };
  // FindAttachment: the object attached under `key` (the address of the owner's own static
  // object), or null. Attach: attaches `object` under `key` and returns it; a key attached
  // twice throws UsageError.
  Attachment* FindAttachment(const void* key) const;
  Attachment& Attach(const void* key, std::unique_ptr<Attachment> object);
  // Detach takes the object attached under `key` back out (null if none): the caller owns it
  // (the thread pool's reset in a forked child, which must not destroy it). Hub thread only.
  std::unique_ptr<Attachment> Detach(const void* key);

 private:
  friend Hub& internal::CreateHub();
  explicit Hub(std::unique_ptr<Loop> owned, Loop* loop);
  static void RunCallbackNode(internal::ReadyNode* node);

  // Cross-thread callbacks.
  std::mutex foreign_mu_;  // Not absl::Mutex: visible to ThreadSanitizer (see ThreadPool).
  std::vector<absl::AnyInvocable<void()>> foreign_ ABSL_GUARDED_BY(foreign_mu_);
  std::unique_ptr<AsyncWatcher> foreign_async_;

  std::vector<std::pair<const void*, std::unique_ptr<Attachment>>> attachments_;
};

// GetHub returns the calling thread's hub, creating it on first use. Throws std::runtime_error
// when the thread's event loop cannot be made (out of descriptors, say): there is no status to
// return, and nothing on the thread can run without it.
__attribute__((always_inline)) inline Hub& GetHub() {
  Hub* hub = internal::tls_hub;
  if (__builtin_expect(hub != nullptr, 1)) return *hub;
  return internal::CreateHub();
}

// HubIfExists returns the calling thread's hub, or null if it has none yet.
Hub* HubIfExists();

// DestroyHub destroys the calling thread's hub, if any (see ~Hub's precondition). Mostly for
// tests; a hub is otherwise destroyed at thread exit.
void DestroyHub();

// Sleep parks the current greenlet for `duration` (the loop's time is refreshed first, so the
// sleep is measured from now). A zero or negative duration yields: Hub::Yield.
namespace internal {
void SleepOnTimer(absl::Duration duration);
}  // namespace internal
__attribute__((always_inline)) inline void Sleep(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) {
    GetHub().Yield();
  } else {
    internal::SleepOnTimer(duration);
  }
}

// Wait runs the hub until no work is left (gevent.wait() with no objects): Hub::Join.
bool Wait(std::optional<absl::Duration> timeout = std::nullopt);

// Waiter: one greenlet parks in Get(), another party wakes it (gevent.hub.Waiter). The wake-up
// goes through the hub's ready queue, so Wake may be called from any greenlet of the hub's thread
// or from a loop callback. Not copyable; hub thread only.
class Waiter {
 public:
  explicit Waiter(Hub& hub = GetHub()) : hub_(&hub) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  // ~Waiter cancels a wake-up that has not run yet.
  ~Waiter() { Cancel(); }

  // Wake schedules the parked greenlet to resume (or makes the next Get return at once).
  // Waking twice before Get is the same as once.
  void Wake();

  // WakeWithError is Wake, but Get throws `error`.
  void WakeWithError(std::exception_ptr error);

  // Get parks until woken and clears the wake-up. With a timeout, returns false if it expires
  // first (a wake-up after that is kept for the next Get). Throws what WakeWithError passed,
  // ConcurrentObjectUseError if another greenlet already waits here, and the exceptions of
  // Hub::Park.
  // Inline: the switch then sits in the caller, whose returns after resuming stay predicted.
  bool Get(std::optional<absl::Duration> timeout = std::nullopt);

  // Cancel drops a pending wake-up.
  void Cancel();

  bool woken() const { return woken_; }
  bool waiting() const { return waiter_ != nullptr; }

 private:
  [[noreturn]] static void ThrowConcurrentGet();
  void RethrowError();

  Hub* hub_;
  internal::ReadyNode node_;  // Queued (resuming waiter_) only while waiter_ is parked in Get.
  greenlet::Greenlet* waiter_ = nullptr;
  bool woken_ = false;
  std::exception_ptr error_;
};

// ----- implementation -----

// Yield is inline: a yield is two greenlet switches, and every call level around a switch costs
// as much as the queue work itself.
__attribute__((always_inline)) inline void Hub::Yield() {
  ThrowIfInHub("Sleep(0)");
  struct Entry : internal::ReadyNode {
    Hub* hub;
    // A throw into the parked greenlet (a kill) leaves the entry queued: take it out.
    ~Entry() { hub->Unschedule(this); }
  } entry;
  entry.hub = this;
  entry.resume = greenlet::Greenlet::Current();
  ScheduleNode(&entry);
  Park({&entry});
}

template <typename WatcherT>
bool Hub::Wait(WatcherT& watcher, std::optional<absl::Duration> timeout) {
  ThrowIfInHub("Hub::Wait");
  if (watcher.active()) {
    throw ConcurrentObjectUseError(std::string("gevent::Hub::Wait: this ") + watcher.kind() +
                                   " watcher is already active: another greenlet is waiting on "
                                   "it");
  }
  // The callback captures one pointer, so it fits in the callback's inline storage: a wait
  // allocates nothing. It touches nothing after Resume returns (the resumed greenlet may replace
  // it), and `wake` outlives it (the watcher is stopped before this frame ends).
  struct Wake {
    Hub* hub;
    greenlet::Greenlet* self;
    const void* key;
  } wake{this, greenlet::Greenlet::Current(), &watcher};
  const void* fired_key = &watcher;
  if constexpr (std::is_invocable_v<typename WatcherT::Callback&, int>) {
    watcher.set_callback([w = &wake](int) { w->hub->Resume(w->self, w->key); });
  } else {
    watcher.set_callback([w = &wake] { w->hub->Resume(w->self, w->key); });
  }
  struct StopOnExit {
    WatcherT& w;
    ~StopOnExit() { w.Stop(); }
  } stop{watcher};
  watcher.Start();
  internal::WakeTimer timer(*this, wake.self, timeout);
  return Park({fired_key, timer.key()}) == fired_key;
}

__attribute__((always_inline)) inline bool Waiter::Get(std::optional<absl::Duration> timeout) {
  if (__builtin_expect(waiter_ != nullptr, 0)) ThrowConcurrentGet();
  if (!woken_) {
    greenlet::Greenlet* self = greenlet::Greenlet::Current();
    internal::WakeTimer timer(*hub_, self, timeout);
    waiter_ = self;
    node_.resume = self;  // The node is queued only while `self` is parked below.
    struct Leave {
      Waiter* w;
      ~Leave() {
        w->waiter_ = nullptr;
        w->node_.resume = nullptr;
        w->hub_->Unschedule(&w->node_);
      }
    } leave{this};
    if (hub_->Park({&node_, timer.key()}) != &node_) return false;
  }
  woken_ = false;
  if (__builtin_expect(static_cast<bool>(error_), 0)) RethrowError();
  return true;
}

}  // namespace gevent

#endif  // GEVENT_HUB_HUB_H_
