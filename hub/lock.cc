#include "hub/lock.h"

#include <string>

namespace gevent {

bool Semaphore::Acquire(bool blocking, std::optional<absl::Duration> timeout) {
  if (counter_ > 0 && waiters_.empty()) {
    --counter_;
    return true;
  }
  if (!blocking) return false;
  Node node;
  // Killed after being granted a permit: pass it on.
  return waiters_.WaitFor(node, timeout, [this](Node&) { Release(); });
}

void Semaphore::Release() {
  if (waiters_.GrantFront() != nullptr) return;  // The permit goes to the oldest waiter.
  ++counter_;
}

void BoundedSemaphore::Release() {
  if (sem_.counter() >= initial_) {
    throw LockReleaseError(std::string("gevent::") + name_ +
                           "::Release: semaphore released too many times");
  }
  sem_.Release();
}

bool RLock::Acquire(bool blocking, std::optional<absl::Duration> timeout) {
  greenlet::Greenlet* self = greenlet::Greenlet::Current();
  if (owner_ == self) {
    ++count_;
    return true;
  }
  if (!block_.Acquire(blocking, timeout)) return false;
  owner_ = self;
  count_ = 1;
  return true;
}

void RLock::Release() {
  if (owner_ != greenlet::Greenlet::Current()) {
    throw LockReleaseError(
        "gevent::RLock::Release: cannot release an RLock the calling greenlet does not own");
  }
  if (--count_ == 0) {
    owner_ = nullptr;
    block_.Release();
  }
}

}  // namespace gevent
