// Errno to absl::Status, the same for every layer (see base/errors.h for the codes).
//
//   if (::bind(fd, ...) != 0) return gevent::ErrnoError(errno, "gevent::Socket::Bind", "to 127.0.0.1:80");
//   // InvalidArgument "gevent::Socket::Bind to 127.0.0.1:80: Invalid argument [EINVAL]"
//   std::optional<int> err = gevent::ErrnoOf(status);   // EINVAL
//
// Thread-safe; nothing here allocates except the error's message.
#ifndef GEVENT_BASE_ERRNO_H_
#define GEVENT_BASE_ERRNO_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gevent {

// ErrnoText: "Connection refused [ECONNREFUSED]" (strerror's text and the errno's name).
std::string ErrnoText(int err);

// ErrnoCode: the status code for an errno. EAGAIN and ETIMEDOUT are DeadlineExceeded (a
// non-blocking call that would block, a timed-out wait); a closed descriptor (EBADF) is
// FailedPrecondition; refused/reset/broken pipe/unreachable are Unavailable; EMFILE/ENFILE/
// ENOBUFS/ENOMEM are ResourceExhausted; EADDRINUSE/EISCONN/EALREADY are AlreadyExists; other
// errnos as absl::ErrnoToStatus maps them.
absl::StatusCode ErrnoCode(int err);

// ErrnoError: "<operation> <where>: <extra><ErrnoText(err)>" with ErrnoCode(err), and the errno
// attached for ErrnoOf. `where` may be empty.
absl::Status ErrnoError(int err, absl::string_view operation, absl::string_view where = "",
                        absl::string_view extra = "");

// WithErrno: `status` with `err` attached (for statuses built another way, e.g. a timeout).
absl::Status WithErrno(absl::Status status, int err);

// ErrnoOf: the errno attached to a status by ErrnoError or WithErrno, if any.
std::optional<int> ErrnoOf(const absl::Status& status);

}  // namespace gevent

#endif  // GEVENT_BASE_ERRNO_H_
