// gevent::Waitable, gevent::IWait and gevent::Wait(objects) — waiting for whichever of several
// things becomes ready first (gevent.wait / gevent.iwait).
//
//   gevent::IWait it({g1.get(), g2.get(), &shutdown});
//   while (gevent::Waitable* w = it.Next()) { ... }     // in the order they became ready
//
//   std::vector<gevent::Waitable*> done = gevent::Wait({g1.get(), &event}, absl::Seconds(1));
//
// A Waitable becomes ready once and tells its observers when it does: a finished
// gevent::Greenlet, a set gevent::Event, a gevent::AsyncResult holding a value or an exception.
// Observers are intrusive (they live on the waiting greenlet's stack): observing allocates
// nothing per object.
//
// Lifetime: an object must outlive the IWait/Wait that observes it, or else unlink its observers
// by being destroyed first (~Waitable does that). Hub thread only.
#ifndef GEVENT_HUB_WAITABLE_H_
#define GEVENT_HUB_WAITABLE_H_

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "hub/hub.h"
#include "hub/internal/list.h"

namespace gevent {

class Waitable {
 public:
  // Observer: registered with AddObserver. on_ready(self, source) runs when `source` becomes
  // ready (from Set, from a greenlet's finish...). It must not block and must not unlink
  // observers. An observer unlinks itself when destroyed.
  struct Observer : internal::ListLink {
    void (*on_ready)(Observer* self, Waitable* source) = nullptr;
    Observer() = default;
    Observer(const Observer&) = delete;
    Observer& operator=(const Observer&) = delete;
    ~Observer() { Unlink(); }
  };

  Waitable(const Waitable&) = delete;
  Waitable& operator=(const Waitable&) = delete;

  // ready: the object has become ready (and stays so until it is reset, for an Event).
  virtual bool ready() const = 0;

  // AddObserver links `observer` (unlinked, with on_ready set) until it is destroyed or unlinked.
  void AddObserver(Observer* observer) { observers_.PushBack(observer); }

 protected:
  Waitable() = default;
  // ~Waitable unlinks every observer left, so an IWait that outlives an object never touches it.
  ~Waitable() {
    while (observers_.PopFront() != nullptr) {
    }
  }

  // NotifyObservers calls every observer, oldest first. Derived classes call it when they become
  // ready.
  void NotifyObservers() {
    observers_.ForEach([this](Observer* o) { o->on_ready(o, this); });
  }

 private:
  internal::ListHead<Observer> observers_;
};

// IWait hands out `objects` in the order they become ready (those ready at the start first, in
// argument order), at most `count` of them (default: all), until `timeout` (overall, from
// construction) expires. Not copyable; use it from one greenlet. A null object is misuse: the
// constructor throws gevent::UsageError naming its position.
class IWait {
 public:
  explicit IWait(const std::vector<Waitable*>& objects,
                 std::optional<absl::Duration> timeout = std::nullopt,
                 std::optional<std::size_t> count = std::nullopt);
  IWait(const IWait&) = delete;
  IWait& operator=(const IWait&) = delete;

  // Next parks until another object is ready and returns it; returns null once `count` objects
  // were returned, every object was, or the timeout expired. Throws what Waiter::Get throws
  // (BlockingInHubError on the hub, LoopExit when nothing can make an object ready...).
  Waitable* Next();

 private:
  struct Entry : Waitable::Observer {
    IWait* owner = nullptr;
    bool fired = false;  // An Event set, cleared and set again counts once.
  };
  static void OnReady(Waitable::Observer* self, Waitable* source);

  std::vector<Entry> entries_;  // Sized once: the observers' addresses never change.
  std::vector<Waitable*> ready_;
  std::size_t next_ready_ = 0;
  std::size_t limit_;
  Waiter waiter_;
  std::optional<absl::Time> deadline_;
};

// Wait returns the objects that became ready, in that order, once `count` of them (default: all)
// are, or when `timeout` expires (then possibly fewer) — gevent.wait(objects, timeout, count).
std::vector<Waitable*> Wait(const std::vector<Waitable*>& objects,
                            std::optional<absl::Duration> timeout = std::nullopt,
                            std::optional<std::size_t> count = std::nullopt);

}  // namespace gevent

#endif  // GEVENT_HUB_WAITABLE_H_
