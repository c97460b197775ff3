#include "hub/timeout.h"

#include <exception>

namespace gevent {

Timeout::Timeout(std::optional<absl::Duration> duration, bool start, bool ref, Hub& hub)
    : hub_(&hub), duration_(duration), ref_(ref) {
  if (start) Start();
}

Timeout::~Timeout() { Cancel(); }

void Timeout::Start() {
  Cancel();
  fired_ = false;
  if (!duration_.has_value()) return;
  owner_ = greenlet::Greenlet::Current();
  if (owner_ == hub_->greenlet()) {
    throw BlockingInHubError("gevent::Timeout: cannot time out the hub greenlet");
  }
  hub_->loop().UpdateNow();
  if (!timer_.has_value()) {
    timer_.emplace(hub_->loop(), std::max(*duration_, absl::ZeroDuration()), [this] { Fire(); });
    if (!ref_) timer_->Unref();
  } else {
    timer_->Set(std::max(*duration_, absl::ZeroDuration()), absl::ZeroDuration());
  }
  timer_->Start();
}

void Timeout::Cancel() {
  if (timer_.has_value()) timer_->Stop();
}

bool Timeout::pending() const { return timer_.has_value() && timer_->active(); }

void Timeout::Fire() {
  // On the hub. The owner may destroy this Timeout while the exception unwinds it, so nothing of
  // `this` is touched after Throw.
  fired_ = true;
  greenlet::Greenlet* owner = owner_;
  if (owner->dead()) return;
  owner->Throw(std::make_exception_ptr(TimeoutError(this, "gevent: Timeout expired")));
}

}  // namespace gevent
