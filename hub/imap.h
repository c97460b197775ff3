// gevent::ImapRange — the lazy result range of Group::Imap / Group::ImapUnordered
// (gevent.pool.Group.imap / imap_unordered).
//
//   gevent::Pool pool(10);
//   for (int len : pool.ImapUnordered(length, urls)) Use(len);   // completion order
//   auto results = pool.Imap(length, urls);                        // input order
//   while (std::optional<int> len = results.Next()) Use(*len);
//
// Imap / ImapUnordered return at once: a producer greenlet (a plain Spawn, not a member) walks the
// inputs and spawns fn(input) as members of the group, as gevent's IMap greenlet does. Each Next
// (each step of a range-for) parks the calling greenlet until the next result is ready: the next
// one to finish (ImapUnordered) or the next in input order (Imap); std::nullopt once every input
// was consumed.
//
// Bounds (ImapOptions), so memory stays bounded for any number of inputs:
//   - running members: at most max_in_flight (0: the pool's size, unbounded for a plain Group),
//     and never more than the pool's free slots (the producer parks in Pool::Add, FIFO with other
//     spawners).
//   - held results: a result is held from the start of its member until the consumer takes it.
//     A new input starts only while running + finished-but-unconsumed < max_buffered (0: the
//     in-flight bound), which is gevent's `maxsize`: a slow consumer stops the producer, and at
//     most max_buffered results are ever buffered (for Imap, also the out-of-order ones waiting
//     for an earlier input). A max_buffered below max_in_flight thus also bounds the running.
//   Slots free as members finish; the producer spawns the next input then, without waiting for
//   the consumer (unless the buffered bound is reached).
//
// Errors (base/errors.h): an exception that ended fn(input) (also one thrown by the input
// iterator) is rethrown by the Next that reaches that result (completion order / input order);
// the range stays usable and the following Next goes on with the other results. A member killed
// from outside with GreenletExit has no result: its step throws greenlet::GreenletExit.
// Next(timeout) returns absl::DeadlineExceededError when the timeout expires first. Misuse throws
// gevent::UsageError: Next from another thread than the one that created the range, or after its
// group was destroyed; Next on a moved-from or closed range returns std::nullopt.
//
// Lifetime: destroying the range (or Close) before the end kills the producer and every member
// still running with GreenletExit and waits for them to unwind: nothing it started outlives it,
// and their pool slots are free on return. The range must be destroyed before its group (a group
// may not be destroyed while greenlets are parked in its Add); its inputs are copied (vector) or
// must outlive it (iterator pair); `fn` is copied. Destroy it from a greenlet that may block (not
// the hub). Thread-safety: the creating thread's hub only.
#ifndef GEVENT_HUB_IMAP_H_
#define GEVENT_HUB_IMAP_H_

#include <algorithm>
#include <any>
#include <cstddef>
#include <deque>
#include <exception>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "greenlet/greenlet.h"
#include "hub/event.h"
#include "hub/hub.h"
#include "hub/spawn.h"

namespace gevent {

class Group;

// ImapOptions: the bounds of an Imap / ImapUnordered (see the file comment).
struct ImapOptions {
  std::size_t max_in_flight = 0;  // 0: the pool's size; unbounded for a plain Group.
  std::size_t max_buffered = 0;   // 0: the effective max_in_flight (gevent's maxsize).
};

namespace internal {

// Defined in pool.cc: the few Group operations the range uses (Group is incomplete here).
absl::Status ImapAdd(Group& group, const GreenletRef& g);
void ImapDiscard(Group& group, const GreenletRef& g);
std::weak_ptr<const void> ImapAliveToken(const Group& group);
std::size_t ImapDefaultInFlight(const Group& group);

// ImapValue: what a step yields (std::monostate for a void fn).
template <typename R>
using ImapValue = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

template <typename T>
struct ImapSlot {
  std::optional<T> value;
  std::exception_ptr error;
};

// ImapState: shared by the range, its producer and the links of its members.
template <typename T>
struct ImapState {
  bool ordered = false;
  std::size_t max_in_flight = 0;  // 0: unbounded.
  std::size_t max_buffered = 0;   // 0: unbounded.
  bool closed = false;
  bool producer_done = false;
  std::size_t spawned = 0;        // Inputs started (also the index of the next input).
  std::size_t next_index = 0;     // Imap: the input index the next step yields.
  std::unordered_set<GreenletRef> running;
  std::deque<ImapSlot<T>> done;             // ImapUnordered: completion order.
  std::map<std::size_t, ImapSlot<T>> by_index;  // Imap: finished, by input index.
  Event result_ready;  // Something to take, or the end.
  Event room;          // The producer may start the next input.
  std::size_t max_running_seen = 0;
  std::size_t max_held_seen = 0;

  std::size_t buffered() const { return done.size() + by_index.size(); }
  bool CanSpawn() const {
    if (max_in_flight != 0 && running.size() >= max_in_flight) return false;
    if (max_buffered != 0 && running.size() + buffered() >= max_buffered) return false;
    return true;
  }
  void Store(std::size_t index, ImapSlot<T>&& slot) {
    if (ordered) {
      by_index.emplace(index, std::move(slot));
    } else {
      done.push_back(std::move(slot));
    }
    if (buffered() > max_held_seen) max_held_seen = buffered();
    result_ready.Set();
  }
  // Take: the next result if it is ready.
  std::optional<ImapSlot<T>> Take() {
    std::optional<ImapSlot<T>> out;
    if (ordered) {
      auto it = by_index.find(next_index);
      if (it == by_index.end()) return out;
      out.emplace(std::move(it->second));
      by_index.erase(it);
      ++next_index;
    } else {
      if (done.empty()) return out;
      out.emplace(std::move(done.front()));
      done.pop_front();
    }
    room.Set();
    return out;
  }
  bool Finished() const {
    return producer_done && running.empty() && buffered() == 0;
  }
};

}  // namespace internal

// ImapRange<T>: see the file comment. Movable, not copyable.
template <typename T>
class ImapRange {
 public:
  using value_type = T;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = T&;

    iterator() = default;
    T& operator*() { return *current_; }
    T* operator->() { return &*current_; }
    iterator& operator++() {
      current_ = range_->Next();
      if (!current_) range_ = nullptr;
      return *this;
    }
    bool operator==(const iterator& o) const { return range_ == o.range_; }
    bool operator!=(const iterator& o) const { return range_ != o.range_; }

   private:
    friend class ImapRange;
    explicit iterator(ImapRange* range) : range_(range) { ++*this; }
    ImapRange* range_ = nullptr;
    std::optional<T> current_;
  };

  // Use Group::Imap / Group::ImapUnordered.
  template <typename F, typename It, typename End>
  ImapRange(Group& group, bool ordered, const ImapOptions& options, F fn, It first, End last,
            std::shared_ptr<void> keep = nullptr)
      : group_(&group),
        alive_(internal::ImapAliveToken(group)),
        hub_(&GetHub()),
        state_(std::make_shared<internal::ImapState<T>>()) {
    state_->ordered = ordered;
    std::size_t in_flight = options.max_in_flight;
    if (in_flight == 0) in_flight = internal::ImapDefaultInFlight(group);
    state_->max_in_flight = in_flight;
    state_->max_buffered = options.max_buffered != 0 ? options.max_buffered : in_flight;
    state_->room.Set();
    producer_ = Spawn([state = state_, group = group_, alive = alive_, fn = std::move(fn),
                       first = std::move(first), last = std::move(last),
                       keep = std::move(keep)]() mutable {
      Produce(state, *group, alive, fn, first, last);
    });
  }

  ImapRange(ImapRange&& o) noexcept = default;
  ImapRange& operator=(ImapRange&& o) noexcept {
    if (this != &o) {
      Close();
      group_ = o.group_;
      alive_ = std::move(o.alive_);
      hub_ = o.hub_;
      state_ = std::move(o.state_);
      producer_ = std::move(o.producer_);
    }
    return *this;
  }
  ImapRange(const ImapRange&) = delete;
  ImapRange& operator=(const ImapRange&) = delete;
  ~ImapRange() { Close(); }

  // begin starts iterating (it takes the first result); one pass only.
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

  // Next parks until the next result and returns it (rethrows a failure); std::nullopt at the end.
  std::optional<T> Next() {
    absl::StatusOr<std::optional<T>> r = NextFor(std::nullopt);
    return *std::move(r);  // No timeout: never an error.
  }
  // Next with a timeout: DeadlineExceeded when it expires first (zero: do not wait).
  absl::StatusOr<std::optional<T>> Next(absl::Duration timeout) { return NextFor(timeout); }

  // Close kills the producer and the running members and waits for them (the destructor does).
  void Close() {
    if (!state_ || state_->closed) return;
    CheckThread("Close");  // In the destructor: std::terminate, as for any misuse there.
    internal::ImapState<T>& st = *state_;
    st.closed = true;
    if (producer_ && !producer_->dead()) producer_->Kill();
    while (!st.running.empty()) {
      std::vector<GreenletRef> gs(st.running.begin(), st.running.end());
      KillAll(gs);
      for (const GreenletRef& g : gs) {
        st.running.erase(g);
        // A member killed before it started is dead before its group's link ran.
        if (!alive_.expired()) internal::ImapDiscard(*group_, g);
      }
    }
    st.done.clear();
    st.by_index.clear();
    producer_ = nullptr;
  }

  // For tests and monitoring: members of this range running now, and the most ever running /
  // buffered (finished, not yet taken) at once.
  std::size_t running() const { return state_ ? state_->running.size() : 0; }
  std::size_t max_running_seen() const { return state_ ? state_->max_running_seen : 0; }
  std::size_t max_buffered_seen() const { return state_ ? state_->max_held_seen : 0; }

 private:
  void CheckThread(const char* what) const {
    if (HubIfExists() != hub_) {
      throw UsageError(std::string("gevent::ImapRange::") + what +
                       ": used from another thread than the one that created it");
    }
  }

  absl::StatusOr<std::optional<T>> NextFor(std::optional<absl::Duration> timeout) {
    CheckThread("Next");
    if (!state_ || state_->closed) return std::optional<T>();
    if (alive_.expired()) throw UsageError("gevent::ImapRange::Next: its group was destroyed");
    internal::ImapState<T>& st = *state_;
    std::shared_ptr<internal::ImapState<T>> hold = state_;
    std::optional<absl::Time> deadline;
    if (timeout) deadline = absl::Now() + *timeout;
    for (;;) {
      if (std::optional<internal::ImapSlot<T>> slot = st.Take()) {
        if (slot->error) std::rethrow_exception(slot->error);
        return std::move(slot->value);
      }
      if (st.Finished()) return std::optional<T>();
      st.result_ready.Clear();
      std::optional<absl::Duration> left;
      if (deadline) left = std::max(absl::ZeroDuration(), *deadline - absl::Now());
      if (!st.result_ready.Wait(left)) {
        return absl::DeadlineExceededError("gevent::ImapRange::Next: timed out waiting for a result");
      }
    }
  }

  template <typename F, typename It, typename End>
  static void Produce(const std::shared_ptr<internal::ImapState<T>>& state, Group& group,
                      const std::weak_ptr<const void>& alive, F& fn, It& first, End& last) {
    internal::ImapState<T>& st = *state;
    try {
      for (; !(first == last); ++first) {
        while (!st.CanSpawn()) {
          st.room.Clear();
          st.room.Wait();
        }
        if (alive.expired()) throw UsageError("gevent::Group::Imap: the group was destroyed");
        std::size_t index = st.spawned;
        GreenletRef g = Greenlet::Create(internal::MakeBody(fn, *first));
        absl::Status s = internal::ImapAdd(group, g);  // Parks for a pool slot.
        if (!s.ok()) throw UsageError("gevent::Group::Imap: " + std::string(s.message()));
        ++st.spawned;
        st.running.insert(g);
        if (st.running.size() > st.max_running_seen) st.max_running_seen = st.running.size();
        std::size_t held = st.running.size() + st.buffered();
        if (held > st.max_held_seen) st.max_held_seen = held;
        g->Link([state, index](const GreenletRef& finished) {
          internal::ImapState<T>& s = *state;
          if (s.running.erase(finished) == 0 || s.closed) return;
          internal::ImapSlot<T> slot;
          if (finished->exception()) {
            slot.error = finished->exception();
          } else if constexpr (std::is_same_v<T, std::monostate>) {
            slot.value.emplace();
          } else if (const T* v = std::any_cast<T>(&finished->value())) {
            slot.value.emplace(*v);
          } else {
            slot.error = std::make_exception_ptr(greenlet::GreenletExit());
          }
          s.Store(index, std::move(slot));
          s.room.Set();
        });
        g->Start();
      }
    } catch (const greenlet::GreenletExit&) {
      throw;  // Close: no result for it.
    } catch (...) {
      // The inputs (or the group) failed: raised at the position of the next input.
      if (!st.closed) st.Store(st.spawned, internal::ImapSlot<T>{std::nullopt, std::current_exception()});
    }
    st.producer_done = true;
    st.result_ready.Set();
  }

  Group* group_ = nullptr;
  std::weak_ptr<const void> alive_;
  Hub* hub_ = nullptr;
  std::shared_ptr<internal::ImapState<T>> state_;
  GreenletRef producer_;
};

}  // namespace gevent

#endif  // GEVENT_HUB_IMAP_H_
