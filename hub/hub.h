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
// Waiter::Wake) and runs it in order; entries queued meanwhile join the tail. The loop is polled
// for I/O without blocking at least every kPollEvery ready entries and whenever the queue
// empties, so ready greenlets that keep yielding cannot starve I/O, while a yield costs two
// greenlet switches rather than a full loop iteration. When a greenlet that the hub resumed from
// the ready queue parks (or finishes) and the next entry resumes another greenlet, it switches to
// that one directly: the same order the hub would give, one switch instead of two.
// A watcher callback may queue its waiter as an entry marked `from_poll` instead of switching
// into it (gevent::Socket does): the hub then runs the poll's whole batch with those direct
// hand-offs, prefetching the next entries' greenlets as it goes. While busy the hub polls without
// blocking first, and blocks only once such a poll found nothing (HubStats::blocking_polls).
// Such a non-blocking poll asks the edge poller (sockets' readiness, see edge_poller) directly
// and skips libev's own poll — a system call — when that found work, unless libev has not been
// polled for kLibevPollEvery (the clock is checked every few polls): timers and other watchers
// are late by about that much at most, unless the greenlets between two polls run longer.
// When that probe finds nothing, the hub blocks in libev's poll straight away; and when a
// blocking poll wakes at most one entry (a hub serving one peer at a time), the next turn
// blocks without probing: one blocking poll per wake-up, no empty non-blocking ones.
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
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "core/edge_poller.h"
#include "core/loop.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/internal/list.h"

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
  // Empty: one line on stderr.
  std::function<void(const BlockReport&)> report;
};

namespace internal {
class HubMonitor;
struct HubMonitorDeleter {
  void operator()(HubMonitor* monitor) const;
};

// GreenletNamer: how the monitor names a greenlet that carries user data (set by //hub:greenlet
// for spawned greenlets, whose user data is their gevent::Greenlet). Called on the monitor thread
// while the greenlet is known to be alive.
using GreenletNamer = std::string (*)(const greenlet::Greenlet* g);
void SetGreenletNamer(GreenletNamer namer);

// ReadyNode: an entry of the hub's ready queue, intrusive so that queueing allocates nothing and
// an entry can remove itself (its owner is destroyed, or its greenlet was resumed another way).
// An entry either resumes `resume` (with the node's address as the wake key) or calls `run`.
// A hub destroyed with the entry still queued calls `discard` (if set) instead, so that the
// entry's owner can let go of what it holds.
struct ReadyNode : ListLink {
  void (*run)(ReadyNode* self) = nullptr;
  greenlet::Greenlet* resume = nullptr;
  void (*discard)(ReadyNode* self) = nullptr;
  // from_poll: queued by a watcher callback for readiness that a poll found. Such entries do not
  // count toward Hub::kPollEvery: a poll queues at most one per watcher, so they cannot starve
  // I/O, and a busy server runs a whole poll's batch before it polls again.
  bool from_poll = false;
  // lines_after: how many cache lines after the one this entry starts in the resumed greenlet
  // also reads (the rest of the entry's owner: a socket's watcher and wait fields, say),
  // prefetched with `warm`.
  std::uint8_t lines_after = 0;
  // warm: optional, a line the resumed greenlet reads first (its socket's state, say), prefetched
  // with the greenlet's object while earlier entries run.
  const void* warm = nullptr;
  bool queued() const { return linked(); }
};

// The calling thread's hub, or null; set by GetHub. A plain `__thread` pointer so that GetHub's
// fast path is one load.
extern __thread Hub* tls_hub;
Hub& CreateHub();
[[noreturn]] void ThrowBlockingInHub(const char* operation);
[[noreturn]] void ThrowInvalidSwitch(const std::any& value);
}  // namespace internal

// HubStats: counters for the load generator and for diagnostics.
// Every greenlet switch the hub makes or arranges is one of switches_to_hub, resumes and
// direct_switches, so their sum is the thread's scheduling switch count.
struct HubStats {
  std::uint64_t switches_to_hub = 0;   // Parks that switched to the hub greenlet.
  std::uint64_t resumes = 0;           // Hub -> greenlet switches for wake-ups.
  std::uint64_t direct_switches = 0;   // Parks that handed over straight to the next ready
                                       // greenlet (see "Scheduling" above).
  std::uint64_t ready_run = 0;         // Ready-queue entries run.
  std::uint64_t polls = 0;             // Hub loop turns that polled for I/O (libev, the edge
                                       // poller, or its probe then libev's blocking poll).
  std::uint64_t blocking_polls = 0;    // Of those, the ones allowed to block (nothing was ready).
  std::uint64_t edge_polls = 0;        // Of those, the edge poller's alone (see "Scheduling").
  std::uint64_t callbacks_run = 0;     // Scheduled callbacks (Schedule) run.

  std::uint64_t switches() const { return switches_to_hub + resumes + direct_switches; }
};

class Hub {
 public:
  // Ready entries run between two non-blocking I/O polls, at most.
  static constexpr std::size_t kPollEvery = 64;
  // The longest a busy hub goes without polling libev (its timers, signals, cross-thread wake-ups)
  // while the edge poller keeps finding work.
  static constexpr absl::Duration kLibevPollEvery = absl::Milliseconds(1);
  // own_watchers: the watchers the hub keeps active on its loop (unreferenced): the cross-thread
  // async watcher, and the edge poller's once a socket has made it (see edge_poller).
  std::size_t own_watchers() const { return 1 + (edge_poller_ != nullptr ? 1 : 0); }

  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  // ~Hub: unwinds the hub greenlet and destroys the loop (unless it is the default loop).
  // Precondition: no greenlet of this thread is parked on the hub and no watcher of its loop is
  // alive (they are the caller's, and must go first).
  ~Hub();

  // loop: this hub's event loop.
  Loop& loop() { return *loop_; }

  // edge_poller: this hub's edge-triggered descriptor set (core/edge_poller.h), made on first use
  // and destroyed with the hub; gevent::Socket registers its descriptors there. Errors: those of
  // EdgePoller::Create (out of descriptors, say), and again on the next call.
  absl::StatusOr<EdgePoller*> edge_poller() {
    if (__builtin_expect(edge_poller_ == nullptr, 0)) return CreateEdgePoller();
    return edge_poller_.get();
  }

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

  // Park switches to the hub until Resume(this greenlet, key) with one of `keys`, which it
  // returns. The building block of every wait: callers arrange for the wake-up first. Throws
  // BlockingInHubError on the hub greenlet and InvalidSwitchError if resumed any other way.
  // Inline: it is on every wait's path.
  const void* Park(std::initializer_list<const void*> keys);

  // Resume switches from the hub into `parked`, which is in Park() expecting `key`. Hub only.
  void Resume(greenlet::Greenlet* parked, const void* key);

  // Schedule queues `fn` to run on the hub, after every entry already queued. Hub thread only.
  // Exceptions from `fn` go to the loop's error handler.
  void Schedule(absl::AnyInvocable<void()> fn);

  // ScheduleNode queues an intrusive entry (see Waiter); it must stay alive until it runs or is
  // removed with Unschedule. Queueing a queued node does nothing.
  void ScheduleNode(internal::ReadyNode* node);
  void Unschedule(internal::ReadyNode* node);

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
  // alive (see ThreadPool for a waited-for cross-thread call).
  void RunCallbackThreadSafe(absl::AnyInvocable<void()> fn);

  // StartMonitor starts the blocked-hub monitor: a thread that reports (MonitorOptions::report)
  // when one greenlet, or a loop callback, has kept the hub from running for longer than
  // `threshold` — it neither parked nor yielded, so no other greenlet and no I/O could run. A hub
  // that waits for I/O is idle, not blocked. Restarting replaces the options. Hub thread only;
  // the monitor stops with StopMonitor or with the hub. What it reads costs the hub two plain
  // stores per switch, started or not.
  //
  // The report names the blocking greenlet while it still runs (it reads the name a spawned
  // greenlet was given; renaming a greenlet while the monitor runs is a race).
  void StartMonitor(MonitorOptions options);
  void StopMonitor();

  // DeferRelease queues `node` to run (node->run) later on this thread, never on the greenlet that
  // queued it: how a finished greenlet lets go of itself without a trip through the ready queue.
  // It runs when the hub next regains control, at the next Spawn, or when the hub is destroyed.
  void DeferRelease(internal::ReadyNode* node) {
    if (!node->queued()) releases_.PushBack(node);
  }
  // DrainReleases runs the deferred releases now. The caller must not be one of the greenlets
  // that queued them (it never is: those have finished).
  void DrainReleases() {
    if (__builtin_expect(!releases_.empty(), 0)) DrainReleasesSlow();
  }

  // HandOffAtFinish: a greenlet about to finish calls it last. When the hub would resume the next
  // ready greenlet next anyway, the finish switches straight to that one (Greenlet::FinishTo):
  // the same order, one switch instead of two.
  void HandOffAtFinish(greenlet::Greenlet* self);

  // BeforeRelease: a spawned greenlet's owner calls it before dropping the last reference that
  // the greenlet holds on itself, so that a monitor reading its name finishes first. Hub thread.
  void BeforeRelease(const greenlet::Greenlet* g) {
    if (__builtin_expect(monitor_ != nullptr, 0)) WaitForMonitorRead(g);
  }

  // stats: counters since the hub was created.
  const HubStats& stats() const { return stats_; }

  // ready_count: entries in the ready queue (including the batch being run).
  std::size_t ready_count() const { return ready_count_; }

 private:
  friend Hub& internal::CreateHub();
  friend class HubTestPeer;
  explicit Hub(std::unique_ptr<Loop> owned, Loop* loop);

  std::any SwitchAway(greenlet::Greenlet* self);
  void WaitForMonitorRead(const greenlet::Greenlet* g);
  void DrainReleasesSlow();
  // NoteRunning publishes, for the monitor, that `g` runs from now on.
  void NoteRunning(const greenlet::Greenlet* g) {
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    running_.store(g, std::memory_order_release);
  }
  void RunForever();
  void RunReady();
  // PrefetchQueued warms the next ready entries while the current one runs, as a pipeline that
  // reads only lines the previous step prefetched: the first entry's stack (its greenlet object
  // came in the step before), the second's greenlet object and the lines its owner named (`warm`,
  // `lines_after`; its entry came in the step before), the third entry itself. With thousands of
  // connections each of those is a likely miss.
  // The first's stack comes last: its 17 lines fill the core's miss buffers, and the few lines
  // the next step's prefetches depend on should not queue behind them. (perf, 8 alternating
  // pairs at 1000 connections: the echo server's user time per message fell by about a sixth;
  // the load generator's did not change measurably.)
  void PrefetchQueued() {
    internal::ReadyNode* first = ready_.front();
    if (first == nullptr) return;
    if (internal::ReadyNode* second = ready_.NextOf(first)) {
      if (second->resume != nullptr) second->resume->PrefetchObject();
      if (second->warm != nullptr) greenlet::internal::Prefetch(second->warm);
      const char* line = reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(second) &
                                                       ~std::uintptr_t{63});
      for (int i = 1; i <= second->lines_after; ++i) greenlet::internal::Prefetch(line + 64 * i);
      if (internal::ReadyNode* third = ready_.NextOf(second)) {
        // Both ends: an entry on a stack need not start a cache line.
        greenlet::internal::Prefetch(third);
        greenlet::internal::Prefetch(&third->warm);
      }
    }
    if (first->resume != nullptr) first->resume->PrefetchSwitchIn();
  }
  void RaiseLoopExit();
  void ThrowIfInHub(const char* operation) const {
    if (__builtin_expect(InHub(), 0)) internal::ThrowBlockingInHub(operation);
  }
  static void RunCallbackNode(internal::ReadyNode* node);

  absl::StatusOr<EdgePoller*> CreateEdgePoller();
  // What a loop turn polls after its non-blocking probe (see RunForever): nothing more (the
  // probe queued work), libev without blocking, or libev blocking.
  enum class NextPoll { kNone, kLibevNoWait, kBlocking };
  // PollEdgesOnly: the busy hub's non-blocking poll of the edge poller alone (see "Scheduling"),
  // and what to poll next. Requires an edge poller.
  NextPoll PollEdgesOnly();

  std::unique_ptr<Loop> owned_loop_;
  Loop* loop_;
  std::unique_ptr<EdgePoller> edge_poller_;  // Before the loop goes: declared after it.
  std::int64_t libev_polled_ns_ = 0;          // CLOCK_MONOTONIC of libev's last poll.
  static constexpr int kClockCheckEvery = 8;   // See PollEdgesOnly.
  int clock_check_credit_ = 0;
  greenlet::Greenlet greenlet_;
  bool exiting_ = false;  // Set by ~Hub: the hub greenlet returns from its loop.

  // Ready queue, and the deferred releases of finished greenlets.
  internal::ListHead<internal::ReadyNode> ready_;
  internal::ListHead<internal::ReadyNode> releases_;
  std::size_t ready_count_ = 0;
  std::size_t since_poll_ = 0;
  // poll_first_: the next loop turn polls without blocking first (see RunForever).
  bool poll_first_ = true;
  // skip_edge_probe_: the last blocking poll woke at most one entry, so the next turn blocks
  // without probing the edge poller first (see RunForever).
  bool skip_edge_probe_ = false;
  // True while the hub greenlet is suspended in RunReady's resume of a ready entry: a greenlet
  // that parks may then run the next entry itself (SwitchAway).
  bool resuming_ready_ = false;

  const void* wake_key_ = nullptr;
  greenlet::Greenlet* joiner_ = nullptr;
  HubStats stats_;

  // Read by the monitor thread: a switch counter, the greenlet that runs, whether the loop is
  // waiting for I/O.
  friend class internal::HubMonitor;
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<const greenlet::Greenlet*> running_{nullptr};
  std::atomic<bool> polling_{false};
  std::atomic<const greenlet::Greenlet*> monitor_reading_{nullptr};  // Named right now.
  std::unique_ptr<internal::HubMonitor, internal::HubMonitorDeleter> monitor_;

  // Cross-thread callbacks.
  std::mutex foreign_mu_;  // Not absl::Mutex: visible to ThreadSanitizer (see ThreadPool).
  std::vector<absl::AnyInvocable<void()>> foreign_ ABSL_GUARDED_BY(foreign_mu_);
  std::unique_ptr<AsyncWatcher> foreign_async_;
};

// GetHub returns the calling thread's hub, creating it on first use.
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

namespace internal {
// WakeTimer: the timeout of a wait. With a timeout it is a started timer, measured from now, that
// resumes `parked` with key() as the wake key; without one it does nothing and key() is null (a
// null key never matches in Hub::Park). Stopped when destroyed. `keeps_loop_alive` false: the
// pending timeout alone does not count as work (Hub::Join).
class WakeTimer {
 public:
  WakeTimer(Hub& hub, greenlet::Greenlet* parked, std::optional<absl::Duration> timeout,
            bool keeps_loop_alive = true)
      : hub_(&hub), parked_(parked) {
    if (timeout.has_value()) Start(*timeout, keeps_loop_alive);
  }
  WakeTimer(const WakeTimer&) = delete;  // The timer's callback points at this object.
  WakeTimer& operator=(const WakeTimer&) = delete;
  const void* key() const { return timer_.has_value() ? &*timer_ : nullptr; }

 private:
  void Start(absl::Duration timeout, bool keeps_loop_alive);

  Hub* hub_;
  greenlet::Greenlet* parked_;
  std::optional<TimerWatcher> timer_;
};
}  // namespace internal

// ----- implementation -----

// Park, Resume and Yield are inline: a yield is two greenlet switches, and every call level
// around a switch costs as much as the queue work itself.
// SwitchAway leaves the parking greenlet `self`: to the next ready greenlet when the hub would
// resume it next anyway, otherwise to the hub. Returns the value of the switch that resumed self.
__attribute__((always_inline)) inline std::any Hub::SwitchAway(greenlet::Greenlet* self) {
  if (resuming_ready_ && since_poll_ < kPollEvery && !exiting_) {
    internal::ReadyNode* next = ready_.front();
    if (next != nullptr && next->resume != nullptr) {
      next->Unlink();
      --ready_count_;
      since_poll_ += !next->from_poll;
      ++stats_.ready_run;
      if (next->from_poll) PrefetchQueued();  // A poll's batch: cold greenlets (not a yield).
      wake_key_ = next;
      NoteRunning(next->resume);
      if (next->resume == self) return {};  // Its own entry was next: nothing else is ready.
      ++stats_.direct_switches;
      return next->resume->Switch();
    }
  }
  ++stats_.switches_to_hub;
  return greenlet_.Switch();
}

__attribute__((always_inline)) inline const void* Hub::Park(std::initializer_list<const void*> keys) {
  greenlet::Greenlet* self = greenlet::Greenlet::Current();
  if (__builtin_expect(self == &greenlet_, 0)) internal::ThrowBlockingInHub("a blocking call");
  std::any value = SwitchAway(self);
  const void* key = wake_key_;
  wake_key_ = nullptr;
  if (__builtin_expect(!value.has_value() && key != nullptr, 1)) {
    for (const void* k : keys) {
      if (k == key) return key;
    }
  }
  internal::ThrowInvalidSwitch(value);
}

__attribute__((always_inline)) inline void Hub::Resume(greenlet::Greenlet* parked, const void* key) {
  wake_key_ = key;
  ++stats_.resumes;
  NoteRunning(parked);
  parked->Switch();
  NoteRunning(&greenlet_);
  if (__builtin_expect(exiting_, 0)) loop_->Break(BreakMode::kAll);
}

inline void Hub::ScheduleNode(internal::ReadyNode* node) {
  if (node->queued()) return;
  ready_.PushBack(node);
  ++ready_count_;
}

inline void Hub::Unschedule(internal::ReadyNode* node) {
  if (!node->queued()) return;
  node->Unlink();
  --ready_count_;
}

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
