#include "core/loop.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gevent {
namespace {

struct BackendName {
  const char* name;
  unsigned flag;
};

constexpr BackendName kBackends[] = {
    {"select", EVBACKEND_SELECT},     {"poll", EVBACKEND_POLL},
    {"epoll", EVBACKEND_EPOLL},       {"kqueue", EVBACKEND_KQUEUE},
    {"devpoll", EVBACKEND_DEVPOLL},   {"port", EVBACKEND_PORT},
    {"linuxaio", EVBACKEND_LINUXAIO}, {"iouring", EVBACKEND_IOURING},
};

void PrintError(std::string_view kind, const std::exception_ptr& error) {
  std::string what = "unknown exception";
  try {
    if (error) std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::fprintf(stderr, "gevent: exception in %.*s callback: %s\n", static_cast<int>(kind.size()),
               kind.data(), what.c_str());
  std::fflush(stderr);
}

}  // namespace

Loop& Loop::Default() {
  // Never destroyed: libev's default loop lives as long as the process.
  static Loop* const loop = [] {
    struct ev_loop* raw = ev_default_loop(EVFLAG_AUTO);
    if (raw == nullptr) {
      std::fprintf(stderr, "gevent::Loop::Default: ev_default_loop failed\n");
      std::abort();
    }
    return new Loop(raw, /*is_default=*/true, /*callbacks_per_iteration=*/0);
  }();
  return *loop;
}

absl::StatusOr<std::unique_ptr<Loop>> Loop::Create(const Options& options) {
  unsigned flags = EVFLAG_AUTO;
  if (!options.backend.empty()) {
    unsigned backend = 0;
    for (const BackendName& b : kBackends) {
      if (options.backend == b.name) backend = b.flag;
    }
    if (backend == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("gevent::Loop::Create: unknown backend \"", options.backend, "\""));
    }
    if ((ev_supported_backends() & backend) == 0) {
      return absl::UnavailableError(absl::StrCat("gevent::Loop::Create: backend \"",
                                                 options.backend, "\" is not supported here"));
    }
    flags = backend;
  }
  struct ev_loop* raw = ev_loop_new(flags);
  if (raw == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("gevent::Loop::Create: ev_loop_new failed (backend \"",
                     options.backend.empty() ? "auto" : options.backend, "\")"));
  }
  return std::unique_ptr<Loop>(new Loop(raw, /*is_default=*/false, options.callbacks_per_iteration));
}

Loop::Loop(struct ev_loop* loop, bool is_default, size_t callbacks_per_iteration)
    : loop_(loop), is_default_(is_default), callbacks_per_iteration_(callbacks_per_iteration) {
  watchers_.prev = watchers_.next = &watchers_;
  ev_prepare_init(&prepare_, &Loop::PrepareThunk);
  prepare_.data = this;
  ev_idle_init(&idle_, &Loop::IdleThunk);
  idle_.data = this;
  // Lowest priority: the idle watcher only exists to keep the backend from blocking.
  ev_set_priority(&idle_, EV_MINPRI);
  // The prepare watcher (which runs the queue) and the idle watcher are active only while
  // callbacks are queued (KeepAwake): an empty queue costs a loop turn nothing.
}

Loop::~Loop() {
#ifndef NDEBUG
  if (watchers_.next != &watchers_) {
    std::fprintf(stderr,
                 "gevent::Loop::~Loop: a %s watcher (and maybe others) outlives its loop; destroy "
                 "watchers before the loop\n",
                 watchers_.next->kind);
    std::abort();
  }
#endif
  for (auto& cb : callbacks_) {
    cb->pending = false;
    cb->fn = nullptr;
  }
  callbacks_.clear();
  KeepAwake(false);
  if (!is_default_) ev_loop_destroy(loop_);
}

bool Loop::Run(RunMode mode) {
  int flags = 0;
  if (mode == RunMode::kOnce) flags = EVRUN_ONCE;
  if (mode == RunMode::kNoWait) flags = EVRUN_NOWAIT;
  return ev_run(loop_, flags) != 0;
}

size_t Loop::active_watcher_count() const {
  size_t n = 0;
  for (const detail::WatcherNode* node = watchers_.next; node != &watchers_; node = node->next) {
    if (ev_is_active(node->watcher)) ++n;
  }
  return n;
}

std::string Loop::backend_name() const {
  const unsigned b = ev_backend(loop_);
  for (const BackendName& entry : kBackends) {
    if (entry.flag == b) return entry.name;
  }
  return absl::StrCat("unknown(", b, ")");
}

CallbackHandle Loop::RunCallback(absl::AnyInvocable<void()> fn) {
  if (!fn) throw UsageError("gevent::Loop::RunCallback: callback must not be empty");
  auto state = std::make_shared<detail::CallbackState>(std::move(fn));
  callbacks_.push_back(state);
  ev_ref(loop_);  // Released when the entry is drained.
  KeepAwake(true);
  return CallbackHandle(std::move(state));
}

void Loop::ReportError(std::string_view kind, std::exception_ptr error) noexcept {
  if (!error_handler_) {
    PrintError(kind, error);
    return;
  }
  try {
    error_handler_(kind, error);
  } catch (...) {
    PrintError("error handler", std::current_exception());
  }
}

void Loop::RegisterWatcher(detail::WatcherNode* node) {
  node->next = &watchers_;
  node->prev = watchers_.prev;
  watchers_.prev->next = node;
  watchers_.prev = node;
}

void Loop::UnregisterWatcher(detail::WatcherNode* node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = nullptr;
}

void Loop::PrepareThunk(struct ev_loop*, ev_prepare* w, int) {
  static_cast<Loop*>(w->data)->RunCallbacks();
}

void Loop::IdleThunk(struct ev_loop*, ev_idle*, int) {
  // Nothing to do: being active is the point (ev_run does not block while an idle watcher is
  // active). The queue runs from the prepare watcher.
}

void Loop::RunCallbacks() {
  // Only the entries present now: anything queued by these callbacks waits for the next
  // iteration. State lives in members, not on this stack frame, so a callback may switch stacks
  // or re-enter the loop.
  size_t budget = callbacks_.size();
  if (callbacks_per_iteration_ != 0 && budget > callbacks_per_iteration_) {
    budget = callbacks_per_iteration_;
  }
  while (budget-- > 0 && !callbacks_.empty()) {
    std::shared_ptr<detail::CallbackState> cb = std::move(callbacks_.front());
    callbacks_.pop_front();
    ev_unref(loop_);  // The entry's reference.
    if (!cb->pending) continue;
    cb->pending = false;
    absl::AnyInvocable<void()> fn = std::move(cb->fn);
    cb.reset();
    try {
      fn();
    } catch (...) {
      ReportError("callback", std::current_exception());
    }
  }
  KeepAwake(!callbacks_.empty());
}

void Loop::KeepAwake(bool awake) {
  if (awake == idle_started_) return;
  idle_started_ = awake;
  // Neither watcher holds a loop reference: the queued entries do.
  if (awake) {
    ev_prepare_start(loop_, &prepare_);
    ev_unref(loop_);
    ev_idle_start(loop_, &idle_);
    ev_unref(loop_);
  } else {
    ev_ref(loop_);
    ev_idle_stop(loop_, &idle_);
    ev_ref(loop_);
    ev_prepare_stop(loop_, &prepare_);
  }
}

}  // namespace gevent
