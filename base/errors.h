// The stack's one error rule, and the exception base for misuse.
//
// Every layer (greenlet, core, hub, socket, loadgen) reports failure the same way:
//
// 1. What can fail at run time for reasons outside the program — the system, the peer, a resource,
//    the clock — returns absl::Status or absl::StatusOr<T>, with a message that names the
//    operation, the object (address, fd, queue...) and the cause. Codes mean the same everywhere:
//      DeadlineExceeded   the call's timeout expired, or a non-blocking attempt (a zero timeout,
//                         GetNowait, Put without blocking, a full Pool without blocking) would
//                         have had to wait. The only timeout code.
//      Unavailable        the peer refused, reset or went away (ECONNREFUSED, EPIPE...).
//      ResourceExhausted  out of descriptors, memory or buffers (EMFILE, ENOMEM, ENOBUFS).
//      FailedPrecondition the object is closed (a closed socket, an fd closed while waited on).
//      InvalidArgument    a bad value from input (an address that does not parse, a bad flag).
//      NotFound, AlreadyExists, PermissionDenied, OutOfRange: as their names say.
//    A status made from an errno carries it (ErrnoOf in base/errno.h).
//
// 2. Misuse — a programming error the caller must fix, not handle — throws gevent::UsageError or
//    a subclass (BlockingInHubError, ConcurrentObjectUseError, InvalidSwitchError,
//    LockReleaseError, greenlet::GreenletError...), with a message naming the mistake: an empty
//    callback, a second waiter where one is allowed, releasing a lock one does not hold, a socket
//    used from another thread's hub.
//
// 3. Control flow that unwinds a greenlet is an exception that is not an error of the call:
//    gevent::TimeoutError (hub/timeout.h), thrown into a greenlet by a gevent::Timeout it
//    created (gevent's Timeout); greenlet::GreenletExit (a kill); gevent::LoopExit (hub/hub.h:
//    the wait could never end, nothing is left to wake it).
//
// 4. gevent's own conventions stay where a flag is the answer, not a failure: Event::Wait and
//    the Wait of every waitable return false when the timeout expires first, as Event.wait
//    does; Waiter::Get and Hub::Join likewise.
//
// Timeouts are std::optional<absl::Duration>: std::nullopt waits forever, zero does not wait.
// Sockets add one more value, "the socket's default" (gevent::IoTimeout in socket/socket.h).
//
// A result's Get (AsyncResult, ThreadResult, gevent::Greenlet) returns absl::StatusOr<T>:
// DeadlineExceeded when its timeout expires first, and it rethrows the exception that the
// producing code raised.
#ifndef GEVENT_BASE_ERRORS_H_
#define GEVENT_BASE_ERRORS_H_

#include <stdexcept>

namespace gevent {

// UsageError: the base of every misuse exception in the stack (rule 2 above).
class UsageError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace gevent

#endif  // GEVENT_BASE_ERRORS_H_
