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

Greenlet::Greenlet(PrivateTag, Hub& hub, absl::AnyInvocable<std::any()> body, SpawnOptions options)
    : hub_(&hub),
      body_(std::move(body)),
      name_(std::move(options.name)),
      raw_([this] { Run(); }, hub.greenlet(), options.stack) {
  if (!body_) throw std::invalid_argument("gevent::Spawn: the function is empty");
  raw_.set_user_data(this);  // For GetCurrent.
}

// A suspended raw greenlet is unwound by its own destructor (it is never the running one here:
// a running greenlet holds a reference to itself).
Greenlet::~Greenlet() = default;

GreenletRef Greenlet::Create(absl::AnyInvocable<std::any()> body, SpawnOptions options) {
  return std::make_shared<Greenlet>(PrivateTag{}, GetHub(), std::move(body), std::move(options));
}

void Greenlet::Start() {
  if (start_scheduled_ || dead_ || raw_.started()) return;
  start_scheduled_ = true;
  self_ = shared_from_this();
  hub_->Schedule([self = self_] { self->RunStart(); });
}

void Greenlet::StartLater(absl::Duration delay) {
  if (start_scheduled_ || dead_ || raw_.started()) return;
  start_scheduled_ = true;
  self_ = shared_from_this();
  hub_->loop().UpdateNow();
  start_timer_.emplace(hub_->loop(), std::max(delay, absl::ZeroDuration()), [this] {
    GreenletRef keep = shared_from_this();
    keep->RunStart();
  });
  start_timer_->Start();
}

void Greenlet::RunStart() {
  // On the hub.
  if (dead_ || raw_.started()) return;  // Killed before it could start.
  GreenletRef keep = shared_from_this();
  try {
    raw_.Switch();
  } catch (...) {
    // The stack could not be allocated (the greenlet's own errors never escape Run).
    if (!raw_.started() && !dead_) {
      exception_ = std::current_exception();
      ReportGreenletError(*this, exception_);
      Finish();
    } else {
      hub_->loop().ReportError("greenlet", std::current_exception());
    }
  }
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
}

void Greenlet::Finish() {
  dead_ = true;
  if (start_timer_.has_value()) start_timer_->Stop();
  locals_.clear();
  for (Waiter* w : joiners_) w->Wake();
  // The reference that kept the greenlet alive is dropped on the hub, after the links ran: never
  // on the greenlet's own stack.
  GreenletRef keep = self_ ? std::move(self_) : shared_from_this();
  self_.reset();
  ScheduleNotify(std::move(keep));
}

void Greenlet::ScheduleNotify(GreenletRef keep) {
  if (notify_scheduled_) return;
  notify_scheduled_ = true;
  hub_->Schedule([keep = std::move(keep)] {
    keep->notify_scheduled_ = false;
    keep->NotifyLinks();
  });
}

void Greenlet::NotifyLinks() {
  GreenletRef self = shared_from_this();
  while (!links_.empty()) {
    LinkEntry link = std::move(links_.front());
    links_.pop_front();
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
}

Greenlet::LinkId Greenlet::AddLink(LinkKind kind, LinkCallback callback) {
  if (!callback) throw std::invalid_argument("gevent::Greenlet::Link: the callback is empty");
  const LinkId id = next_link_id_++;
  links_.push_back(LinkEntry{id, kind, std::move(callback)});
  if (dead_) ScheduleNotify(shared_from_this());
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
  auto it = std::find_if(links_.begin(), links_.end(),
                         [id](const LinkEntry& l) { return l.id == id; });
  if (it == links_.end()) return false;
  links_.erase(it);
  return true;
}

bool Greenlet::Join(std::optional<absl::Duration> timeout) {
  if (dead_) return true;
  if (greenlet::Greenlet::Current() == &raw_) {
    throw std::logic_error("gevent::Greenlet::Join: a greenlet cannot join itself");
  }
  GreenletRef keep = shared_from_this();
  Waiter waiter(*hub_);
  joiners_.push_back(&waiter);
  struct Leave {
    Greenlet* g;
    Waiter* w;
    ~Leave() { g->joiners_.erase(std::find(g->joiners_.begin(), g->joiners_.end(), w)); }
  } leave{this, &waiter};
  waiter.Get(timeout);
  return dead_;
}

std::any Greenlet::Get(std::optional<absl::Duration> timeout) {
  if (!Join(timeout)) {
    throw TimeoutError(nullptr, "gevent::Greenlet::Get: timed out waiting for " + name_);
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
  const std::optional<absl::Time> deadline =
      timeout.has_value() ? std::optional<absl::Time>(absl::Now() + *timeout) : std::nullopt;
  Waiter waiter(hub);
  std::vector<GreenletRef> registered;
  struct Leave {
    std::vector<GreenletRef>& gs;
    Waiter* w;
    ~Leave() {
      for (const GreenletRef& g : gs) {
        auto& j = g->joiners_;
        auto it = std::find(j.begin(), j.end(), w);
        if (it != j.end()) j.erase(it);
      }
    }
  } leave{registered, &waiter};
  for (const GreenletRef& g : greenlets) {
    if (g && !g->dead()) {
      g->joiners_.push_back(&waiter);
      registered.push_back(g);
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
    if (deadline.has_value()) {
      left = *deadline - absl::Now();
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
