#include "base/errno.h"

#include <errno.h>
#include <string.h>

#include "absl/base/attributes.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gevent {
namespace {

constexpr absl::string_view kErrnoPayload = "gevent.errno";

// strerrorname_np: glibc's own table of names (glibc 2.32).
const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno";
}

}  // namespace

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be `buf`.
  const char* text = strerror_r(err, buf, sizeof buf);
  if (strerrorname_np(err) == nullptr) return absl::StrCat(text, " [errno ", err, "]");
  return absl::StrCat(text, " [", ErrnoName(err), "]");
}

absl::StatusCode ErrnoCode(int err) {
  switch (err) {
    case EAGAIN:
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case ENOTCONN:
      return absl::StatusCode::kUnavailable;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return absl::StatusCode::kResourceExhausted;
    case EADDRINUSE:
    case EISCONN:
    case EALREADY:
      return absl::StatusCode::kAlreadyExists;
    case EINVAL:
    case EAFNOSUPPORT:
    case EADDRNOTAVAIL:
    case ENOTSOCK:
    case EPROTONOSUPPORT:
    case EPROTOTYPE:
    case EOPNOTSUPP:
    case EMSGSIZE:
    case EDESTADDRREQ:
    case ENOPROTOOPT:
    case EFAULT:
    case ENAMETOOLONG:
      return absl::StatusCode::kInvalidArgument;
    case EBADF:
      return absl::StatusCode::kFailedPrecondition;
    case EACCES:
    case EPERM:
      return absl::StatusCode::kPermissionDenied;
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    default:
      return absl::ErrnoToStatus(err, "").code();
  }
}

// Out of line: building a message on a hot path's error branch would widen its frame.
ABSL_ATTRIBUTE_NOINLINE absl::Status ErrnoError(int err, absl::string_view operation,
                                                absl::string_view where, absl::string_view extra) {
  return WithErrno(absl::Status(ErrnoCode(err), absl::StrCat(operation, where.empty() ? "" : " ",
                                                             where, ": ", extra, ErrnoText(err))),
                   err);
}

absl::Status WithErrno(absl::Status status, int err) {
  if (!status.ok()) status.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return status;
}

std::optional<int> ErrnoOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrnoPayload);
  if (!payload.has_value()) return std::nullopt;
  int err = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &err)) return std::nullopt;
  return err;
}

}  // namespace gevent
