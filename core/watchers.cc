#include "core/watchers.h"

#include <stdexcept>
#include <string>

namespace gevent {
namespace detail {

void ThrowInvalidArgument(const char* cls, const std::string& message) {
  throw std::invalid_argument(std::string(cls) + ": " + message);
}

void ThrowLogicError(const char* cls, const std::string& message) {
  throw std::logic_error(std::string(cls) + ": " + message);
}

}  // namespace detail
}  // namespace gevent
