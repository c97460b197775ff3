// gevent::Semaphore, BoundedSemaphore, Lock, RLock and RAII guards — locks between greenlets of
// one hub (gevent.lock).
//
//   gevent::Semaphore slots(3);
//   { gevent::Guard<gevent::Semaphore> g(slots); ... }     // Acquire ... Release
//   if (slots.Acquire(true, absl::Milliseconds(5))) { ...; slots.Release(); }
//
// Waking. Acquirers that must wait park in a FIFO list (nodes on their own stacks: no allocation
// per wait). Release hands its permit straight to the oldest parked acquirer instead of
// incrementing the counter, so a later arrival cannot take it first: wake-ups are FIFO. A parked
// acquirer killed after it was granted a permit releases it again on its way out.
//
// Misuse (programming errors, thrown as gevent::UsageError subclasses — base/errors.h — with a
// message naming it):
//   BoundedSemaphore/Lock released more times than acquired — LockReleaseError
//     "gevent::BoundedSemaphore::Release: semaphore released too many times" (Lock says Lock).
//   RLock released by a greenlet that does not own it — LockReleaseError
//     "gevent::RLock::Release: cannot release an RLock the calling greenlet does not own".
//
// Blocking Acquire on the hub greenlet throws BlockingInHubError; a blocking Acquire that can
// never succeed (nothing else alive) throws LoopExit.
//
// Lifetime: a lock must outlive every greenlet parked on it. Thread-safety: hub thread only.
#ifndef GEVENT_HUB_LOCK_H_
#define GEVENT_HUB_LOCK_H_

#include <cstddef>
#include <optional>
#include <stdexcept>

#include "absl/time/time.h"
#include "base/errors.h"
#include "greenlet/greenlet.h"
#include "hub/wait_list.h"

namespace gevent {

// LockReleaseError: a release that does not match an acquire.
class LockReleaseError : public UsageError {
 public:
  using UsageError::UsageError;
};

// Semaphore: a counter of permits (gevent.lock.Semaphore). Release may raise the counter above
// its initial value.
class Semaphore {
 public:
  explicit Semaphore(std::size_t value = 1) : counter_(value) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // Acquire takes a permit: at once if one is free and nobody is parked ahead; otherwise parks
  // (blocking) until one is released to it (true) or `timeout` expires (false). Non-blocking:
  // returns false at once.
  bool Acquire(bool blocking = true, std::optional<absl::Duration> timeout = std::nullopt);
  // Release returns a permit: to the oldest parked acquirer, else to the counter.
  void Release();

  std::size_t counter() const { return counter_; }
  // locked: no permit free (an Acquire would park or fail).
  bool locked() const { return counter_ == 0; }
  std::size_t waiter_count() const { return waiters_.size(); }

  // Standard Lockable names, so std::lock_guard / std::unique_lock work too.
  void lock() { Acquire(); }
  bool try_lock() { return Acquire(false); }
  void unlock() { Release(); }

 private:
  using Node = internal::WaitNode<internal::NoPayload>;
  std::size_t counter_;
  internal::WaitList<Node> waiters_;
};

// BoundedSemaphore: a Semaphore whose Release throws LockReleaseError instead of raising the
// counter above its initial value (gevent.lock.BoundedSemaphore).
class BoundedSemaphore {
 public:
  explicit BoundedSemaphore(std::size_t value = 1) : initial_(value), sem_(value) {}

  bool Acquire(bool blocking = true, std::optional<absl::Duration> timeout = std::nullopt) {
    return sem_.Acquire(blocking, timeout);
  }
  void Release();

  std::size_t counter() const { return sem_.counter(); }
  bool locked() const { return sem_.locked(); }
  std::size_t initial_value() const { return initial_; }
  std::size_t waiter_count() const { return sem_.waiter_count(); }

  void lock() { Acquire(); }
  bool try_lock() { return Acquire(false); }
  void unlock() { Release(); }

 protected:
  const char* name_ = "BoundedSemaphore";

 private:
  std::size_t initial_;
  Semaphore sem_;
};

// Lock: a binary lock with no owner (gevent's Lock is a bounded Semaphore(1)): any greenlet may
// release it; releasing an unlocked Lock throws LockReleaseError.
class Lock : public BoundedSemaphore {
 public:
  Lock() : BoundedSemaphore(1) { name_ = "Lock"; }
};

// RLock: a reentrant lock owned by the greenlet that acquired it (gevent.lock.RLock). The owner
// may acquire it again; it is free once released as many times as acquired. Releasing it from
// any other greenlet (or when unlocked) throws LockReleaseError.
class RLock {
 public:
  RLock() = default;
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

  bool Acquire(bool blocking = true, std::optional<absl::Duration> timeout = std::nullopt);
  void Release();

  // owner: the greenlet holding the lock, or null. count: its acquisitions not yet released.
  greenlet::Greenlet* owner() const { return owner_; }
  std::size_t count() const { return count_; }
  bool locked() const { return owner_ != nullptr; }
  bool IsOwnedByCurrent() const { return owner_ == greenlet::Greenlet::Current(); }

  void lock() { Acquire(); }
  bool try_lock() { return Acquire(false); }
  void unlock() { Release(); }

 private:
  Semaphore block_{1};
  greenlet::Greenlet* owner_ = nullptr;
  std::size_t count_ = 0;
};

// Guard: acquires (blocking, no timeout) on construction and releases on destruction. For a
// timed acquire use std::unique_lock-style code: `if (sem.Acquire(true, t)) { Adopted guard }`
// with the adopt constructor.
template <typename Lockable>
class [[nodiscard]] Guard {
 public:
  explicit Guard(Lockable& lock) : lock_(&lock) { lock_->Acquire(); }
  struct AdoptTag {};
  // Guard(lock, Guard::Adopt): takes over an acquisition already made.
  static constexpr AdoptTag Adopt{};
  Guard(Lockable& lock, AdoptTag) : lock_(&lock) {}
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  ~Guard() { lock_->Release(); }

 private:
  Lockable* lock_;
};

}  // namespace gevent

#endif  // GEVENT_HUB_LOCK_H_
