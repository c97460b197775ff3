// gevent::internal::Scheduler — the hub's engine: the ready queue, the hand-off from one greenlet
// to the next, and the poll cadence. For the stack's own layers (hub/, socket/); programs use the
// contract in hub/hub.h. Hub thread only, like the hub.
//
// The hub keeps a FIFO ready queue of greenlets and callbacks (Schedule, Sleep(0),
// Waiter::Wake) and runs it in order; entries queued meanwhile join the tail. The loop is polled
// for I/O whenever the queue empties, and while it does not, without blocking once kPollEvery
// ready entries ran and kPollInterval passed since the last such poll: ready greenlets that keep
// yielding cannot starve I/O (it is seen within about kPollInterval, plus the run time of the 64
// entries in flight), while a yield costs two greenlet switches rather than a loop iteration and
// its share of a system call. The clock is read only at those 64-entry checkpoints (vDSO
// clock_gettime, ~20 ns per 64 entries); a non-blocking epoll_wait costs ~1 µs on these VMs,
// which polling every 64 yields put at about 2.5x a raw switch on every Sleep(0). When a greenlet that the hub resumed from
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
// What other layers use: ReadyNode (a queue entry, with its prefetch hints), ScheduleNode /
// Unschedule, Park / Resume (every wait is "arrange the wake-up, then Park"), WakeTimer (a wait's
// timeout), and edge_poller() (the socket layer's readiness, socket/internal/readiness.h).
#ifndef GEVENT_HUB_INTERNAL_SCHEDULER_H_
#define GEVENT_HUB_INTERNAL_SCHEDULER_H_

#include <any>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/edge_poller.h"
#include "core/loop.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/internal/list.h"

namespace gevent {

class Hub;

// HubStats: counters for the load generator and for diagnostics.
// Every greenlet switch the hub makes or arranges is one of switches_to_hub, resumes and
// direct_switches, so their sum is the thread's scheduling switch count.
struct HubStats {
  std::uint64_t switches_to_hub = 0;   // Parks that switched to the hub greenlet.
  std::uint64_t resumes = 0;           // Hub -> greenlet switches for wake-ups.
  std::uint64_t direct_switches = 0;   // Parks that handed over straight to the next ready
                                       // greenlet (see the file comment).
  std::uint64_t ready_run = 0;         // Ready-queue entries run.
  std::uint64_t polls = 0;             // Hub loop turns that polled for I/O (libev, the edge
                                       // poller, or its probe then libev's blocking poll).
  std::uint64_t blocking_polls = 0;    // Of those, the ones allowed to block (nothing was ready).
  std::uint64_t edge_polls = 0;        // Of those, the edge poller's alone.
  std::uint64_t callbacks_run = 0;     // Scheduled callbacks (Hub::Schedule) run.

  std::uint64_t switches() const { return switches_to_hub + resumes + direct_switches; }
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
  // count toward Scheduler::kPollEvery: a poll queues at most one per watcher, so they cannot
  // starve I/O, and a busy server runs a whole poll's batch before it polls again.
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

class Scheduler {
 public:
  // A busy hub (the ready queue never empties) checks at most every kPollEvery ready entries
  // whether kPollInterval has passed since its last such poll, and if so polls without blocking.
  // Between two of those polls: at least kPollEvery entries and kPollInterval (one checkpoint
  // more at most: the entries of one checkpoint run longer than that).
  static constexpr std::size_t kPollEvery = 64;
  static constexpr absl::Duration kPollInterval = absl::Microseconds(100);
  // The longest a busy hub goes without polling libev (its timers, signals, cross-thread wake-ups)
  // while the edge poller keeps finding work.
  static constexpr absl::Duration kLibevPollEvery = absl::Milliseconds(1);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // edge_poller: this hub's edge-triggered descriptor set (core/edge_poller.h), made on first use
  // and destroyed with the hub; the socket layer registers its descriptors there. Errors: those of
  // EdgePoller::Create (out of descriptors, say), and again on the next call.
  absl::StatusOr<EdgePoller*> edge_poller() {
    if (__builtin_expect(edge_poller_ == nullptr, 0)) return CreateEdgePoller();
    return edge_poller_.get();
  }
  // existing_edge_poller: the edge poller if one was made, else null (never makes one: for
  // lookups, which find nothing in a set that does not exist).
  EdgePoller* existing_edge_poller() const { return edge_poller_.get(); }

  // Park switches to the hub until Resume(this greenlet, key) with one of `keys`, which it
  // returns. The building block of every wait: callers arrange for the wake-up first. Throws
  // BlockingInHubError on the hub greenlet and InvalidSwitchError if resumed any other way.
  // Inline: it is on every wait's path.
  const void* Park(std::initializer_list<const void*> keys);

  // Resume switches from the hub into `parked`, which is in Park() expecting `key`. Hub only.
  void Resume(greenlet::Greenlet* parked, const void* key);

  // ScheduleNode queues an intrusive entry (see Waiter); it must stay alive until it runs or is
  // removed with Unschedule. Queueing a queued node does nothing.
  void ScheduleNode(ReadyNode* node);
  void Unschedule(ReadyNode* node);

  // DeferRelease queues `node` to run (node->run) later on this thread, never on the greenlet that
  // queued it: how a finished greenlet lets go of itself without a trip through the ready queue.
  // It runs when the hub next regains control, at the next Spawn, or when the hub is destroyed.
  void DeferRelease(ReadyNode* node) {
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

 protected:
  Scheduler(std::unique_ptr<Loop> owned, Loop* loop);
  ~Scheduler() = default;

  void ThrowIfInHub(const char* operation) const {
    if (__builtin_expect(greenlet::Greenlet::Current() == &greenlet_, 0)) {
      ThrowBlockingInHub(operation);
    }
  }
  // NoteRunning publishes, for the monitor, that `g` runs from now on.
  void NoteRunning(const greenlet::Greenlet* g) {
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    running_.store(g, std::memory_order_release);
  }

  std::unique_ptr<Loop> owned_loop_;
  Loop* loop_;
  std::unique_ptr<EdgePoller> edge_poller_;  // Before the loop goes: declared after it.
  greenlet::Greenlet greenlet_;
  bool exiting_ = false;  // Set by ~Hub: the hub greenlet returns from its loop.
  // Ready queue, and the deferred releases of finished greenlets.
  ListHead<ReadyNode> ready_;
  ListHead<ReadyNode> releases_;
  std::size_t ready_count_ = 0;
  greenlet::Greenlet* joiner_ = nullptr;  // The greenlet in Hub::Join, which gets LoopExit.
  HubStats stats_;
  std::unique_ptr<HubMonitor, HubMonitorDeleter> monitor_;

 private:
  friend class HubMonitor;

  std::any SwitchAway(greenlet::Greenlet* self);
  void WaitForMonitorRead(const greenlet::Greenlet* g);
  void DrainReleasesSlow();
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
    ReadyNode* first = ready_.front();
    if (first == nullptr) return;
    if (ReadyNode* second = ready_.NextOf(first)) {
      if (second->resume != nullptr) second->resume->PrefetchObject();
      if (second->warm != nullptr) greenlet::internal::Prefetch(second->warm);
      const char* line = reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(second) &
                                                       ~std::uintptr_t{63});
      for (int i = 1; i <= second->lines_after; ++i) greenlet::internal::Prefetch(line + 64 * i);
      if (ReadyNode* third = ready_.NextOf(second)) {
        // Both ends: an entry on a stack need not start a cache line.
        greenlet::internal::Prefetch(third);
        greenlet::internal::Prefetch(&third->warm);
      }
    }
    if (first->resume != nullptr) first->resume->PrefetchSwitchIn();
  }
  void RaiseLoopExit();

  absl::StatusOr<EdgePoller*> CreateEdgePoller();
  // What a loop turn polls after its non-blocking probe (see RunForever): nothing more (the
  // probe queued work), libev without blocking, or libev blocking.
  enum class NextPoll { kNone, kLibevNoWait, kBlocking };
  // PollEdgesOnly: the busy hub's non-blocking poll of the edge poller alone (see the file
  // comment), and what to poll next. Requires an edge poller.
  NextPoll PollEdgesOnly();

  std::int64_t libev_polled_ns_ = 0;          // CLOCK_MONOTONIC of libev's last poll.
  static constexpr int kClockCheckEvery = 8;   // See PollEdgesOnly.
  int clock_check_credit_ = 0;
  std::size_t since_poll_ = 0;
  // CLOCK_MONOTONIC time from which a busy hub polls again at its next checkpoint (RunForever).
  std::int64_t busy_poll_due_ns_ = 0;
  // poll_first_: the next loop turn polls without blocking first (see RunForever).
  bool poll_first_ = true;
  // skip_edge_probe_: the last blocking poll woke at most one entry, so the next turn blocks
  // without probing the edge poller first (see RunForever).
  bool skip_edge_probe_ = false;
  // True while the hub greenlet is suspended in RunReady's resume of a ready entry: a greenlet
  // that parks may then run the next entry itself (SwitchAway).
  bool resuming_ready_ = false;
  const void* wake_key_ = nullptr;

  // Read by the monitor thread: a switch counter, the greenlet that runs, whether the loop is
  // waiting for I/O, the greenlet being named right now.
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<const greenlet::Greenlet*> running_{nullptr};
  std::atomic<bool> polling_{false};
  std::atomic<const greenlet::Greenlet*> monitor_reading_{nullptr};
};

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

// ----- implementation -----

// Park and Resume are inline: a yield is two greenlet switches, and every call level
// around a switch costs as much as the queue work itself.
// SwitchAway leaves the parking greenlet `self`: to the next ready greenlet when the hub would
// resume it next anyway, otherwise to the hub. Returns the value of the switch that resumed self.
__attribute__((always_inline)) inline std::any Scheduler::SwitchAway(greenlet::Greenlet* self) {
  if (resuming_ready_ && since_poll_ < kPollEvery && !exiting_) {
    ReadyNode* next = ready_.front();
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

__attribute__((always_inline)) inline const void* Scheduler::Park(
    std::initializer_list<const void*> keys) {
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

__attribute__((always_inline)) inline void Scheduler::Resume(greenlet::Greenlet* parked, const void* key) {
  wake_key_ = key;
  ++stats_.resumes;
  NoteRunning(parked);
  parked->Switch();
  NoteRunning(&greenlet_);
  if (__builtin_expect(exiting_, 0)) loop_->Break(BreakMode::kAll);
}

inline void Scheduler::ScheduleNode(ReadyNode* node) {
  if (node->queued()) return;
  ready_.PushBack(node);
  ++ready_count_;
}

inline void Scheduler::Unschedule(ReadyNode* node) {
  if (!node->queued()) return;
  node->Unlink();
  --ready_count_;
}

}  // namespace internal
}  // namespace gevent

#endif  // GEVENT_HUB_INTERNAL_SCHEDULER_H_
