// gevent::Group and gevent::Pool — sets of spawned greenlets (gevent.pool).
//
//   gevent::Pool pool(10);                       // at most 10 running at once
//   pool.Spawn(fetch, url);                       // parks while 10 are running
//   std::vector<int> lens = pool.Map(length, urls);   // results in input order
//   for (int len : pool.ImapUnordered(length, urls)) ...   // lazy, as each one finishes
//   pool.Join();                                  // until every member finished
//
// A greenlet leaves its group when it finishes (through a link, which runs on the hub after the
// finish); a Pool's slot frees at that moment and the oldest greenlet parked in Spawn/Add/
// WaitAvailable gets it (FIFO, via a Semaphore).
//
// Errors (base/errors.h): a non-blocking Add on a full pool, or a blocking one whose timeout
// expired, returns absl::DeadlineExceededError("pool is full ...") (gevent's PoolFull;
// IsPoolFull()): would-block and timeouts are DeadlineExceeded everywhere. Misuse throws
// gevent::UsageError: a Pool of size 0; Spawn when Add fails (which a blocking Add without a
// timeout never does). Map rethrows the exception of the first greenlet (in input order) that
// failed; Imap / ImapUnordered (lazy ranges, hub/imap.h) rethrow each failure at the step that
// reaches it.
//
// Lifetime: a Group may be destroyed while members still run (their links then do nothing); but
// greenlets parked in its blocking calls must be gone first. Thread-safety: hub thread only.
#ifndef GEVENT_HUB_POOL_H_
#define GEVENT_HUB_POOL_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "hub/event.h"
#include "hub/imap.h"
#include "hub/lock.h"
#include "hub/queue.h"
#include "hub/spawn.h"

namespace gevent {

// IsPoolFull: the status of an Add that found the pool full (DeadlineExceeded).
inline bool IsPoolFull(const absl::Status& s) { return absl::IsDeadlineExceeded(s); }

class Group {
 public:
  Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  virtual ~Group();

  // Spawn starts fn(args...) as a member (a Pool first waits for a free slot).
  template <typename F, typename... Args>
  GreenletRef Spawn(F&& fn, Args&&... args) {
    GreenletRef g = Greenlet::Create(
        internal::MakeBody(std::forward<F>(fn), std::forward<Args>(args)...));
    absl::Status s = Add(g);
    if (!s.ok()) throw UsageError("gevent::Group::Spawn: " + std::string(s.message()));
    g->Start();
    return g;
  }

  // Add makes `g` a member (no-op if it already is; a finished greenlet is not added).
  virtual absl::Status Add(const GreenletRef& g, bool block = true,
                           std::optional<absl::Duration> timeout = std::nullopt);
  // Discard removes `g` (done automatically when it finishes).
  virtual void Discard(const GreenletRef& g);

  bool Contains(const GreenletRef& g) const { return members_.count(g) != 0; }
  std::size_t size() const { return members_.size(); }

  // Join parks until the group is empty (true) or `timeout` expires (false).
  bool Join(std::optional<absl::Duration> timeout = std::nullopt);
  // KillAll kills every member with GreenletExit and waits for them; on return the group is
  // empty (size() == 0, a Pool's slots are free), members spawned meanwhile killed too.
  void KillAll();

  // Map runs fn(input) for every input as members and returns the results in input order.
  template <typename F, typename In>
  auto Map(F fn, const std::vector<In>& inputs) {
    using R = std::decay_t<decltype(fn(inputs.front()))>;
    std::vector<GreenletRef> gs;
    gs.reserve(inputs.size());
    for (const In& in : inputs) gs.push_back(Spawn(fn, in));
    std::vector<R> out;
    out.reserve(inputs.size());
    for (GreenletRef& g : gs) out.push_back(*g->GetAs<R>());  // No timeout: never fails.
    return out;
  }

  // Imap / ImapUnordered run fn(input) for every input as members and return a lazy range of
  // the results, in input order / in the order they finished (hub/imap.h: bounds, errors,
  // lifetime). The vector is moved into the range; with an iterator pair, the inputs must
  // outlive the range (nothing is copied: any input range, e.g. a counting one).
  template <typename F, typename In>
  auto Imap(F fn, std::vector<In> inputs, ImapOptions options = {}) {
    return MakeImap<In>(std::move(fn), std::move(inputs), true, options);
  }
  template <typename F, typename In>
  auto ImapUnordered(F fn, std::vector<In> inputs, ImapOptions options = {}) {
    return MakeImap<In>(std::move(fn), std::move(inputs), false, options);
  }
  template <typename F, typename It>
  auto Imap(F fn, It first, It last, ImapOptions options = {}) {
    return ImapRange<ImapResult<F, decltype(*first)>>(*this, true, options, std::move(fn),
                                                      std::move(first), std::move(last));
  }
  template <typename F, typename It>
  auto ImapUnordered(F fn, It first, It last, ImapOptions options = {}) {
    return ImapRange<ImapResult<F, decltype(*first)>>(*this, false, options, std::move(fn),
                                                      std::move(first), std::move(last));
  }

 private:
  friend std::weak_ptr<const void> internal::ImapAliveToken(const Group& group);
  // ImapResult: what a step of Imap(fn, ...) over `Arg` inputs yields.
  template <typename F, typename Arg>
  using ImapResult = internal::ImapValue<
      std::decay_t<std::invoke_result_t<F&, std::decay_t<Arg>&>>>;
  template <typename In, typename F>
  auto MakeImap(F fn, std::vector<In> inputs, bool ordered, const ImapOptions& options) {
    auto owned = std::make_shared<std::vector<In>>(std::move(inputs));
    auto first = owned->cbegin();
    auto last = owned->cend();
    return ImapRange<ImapResult<F, const In&>>(*this, ordered, options, std::move(fn), first,
                                               last, std::move(owned));
  }

  struct Alive {
    Group* group;
  };
  std::shared_ptr<Alive> alive_;
  std::unordered_set<GreenletRef> members_;
  Event empty_;
};

// Pool: a Group of at most `size` members.
class Pool : public Group {
 public:
  explicit Pool(std::size_t size);

  absl::Status Add(const GreenletRef& g, bool block = true,
                   std::optional<absl::Duration> timeout = std::nullopt) override;
  void Discard(const GreenletRef& g) override;

  // WaitAvailable parks until a slot is free (true) or `timeout` expires (false).
  bool WaitAvailable(std::optional<absl::Duration> timeout = std::nullopt);
  bool full() const { return slots_.locked(); }
  std::size_t free_count() const { return slots_.counter(); }
  std::size_t capacity() const { return size_; }

 private:
  std::size_t size_;
  Semaphore slots_;
};

}  // namespace gevent

#endif  // GEVENT_HUB_POOL_H_
