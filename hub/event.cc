#include "hub/event.h"

namespace gevent {

void Event::Set() {
  flag_ = true;
  waiters_.GrantAll();
  NotifyObservers();
}

bool Event::Wait(std::optional<absl::Duration> timeout) {
  if (flag_) return true;
  Node node;
  return waiters_.WaitFor(node, timeout, [](Node&) {});
}

}  // namespace gevent
