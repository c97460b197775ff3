// gevent::Loop — a thin C++ owner of a libev event loop (`struct ev_loop`).
//
// What for: this is the bottom layer of the project (gevent's `gevent.libev.corecext.loop`). The
// hub runs one Loop per thread and drives greenlets from watcher callbacks (see watchers.h) and
// from `RunCallback` callbacks.
//
// Lifetime rules:
//   * `Loop::Default()` wraps libev's default loop (ev_default_loop). It is a process-wide
//     singleton that is created on first use and never destroyed. Only the default loop can host
//     child watchers (libev installs its SIGCHLD handler there).
//   * `Loop::Create()` makes a new, independent loop (ev_loop_new) owned by the returned
//     std::unique_ptr; destroying the Loop destroys the libev loop (ev_loop_destroy).
//   * Every watcher (watchers.h) must be destroyed before its Loop. In debug builds (no NDEBUG) the
//     Loop destructor aborts with a message if watchers are still registered.
//   * Loop is neither copyable nor movable: watchers keep a pointer to it.
//
// Thread-safety: a Loop and everything attached to it is "loop thread only": use it from the one
// thread that runs it. The single exception is AsyncWatcher::Send (watchers.h), which any thread
// may call.
//
// Error style (whole package):
//   base/errors.h is the rule; here:
//   * Programming errors — bad arguments or calls in the wrong state (negative fd, unknown event
//     mask, negative timer values, bad signal number, child watcher on a non-default loop, priority
//     out of range or changed while active, empty callback) — throw gevent::UsageError. The
//     message names the class, the method and the problem, e.g. "gevent::IoWatcher: fd must be
//     >= 0, got -1".
//   * Run-time failures of the environment (a backend that this kernel does not offer, libev
//     failing to create a loop) are reported as absl::Status.
//   * Exceptions escaping a watcher or RunCallback callback never reach libev (C code): they are
//     caught and passed to the loop's error handler (SetErrorHandler). The default handler prints
//     "gevent: exception in <kind> callback: <what>" to stderr and the loop keeps running. An io
//     watcher whose callback threw is stopped before the handler is called.
#ifndef GEVENT_CORE_LOOP_H_
#define GEVENT_CORE_LOOP_H_

#include <ev.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errors.h"

namespace gevent {

class Loop;

namespace detail {

// WatcherNode: intrusive, doubly linked registration of a watcher with its loop. Used to count
// active watchers exactly (libev itself does not expose that) and to detect watchers that outlive
// their loop. Registration happens at watcher construction/destruction, never on Start/Stop.
struct WatcherNode {
  WatcherNode* prev = nullptr;
  WatcherNode* next = nullptr;
  const ev_watcher* watcher = nullptr;  // The libev struct, read for ev_is_active.
  const char* kind = "";
};

// CallbackState: shared between the loop's queue and the caller's CallbackHandle.
struct CallbackState {
  explicit CallbackState(absl::AnyInvocable<void()> f) : fn(std::move(f)) {}
  absl::AnyInvocable<void()> fn;
  bool pending = true;
};

}  // namespace detail

// RunMode: how Loop::Run waits. Mirrors ev_run's flags.
enum class RunMode {
  kDefault,  // Run until no active (referenced) watchers are left or Break is called.
  kOnce,     // One iteration; block for at least one event if nothing is pending (EVRUN_ONCE).
  kNoWait,   // One iteration; never block (EVRUN_NOWAIT).
};

// BreakMode: how far Loop::Break unwinds. Mirrors EVBREAK_ONE / EVBREAK_ALL.
enum class BreakMode {
  kOne,  // Make the innermost Run return.
  kAll,  // Make all nested Run calls return.
};

// CallbackHandle: the caller's view of a callback queued with Loop::RunCallback. Cheap to copy
// (shares state with the queue). A default-constructed handle refers to nothing: pending() is false
// and Stop() does nothing. A handle may outlive the loop.
class CallbackHandle {
 public:
  CallbackHandle() = default;

  // pending: true until the callback has run or been stopped.
  bool pending() const { return state_ != nullptr && state_->pending; }

  // Stop: cancels the callback if it has not run yet (it will never run); releases the callable
  // (and what it captured) immediately. No effect if it already ran or was stopped.
  void Stop() {
    if (state_ != nullptr && state_->pending) {
      state_->pending = false;
      state_->fn = nullptr;
    }
  }

 private:
  friend class Loop;
  explicit CallbackHandle(std::shared_ptr<detail::CallbackState> s) : state_(std::move(s)) {}
  std::shared_ptr<detail::CallbackState> state_;
};

class Loop {
 public:
  // Options: how Create builds a loop.
  struct Options {
    // backend: "" (libev's automatic choice) or one of "select", "poll", "epoll", "linuxaio",
    // "iouring", "kqueue", "devpoll", "port".
    std::string backend;
    // callbacks_per_iteration: upper bound on RunCallback callbacks run in one loop iteration
    // (0 = no extra bound). Independently of this, callbacks queued while the queue is being run
    // always wait for the next iteration.
    size_t callbacks_per_iteration = 0;
  };

  // ErrorHandler: receives exceptions thrown by callbacks. `kind` is the watcher kind ("io",
  // "timer", "signal", "idle", "prepare", "check", "fork", "async", "child", "stat") or "callback"
  // for RunCallback callbacks. Called on the loop thread, from inside Run.
  using ErrorHandler = std::function<void(std::string_view kind, std::exception_ptr error)>;

  // Default: the process-wide default loop (ev_default_loop(EVFLAG_AUTO)), created on first call.
  // Aborts the process if libev cannot create it (nothing can work without it).
  static Loop& Default();

  // Create: a new loop owned by the caller. Errors: InvalidArgument for an unknown backend name,
  // Unavailable if the backend is not supported here or libev cannot create the loop.
  static absl::StatusOr<std::unique_ptr<Loop>> Create(const Options& options);
  static absl::StatusOr<std::unique_ptr<Loop>> Create() { return Create(Options()); }

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  Loop(Loop&&) = delete;
  Loop& operator=(Loop&&) = delete;

  // ~Loop: stops the internal watchers and destroys the libev loop (non-default loops only).
  // Precondition: all watchers of this loop are destroyed (debug builds abort otherwise). Queued
  // RunCallback callbacks are dropped without running; their handles report pending() == false.
  ~Loop();

  // raw: the underlying libev loop, for code that needs the C API. Do not destroy it.
  struct ev_loop* raw() const { return loop_; }

  // is_default: true for Loop::Default().
  bool is_default() const { return is_default_; }

  // Run: runs the loop (ev_run). Returns true if the loop would continue (there are still active,
  // referenced watchers or pending callbacks), false otherwise. Re-entrant (nested Run is allowed
  // from a callback, as libev allows).
  bool Run(RunMode mode = RunMode::kDefault);

  // Break: makes the running Run return after the current iteration (ev_break): kOne the
  // innermost, kAll every nested one. Called outside Run it has no lasting effect (ev_run clears
  // the request on entry).
  void Break(BreakMode mode = BreakMode::kOne) {
    ev_break(loop_, mode == BreakMode::kAll ? EVBREAK_ALL : EVBREAK_ONE);
  }

  // now: the loop's cached time (ev_now), seconds since the Unix epoch, updated once per
  // iteration. Now: the same as absl::Time.
  double now() const { return ev_now(loop_); }
  absl::Time Now() const { return absl::UnixEpoch() + absl::Seconds(ev_now(loop_)); }

  // UpdateNow: refreshes the cached time from the clock (ev_now_update).
  void UpdateNow() { ev_now_update(loop_); }

  // Ref / Unref: adjust the loop's reference count (ev_ref / ev_unref). Run(kDefault) returns when
  // the count reaches zero. Every Unref must be balanced by a Ref. Prefer Watcher::Ref/Unref.
  void Ref() { ev_ref(loop_); }
  void Unref() { ev_unref(loop_); }

  // iteration / depth / pending_count: ev_iteration, ev_depth and ev_pending_count.
  unsigned iteration() const { return ev_iteration(loop_); }
  unsigned depth() const { return ev_depth(loop_); }
  unsigned pending_count() const { return ev_pending_count(loop_); }

  // active_watcher_count: the number of gevent watchers on this loop that are active right now
  // (referenced or not). Computed from libev's own per-watcher state, so it is exact even when
  // libev stops a watcher by itself (one-shot timers, io watchers on a bad fd). O(number of
  // watchers on the loop); intended for diagnostics and tests, not hot paths. The loop's internal
  // watchers are not counted.
  size_t active_watcher_count() const;

  // backend / backend_name: the backend in use (ev_backend) and its name ("epoll", ...).
  unsigned backend() const { return ev_backend(loop_); }
  std::string backend_name() const;

  // Fork: call in the child after fork() before using this loop there (ev_loop_fork). Fork
  // watchers run at the start of the next iteration.
  void Fork() { ev_loop_fork(loop_); }

  // RunCallback: queues `fn` to run on the loop thread at the start of the next loop iteration
  // (from a prepare watcher), in FIFO order. A queued callback keeps the loop alive and keeps Run
  // from blocking in the backend until it has run. Callbacks queued while the queue is being run
  // wait for the next iteration, so a callback that keeps re-queueing itself cannot starve I/O.
  // Precondition: fn is non-empty (gevent::UsageError otherwise). Exceptions from fn go to the
  // error handler with kind "callback".
  CallbackHandle RunCallback(absl::AnyInvocable<void()> fn);

  // pending_callbacks: the number of queued callback entries (including stopped ones not yet
  // drained).
  size_t pending_callbacks() const { return callbacks_.size(); }

  // SetErrorHandler: replaces the handler for exceptions thrown by callbacks. An empty function
  // restores the default (print to stderr). If the handler itself throws, the exception is printed
  // to stderr and dropped.
  void SetErrorHandler(ErrorHandler handler) { error_handler_ = std::move(handler); }

  // ReportError: passes an exception to the error handler, as if a callback of `kind` threw it.
  void ReportError(std::string_view kind, std::exception_ptr error) noexcept;

  // Registration of watchers (used by watchers.h; not for general use).
  void RegisterWatcher(detail::WatcherNode* node);
  void UnregisterWatcher(detail::WatcherNode* node);

 private:
  Loop(struct ev_loop* loop, bool is_default, size_t callbacks_per_iteration);

  static void PrepareThunk(struct ev_loop* loop, ev_prepare* w, int revents);
  static void IdleThunk(struct ev_loop* loop, ev_idle* w, int revents);
  void RunCallbacks();
  void KeepAwake(bool awake);

  struct ev_loop* loop_;
  bool is_default_;
  size_t callbacks_per_iteration_;
  ErrorHandler error_handler_;
  detail::WatcherNode watchers_;  // List head (circular).

  // RunCallback machinery. The prepare watcher runs the queue and never holds a loop reference;
  // each queued entry holds one (ev_ref) until it is drained. The idle watcher is started (without
  // a reference) while entries remain after a pass, so ev_run polls with a zero timeout instead of
  // sleeping.
  std::deque<std::shared_ptr<detail::CallbackState>> callbacks_;
  ev_prepare prepare_;
  ev_idle idle_;
  bool idle_started_ = false;
};

}  // namespace gevent

#endif  // GEVENT_CORE_LOOP_H_
