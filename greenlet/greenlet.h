// greenlet::Greenlet: a stackful coroutine with python-greenlet semantics, on Boost.Context.
//
// A greenlet runs a function on its own stack. Control moves between greenlets only by explicit
// switches; there is no scheduler here (the hub layer adds one). Each thread has an implicit main
// greenlet for its original stack, so `Greenlet::Current()` is never null.
//
//   greenlet::Greenlet g([](std::any first) { ... return result; });
//   std::any r = g.Switch(42);   // starts g with 42; returns what g returns or switches back
//
// Semantics (as python-greenlet):
// - A greenlet is created with a function and a parent (default: the greenlet current at
//   creation). It starts lazily, on the first switch into it, whose value becomes the function's
//   argument.
// - Switch(v) suspends the caller and resumes the target; `v` is returned from the target's own
//   pending Switch() (or passed to its function when it starts).
// - When the function returns, the greenlet is dead and control goes to its parent, whose pending
//   Switch() returns the result. An exception escaping the function is rethrown in the parent at
//   its switch point. A GreenletExit escaping counts as a normal finish (the parent gets an empty
//   value).
// - Throw(e) raises `e` inside the target at its switch point. Throwing into a greenlet that has
//   not started kills it without running it; the exception then goes to its parent (a
//   GreenletExit goes as an empty value). Throwing GreenletExit into a dead greenlet (killing it
//   again) raises nothing: it is a switch with an empty value, as python-greenlet's throw() turns
//   it into a regular return; any other exception thrown into a dead greenlet is raised in its
//   nearest live ancestor (below), which is usually the caller.
// - Switching to a dead greenlet switches to its nearest live ancestor instead.
// - Destroying a suspended greenlet throws GreenletExit on its stack so every destructor runs, with
//   the destroying greenlet as the parent; a stack is never freed with live frames on it. Code that
//   catches `...` inside a greenlet must rethrow GreenletExit: a greenlet that swallows it and
//   switches away instead of finishing cannot be destroyed, and the process aborts with a message.
// - Destroying a greenlet reparents its children to its own parent.
//
// Stacks come from the thread's StackPool (greenlet/stack.h): guarded by default, unguarded slab
// stacks on request. The stack is taken at the first switch and returned as soon as the function
// finishes, so a greenlet that has not started or has finished holds no stack.
//
// Thread-safety: a greenlet belongs to the thread that created it. Every member function must be
// called on that thread; switching into or reparenting onto another thread's greenlet throws
// GreenletError. The one exception: a greenlet that has not started or has finished may be
// destroyed on any thread. All greenlets of a thread must be destroyed before the thread exits.
//
// Errors follow base/errors.h. Misuse that is detected throws GreenletError (a gevent::UsageError):
// cyclic parents, cross-thread switches, null parents, an empty function or provided stack; a
// stack size below kMinStackSize throws gevent::UsageError (from greenlet/stack.h). A stack that
// cannot be had is StackError (a resource failure, not misuse). Destroying the running greenlet,
// or a suspended one from another thread, aborts with a message (the stack can neither be unwound
// there nor freed).
#ifndef GREENLET_GREENLET_H_
#define GREENLET_GREENLET_H_

#include <any>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <boost/context/detail/fcontext.hpp>

#include "absl/functional/any_invocable.h"
#include "base/errors.h"
#include "greenlet/internal/sanitizers.h"
#include "greenlet/stack.h"

namespace greenlet {

// GreenletExit is thrown into a greenlet to kill it. Escaping the greenlet's function, it counts
// as a normal finish. Catch it only to clean up, then rethrow.
class GreenletExit : public std::exception {
 public:
  const char* what() const noexcept override { return "greenlet::GreenletExit"; }
};

// GreenletError reports misuse: a cyclic parent chain, a switch into another thread's greenlet,
// a null parent, an empty function or provided stack.
class GreenletError : public gevent::UsageError {
 public:
  using gevent::UsageError::UsageError;
};

class Greenlet;

namespace internal {
// ThreadState is one thread's greenlet bookkeeping. Only one greenlet of a thread runs at a time,
// so the value or exception carried by a switch waits here while the stacks change.
struct ThreadState {
  Greenlet* current = nullptr;
  std::unique_ptr<Greenlet> main;
  std::any value;
  std::exception_ptr error;
};
// A plain `__thread` pointer (no dynamic initialisation) keeps the switch path free of the
// thread_local wrapper call that an `extern thread_local` needs.
extern __thread ThreadState* tls_state;
ThreadState* InitThreadState();
inline ThreadState* GetThreadState() {
  ThreadState* ts = tls_state;
  if (__builtin_expect(ts == nullptr, 0)) ts = InitThreadState();
  return ts;
}
struct Access;
}  // namespace internal

namespace internal {
// Prefetch: a cache-line load hint for a scheduler. An asm statement: GCC drops
// __builtin_prefetch in the inlined scheduler paths (measured: none left in the object code).
inline void Prefetch(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}
}  // namespace internal

class Greenlet {
 public:
  // The function a greenlet runs: it receives the value of the first switch into it and returns
  // the value handed to its parent. The constructor also accepts callables taking no argument
  // and/or returning void or any other type (wrapped in std::any).
  using Function = absl::AnyInvocable<std::any(std::any)>;

  // Greenlet creates a greenlet that will run `fn` on a stack as `stack` says. `parent` defaults
  // to the current greenlet. Throws GreenletError for an empty function or a parent of another
  // thread; gevent::UsageError for a stack size below kMinStackSize. No stack is taken yet.
  template <typename F,
            typename = std::enable_if_t<!std::is_base_of_v<Greenlet, std::decay_t<F>>>>
  explicit Greenlet(F&& fn, Greenlet* parent = nullptr, StackOptions stack = {})
      : Greenlet(Wrap(std::forward<F>(fn)), parent, stack, WrappedTag{}) {}

  // Greenlet on a stack the caller provides (typically from StackPool::ThisThread(), possibly
  // with the caller's own bookkeeping placed above `stack.low + stack.size`). The greenlet runs
  // on [stack.low, stack.low + stack.size) and never releases it; the caller releases it after
  // the greenlet is destroyed. This lets a scheduler keep a greenlet and its state in the stack's
  // top page. Throws like the other constructor, and GreenletError for an empty stack.
  template <typename F>
  Greenlet(F&& fn, Greenlet* parent, const Stack& stack)
      : Greenlet(Wrap(std::forward<F>(fn)), parent, stack, WrappedTag{}) {}

  Greenlet(const Greenlet&) = delete;
  Greenlet& operator=(const Greenlet&) = delete;
  Greenlet(Greenlet&&) = delete;
  Greenlet& operator=(Greenlet&&) = delete;

  // ~Greenlet unwinds a suspended greenlet by throwing GreenletExit into it (see file comment).
  ~Greenlet();

  // Current returns the greenlet running on the calling thread (its main greenlet if none other).
  static Greenlet* Current() { return internal::GetThreadState()->current; }

  // Main returns the calling thread's main greenlet.
  static Greenlet* Main();

  // Switch suspends the current greenlet and runs this one, passing `value`. Returns the value
  // that a later switch back into the caller carries, or rethrows the exception thrown into the
  // caller (by Throw, or escaping a child). Switching to the current greenlet returns `value`.
  // Throws GreenletError when this greenlet belongs to another thread, and StackError when the
  // first switch cannot allocate a stack (the greenlet then stays unstarted).
  std::any Switch(std::any value = {});

  // Throw raises `error` inside this greenlet at its switch point and switches to it. Returns
  // like Switch. Throwing into the current greenlet throws `error` right here.
  std::any Throw(std::exception_ptr error);
  template <typename E, typename = std::enable_if_t<!std::is_same_v<std::decay_t<E>,
                                                                    std::exception_ptr>>>
  std::any Throw(E&& error) {
    return Throw(std::make_exception_ptr(std::forward<E>(error)));
  }

  // Kill throws GreenletExit into this greenlet (python's greenlet.throw()). Returns like Switch:
  // for a child that dies of it, the empty value it finished with. Killing a dead greenlet
  // throws nothing: it switches to its nearest live ancestor with an empty value (so, when that
  // is the caller, it returns an empty value at once).
  std::any Kill() { return Throw(GreenletExit()); }

  // parent returns the greenlet that receives control when this one finishes (null only for a
  // main greenlet).
  Greenlet* parent() const { return parent_; }

  // SetParent changes the parent. Throws GreenletError if `parent` is null, belongs to another
  // thread, or would make the parent chain cyclic, or if this is a main greenlet.
  void SetParent(Greenlet* parent);

  // started: switched into at least once. dead: its function finished (or it was killed before it
  // started). active: started and not dead. A main greenlet is always active.
  bool started() const { return state_ != State::kUnstarted; }
  bool dead() const { return state_ == State::kDead; }
  bool active() const { return state_ == State::kActive; }
  bool is_main() const { return main_; }

  // user_data / set_user_data: one pointer for the code that created this greenlet (the hub's
  // Spawn keeps its greenlet handle here, so finding it from Current() costs no lookup). Code
  // that did not create the greenlet must not set it. Null by default.
  void* user_data() const { return user_data_; }
  void set_user_data(void* data) { user_data_ = data; }

  // FinishTo: when this greenlet's function returns (from inside it, just before), control and
  // the result go to `target` instead of the parent; the parent stays as it is. For a scheduler
  // that hands over straight to the next greenlet it would run. `target` must be of this thread
  // and still suspended (or unstarted) when the function returns; null restores the parent.
  // Exceptions escaping the function still go to the parent.
  void FinishTo(Greenlet* target) { finish_to_ = target; }

  // PrefetchSwitchIn hints the CPU to load what a switch into this suspended greenlet reads
  // first: its saved registers and the 1 KiB of frames above them that the wait returns through,
  // and its stack canary (read when it next switches out). A scheduler calls it one greenlet
  // ahead, so that with thousands of greenlets the cold stacks load while the current one runs.
  // Only a hint: no effect on a greenlet that is not suspended. Reads this object, so call it on
  // one whose object is likely in cache (PrefetchObject one step earlier).
  void PrefetchSwitchIn() const {
    if (const char* top = static_cast<const char*>(ctx_)) {
      for (int line = 0; line < 16; ++line) internal::Prefetch(top + 64 * line);
      if (stack_.canary != nullptr) internal::Prefetch(stack_.canary);
    }
  }
  // PrefetchObject hints the CPU to load this object's switch fields (the step before
  // PrefetchSwitchIn). Touches nothing. Both ends: the object need not start a cache line.
  void PrefetchObject() const {
    internal::Prefetch(&ctx_);
    internal::Prefetch(&stack_.canary);
  }

  // stack returns the stack in use (empty when not running or suspended).
  const Stack& stack() const { return stack_; }
  const StackOptions& stack_options() const { return stack_options_; }

 private:
  enum class State : std::uint8_t { kUnstarted, kActive, kDead };
  struct WrappedTag {};
  struct MainTag {};
  friend internal::ThreadState* internal::InitThreadState();
  friend struct internal::Access;

  Greenlet(Function fn, Greenlet* parent, StackOptions stack, WrappedTag);
  Greenlet(Function fn, Greenlet* parent, const Stack& stack, WrappedTag);
  void Init(Greenlet* parent);
  explicit Greenlet(internal::ThreadState* thread, MainTag);

  template <typename F>
  static Function Wrap(F&& fn);

  static std::any Transfer(internal::ThreadState* ts, Greenlet* target, std::any value,
                           std::exception_ptr error);
  std::any SwitchSlow(std::any value);
  std::any SwitchOut(internal::ThreadState* ts, Greenlet* target);
  [[noreturn]] static void RethrowPending(internal::ThreadState* ts);
  void ReleaseFinished();
  [[noreturn]] void Run(internal::ThreadState* ts);
  void Start();
  void ArriveFrom(boost::context::detail::transfer_t t);
  // Set in the pointer a finishing greenlet passes with its last jump.
  static constexpr std::uintptr_t kFinishedTag = 1;
  Greenlet* LiveSelfOrAncestor();
  void LinkToParent(Greenlet* parent);
  void UnlinkFromParent();
  void DestroySuspended();

  // What every switch reads first, together: with thousands of greenlets the object is cold when
  // one is woken, and each extra cache line it touches is a miss.
  void* ctx_ = nullptr;  // Saved machine context while suspended (boost fcontext_t).
  internal::ThreadState* thread_;
  Stack stack_;
  Function fn_;
  Greenlet* parent_ = nullptr;
  Greenlet* first_child_ = nullptr;
  Greenlet* prev_sibling_ = nullptr;
  Greenlet* next_sibling_ = nullptr;
  StackOptions stack_options_;
  void* user_data_ = nullptr;
  Greenlet* finish_to_ = nullptr;
  State state_ = State::kUnstarted;
  bool main_ = false;
  bool external_stack_ = false;  // Provided by the caller: used, never released.
  // Sanitizer bookkeeping (unused in normal builds).
  const void* asan_bottom_ = nullptr;
  std::size_t asan_size_ = 0;
  void* asan_fake_stack_ = nullptr;
  void* tsan_fiber_ = nullptr;
};

template <typename F>
Greenlet::Function Greenlet::Wrap(F&& fn) {
  using Fn = std::decay_t<F>;
  if constexpr (std::is_invocable_v<Fn&, std::any>) {
    using R = std::invoke_result_t<Fn&, std::any>;
    if constexpr (std::is_same_v<std::decay_t<R>, std::any>) {
      return Function(std::forward<F>(fn));
    } else if constexpr (std::is_void_v<R>) {
      return [f = Fn(std::forward<F>(fn))](std::any arg) mutable -> std::any {
        f(std::move(arg));
        return {};
      };
    } else {
      return [f = Fn(std::forward<F>(fn))](std::any arg) mutable -> std::any {
        return std::any(f(std::move(arg)));
      };
    }
  } else if constexpr (std::is_invocable_v<Fn&>) {
    using R = std::invoke_result_t<Fn&>;
    if constexpr (std::is_void_v<R>) {
      return [f = Fn(std::forward<F>(fn))](std::any) mutable -> std::any {
        f();
        return {};
      };
    } else {
      return [f = Fn(std::forward<F>(fn))](std::any) mutable -> std::any { return std::any(f()); };
    }
  } else {
    static_assert(std::is_invocable_v<Fn&>,
                  "greenlet::Greenlet needs a callable taking std::any or nothing");
    return {};
  }
}

// The switch fast path is inline so that the machine-context jump sits directly in the caller,
// as with a bare boost::context::fiber: every extra call level between the caller and the jump
// costs a mispredicted return on the way back (the jump unbalances the return-stack buffer).
__attribute__((always_inline)) inline std::any Greenlet::Switch(std::any value) {
  internal::ThreadState* ts = internal::tls_state;
  // ctx_ is set only while a greenlet is suspended: not before it starts, not while it runs, not
  // after it finished. One test thus sends every other case to the slow path.
  if (__builtin_expect(thread_ == ts && ctx_ != nullptr, 1)) {
    ts->value = std::move(value);
    return ts->current->SwitchOut(ts, this);
  }
  // The first switch into a greenlet on a caller-provided stack cannot fail (no allocation):
  // it too jumps from here, so that the caller's returns after resuming stay predictable.
  if (thread_ == ts && state_ == State::kUnstarted && external_stack_) {
    Start();
    ts->value = std::move(value);
    return ts->current->SwitchOut(ts, this);
  }
  return SwitchSlow(std::move(value));
}

__attribute__((always_inline)) inline std::any Greenlet::SwitchOut(internal::ThreadState* ts,
                                                                   Greenlet* target) {
  if (stack_.canary != nullptr && !CanaryIntact(stack_)) AbortOnStackOverflow(stack_);
  ts->current = target;
  internal::AsanStartSwitch(&asan_fake_stack_, target->asan_bottom_, target->asan_size_);
  internal::TsanSwitchToFiber(target->tsan_fiber_);
  const boost::context::detail::transfer_t t =
      boost::context::detail::jump_fcontext(target->ctx_, this);
  ArriveFrom(t);
  if (__builtin_expect(static_cast<bool>(ts->error), 0)) RethrowPending(ts);
  return std::move(ts->value);
}

__attribute__((always_inline)) inline void Greenlet::ArriveFrom(
    boost::context::detail::transfer_t t) {
#if defined(GREENLET_HAVE_ASAN)
  const void* old_bottom = nullptr;
  std::size_t old_size = 0;
  internal::AsanFinishSwitch(asan_fake_stack_, &old_bottom, &old_size);
#endif
  ctx_ = nullptr;  // Running now.
  const std::uintptr_t data = reinterpret_cast<std::uintptr_t>(t.data);
  Greenlet* from = reinterpret_cast<Greenlet*>(data & ~kFinishedTag);
#if defined(GREENLET_HAVE_ASAN)
  if (from->asan_size_ == 0) {  // A main greenlet's bounds are learnt on its first switch away.
    from->asan_bottom_ = old_bottom;
    from->asan_size_ = old_size;
  }
#endif
  // A greenlet that finished jumps here for the last time, tagged: its stack is free to reuse.
  if (__builtin_expect((data & kFinishedTag) != 0, 0)) {
    from->ReleaseFinished();
  } else {
    from->ctx_ = t.fctx;
  }
}

}  // namespace greenlet

#endif  // GREENLET_GREENLET_H_
