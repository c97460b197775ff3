#include "hub/waitable.h"

#include <algorithm>
#include <string>

#include "base/errors.h"

namespace gevent {

IWait::IWait(const std::vector<Waitable*>& objects, std::optional<absl::Duration> timeout,
             std::optional<std::size_t> count)
    : entries_(objects.size()), limit_(std::min(count.value_or(objects.size()), objects.size())) {
  if (timeout.has_value()) {
    GetHub().loop().UpdateNow();
    deadline_ = absl::Now() + *timeout;
  }
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (objects[i] == nullptr) {
      throw UsageError("gevent::IWait: object " + std::to_string(i) + " is null");
    }
  }
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (objects[i]->ready()) {
      ready_.push_back(objects[i]);
    } else {
      entries_[i].owner = this;
      entries_[i].on_ready = &IWait::OnReady;
      objects[i]->AddObserver(&entries_[i]);
    }
  }
}

void IWait::OnReady(Waitable::Observer* self, Waitable* source) {
  auto* entry = static_cast<Entry*>(self);
  if (entry->fired) return;
  entry->fired = true;
  IWait* owner = entry->owner;
  owner->ready_.push_back(source);
  owner->waiter_.Wake();
}

Waitable* IWait::Next() {
  while (true) {
    if (next_ready_ >= limit_) return nullptr;
    if (next_ready_ < ready_.size()) return ready_[next_ready_++];
    std::optional<absl::Duration> left;
    if (deadline_.has_value()) {
      left = *deadline_ - absl::Now();
      if (*left <= absl::ZeroDuration()) return nullptr;
    }
    if (!waiter_.Get(left)) return nullptr;
  }
}

std::vector<Waitable*> Wait(const std::vector<Waitable*>& objects,
                            std::optional<absl::Duration> timeout,
                            std::optional<std::size_t> count) {
  IWait it(objects, timeout, count);
  std::vector<Waitable*> done;
  while (Waitable* w = it.Next()) done.push_back(w);
  return done;
}

}  // namespace gevent
