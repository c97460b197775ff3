// gevent::Event and gevent::AsyncResult<T> — one-shot notifications between greenlets of one hub
// (gevent.event).
//
//   gevent::Event ready;
//   spawn: { ...; ready.Set(); }
//   if (!ready.Wait(absl::Seconds(1))) { /* timed out */ }
//
//   gevent::AsyncResult<int> result;
//   spawn: { result.Set(compute()); }          // or result.SetException(std::current_exception())
//   absl::StatusOr<int> v = result.Get();       // value, rethrows the exception, or DeadlineExceeded
//
// Waking. Waiters park in FIFO order (an intrusive list of nodes on their own stacks: no
// allocation per wait) and are woken in that order through the hub's ready queue. Set() grants
// every current waiter before any of them runs, so a waiter woken by a Set returns true even if
// the flag was cleared again before it got to run (gevent's semantic).
//
// Lifetime: an Event/AsyncResult must outlive every greenlet waiting on it (destroying one with
// waiters is a bug; waiters must have been woken or killed first).
//
// Errors (base/errors.h): AsyncResult::Get returns DeadlineExceeded when its timeout expires
// first and GetNowait when no result is set yet (would-block and timeouts are DeadlineExceeded
// everywhere); both rethrow the exception that was set. Event::Wait and AsyncResult::Wait return
// false on a timeout (gevent's convention). SetException of a null exception is misuse:
// gevent::UsageError.
//
// Thread-safety: hub thread only — every method must be called on the thread of the hub the
// waiters park on (from greenlets, or Set/Clear also from loop callbacks on the hub greenlet).
// Blocking methods called on the hub greenlet throw BlockingInHubError. A blocking call that can
// never return (nothing else alive on the hub) throws LoopExit.
#ifndef GEVENT_HUB_EVENT_H_
#define GEVENT_HUB_EVENT_H_

#include <exception>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "hub/wait_list.h"
#include "hub/waitable.h"

namespace gevent {

// Event: a flag that greenlets can wait to become set (gevent.event.Event).
// An Event is a Waitable (gevent::Wait / IWait), ready while set.
class Event : public Waitable {
 public:
  Event() = default;

  // Set sets the flag and wakes every waiter (they run later, from the hub, in arrival order).
  void Set();
  // Clear resets the flag. Waiters already woken by a Set still return true.
  void Clear() { flag_ = false; }
  bool IsSet() const { return flag_; }
  bool ready() const override { return flag_; }

  // Wait returns true at once if the flag is set, otherwise parks until a Set (true) or until
  // `timeout` expires (false). nullopt waits forever.
  bool Wait(std::optional<absl::Duration> timeout = std::nullopt);

  // waiter_count: greenlets parked in Wait that have not been woken yet.
  std::size_t waiter_count() const { return waiters_.size(); }

 private:
  using Node = internal::WaitNode<internal::NoPayload>;
  bool flag_ = false;
  internal::WaitList<Node> waiters_;
};

// AsyncResult<T>: a value or an exception delivered once, later (gevent.event.AsyncResult).
// T must be copyable (every Get returns a copy). Setting it again replaces the value/exception
// and wakes any new waiters.
//
// As a link target: `result` itself is callable with a T (operator()), and Setter() returns a
// small callable for components that take a callback (e.g. `greenlet.Link(result.Setter())`).
//
// An AsyncResult is a Waitable (gevent::Wait / IWait), ready once set.
template <typename T>
class AsyncResult : public Waitable {
 public:
  AsyncResult() = default;

  void Set(T value) {
    value_.emplace(std::move(value));
    error_ = nullptr;
    waiters_.GrantAll();
    NotifyObservers();
  }
  void SetException(std::exception_ptr error) {
    if (!error) throw UsageError("gevent::AsyncResult::SetException: null exception");
    value_.reset();
    error_ = std::move(error);
    waiters_.GrantAll();
    NotifyObservers();
  }

  // ready: a value or an exception has been set. successful: a value has been set.
  bool ready() const override { return value_.has_value() || error_ != nullptr; }
  bool successful() const { return value_.has_value(); }
  // exception: the exception set, or null.
  std::exception_ptr exception() const { return error_; }

  // Wait parks until ready (true) or `timeout` expires (false); it never throws the result's
  // exception.
  bool Wait(std::optional<absl::Duration> timeout = std::nullopt) {
    if (ready()) return true;
    Node node;
    return waiters_.WaitFor(node, timeout, [](Node&) {});
  }

  // Get waits like Wait, then returns a copy of the value or rethrows the exception that was
  // set. If `timeout` expires first, returns absl::DeadlineExceededError("gevent::AsyncResult::Get
  // timed out ...").
  absl::StatusOr<T> Get(std::optional<absl::Duration> timeout = std::nullopt) {
    if (!Wait(timeout)) {
      return absl::DeadlineExceededError(
          "gevent::AsyncResult::Get timed out before a value or exception was set");
    }
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

  // GetNowait: Get with a zero timeout that does not park: absl::DeadlineExceededError if not
  // ready.
  absl::StatusOr<T> GetNowait() const {
    if (!ready()) {
      return absl::DeadlineExceededError(
          "gevent::AsyncResult::GetNowait: not ready (no value or exception set yet)");
    }
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

  // Callback adapters: calling them sets the value.
  void operator()(T value) { Set(std::move(value)); }
  auto Setter() {
    return [this](T value) { Set(std::move(value)); };
  }
  auto ExceptionSetter() {
    return [this](std::exception_ptr error) { SetException(std::move(error)); };
  }

  std::size_t waiter_count() const { return waiters_.size(); }

 private:
  using Node = internal::WaitNode<internal::NoPayload>;
  std::optional<T> value_;
  std::exception_ptr error_;
  internal::WaitList<Node> waiters_;
};

}  // namespace gevent

#endif  // GEVENT_HUB_EVENT_H_
