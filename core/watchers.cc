#include "core/watchers.h"

#include <string>

#include "base/errors.h"

namespace gevent {
namespace detail {

void ThrowUsageError(const char* cls, const std::string& message) {
  throw UsageError(std::string(cls) + ": " + message);
}

}  // namespace detail
}  // namespace gevent
