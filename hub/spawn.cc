#include "hub/spawn.h"

#include <algorithm>
#include <cstdio>
#include <typeinfo>

namespace gevent {
namespace {

thread_local SpawnErrorHandler* tls_error_handler = nullptr;
std::string Describe(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    return "unknown exception";
  }
}

void ReportGreenletError(Greenlet& g, std::exception_ptr error) {
  try {
    if (tls_error_handler != nullptr && *tls_error_handler) {
      (*tls_error_handler)(g, error);
      return;
    }
    std::fprintf(stderr, "gevent: greenlet '%s' failed with %s\n", g.name().c_str(),
                 Describe(error).c_str());
  } catch (...) {
    std::fprintf(stderr, "gevent: the spawn error handler threw\n");
  }
}

bool IsGreenletExit(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const greenlet::GreenletExit&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

SpawnErrorHandler SetSpawnErrorHandler(SpawnErrorHandler handler) {
  static thread_local SpawnErrorHandler current;
  tls_error_handler = &current;
  SpawnErrorHandler previous = std::move(current);
  current = std::move(handler);
  return previous;
}

namespace {

// StackTopAllocator hands allocate_shared the top bytes of a pooled stack for the Greenlet and
// its reference counts, and gives the stack back to the pool when that block is freed.
template <typename T>
struct StackTopAllocator {
  using value_type = T;

  StackTopAllocator(const greenlet::Stack& stack, std::size_t reserved)
      : stack(stack), reserved(reserved) {}
  template <typename U>
  StackTopAllocator(const StackTopAllocator<U>& other)  // NOLINT: rebinding must be implicit.
      : stack(other.stack), reserved(other.reserved) {}

  T* allocate(std::size_t n) {
    if (n * sizeof(T) > reserved || alignof(T) > kAlign) {
      throw std::logic_error("gevent::Spawn: the greenlet block does not fit its stack reserve");
    }
    return reinterpret_cast<T*>(static_cast<char*>(stack.low) + stack.size - reserved);
  }
  void deallocate(T*, std::size_t) { greenlet::StackPool::ThisThread().Release(stack); }

  template <typename U>
  bool operator==(const StackTopAllocator<U>& other) const { return stack.low == other.stack.low; }
  template <typename U>
  bool operator!=(const StackTopAllocator<U>& other) const { return !(*this == other); }

  static constexpr std::size_t kAlign = 64;
  greenlet::Stack stack;
  std::size_t reserved;
};

// Bytes kept at the top of the stack for the Greenlet and the shared_ptr control block around
// it (a vtable pointer and two counts), rounded to a cache line.
constexpr std::size_t kTopReserve =
    (sizeof(Greenlet) + 64 + StackTopAllocator<Greenlet>::kAlign - 1) /
    StackTopAllocator<Greenlet>::kAlign * StackTopAllocator<Greenlet>::kAlign;

// The blocked-hub monitor names spawned greenlets through their user data. Registered once, when
// this file is linked in (the namer pointer is constant-initialised, so the order is safe).
const bool kNamerRegistered = (internal::SetGreenletNamer([](const greenlet::Greenlet* g) {
                                 return static_cast<const Greenlet*>(g->user_data())->name();
                               }),
                               true);

// The pool's smallest stack (kMinStackSize, less an unguarded slot's canary gap) leaves plenty.
static_assert(kTopReserve <= greenlet::kMinStackSize / 8);

}  // namespace

Greenlet::Greenlet(PrivateTag, Hub& hub, absl::AnyInvocable<std::any()>&& body,
                   const std::string& name, const greenlet::Stack& stack)
    : hub_(&hub),
      body_(std::move(body)),
      name_(name),
      raw_([this] { Run(); }, hub.greenlet(), stack) {
  raw_.set_user_data(this);  // For GetCurrent.
  start_node_.resume = &raw_;
  start_node_.discard = &Greenlet::DiscardNode;
  start_node_.owner = this;
  notify_node_.run = &Greenlet::RunNotifyNode;
  notify_node_.discard = &Greenlet::DiscardNode;
  notify_node_.owner = this;
  release_node_.run = &Greenlet::RunReleaseNode;
  release_node_.owner = this;
}

// A suspended raw greenlet is unwound by its own destructor (it is never the running one here:
// a running greenlet holds a reference to itself). The nodes are queued only while self_ is set.
Greenlet::~Greenlet() = default;

GreenletRef Greenlet::Create(absl::AnyInvocable<std::any()> body, SpawnOptions options) {
  if (!body) throw UsageError("gevent::Spawn: the function is empty");
  Hub& hub = GetHub();
  hub.DrainReleases();  // Finished greenlets' stacks back to the pool first, to be reused now.
  greenlet::StackPool& pool = greenlet::StackPool::ThisThread();
  const greenlet::Stack stack = pool.Allocate(options.stack);
  greenlet::Stack below = stack;
  below.size -= kTopReserve;
  try {
    return std::allocate_shared<Greenlet>(StackTopAllocator<Greenlet>(stack, kTopReserve),
                                          PrivateTag{}, hub, std::move(body), options.name,
                                          below);
  } catch (...) {
    pool.Release(stack);
    throw;
  }
}

void Greenlet::StartWith(GreenletRef self) {
  if (start_scheduled_ || dead_ || raw_.started()) return;
  start_scheduled_ = true;
  self_ = std::move(self);
  hub_->ScheduleNode(&start_node_);
}

void Greenlet::StartLater(absl::Duration delay) {
  if (start_scheduled_ || dead_ || raw_.started()) return;
  start_scheduled_ = true;
  self_ = shared_from_this();
  hub_->loop().UpdateNow();
  start_timer_.emplace(hub_->loop(), std::max(delay, absl::ZeroDuration()), [this] {
    // self_ keeps `this` alive until the finish notification, which runs after this returns.
    if (!dead_ && !raw_.started()) hub_->Resume(&raw_, &start_node_);
  });
  start_timer_->Start();
}

void Greenlet::Run() {
  // On the greenlet's own stack.
  try {
    value_ = body_();
  } catch (const greenlet::GreenletExit&) {
    value_.reset();
  } catch (...) {
    exception_ = std::current_exception();
  }
  body_ = nullptr;
  if (exception_) ReportGreenletError(*this, exception_);
  Finish();
  hub_->HandOffAtFinish(&raw_);
}

void Greenlet::Finish() {
  dead_ = true;
  hub_->Unschedule(&start_node_);
  if (start_timer_.has_value()) start_timer_->Stop();
  locals_.reset();
  // A greenlet killed before Start holds no reference to itself yet: take one, so that the
  // links see it alive.
  if (!self_) self_ = shared_from_this();
  if (links_.empty()) {
    // Nothing to run on the hub: the joiners resume next, and the last self-reference goes
    // wherever the thread goes next (not on this stack).
    NotifyObservers();  // Joiners, JoinAll, IWait.
    hub_->DeferRelease(&release_node_);
    return;
  }
  // The links run before the joiners resume, as in gevent, where a join is a link.
  ScheduleNotify();
  NotifyObservers();
}

void Greenlet::ScheduleNotify() { hub_->ScheduleNode(&notify_node_); }

void Greenlet::RunNotifyNode(internal::ReadyNode* node) {
  Greenlet* g = static_cast<OwnedNode*>(node)->owner;
  g->hub_->BeforeRelease(&g->raw_);
  // Dropped on the hub after the links ran; this may destroy the greenlet.
  GreenletRef keep = std::move(g->self_);
  g->NotifyLinks(keep);
}

void Greenlet::RunReleaseNode(internal::ReadyNode* node) {
  Greenlet* g = static_cast<OwnedNode*>(node)->owner;
  if (g->notify_node_.queued()) return;  // A link added since: the notification drops it.
  g->hub_->BeforeRelease(&g->raw_);
  GreenletRef keep = std::move(g->self_);
}

void Greenlet::DiscardNode(internal::ReadyNode* node) {
  // The hub is going away: drop the reference the queued start or notification held.
  GreenletRef keep = std::move(static_cast<OwnedNode*>(node)->owner->self_);
}

void Greenlet::NotifyLinks(const GreenletRef& self) {
  // Links added by a link callback run in this same pass, after the others.
  while (links_done_ < links_.size()) {
    LinkEntry link = std::move(links_[links_done_++]);
    const bool wanted = link.kind == LinkKind::kAll ||
                        (link.kind == LinkKind::kValue && !exception_) ||
                        (link.kind == LinkKind::kException && exception_);
    if (!wanted) continue;
    try {
      link.callback(self);
    } catch (...) {
      hub_->loop().ReportError("link", std::current_exception());
    }
  }
  links_.clear();
  links_done_ = 0;
}

Greenlet::LinkId Greenlet::AddLink(LinkKind kind, LinkCallback callback) {
  if (!callback) throw UsageError("gevent::Greenlet::Link: the callback is empty");
  const LinkId id = next_link_id_++;
  links_.push_back(LinkEntry{id, kind, std::move(callback)});
  if (dead_ && !notify_node_.queued() && links_done_ == 0) {
    // A link added after the finish runs soon, also when the greenlet's own notification has
    // already run: it holds a reference until then.
    if (!self_) self_ = shared_from_this();
    ScheduleNotify();
  }
  return id;
}

Greenlet::LinkId Greenlet::Link(LinkCallback callback) {
  return AddLink(LinkKind::kAll, std::move(callback));
}
Greenlet::LinkId Greenlet::LinkValue(LinkCallback callback) {
  return AddLink(LinkKind::kValue, std::move(callback));
}
Greenlet::LinkId Greenlet::LinkException(LinkCallback callback) {
  return AddLink(LinkKind::kException, std::move(callback));
}

bool Greenlet::Unlink(LinkId id) {
  auto it = std::find_if(links_.begin() + static_cast<std::ptrdiff_t>(links_done_), links_.end(),
                         [id](const LinkEntry& l) { return l.id == id; });
  if (it == links_.end()) return false;
  links_.erase(it);
  return true;
}

void Greenlet::ThrowJoinSelf() {
  throw UsageError("gevent::Greenlet::Join: a greenlet cannot join itself");
}

absl::StatusOr<std::any> Greenlet::Get(std::optional<absl::Duration> timeout) {
  if (!Join(timeout)) {
    return absl::DeadlineExceededError("gevent::Greenlet::Get: timed out waiting for " + name() +
                                       " to finish");
  }
  if (exception_) std::rethrow_exception(exception_);
  return value_;
}

bool Greenlet::Kill(std::exception_ptr error, bool block, std::optional<absl::Duration> timeout) {
  if (dead_) return true;
  if (!error) error = std::make_exception_ptr(greenlet::GreenletExit());
  if (!raw_.started()) {
    // Never runs; it finishes with the exception now and its links fire.
    body_ = nullptr;
    if (!IsGreenletExit(error)) exception_ = error;
    Finish();
    return true;
  }
  if (greenlet::Greenlet::Current() == &raw_) std::rethrow_exception(error);
  hub_->Schedule([self = shared_from_this(), error] {
    if (!self->dead_) self->raw_.Throw(error);
  });
  if (block) return Join(timeout);
  return dead_;
}

GreenletRef GetCurrent() {
  auto* spawned = static_cast<Greenlet*>(greenlet::Greenlet::Current()->user_data());
  return spawned != nullptr ? spawned->shared_from_this() : nullptr;
}

std::string Greenlet::name() const {
  // The default name is made only when asked for: spawning stays free of string formatting.
  if (!name_.empty()) return name_;
  return "Greenlet-" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
}

bool JoinAll(const std::vector<GreenletRef>& greenlets, std::optional<absl::Duration> timeout,
             bool raise_error) {
  Hub& hub = GetHub();
  hub.loop().UpdateNow();
  const absl::Time deadline =
      timeout.has_value() ? absl::Now() + *timeout : absl::InfiniteFuture();
  Waiter waiter(hub);
  // One registration per greenlet, all waking the same waiter; each unlinks itself on the way out.
  std::vector<Greenlet::JoinObserver> joiners(greenlets.size());
  for (std::size_t i = 0; i < greenlets.size(); ++i) {
    if (greenlets[i] && !greenlets[i]->dead()) {
      joiners[i].waiter = &waiter;
      greenlets[i]->AddObserver(&joiners[i]);
    }
  }
  while (true) {
    bool all = true;
    for (const GreenletRef& g : greenlets) {
      if (!g) continue;
      if (g->dead()) {
        if (raise_error && g->exception()) std::rethrow_exception(g->exception());
      } else {
        all = false;
      }
    }
    if (all) return true;
    std::optional<absl::Duration> left;
    if (timeout.has_value()) {
      left = deadline - absl::Now();
      if (*left <= absl::ZeroDuration()) return false;
    }
    if (!waiter.Get(left)) return false;
  }
}

bool KillAll(const std::vector<GreenletRef>& greenlets, std::exception_ptr error, bool block,
             std::optional<absl::Duration> timeout) {
  for (const GreenletRef& g : greenlets) {
    if (g) g->Kill(error, /*block=*/false);
  }
  if (!block) {
    return std::all_of(greenlets.begin(), greenlets.end(),
                       [](const GreenletRef& g) { return !g || g->dead(); });
  }
  return JoinAll(greenlets, timeout, /*raise_error=*/false);
}

namespace internal {
std::uint64_t NewLocalId() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1);
}
std::unordered_map<std::uint64_t, std::shared_ptr<void>>& ThreadLocals() {
  static thread_local std::unordered_map<std::uint64_t, std::shared_ptr<void>> locals;
  return locals;
}
}  // namespace internal

}  // namespace gevent
