// gevent::Greenlet — a scheduled greenlet with a result, links and joiners (gevent.Greenlet).
//
//   gevent::GreenletRef g = gevent::Spawn([](int x) { return x * 2; }, 21);
//   absl::StatusOr<int> v = g->GetAs<int>();       // 42: parks until g finishes
//   g->Link([](const gevent::GreenletRef& done) { ... });   // runs on the hub after the finish
//
// A gevent::Greenlet wraps a greenlet::Greenlet whose parent is the hub. Spawn schedules its start
// through the hub's ready queue; SpawnLater through a timer. The function's return value (any
// type; empty for void) becomes value(); an exception becomes exception() and is reported once to
// the spawn error handler (stderr by default; see SetSpawnErrorHandler). GreenletExit escaping the
// function counts as success with an empty value.
//
// Lifetime: GreenletRef is a std::shared_ptr. A scheduled or running greenlet keeps itself alive
// until it finishes (and its links ran), so `Spawn(fn);` without keeping the handle is fine.
// A greenlet parked forever with no handle left is leaked with its stack (as in gevent, where it
// would never be collected either).
//
// Memory. Spawn takes the stack from the thread's StackPool at once (a StackError then reaches
// the caller of Spawn) and places the Greenlet object, with its reference counts, in the top
// bytes of that stack: one pooled allocation per spawn, and a parked greenlet's object shares a
// page with its innermost frames. The stack returns to the pool when the last GreenletRef and
// the last std::weak_ptr to the greenlet are gone.
//
// Links run on the hub, in FIFO order, after the finish (also when added after it). They must not
// block. Joiners (Join/Get) park with a gevent::Waiter; any greenlet, including the thread's main
// greenlet, may join, and several may join the same greenlet.
//
// Kill(exception): an unstarted greenlet never runs (it finishes with the exception — success for
// GreenletExit — and its links fire); a finished one is left alone; a started one gets the
// exception thrown into it from the hub (as gevent does), and Kill waits for it to finish when
// `block` is true.
//
// Errors (base/errors.h): Get / GetAs return absl::StatusOr: DeadlineExceeded when their timeout
// expires first, the value otherwise, and they rethrow the exception that ended the greenlet.
// Join and JoinAll return false on a timeout (gevent's convention). Misuse throws
// gevent::UsageError: an empty function or link callback, a greenlet joining itself, a stack size
// below greenlet::kMinStackSize.
//
// Hub thread only.
#ifndef GEVENT_HUB_SPAWN_H_
#define GEVENT_HUB_SPAWN_H_

#include <any>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/hub.h"
#include "hub/waitable.h"

namespace gevent {

class Greenlet;
using GreenletRef = std::shared_ptr<Greenlet>;
namespace internal {
struct SpawnAccess;
}  // namespace internal

// SpawnOptions: the stack of a spawned greenlet (64 KiB guarded by default) and its name.
struct SpawnOptions {
  greenlet::StackOptions stack{64 * 1024, greenlet::StackKind::kGuarded};
  std::string name;
};

// SpawnErrorHandler receives every exception (other than GreenletExit) that ends a spawned
// greenlet. The default prints the greenlet's name and the error to stderr.
using SpawnErrorHandler = std::function<void(Greenlet& greenlet, std::exception_ptr error)>;
// SetSpawnErrorHandler replaces the calling thread's handler (empty: the default) and returns
// the previous one.
SpawnErrorHandler SetSpawnErrorHandler(SpawnErrorHandler handler);

// A Greenlet is a Waitable (gevent::Wait / IWait), ready once finished.
class Greenlet : public Waitable, public std::enable_shared_from_this<Greenlet> {
 public:
  using LinkCallback = absl::AnyInvocable<void(const GreenletRef&)>;
  using LinkId = std::uint64_t;
  struct PrivateTag {};

  // Use Spawn / SpawnLater / Create.
  Greenlet(PrivateTag, Hub& hub, absl::AnyInvocable<std::any()>&& body, const std::string& name,
           const greenlet::Stack& stack);
  Greenlet(const Greenlet&) = delete;
  Greenlet& operator=(const Greenlet&) = delete;
  ~Greenlet();

  // Create makes an unscheduled greenlet (call Start or StartLater).
  static GreenletRef Create(absl::AnyInvocable<std::any()> body, SpawnOptions options = {});

  // Start schedules the greenlet to run (once; later calls do nothing).
  void Start() { StartWith(shared_from_this()); }
  // StartLater starts it after `delay` (a referenced timer: it keeps the loop alive).
  void StartLater(absl::Duration delay);

  // started: it began running. ready / dead: it finished (or was killed before it started).
  // successful: finished without an exception.
  bool started() const { return raw_.started(); }
  bool scheduled() const { return start_scheduled_; }
  bool ready() const override { return dead_; }
  bool dead() const { return dead_; }
  bool successful() const { return dead_ && !exception_; }

  // value: what the function returned (empty for void, GreenletExit, or not finished).
  const std::any& value() const { return value_; }
  // exception: what ended it, or null.
  std::exception_ptr exception() const { return exception_; }

  // name: as given in SpawnOptions or SetName, else "Greenlet-<address>".
  std::string name() const;
  void SetName(std::string name) { name_ = std::move(name); }

  // Join parks until the greenlet finishes; returns ready(). From the hub, throws
  // BlockingInHubError (unless already finished); from the greenlet itself, gevent::UsageError.
  // The caller must hold a reference (a GreenletRef) while it waits.
  bool Join(std::optional<absl::Duration> timeout = std::nullopt) {
    if (dead_) return true;
    return JoinParked(timeout);
  }
  // Get joins and returns value(), or rethrows exception(); absl::DeadlineExceededError naming
  // the greenlet if `timeout` elapses first. Throws like Join.
  absl::StatusOr<std::any> Get(std::optional<absl::Duration> timeout = std::nullopt);
  // GetAs: Get, with the value as a T (std::bad_any_cast if it is not one).
  template <typename T>
  absl::StatusOr<T> GetAs(std::optional<absl::Duration> timeout = std::nullopt) {
    absl::StatusOr<std::any> value = Get(timeout);
    if (!value.ok()) return value.status();
    return std::any_cast<T>(*std::move(value));
  }

  // Kill ends the greenlet with `error` (GreenletExit when null); see the file comment.
  // Returns ready().
  bool Kill(std::exception_ptr error = nullptr, bool block = true,
            std::optional<absl::Duration> timeout = std::nullopt);

  // Link / LinkValue / LinkException add a callback run on the hub after the finish (always /
  // only on success / only on failure). Unlink removes one that has not run; returns whether it
  // was found.
  LinkId Link(LinkCallback callback);
  LinkId LinkValue(LinkCallback callback);
  LinkId LinkException(LinkCallback callback);
  bool Unlink(LinkId id);
  std::size_t link_count() const { return links_.size() - links_done_; }

  // raw: the underlying greenlet.
  greenlet::Greenlet* raw() { return &raw_; }

  // Local storage (see gevent::Local): slot `id`, or null.
  std::shared_ptr<void>& LocalSlot(std::uint64_t id) {
    if (!locals_) locals_ = std::make_unique<LocalMap>();
    return (*locals_)[id];
  }
  std::shared_ptr<void>* FindLocal(std::uint64_t id) {
    if (!locals_) return nullptr;
    auto it = locals_->find(id);
    return it == locals_->end() ? nullptr : &it->second;
  }

 private:
  enum class LinkKind { kAll, kValue, kException };
  struct LinkEntry {
    LinkId id;
    LinkKind kind;
    LinkCallback callback;
  };
  // JoinObserver: a joiner's registration, on the joiner's stack; the finish wakes it.
  struct JoinObserver : Waitable::Observer {
    Waiter* waiter = nullptr;
    explicit JoinObserver(Waiter* w = nullptr) : waiter(w) { on_ready = &WakeJoiner; }
    static void WakeJoiner(Observer* self, Waitable*) {
      static_cast<JoinObserver*>(self)->waiter->Wake();
    }
  };
  // The start (which resumes raw_) and the finish notification are intrusive hub entries:
  // spawning allocates nothing but the stack.
  struct OwnedNode : internal::ReadyNode {
    Greenlet* owner = nullptr;
  };
  friend bool JoinAll(const std::vector<GreenletRef>&, std::optional<absl::Duration>, bool);

  friend struct internal::SpawnAccess;

  // JoinParked is inline (through Waiter::Get): a join is usually the caller's hot path, and
  // every call level around its switch costs a mispredicted return on resuming.
  __attribute__((always_inline)) bool JoinParked(std::optional<absl::Duration> timeout) {
    if (greenlet::Greenlet::Current() == &raw_) ThrowJoinSelf();
    Waiter waiter(*hub_);
    JoinObserver joiner(&waiter);
    AddObserver(&joiner);
    waiter.Get(timeout);
    return dead_;
  }
  [[noreturn]] static void ThrowJoinSelf();

  // StartWith: Start, with `self` (this greenlet) at hand: no shared_from_this.
  void StartWith(GreenletRef self);
  LinkId AddLink(LinkKind kind, LinkCallback callback);
  void Run();
  void Finish();
  void ScheduleNotify();
  void NotifyLinks(const GreenletRef& self);
  static void RunNotifyNode(internal::ReadyNode* node);
  static void RunReleaseNode(internal::ReadyNode* node);
  static void DiscardNode(internal::ReadyNode* node);

  Hub* hub_;
  absl::AnyInvocable<std::any()> body_;
  std::string name_;
  std::any value_;
  std::exception_ptr exception_;
  bool dead_ = false;
  bool start_scheduled_ = false;
  // Set from Start until the finish notification ran: a scheduled or running greenlet keeps
  // itself alive, and the last reference of a finished one is never dropped on its own stack.
  GreenletRef self_;
  OwnedNode start_node_;
  OwnedNode notify_node_;
  OwnedNode release_node_;  // Drops self_ after a finish without links (Hub::DeferRelease).
  std::optional<TimerWatcher> start_timer_;
  // Links in the order added; the first links_done_ already ran or were unlinked (emptied).
  std::vector<LinkEntry> links_;
  std::size_t links_done_ = 0;
  LinkId next_link_id_ = 1;
  // Made on first use: most greenlets have no locals, and spawning stays free of the map.
  using LocalMap = std::unordered_map<std::uint64_t, std::shared_ptr<void>>;
  std::unique_ptr<LocalMap> locals_;
  // Last, so it is destroyed first: unwinding a suspended greenlet runs Run's epilogue, which
  // still uses the members above.
  greenlet::Greenlet raw_;
};

namespace internal {
template <typename F, typename... Args>
absl::AnyInvocable<std::any()> MakeBody(F&& fn, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    // No argument tuple: a function object of two pointers stays inside the AnyInvocable.
    return [f = std::decay_t<F>(std::forward<F>(fn))]() mutable -> std::any {
      if constexpr (std::is_void_v<decltype(f())>) {
        f();
        return {};
      } else {
        return std::any(f());
      }
    };
  }
  return [f = std::decay_t<F>(std::forward<F>(fn)),
          args = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)]() mutable
         -> std::any {
    using R = decltype(std::apply(f, args));
    if constexpr (std::is_void_v<R>) {
      std::apply(f, args);
      return {};
    } else {
      return std::any(std::apply(f, args));
    }
  };
}
template <typename T>
inline constexpr bool kIsSpawnOptions = std::is_same_v<std::decay_t<T>, SpawnOptions>;
struct SpawnAccess {
  // Start with the caller's reference in hand (no shared_from_this).
  static void Start(const GreenletRef& g) { g->StartWith(g); }
};
}  // namespace internal

// Spawn creates a greenlet running fn(args...) and schedules its start (gevent.spawn).
template <typename F, typename... Args,
          typename = std::enable_if_t<!internal::kIsSpawnOptions<F>>>
GreenletRef Spawn(F&& fn, Args&&... args) {
  GreenletRef g = Greenlet::Create(
      internal::MakeBody(std::forward<F>(fn), std::forward<Args>(args)...), SpawnOptions{});
  internal::SpawnAccess::Start(g);
  return g;
}
template <typename F, typename... Args>
GreenletRef Spawn(SpawnOptions options, F&& fn, Args&&... args) {
  GreenletRef g = Greenlet::Create(
      internal::MakeBody(std::forward<F>(fn), std::forward<Args>(args)...), std::move(options));
  internal::SpawnAccess::Start(g);
  return g;
}

// SpawnLater: Spawn, started after `delay` (gevent.spawn_later).
template <typename F, typename... Args,
          typename = std::enable_if_t<!internal::kIsSpawnOptions<F>>>
GreenletRef SpawnLater(absl::Duration delay, F&& fn, Args&&... args) {
  GreenletRef g = Greenlet::Create(
      internal::MakeBody(std::forward<F>(fn), std::forward<Args>(args)...), SpawnOptions{});
  g->StartLater(delay);
  return g;
}
template <typename F, typename... Args>
GreenletRef SpawnLater(SpawnOptions options, absl::Duration delay, F&& fn, Args&&... args) {
  GreenletRef g = Greenlet::Create(
      internal::MakeBody(std::forward<F>(fn), std::forward<Args>(args)...), std::move(options));
  g->StartLater(delay);
  return g;
}

// GetCurrent returns the running spawned greenlet, or null (main greenlet, hub, plain greenlets).
GreenletRef GetCurrent();

// JoinAll waits until every greenlet finished (or the timeout elapsed); returns true if all did.
// With raise_error, rethrows the exception of the first greenlet found failed as soon as one is.
bool JoinAll(const std::vector<GreenletRef>& greenlets,
             std::optional<absl::Duration> timeout = std::nullopt, bool raise_error = false);

// KillAll kills every greenlet (throws are scheduled all at once); with block, waits for them
// (up to timeout). Returns true if all are dead.
bool KillAll(const std::vector<GreenletRef>& greenlets, std::exception_ptr error = nullptr,
             bool block = true, std::optional<absl::Duration> timeout = std::nullopt);

namespace internal {
std::uint64_t NewLocalId();
// Storage of the main greenlet (and anything that is not a spawned greenlet) of this thread.
std::unordered_map<std::uint64_t, std::shared_ptr<void>>& ThreadLocals();
}  // namespace internal

// Local<T>: one T per spawned greenlet (gevent.local.local), created on first access with
// T's default constructor (or `init`). Code outside spawned greenlets shares one per thread.
// Values die with their greenlet's finish. Hub thread only.
template <typename T>
class Local {
 public:
  Local() : id_(internal::NewLocalId()) {}
  explicit Local(std::function<T()> init) : id_(internal::NewLocalId()), init_(std::move(init)) {}

  // get returns the current greenlet's value, creating it.
  T& get() {
    std::shared_ptr<void>& slot = Slot();
    if (!slot) slot = init_ ? std::make_shared<T>(init_()) : std::make_shared<T>();
    return *static_cast<T*>(slot.get());
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }
  // has: the current greenlet has a value.
  bool has() {
    if (GreenletRef g = GetCurrent()) return g->FindLocal(id_) != nullptr;
    return internal::ThreadLocals().count(id_) != 0;
  }

 private:
  std::shared_ptr<void>& Slot() {
    if (GreenletRef g = GetCurrent()) return g->LocalSlot(id_);
    return internal::ThreadLocals()[id_];
  }
  std::uint64_t id_;
  std::function<T()> init_;
};

}  // namespace gevent

#endif  // GEVENT_HUB_SPAWN_H_
