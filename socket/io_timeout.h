// gevent::IoTimeout — the timeout of one socket call.
//
// Every socket has a default timeout (Socket::SetTimeout); each blocking call takes an IoTimeout
// that may override it for that call. This is the one place in the stack where "no timeout given"
// does not mean "forever" (see base/errors.h): like gevent's socket.settimeout, the socket's
// default applies. A value type; any thread.
#ifndef GEVENT_SOCKET_IO_TIMEOUT_H_
#define GEVENT_SOCKET_IO_TIMEOUT_H_

#include <optional>

#include "absl/time/time.h"

namespace gevent {

// IoTimeout: the timeout of one call. Default-constructed: the socket's default (SetTimeout).
// From a duration: that duration for this call (zero: do not park). From std::nullopt (or
// Forever()): park as long as it takes, whatever the default.
class IoTimeout {
 public:
  constexpr IoTimeout() = default;
  IoTimeout(absl::Duration d) : kind_(Kind::kDuration), duration_(d) {}  // NOLINT: implicit
  constexpr IoTimeout(std::nullopt_t) : kind_(Kind::kForever) {}          // NOLINT: implicit
  static constexpr IoTimeout Forever() { return IoTimeout(std::nullopt); }
  static constexpr IoTimeout SocketDefault() { return IoTimeout(); }

  // Resolve: the effective timeout, given the socket's default.
  std::optional<absl::Duration> Resolve(std::optional<absl::Duration> socket_default) const {
    switch (kind_) {
      case Kind::kDefault:
        return socket_default;
      case Kind::kForever:
        return std::nullopt;
      case Kind::kDuration:
        break;
    }
    return duration_;
  }

 private:
  enum class Kind { kDefault, kForever, kDuration };
  Kind kind_ = Kind::kDefault;
  absl::Duration duration_;
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_IO_TIMEOUT_H_
