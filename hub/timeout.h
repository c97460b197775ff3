// gevent::Timeout — raise TimeoutError in the current greenlet after a delay (gevent.Timeout).
//
//   {
//     gevent::Timeout t(absl::Milliseconds(50));   // armed now, for the calling greenlet
//     DoBlockingThings();                          // TimeoutError thrown from a blocking call
//   }                                              // destructor cancels
//
// The timer runs on the hub; when it fires it throws a TimeoutError into the greenlet that created
// the Timeout (greenlet::Greenlet::Throw). The exception carries the identity of its Timeout, so
// with nested timeouts each fires as itself: `catch (const TimeoutError& e) { if (e.timeout() ==
// &t) ... }`. A Timeout only interrupts blocking calls (the greenlet must switch to the hub).
//
// Loop reference: like gevent (Timeout(..., ref=True) is the default), a pending Timeout keeps
// the hub's loop alive, so `{ Timeout t(d); waiter.Get(); }` with nothing else to wake the waiter
// ends in TimeoutError after `d`, not in LoopExit. Pass `ref = false` to not keep it alive.
//
// Hub thread only. A Timeout must be destroyed on (or before the death of) its greenlet.
#ifndef GEVENT_HUB_TIMEOUT_H_
#define GEVENT_HUB_TIMEOUT_H_

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/time/time.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/hub.h"

namespace gevent {

class Timeout;

// TimeoutError: a Timeout expired (or a wait with a timeout, e.g. gevent::Greenlet::Get, ran
// out; then timeout() is null).
class TimeoutError : public std::runtime_error {
 public:
  explicit TimeoutError(const Timeout* timeout, const std::string& message = "gevent: timeout")
      : std::runtime_error(message), timeout_(timeout) {}
  // timeout: the Timeout that fired (identity only; it may be gone by the time this is caught
  // outside its scope), or null.
  const Timeout* timeout() const { return timeout_; }

 private:
  const Timeout* timeout_;
};

class Timeout {
 public:
  // Timeout arms a timer of `duration` (nullopt: never fires) for the calling greenlet, unless
  // `start` is false (then call Start()). A zero or negative duration fires at the next chance
  // the greenlet blocks.
  explicit Timeout(std::optional<absl::Duration> duration, bool start = true, bool ref = true,
                   Hub& hub = GetHub());
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  // ~Timeout cancels.
  ~Timeout();

  // Start arms the timer for the calling greenlet (again, if it was cancelled or fired).
  void Start();
  // Cancel disarms; no effect if not pending.
  void Cancel();
  // pending: armed and not yet fired or cancelled.
  bool pending() const;
  // fired: the timer fired since the last Start.
  bool fired() const { return fired_; }

  std::optional<absl::Duration> duration() const { return duration_; }

 private:
  void Fire();

  Hub* hub_;
  std::optional<absl::Duration> duration_;
  bool ref_;
  bool fired_ = false;
  greenlet::Greenlet* owner_ = nullptr;
  std::optional<TimerWatcher> timer_;
};

// RunWithTimeout runs `fn` under a Timeout of `duration`: true if it finished, false if that
// Timeout fired (other exceptions, and other timeouts, propagate).
template <typename F>
bool RunWithTimeout(absl::Duration duration, F&& fn) {
  Timeout t(duration);
  try {
    std::forward<F>(fn)();
  } catch (const TimeoutError& e) {
    if (e.timeout() != &t) throw;
    return false;
  }
  return true;
}

// WithTimeout returns fn() or, if `duration` elapses first, `default_value`
// (gevent.with_timeout(seconds, fn, timeout_value=...)).
template <typename F, typename T>
auto WithTimeout(absl::Duration duration, F&& fn, T default_value)
    -> std::decay_t<std::invoke_result_t<F&>> {
  Timeout t(duration);
  try {
    return std::forward<F>(fn)();
  } catch (const TimeoutError& e) {
    if (e.timeout() != &t) throw;
    return std::decay_t<std::invoke_result_t<F&>>(std::move(default_value));
  }
}

}  // namespace gevent

#endif  // GEVENT_HUB_TIMEOUT_H_
