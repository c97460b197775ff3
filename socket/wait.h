// gevent::WaitRead / WaitWrite / WaitReadWrite / CancelWait — cooperative readiness waits on any
// file descriptor (gevent.socket.wait_read, wait_write, wait_readwrite, hub.cancel_wait).
//
//   // A library that owns its fd (a database client, say) made it non-blocking and got EAGAIN:
//   if (absl::Status ready = gevent::WaitRead(conn_fd, absl::Seconds(5)); !ready.ok()) return ready;
//
// The fd need not belong to the stack: a wait on an fd that a gevent::Socket owns uses that
// socket's registration (and its one-reader-one-writer rule); any other fd is registered with the
// hub's edge poller for the length of the wait. Regular files (which epoll cannot watch) are
// always ready.
//
// Errors (base/errors.h): OK when ready — readable (or at end of file, or with an error pending
// that the next read reports), writable, or for WaitReadWrite either; DeadlineExceeded when the
// timeout expires first (zero: do not park; std::nullopt: wait as long as it takes);
// FailedPrecondition "File descriptor was closed in another greenlet [EBADF]" when CancelWait (or
// the owning socket's Close) wakes the wait; the errno of a descriptor that is not open (EBADF);
// InvalidArgument for a negative fd.
//
// Misuse (throws): a second greenlet waiting to read (or write) an fd that already has a waiter
// on that side — gevent::ConcurrentObjectUseError; a wait from the hub greenlet —
// BlockingInHubError; an fd a socket of another thread's hub owns — UsageError.
//
// Closing. Closing an fd does not wake its waiters (the kernel just drops it from the epoll set):
// who closes an fd that a greenlet may wait on calls CancelWait(fd) first, as gevent's socket
// close does. Hub thread only.
#ifndef GEVENT_SOCKET_WAIT_H_
#define GEVENT_SOCKET_WAIT_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace gevent {

absl::Status WaitRead(int fd, std::optional<absl::Duration> timeout = std::nullopt);
absl::Status WaitWrite(int fd, std::optional<absl::Duration> timeout = std::nullopt);
absl::Status WaitReadWrite(int fd, std::optional<absl::Duration> timeout = std::nullopt);

// CancelWait wakes every greenlet waiting on `fd` (either side, in any wait or socket call):
// their calls return `error` (by default, the closed-in-another-greenlet error above). An fd a
// Socket owns stays registered and usable; any other fd is let go at once, so it may be closed
// and its number reused right away. Returns how many greenlets were woken. Throws UsageError if
// `error` is OK.
int CancelWait(int fd);
int CancelWait(int fd, absl::Status error);

}  // namespace gevent

#endif  // GEVENT_SOCKET_WAIT_H_
