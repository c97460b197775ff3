#include "hub/hub.h"

#include <time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "greenlet/stack.h"

namespace gevent {
namespace {

using greenlet::Greenlet;

std::int64_t MonotonicNanos() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return std::int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

// The first hub of the process takes libev's default loop (as gevent's main-thread hub does, so
// child watchers work there); the others get loops of their own.
std::atomic<bool> default_loop_taken{false};

std::unique_ptr<Hub>& HubOwner() {
  // Constructed after the thread's greenlet state (GetHub asks for it first), so destroyed before
  // it at thread exit: the hub greenlet must be unwound while its thread's main greenlet exists.
  thread_local std::unique_ptr<Hub> owner;
  return owner;
}

struct CallbackNode : internal::ReadyNode {
  absl::AnyInvocable<void()> fn;
};

}  // namespace

namespace internal {
__thread Hub* tls_hub = nullptr;
}  // namespace internal
using internal::tls_hub;

internal::Scheduler::Scheduler(std::unique_ptr<Loop> owned, Loop* loop)
    : owned_loop_(std::move(owned)),
      loop_(loop),
      greenlet_([this] { RunForever(); }, Greenlet::Main(),
                greenlet::StackOptions{256 * 1024, greenlet::StackKind::kGuarded}) {}

Hub::Hub(std::unique_ptr<Loop> owned, Loop* loop) : Scheduler(std::move(owned), loop) {
  foreign_async_ = std::make_unique<AsyncWatcher>(*loop_, [this] {
    std::vector<absl::AnyInvocable<void()>> callbacks;
    {
      std::lock_guard<std::mutex> lock(foreign_mu_);
      callbacks.swap(foreign_);
    }
    for (auto& fn : callbacks) Schedule(std::move(fn));
  });
  foreign_async_->Unref();  // The hub's own watchers never keep the loop alive.
  foreign_async_->Start();
}

Hub::~Hub() {
  if (InHub()) {
    std::fprintf(stderr, "gevent: fatal: the hub was destroyed from its own greenlet\n");
    std::abort();
  }
  // Attachments may own watchers (a thread pool's async watcher): before the loop goes.
  while (!attachments_.empty()) attachments_.pop_back();
  monitor_.reset();
  DrainReleases();
  if (greenlet_.active()) {
    // Let the hub greenlet return from its loop (unwinding it with GreenletExit would have to
    // cross libev's C frames).
    exiting_ = true;
    greenlet_.SetParent(Greenlet::Current());
    greenlet_.Switch();
  }
  foreign_async_.reset();
  while (internal::ReadyNode* node = ready_.PopFront()) {
    --ready_count_;
    if (node->run == &Hub::RunCallbackNode) {
      delete static_cast<CallbackNode*>(node);
    } else if (node->discard != nullptr) {
      node->discard(node);
    }
  }
  if (loop_->is_default()) default_loop_taken.store(false);
}

Hub& internal::CreateHub() {
  if (tls_hub != nullptr) return *tls_hub;
  // The thread's greenlet state and stack pool first, so that they are destroyed after the hub
  // at thread exit (see HubOwner()).
  Greenlet::Current();
  greenlet::StackPool::ThisThread();
  std::unique_ptr<Hub>& owner = HubOwner();
  std::unique_ptr<Loop> owned;
  Loop* loop = nullptr;
  if (!default_loop_taken.exchange(true)) {
    loop = &Loop::Default();
  } else {
    absl::StatusOr<std::unique_ptr<Loop>> created = Loop::Create();
    if (!created.ok()) {
      throw std::runtime_error("gevent::GetHub: cannot create an event loop: " +
                               created.status().ToString());
    }
    owned = std::move(created).value();
    loop = owned.get();
  }
  owner.reset(new Hub(std::move(owned), loop));
  tls_hub = owner.get();
  return *tls_hub;
}

Hub::Attachment* Hub::FindAttachment(const void* key) const {
  for (const auto& [k, object] : attachments_) {
    if (k == key) return object.get();
  }
  return nullptr;
}

Hub::Attachment& Hub::Attach(const void* key, std::unique_ptr<Attachment> object) {
  if (FindAttachment(key) != nullptr) {
    throw UsageError("gevent::Hub::Attach: an object is already attached under this key");
  }
  attachments_.emplace_back(key, std::move(object));
  return *attachments_.back().second;
}

std::unique_ptr<Hub::Attachment> Hub::Detach(const void* key) {
  for (auto it = attachments_.begin(); it != attachments_.end(); ++it) {
    if (it->first == key) {
      std::unique_ptr<Attachment> object = std::move(it->second);
      attachments_.erase(it);
      return object;
    }
  }
  return nullptr;
}

Hub* HubIfExists() { return tls_hub; }

void DestroyHub() {
  if (tls_hub == nullptr) return;
  HubOwner().reset();
  tls_hub = nullptr;
}

void internal::ThrowBlockingInHub(const char* operation) {
  throw BlockingInHubError(std::string("gevent: ") + operation +
                           " would block the hub: it was called from a loop callback on the "
                           "hub greenlet; spawn a greenlet for blocking work");
}

void internal::ThrowInvalidSwitch(const std::any& value) {
  throw InvalidSwitchError(
      std::string("gevent: a parked greenlet was resumed by an unexpected switch (") +
      (value.has_value() ? std::string("carrying a value of type ") + value.type().name()
                         : std::string("not its own wake-up")) +
      "); only the hub may resume a parked greenlet");
}

void Hub::Schedule(absl::AnyInvocable<void()> fn) {
  if (!fn) throw UsageError("gevent::Hub::Schedule: the callback is empty");
  auto* node = new CallbackNode;
  node->run = &Hub::RunCallbackNode;
  node->fn = std::move(fn);
  ScheduleNode(node);
}

void Hub::RunCallbackNode(internal::ReadyNode* node) {
  std::unique_ptr<CallbackNode> owned(static_cast<CallbackNode*>(node));
  ++GetHub().stats_.callbacks_run;
  owned->fn();
}

void Hub::RunCallbackThreadSafe(absl::AnyInvocable<void()> fn) {
  if (!fn) throw UsageError("gevent::Hub::RunCallbackThreadSafe: the callback is empty");
  {
    std::lock_guard<std::mutex> lock(foreign_mu_);
    foreign_.push_back(std::move(fn));
  }
  foreign_async_->Send();
}

void internal::Scheduler::DrainReleasesSlow() {
  while (internal::ReadyNode* node = releases_.PopFront()) node->run(node);
}

// The same bookkeeping as SwitchAway's direct path, written again on purpose: sharing one helper
// measurably slowed the inline yield path (code layout on that hot path).
void internal::Scheduler::HandOffAtFinish(Greenlet* self) {
  if (!resuming_ready_ || since_poll_ >= kPollEvery || exiting_) return;
  internal::ReadyNode* next = ready_.front();
  if (next == nullptr || next->resume == nullptr || next->resume == self) return;
  next->Unlink();
  --ready_count_;
  since_poll_ += !next->from_poll;
  ++stats_.ready_run;
  ++stats_.direct_switches;
  wake_key_ = next;
  NoteRunning(next->resume);
  self->FinishTo(next->resume);
}

// Runs ready entries in FIFO order until the queue is empty or kPollEvery entries ran since the
// last checkpoint (RunForever then decides whether to poll) (a poll's own wake-ups do not count). Entries queued meanwhile join the tail, behind
// everything already ready.
void internal::Scheduler::RunReady() {
  DrainReleases();
  while (since_poll_ < kPollEvery && !exiting_) {
    internal::ReadyNode* node = ready_.PopFront();
    if (node == nullptr) return;
    --ready_count_;
    since_poll_ += !node->from_poll;
    ++stats_.ready_run;
    if (node->from_poll) PrefetchQueued();
    try {
      // A greenlet that is resumed here is in Park, waiting for this node's address; the node
      // lives on its stack and is not touched after the switch.
      if (node->resume != nullptr) {
        resuming_ready_ = true;
        Resume(node->resume, node);
        resuming_ready_ = false;
      } else {
        NoteRunning(&greenlet_);
        node->run(node);
      }
    } catch (...) {
      loop_->ReportError("callback", std::current_exception());
    }
  }
}

void internal::Scheduler::RunForever() {
  NoteRunning(&greenlet_);
  while (!exiting_) {
    DrainReleases();
    if (ready_count_ > 0) {
      RunReady();
      if (ready_count_ == 0 || since_poll_ < kPollEvery) continue;
      since_poll_ = 0;
      // The checkpoint: kPollEvery entries ran. Poll only once kPollInterval passed as well.
      const std::int64_t now = MonotonicNanos();
      if (now < busy_poll_due_ns_) continue;
      busy_poll_due_ns_ = now + absl::ToInt64Nanoseconds(kPollInterval);
      ++stats_.polls;
      NoteRunning(&greenlet_);
      loop_->Run(RunMode::kNoWait);
      continue;
    }
    since_poll_ = 0;
    ++stats_.polls;
    NoteRunning(&greenlet_);
    // While busy, poll without blocking first. A poll that may block hands epoll_wait a finite
    // timeout (libev never passes "forever"), and the kernel's timeout set-up then costs more than
    // libev's whole loop turn (~0.2 us per poll on this machine); under load an event is nearly
    // always ready. Once a non-blocking poll finds nothing, the next poll blocks.
    //
    // With an edge poller (sockets), its probe is that non-blocking poll. When the probe finds
    // nothing, libev's own non-blocking poll is skipped: the sockets are the edge poller's, so it
    // would nearly always find nothing too. And when a blocking poll then wakes at most one entry
    // (one peer answered), the next turn blocks without probing first: a hub that serves one peer
    // at a time makes two epoll_waits per wake-up (libev's, then the edge set's), not four.
    if (poll_first_) {
      const NextPoll next = edge_poller_ == nullptr ? NextPoll::kLibevNoWait
                            : skip_edge_probe_      ? NextPoll::kBlocking
                                                    : PollEdgesOnly();
      if (next == NextPoll::kNone) continue;
      if (next == NextPoll::kLibevNoWait) {
        const std::uint64_t resumes = stats_.resumes;
        loop_->Run(RunMode::kNoWait);
        libev_polled_ns_ = MonotonicNanos();
        if (stats_.resumes != resumes || ready_count_ > 0 || exiting_) continue;
        poll_first_ = false;
        continue;
      }
    }
    poll_first_ = true;
    ++stats_.blocking_polls;
    const bool alive = loop_->Run(RunMode::kOnce);
    libev_polled_ns_ = MonotonicNanos();
    skip_edge_probe_ = ready_count_ <= 1;
    if (alive || ready_count_ > 0 || exiting_) continue;
    RaiseLoopExit();
  }
}

internal::Scheduler::NextPoll internal::Scheduler::PollEdgesOnly() {
  const int found = edge_poller_->Dispatch();
  if (ready_count_ == 0) return NextPoll::kBlocking;
  // Is libev due? A clock read costs about as much as a small poll's own work here, so it is
  // made once per kClockCheckEvery polls and events: every poll under load, every few polls of
  // a one-connection ping-pong.
  clock_check_credit_ += 1 + found;
  if (clock_check_credit_ >= kClockCheckEvery) {
    clock_check_credit_ = 0;
    if (MonotonicNanos() - libev_polled_ns_ >= absl::ToInt64Nanoseconds(kLibevPollEvery)) {
      return NextPoll::kLibevNoWait;  // With work queued: it runs next.
    }
  }
  ++stats_.edge_polls;
  return NextPoll::kNone;
}

absl::StatusOr<EdgePoller*> internal::Scheduler::CreateEdgePoller() {
  absl::StatusOr<std::unique_ptr<EdgePoller>> poller = EdgePoller::Create(*loop_);
  if (!poller.ok()) return poller.status();
  edge_poller_ = std::move(*poller);
  return edge_poller_.get();
}

void internal::Scheduler::RaiseLoopExit() {
  Greenlet* target = joiner_ != nullptr ? joiner_ : Greenlet::Main();
  target->Throw(LoopExit(
      "gevent: this operation would block forever: the hub has no ready greenlets and no active "
      "watchers that could wake it"));
}

void internal::WakeTimer::Start(absl::Duration timeout, bool keeps_loop_alive) {
  hub_->loop().UpdateNow();
  // One captured pointer: the callback stays inside the watcher, nothing is allocated.
  timer_.emplace(hub_->loop(), std::max(timeout, absl::ZeroDuration()),
                 [this] { hub_->Resume(parked_, &*timer_); });
  if (!keeps_loop_alive) timer_->Unref();
  timer_->Start();
}

bool Hub::Join(std::optional<absl::Duration> timeout) {
  ThrowIfInHub("Hub::Join");
  Greenlet* self = Greenlet::Current();
  internal::WakeTimer timer(*this, self, timeout, /*keeps_loop_alive=*/false);
  Greenlet* previous_joiner = std::exchange(joiner_, self);
  try {
    Park({timer.key()});
  } catch (const LoopExit&) {
    joiner_ = previous_joiner;
    return true;
  } catch (...) {
    joiner_ = previous_joiner;
    throw;
  }
  joiner_ = previous_joiner;
  return false;
}

void internal::SleepOnTimer(absl::Duration duration) {
  Hub& hub = GetHub();
  hub.loop().UpdateNow();
  TimerWatcher timer(hub.loop(), duration, [] {});
  hub.Wait(timer);
}

bool Wait(std::optional<absl::Duration> timeout) { return GetHub().Join(timeout); }

void Waiter::Wake() {
  if (woken_) return;
  woken_ = true;
  if (waiter_ != nullptr) hub_->ScheduleNode(&node_);
}

void Waiter::WakeWithError(std::exception_ptr error) {
  if (!woken_) error_ = std::move(error);
  Wake();
}

void Waiter::Cancel() {
  hub_->Unschedule(&node_);
  woken_ = false;
  error_ = nullptr;
}

void Waiter::ThrowConcurrentGet() {
  throw ConcurrentObjectUseError(
      "gevent::Waiter::Get: another greenlet is already waiting on this waiter");
}

void Waiter::RethrowError() {
  std::exception_ptr error = std::move(error_);
  error_ = nullptr;
  std::rethrow_exception(std::move(error));
}

}  // namespace gevent
