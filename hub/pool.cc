#include "hub/pool.h"

namespace gevent {

Group::Group() : alive_(std::make_shared<Alive>(Alive{this})) { empty_.Set(); }

Group::~Group() { alive_->group = nullptr; }

absl::Status Group::Add(const GreenletRef& g, bool block, std::optional<absl::Duration> timeout) {
  if (g->dead() || !members_.insert(g).second) return absl::OkStatus();
  empty_.Clear();
  std::weak_ptr<Alive> alive = alive_;
  g->Link([alive](const GreenletRef& finished) {
    if (std::shared_ptr<Alive> a = alive.lock(); a && a->group != nullptr) {
      a->group->Discard(finished);
    }
  });
  return absl::OkStatus();
}

void Group::Discard(const GreenletRef& g) {
  if (members_.erase(g) != 0 && members_.empty()) empty_.Set();
}

bool Group::Join(std::optional<absl::Duration> timeout) {
  if (members_.empty()) return true;
  return empty_.Wait(timeout);
}

void Group::KillAll() {
  // A finished member leaves through its link, which runs on the hub later; a member killed
  // before it started is dead at once, and JoinAll does not wait for its link. Discard the dead
  // here, so that the group is empty on return, as in gevent (its link then finds it gone).
  // Members added while waiting are killed too.
  while (!members_.empty()) {
    std::vector<GreenletRef> gs(members_.begin(), members_.end());
    gevent::KillAll(gs);
    for (const GreenletRef& g : gs) {
      if (g->dead()) Discard(g);
    }
  }
}

Pool::Pool(std::size_t size) : size_(size), slots_(size) {
  if (size == 0) throw UsageError("gevent::Pool: size must be at least 1");
}

absl::Status Pool::Add(const GreenletRef& g, bool block, std::optional<absl::Duration> timeout) {
  if (g->dead() || Contains(g)) return absl::OkStatus();
  if (!slots_.Acquire(block, timeout)) {
    return absl::DeadlineExceededError(block ? "pool is full (timed out waiting for a slot)"
                                             : "pool is full");
  }
  return Group::Add(g, block, timeout);
}

void Pool::Discard(const GreenletRef& g) {
  if (!Contains(g)) return;
  Group::Discard(g);
  slots_.Release();
}

bool Pool::WaitAvailable(std::optional<absl::Duration> timeout) {
  if (slots_.counter() > 0 && slots_.waiter_count() == 0) return true;
  if (!slots_.Acquire(true, timeout)) return false;
  slots_.Release();  // Only waiting: the slot stays free (given to the next waiter if any).
  return true;
}

namespace internal {

absl::Status ImapAdd(Group& group, const GreenletRef& g) { return group.Add(g); }
void ImapDiscard(Group& group, const GreenletRef& g) { group.Discard(g); }
std::weak_ptr<const void> ImapAliveToken(const Group& group) { return group.alive_; }
std::size_t ImapDefaultInFlight(const Group& group) {
  const Pool* pool = dynamic_cast<const Pool*>(&group);
  return pool != nullptr ? pool->capacity() : 0;
}

}  // namespace internal

}  // namespace gevent
