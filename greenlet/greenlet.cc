#include "greenlet/greenlet.h"

#include <boost/context/detail/fcontext.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "greenlet/internal/sanitizers.h"

namespace greenlet {
namespace ctx = boost::context::detail;

namespace internal {

__thread ThreadState* tls_state = nullptr;

ThreadState* InitThreadState() {
  struct Owner {
    std::unique_ptr<ThreadState> state;
    ~Owner() {
      // The main greenlet goes first; greenlets still alive on this thread are the caller's bug.
      state->main.reset();
      tls_state = nullptr;
    }
  };
  thread_local Owner owner;
  owner.state = std::make_unique<ThreadState>();
  ThreadState* ts = owner.state.get();
  ts->main.reset(new Greenlet(ts, Greenlet::MainTag{}));
  ts->current = ts->main.get();
  tls_state = ts;
  return ts;
}

// Access holds what must see Greenlet's internals but cannot be declared in the header without
// exposing Boost.Context's types.
struct Access {
  static void Entry(ctx::transfer_t t) {
    ThreadState* ts = tls_state;
    Greenlet* self = ts->current;
    self->ArriveFrom(t);
    self->Run(ts);
  }
};

}  // namespace internal

namespace {

using internal::ThreadState;
ThreadState* GetState() { return internal::GetThreadState(); }

[[noreturn]] void Fatal(const char* message) {
  std::fprintf(stderr, "greenlet: fatal: %s\n", message);
  std::abort();
}

bool IsGreenletExit(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const GreenletExit&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

Greenlet::Greenlet(Function fn, Greenlet* parent, StackOptions stack, WrappedTag)
    : fn_(std::move(fn)), stack_options_(stack) {
  stack_options_.size = RoundStackSize(stack.size);
  Init(parent);
}

Greenlet::Greenlet(Function fn, Greenlet* parent, const Stack& stack, WrappedTag)
    : stack_(stack), fn_(std::move(fn)), external_stack_(true) {
  if (!stack) throw GreenletError("greenlet::Greenlet: the provided stack is empty");
  stack_options_ = StackOptions{stack.size, stack.kind};
  Init(parent);
}

void Greenlet::Init(Greenlet* parent) {
  if (!fn_) throw GreenletError("greenlet::Greenlet: the function is empty");
  ThreadState* ts = GetState();
  thread_ = ts;
  if (parent == nullptr) {
    parent = ts->current;
  } else if (parent->thread_ != ts) {
    throw GreenletError("greenlet::Greenlet: the parent belongs to another thread");
  }
  LinkToParent(parent);
}

Greenlet::Greenlet(internal::ThreadState* thread, MainTag)
    : thread_(thread), state_(State::kActive), main_(true) {
  tsan_fiber_ = internal::TsanCurrentFiber();
}

Greenlet::~Greenlet() {
  if (!main_ && internal::tls_state != thread_) {
    Fatal("a greenlet was destroyed on a thread other than the one that created it");
  }
  if (state_ == State::kActive && !main_) DestroySuspended();
  Greenlet* new_parent = parent_;
  UnlinkFromParent();
  // Children outlive us: they now return to our parent (none, for a main greenlet).
  for (Greenlet* child = first_child_; child != nullptr;) {
    Greenlet* next = child->next_sibling_;
    child->parent_ = nullptr;
    child->prev_sibling_ = child->next_sibling_ = nullptr;
    if (new_parent != nullptr) child->LinkToParent(new_parent);
    child = next;
  }
  first_child_ = nullptr;
}

void Greenlet::DestroySuspended() {
  ThreadState* ts = thread_;
  if (ts->current == this) Fatal("the running greenlet was destroyed (it cannot unwind itself)");
  // The destroyer becomes the parent, so the unwound greenlet finishes back into it.
  UnlinkFromParent();
  LinkToParent(ts->current);
  try {
    Transfer(ts, this, {}, std::make_exception_ptr(GreenletExit()));
  } catch (const GreenletExit&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "greenlet: exception while unwinding a destroyed greenlet: %s\n",
                 e.what());
  } catch (...) {
    std::fprintf(stderr, "greenlet: unknown exception while unwinding a destroyed greenlet\n");
  }
  if (state_ != State::kDead) {
    Fatal(
        "a destroyed greenlet caught GreenletExit and switched away instead of finishing; its "
        "stack still holds live frames and cannot be freed (rethrow GreenletExit)");
  }
}

Greenlet* Greenlet::Main() { return GetState()->main.get(); }

std::any Greenlet::SwitchSlow(std::any value) {
  return Transfer(GetState(), this, std::move(value), nullptr);
}

std::any Greenlet::Throw(std::exception_ptr error) {
  if (!error) throw GreenletError("greenlet::Greenlet::Throw: the exception_ptr is null");
  return Transfer(GetState(), this, {}, std::move(error));
}

void Greenlet::SetParent(Greenlet* parent) {
  if (main_) throw GreenletError("greenlet::Greenlet::SetParent: a main greenlet has no parent");
  if (parent == nullptr) {
    throw GreenletError("greenlet::Greenlet::SetParent: the parent must not be null");
  }
  if (parent->thread_ != thread_ || GetState() != thread_) {
    throw GreenletError(
        "greenlet::Greenlet::SetParent: the parent belongs to another thread");
  }
  for (Greenlet* g = parent; g != nullptr; g = g->parent_) {
    if (g == this) throw GreenletError("greenlet::Greenlet::SetParent: cyclic parent chain");
  }
  UnlinkFromParent();
  LinkToParent(parent);
}

Greenlet* Greenlet::LiveSelfOrAncestor() {
  Greenlet* g = this;
  while (g != nullptr && g->state_ == State::kDead) g = g->parent_;
  return g;
}

void Greenlet::LinkToParent(Greenlet* parent) {
  parent_ = parent;
  prev_sibling_ = nullptr;
  next_sibling_ = parent->first_child_;
  if (next_sibling_ != nullptr) next_sibling_->prev_sibling_ = this;
  parent->first_child_ = this;
}

void Greenlet::UnlinkFromParent() {
  if (parent_ == nullptr) return;
  if (prev_sibling_ != nullptr) {
    prev_sibling_->next_sibling_ = next_sibling_;
  } else {
    parent_->first_child_ = next_sibling_;
  }
  if (next_sibling_ != nullptr) next_sibling_->prev_sibling_ = prev_sibling_;
  parent_ = prev_sibling_ = next_sibling_ = nullptr;
}

void Greenlet::Start() {
  if (!external_stack_) stack_ = StackPool::ThisThread().Allocate(stack_options_);
  ctx_ = ctx::make_fcontext(stack_.top(), stack_.size, &internal::Access::Entry);
  asan_bottom_ = stack_.low;
  asan_size_ = stack_.size;
  tsan_fiber_ = internal::TsanCreateFiber();
  state_ = State::kActive;
}

std::any Greenlet::Transfer(ThreadState* ts, Greenlet* target, std::any value,
                            std::exception_ptr error) {
  for (;;) {
    if (__builtin_expect(target->thread_ != ts, 0)) {
      throw GreenletError("greenlet: cannot switch to a greenlet of another thread");
    }
    if (__builtin_expect(target->state_ == State::kDead, 0)) {
      // A dead greenlet cannot die again: a GreenletExit thrown into it becomes a plain (empty)
      // value, as python-greenlet's throw() turns it into a regular return. Either way the
      // switch goes on to the nearest live ancestor.
      if (error && IsGreenletExit(error)) {
        error = nullptr;
        value = {};
      }
      target = target->LiveSelfOrAncestor();
      if (target == nullptr) {
        throw GreenletError("greenlet: the target is dead and has no live ancestor");
      }
    }
    Greenlet* self = ts->current;
    if (target == self) {
      if (error) std::rethrow_exception(std::move(error));
      return value;
    }
    if (target->state_ == State::kUnstarted) {
      if (error) {
        // Killed before it ran: it dies now and the exception goes on to its parent.
        target->state_ = State::kDead;
        target->fn_ = nullptr;
        if (IsGreenletExit(error)) error = nullptr;
        value = {};
        target = target->parent_;
        if (target == nullptr) throw GreenletError("greenlet: a killed greenlet has no parent");
        continue;
      }
      target->Start();
    }
    ts->value = std::move(value);
    ts->error = std::move(error);
    return self->SwitchOut(ts, target);
  }
}

void Greenlet::RethrowPending(ThreadState* ts) {
  std::exception_ptr error = std::move(ts->error);
  ts->error = nullptr;
  std::rethrow_exception(std::move(error));
}

void Greenlet::ReleaseFinished() {
  if (external_stack_) {
    if (!CanaryIntact(stack_)) AbortOnStackOverflow(stack_);
  } else {
    StackPool::ThisThread().Release(stack_);
    stack_ = Stack{};
  }
  ctx_ = nullptr;
  asan_bottom_ = nullptr;
  asan_size_ = 0;
  internal::TsanDestroyFiber(tsan_fiber_);
  tsan_fiber_ = nullptr;
}

void Greenlet::Run(ThreadState* ts) {
  {
    std::any result;
    std::exception_ptr error;
    try {
      result = fn_(std::move(ts->value));
    } catch (const GreenletExit&) {
      // A kill that was not caught: a normal finish.
    } catch (...) {
      error = std::current_exception();
    }
    fn_ = nullptr;  // Captured state dies here, on this stack, before it is released.
    state_ = State::kDead;
    ts->value = std::move(result);
    ts->error = std::move(error);
  }
  // Control and the result go to the FinishTo target if there is one and nothing escaped, else
  // to the nearest live ancestor; started now if need be.
  Greenlet* target = finish_to_ != nullptr && !ts->error ? finish_to_ : parent_;
  finish_to_ = nullptr;
  for (;;) {
    target = target == nullptr ? nullptr : target->LiveSelfOrAncestor();
    if (target == nullptr) Fatal("a finished greenlet has no live parent to return to");
    if (target->state_ != State::kUnstarted) break;
    try {
      target->Start();
      break;
    } catch (...) {
      target->state_ = State::kDead;
      target->fn_ = nullptr;
      ts->value = {};
      ts->error = std::current_exception();
      target = target->parent_;
    }
  }
  if (stack_.canary != nullptr && !CanaryIntact(stack_)) AbortOnStackOverflow(stack_);
  ts->current = target;
  internal::AsanStartSwitch(nullptr, target->asan_bottom_, target->asan_size_);
  internal::TsanSwitchToFiber(target->tsan_fiber_);
  ctx::jump_fcontext(target->ctx_,
                     reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(this) | kFinishedTag));
  Fatal("a finished greenlet was resumed");
}

}  // namespace greenlet
