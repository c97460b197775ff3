// RAII C++ watchers over libev's watcher types: IoWatcher, TimerWatcher, SignalWatcher,
// IdleWatcher, PrepareWatcher, CheckWatcher, ForkWatcher, AsyncWatcher, ChildWatcher, StatWatcher.
//
// What for: each class owns one libev watcher struct (embedded as a member, no allocation) and a
// C++ callback. libev calls a static thunk, which recovers the C++ object from the ev_* pointer
// without any lookup (the ev_* struct is the only member of a standard-layout base, so the pointer
// converts back to that base, then static_casts down to the watcher) and makes one indirect call.
//
// Common interface (Watcher<...>, inherited by every class):
//   Start / Stop, active(), pending(), priority() / SetPriority(), Ref() / Unref() / has_ref(),
//   Feed(revents), set_callback(), loop(). Start/Stop are inline and allocation-free.
//
// Callbacks: any callable. IoWatcher's takes `int revents` (EV_READ / EV_WRITE, plus EV_ERROR if
// libev had to stop the watcher because of a bad fd); the others take no arguments (their revents
// carries no information beyond the type). An exception escaping a callback goes to the loop's
// error handler (loop.h) with the watcher's kind; an IoWatcher whose callback threw is stopped
// first. A callback may destroy its own watcher (but must not then throw).
//
// Lifetime rules:
//   * A watcher is bound to one Loop for its whole life; the Loop must outlive it (debug builds
//     abort in ~Loop otherwise).
//   * The destructor stops the watcher (and removes a pending event).
//   * Watchers are neither copyable nor movable (libev holds their address while active).
//
// Reference counting: an active watcher keeps Loop::Run(kDefault) running unless it was Unref()'d.
// The wrapper balances libev's counter itself, including when libev stops a watcher on its own
// (one-shot timer expiry, io error): it calls ev_ref before ev_*_stop as libev requires.
//
// Errors: see loop.h. Bad values and calls in the wrong state are misuse and throw
// gevent::UsageError (base/errors.h); messages read "gevent::<Class>: <problem>".
//
// Thread-safety: loop thread only, except AsyncWatcher::Send (and async_pending), which any thread
// may call while the watcher exists.
#ifndef GEVENT_CORE_WATCHERS_H_
#define GEVENT_CORE_WATCHERS_H_

#include <ev.h>
#include <signal.h>
#include <sys/stat.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "core/loop.h"

namespace gevent {
namespace detail {

// EvOps<EvT>: per-type start/stop functions and names.
template <typename EvT>
struct EvOps;

#define GEVENT_DETAIL_EV_OPS(type, kind_name, class_name)                                    \
  template <>                                                                                \
  struct EvOps<ev_##type> {                                                                  \
    static constexpr const char* kKind = kind_name;                                          \
    static constexpr const char* kClass = class_name;                                        \
    static void Start(struct ev_loop* l, ev_##type* w) { ev_##type##_start(l, w); }          \
    static void Stop(struct ev_loop* l, ev_##type* w) { ev_##type##_stop(l, w); }            \
  }

GEVENT_DETAIL_EV_OPS(io, "io", "gevent::IoWatcher");
GEVENT_DETAIL_EV_OPS(timer, "timer", "gevent::TimerWatcher");
GEVENT_DETAIL_EV_OPS(signal, "signal", "gevent::SignalWatcher");
GEVENT_DETAIL_EV_OPS(idle, "idle", "gevent::IdleWatcher");
GEVENT_DETAIL_EV_OPS(prepare, "prepare", "gevent::PrepareWatcher");
GEVENT_DETAIL_EV_OPS(check, "check", "gevent::CheckWatcher");
GEVENT_DETAIL_EV_OPS(fork, "fork", "gevent::ForkWatcher");
GEVENT_DETAIL_EV_OPS(async, "async", "gevent::AsyncWatcher");
GEVENT_DETAIL_EV_OPS(child, "child", "gevent::ChildWatcher");
GEVENT_DETAIL_EV_OPS(stat, "stat", "gevent::StatWatcher");

#undef GEVENT_DETAIL_EV_OPS

// EvStorage: standard-layout holder whose only member is the libev struct, so a pointer to the
// libev struct is pointer-interconvertible with a pointer to EvStorage.
template <typename EvT>
struct EvStorage {
  EvT ev_;
};

// Throws gevent::UsageError with "<class>: <message>".
[[noreturn]] void ThrowUsageError(const char* cls, const std::string& message);

}  // namespace detail

// Watcher<EvT, Signature>: the common part of every watcher. Not used directly.
template <typename EvT, typename Signature>
class Watcher : private detail::EvStorage<EvT> {
 public:
  using Callback = absl::AnyInvocable<Signature>;
  using Ops = detail::EvOps<EvT>;

  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;
  Watcher(Watcher&&) = delete;
  Watcher& operator=(Watcher&&) = delete;

  // Start: activates the watcher with its current settings. No effect if already active.
  void Start() {
    if (ev_is_active(&this->ev_)) return;
    Ops::Start(loop_->raw(), &this->ev_);
    if (want_unref_) {
      ev_unref(loop_->raw());
      holds_unref_ = true;
    }
  }

  // Stop: deactivates the watcher and clears a pending event. No effect if inactive.
  void Stop() {
    if (holds_unref_) {
      ev_ref(loop_->raw());
      holds_unref_ = false;
    }
    Ops::Stop(loop_->raw(), &this->ev_);
  }

  // active: started and not stopped (by Stop or by libev itself, e.g. an expired one-shot timer).
  bool active() const { return ev_is_active(&this->ev_) != 0; }

  // pending: an event has been queued for the callback but it has not run yet.
  bool pending() const { return ev_is_pending(&this->ev_) != 0; }

  // priority: libev priority, EV_MINPRI (-2) .. EV_MAXPRI (2); higher runs first. Default 0.
  int priority() const { return ev_priority(&this->ev_); }

  // SetPriority: sets the priority. Throws gevent::UsageError if outside EV_MINPRI..EV_MAXPRI
  // or if the watcher is active or pending (libev forbids the change then).
  void SetPriority(int priority) {
    if (priority < EV_MINPRI || priority > EV_MAXPRI) {
      detail::ThrowUsageError(
          Ops::kClass, "priority must be in [" + std::to_string(EV_MINPRI) + ", " +
                           std::to_string(EV_MAXPRI) + "], got " + std::to_string(priority));
    }
    if (active() || pending()) {
      detail::ThrowUsageError(Ops::kClass,
                              "cannot change the priority of an active or pending watcher; Stop "
                              "it first");
    }
    ev_set_priority(&this->ev_, priority);
  }

  // Unref: from now on this watcher does not keep Run(kDefault) alive while active. Idempotent.
  void Unref() {
    want_unref_ = true;
    if (active() && !holds_unref_) {
      ev_unref(loop_->raw());
      holds_unref_ = true;
    }
  }

  // Ref: undoes Unref (the default state: an active watcher keeps the loop alive). Idempotent.
  void Ref() {
    want_unref_ = false;
    if (holds_unref_) {
      ev_ref(loop_->raw());
      holds_unref_ = false;
    }
  }

  // has_ref: false after Unref (until Ref).
  bool has_ref() const { return !want_unref_; }

  // Feed: makes the callback run in the current or next iteration with `revents`, as if the event
  // happened (ev_feed_event). Works on inactive watchers too.
  void Feed(int revents) { ev_feed_event(loop_->raw(), &this->ev_, revents); }

  // set_callback: replaces the callback. Throws gevent::UsageError if empty. Allowed at any
  // time except from inside the callback itself.
  void set_callback(Callback callback) {
    CheckCallback(callback);
    callback_ = std::move(callback);
  }

  // loop: the loop this watcher belongs to.
  Loop& loop() const { return *loop_; }

  // kind: "io", "timer", ... (the name passed to the error handler).
  static constexpr const char* kind() { return Ops::kKind; }

 protected:
  // Constructor: binds to `loop`, inactive. Throws gevent::UsageError for an empty callback.
  // The derived class must call ev_*_set (or the libev *_set macro) before Start.
  Watcher(Loop& loop, Callback callback) : loop_(&loop), callback_(std::move(callback)) {
    CheckCallback(callback_);
    ev_init(&this->ev_, &Watcher::Thunk);
    node_.watcher = reinterpret_cast<const ev_watcher*>(&this->ev_);
    node_.kind = Ops::kKind;
    loop_->RegisterWatcher(&node_);
  }

  ~Watcher() {
    Stop();
    loop_->UnregisterWatcher(&node_);
  }

  EvT& ev() { return this->ev_; }
  const EvT& ev() const { return this->ev_; }

 private:
  static void CheckCallback(const Callback& callback) {
    if (!callback) detail::ThrowUsageError(Ops::kClass, "callback must not be empty");
  }

  static void Thunk(struct ev_loop* raw, EvT* w, int revents) {
    Watcher* self = static_cast<Watcher*>(reinterpret_cast<detail::EvStorage<EvT>*>(w));
    if (self->holds_unref_ && !ev_is_active(w)) {
      // libev stopped the watcher itself (ev_stop released a reference we had already given
      // back with ev_unref): restore the balance.
      ev_ref(raw);
      self->holds_unref_ = false;
    }
    Loop* loop = self->loop_;  // `self` may be destroyed by the callback.
    try {
      if constexpr (std::is_invocable_v<Callback&, int>) {
        self->callback_(revents);
      } else {
        self->callback_();
      }
    } catch (...) {
      if constexpr (std::is_same_v<EvT, ev_io>) self->Stop();
      loop->ReportError(Ops::kKind, std::current_exception());
    }
  }

  Loop* loop_;
  bool want_unref_ = false;   // Unref() requested.
  bool holds_unref_ = false;  // We called ev_unref for the current activation.
  Callback callback_;
  detail::WatcherNode node_;
};

// IoWatcher: readiness of a file descriptor (ev_io). Callback: void(int revents).
class IoWatcher final : public Watcher<ev_io, void(int)> {
 public:
  // IoWatcher: watches `fd` for `events` (EV_READ, EV_WRITE or both). Inactive until Start.
  // Throws gevent::UsageError if fd < 0, events has bits other than EV_READ|EV_WRITE or none
  // of them, or the callback is empty.
  IoWatcher(Loop& loop, int fd, int events, Callback callback)
      : Watcher(loop, std::move(callback)) {
    Set(fd, events);
  }
  ~IoWatcher() = default;

  // Set: changes fd and events. Same checks as the constructor; gevent::UsageError if active.
  void Set(int fd, int events) {
    if (fd < 0) detail::ThrowUsageError(Ops::kClass, "fd must be >= 0, got " + std::to_string(fd));
    if ((events & ~(EV_READ | EV_WRITE)) != 0 || (events & (EV_READ | EV_WRITE)) == 0) {
      detail::ThrowUsageError(
          Ops::kClass,
          "events must be EV_READ, EV_WRITE or both, got " + std::to_string(events));
    }
    if (active()) detail::ThrowUsageError(Ops::kClass, "Set on an active watcher; Stop it first");
    ev_io_set(&ev(), fd, events);
  }

  // fd / events: current settings.
  int fd() const { return ev().fd; }
  int events() const { return ev().events & (EV_READ | EV_WRITE); }
};

// TimerWatcher: relative timeout, optionally repeating (ev_timer). Callback: void().
class TimerWatcher final : public Watcher<ev_timer, void()> {
 public:
  // TimerWatcher: fires `after` from Start, then every `repeat` if repeat > 0. Throws
  // gevent::UsageError for negative (or infinite) after/repeat or an empty callback.
  TimerWatcher(Loop& loop, absl::Duration after, absl::Duration repeat, Callback callback)
      : Watcher(loop, std::move(callback)) {
    Set(after, repeat);
  }
  // TimerWatcher(loop, after, callback): a one-shot timer (repeat 0).
  TimerWatcher(Loop& loop, absl::Duration after, Callback callback)
      : TimerWatcher(loop, after, absl::ZeroDuration(), std::move(callback)) {}
  ~TimerWatcher() = default;

  using Watcher::Start;

  // Start(after, repeat): Set then Start. gevent::UsageError if active.
  void Start(absl::Duration after, absl::Duration repeat = absl::ZeroDuration()) {
    Set(after, repeat);
    Start();
  }

  // Set: changes after/repeat. Same checks as the constructor; gevent::UsageError if active.
  void Set(absl::Duration after, absl::Duration repeat) {
    const double a = CheckDuration("after", after);
    const double r = CheckDuration("repeat", repeat);
    if (active()) detail::ThrowUsageError(Ops::kClass, "Set on an active watcher; Stop it first");
    ev_timer_set(&ev(), a, r);
  }

  // Again: restarts a repeating timer to fire `repeat()` from now (ev_timer_again): if inactive
  // and repeat > 0 it starts; if repeat == 0 it stops the timer.
  void Again() {
    if (ev().repeat <= 0.) {
      Stop();
      return;
    }
    const bool was_active = active();
    ev_timer_again(loop().raw(), &ev());
    if (!was_active && !has_ref()) Unref();  // Apply the unref'd state to the new activation.
  }

  // remaining: time until the timer fires (ev_timer_remaining); for an inactive timer, `after`.
  absl::Duration remaining() const {
    return absl::Seconds(ev_timer_remaining(loop().raw(), const_cast<ev_timer*>(&ev())));
  }

  // repeat / set_repeat: the repeat interval; may be changed at any time, takes effect at the
  // next expiry or Again. set_repeat throws gevent::UsageError if negative.
  absl::Duration repeat() const { return absl::Seconds(ev().repeat); }
  void set_repeat(absl::Duration repeat) { ev().repeat = CheckDuration("repeat", repeat); }

 private:
  static double CheckDuration(const char* what, absl::Duration d) {
    if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
      detail::ThrowUsageError(Ops::kClass, std::string(what) + " must be finite and >= 0, got " +
                                               absl::FormatDuration(d));
    }
    return absl::ToDoubleSeconds(d);
  }
};

// SignalWatcher: delivery of a POSIX signal (ev_signal). Callback: void(). libev allows a given
// signal to be watched in only one loop at a time.
class SignalWatcher final : public Watcher<ev_signal, void()> {
 public:
  // SignalWatcher: throws gevent::UsageError if signum <= 0 or >= NSIG, or empty callback.
  SignalWatcher(Loop& loop, int signum, Callback callback) : Watcher(loop, std::move(callback)) {
    if (signum <= 0 || signum >= NSIG) {
      detail::ThrowUsageError(Ops::kClass, "signal number must be in [1, " +
                                               std::to_string(NSIG - 1) + "], got " +
                                               std::to_string(signum));
    }
    ev_signal_set(&ev(), signum);
  }
  ~SignalWatcher() = default;

  // signum: the watched signal.
  int signum() const { return ev().signum; }
};

// IdleWatcher: runs when no other events of equal or higher priority are pending (ev_idle); while
// active, Run does not block. Callback: void().
class IdleWatcher final : public Watcher<ev_idle, void()> {
 public:
  // IdleWatcher: inactive until Start. Throws gevent::UsageError for an empty callback.
  IdleWatcher(Loop& loop, Callback callback) : Watcher(loop, std::move(callback)) {}
  ~IdleWatcher() = default;
};

// PrepareWatcher: runs at the start of each iteration, before blocking (ev_prepare).
class PrepareWatcher final : public Watcher<ev_prepare, void()> {
 public:
  // PrepareWatcher: inactive until Start. Throws gevent::UsageError for an empty callback.
  PrepareWatcher(Loop& loop, Callback callback) : Watcher(loop, std::move(callback)) {}
  ~PrepareWatcher() = default;
};

// CheckWatcher: runs each iteration right after the backend poll (ev_check).
class CheckWatcher final : public Watcher<ev_check, void()> {
 public:
  // CheckWatcher: inactive until Start. Throws gevent::UsageError for an empty callback.
  CheckWatcher(Loop& loop, Callback callback) : Watcher(loop, std::move(callback)) {}
  ~CheckWatcher() = default;
};

// ForkWatcher: runs at the start of the next iteration after Loop::Fork() (ev_fork).
class ForkWatcher final : public Watcher<ev_fork, void()> {
 public:
  // ForkWatcher: inactive until Start. Throws gevent::UsageError for an empty callback.
  ForkWatcher(Loop& loop, Callback callback) : Watcher(loop, std::move(callback)) {}
  ~ForkWatcher() = default;
};

// AsyncWatcher: wake-up from another thread (ev_async). Callback: void(); several Sends before
// the loop notices are coalesced into one callback.
class AsyncWatcher final : public Watcher<ev_async, void()> {
 public:
  // AsyncWatcher: inactive until Start. Throws gevent::UsageError for an empty callback.
  AsyncWatcher(Loop& loop, Callback callback) : Watcher(loop, std::move(callback)) {}
  ~AsyncWatcher() = default;

  // Send: thread-safe and async-signal-safe (ev_async_send). Precondition: the watcher is not
  // being destroyed concurrently (join/synchronise senders before destroying it). Has an effect
  // only while the watcher is active.
  void Send() { ev_async_send(loop().raw(), &ev()); }

  // async_pending: a Send has not yet been seen by the loop (ev_async_pending). Thread-safe.
  bool async_pending() const { return ev_async_pending(&ev()) != 0; }
};

// ChildWatcher: status changes of a child process (ev_child). Default loop only. Callback: void();
// read rpid()/rstatus() inside it.
class ChildWatcher final : public Watcher<ev_child, void()> {
 public:
  // ChildWatcher: watches `pid` (0 = any child); trace = also report stops/continues. Throws
  // gevent::UsageError if loop is not Loop::Default(), if pid < 0 or if the callback is empty.
  ChildWatcher(Loop& loop, int pid, bool trace, Callback callback)
      : Watcher(CheckDefault(loop), std::move(callback)) {
    if (pid < 0) detail::ThrowUsageError(Ops::kClass, "pid must be >= 0, got " + std::to_string(pid));
    ev_child_set(&ev(), pid, trace ? 1 : 0);
  }
  // ChildWatcher(loop, pid, callback): trace = false (exits and signals only).
  ChildWatcher(Loop& loop, int pid, Callback callback)
      : ChildWatcher(loop, pid, false, std::move(callback)) {}
  ~ChildWatcher() = default;

  // pid: the watched pid (0 = any). rpid / rstatus: the pid and waitpid status of the last event.
  int pid() const { return ev().pid; }
  int rpid() const { return ev().rpid; }
  int rstatus() const { return ev().rstatus; }

 private:
  static Loop& CheckDefault(Loop& loop) {
    if (!loop.is_default()) {
      detail::ThrowUsageError(Ops::kClass,
                              "child watchers need the default loop (Loop::Default()); libev "
                              "handles SIGCHLD only there");
    }
    return loop;
  }
};

// StatWatcher: changes of a path's stat() data (ev_stat), by inotify where available, else by
// polling every `interval`. Callback: void(); read attr()/prev() inside it.
class StatWatcher final : public Watcher<ev_stat, void()> {
 public:
  // StatWatcher: throws gevent::UsageError for an empty path, a negative interval (zero means
  // libev's default) or an empty callback.
  StatWatcher(Loop& loop, std::string path, absl::Duration interval, Callback callback)
      : Watcher(loop, std::move(callback)), path_(std::move(path)) {
    if (path_.empty()) detail::ThrowUsageError(Ops::kClass, "path must not be empty");
    if (interval < absl::ZeroDuration() || interval == absl::InfiniteDuration()) {
      detail::ThrowUsageError(Ops::kClass, "interval must be finite and >= 0, got " +
                                               absl::FormatDuration(interval));
    }
    ev_stat_set(&ev(), path_.c_str(), absl::ToDoubleSeconds(interval));
  }
  ~StatWatcher() { Stop(); }  // Before path_ goes away.

  // path / interval: settings.
  const std::string& path() const { return path_; }
  absl::Duration interval() const { return absl::Seconds(ev().interval); }

  // attr / prev: the latest and previous stat data (st_nlink == 0 means the path does not exist).
  const struct stat& attr() const { return ev().attr; }
  const struct stat& prev() const { return ev().prev; }

  // Stat: refreshes attr() now (ev_stat_stat), without calling the callback.
  void Stat() { ev_stat_stat(loop().raw(), &ev()); }

 private:
  std::string path_;
};

}  // namespace gevent

#endif  // GEVENT_CORE_WATCHERS_H_
