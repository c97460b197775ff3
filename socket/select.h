// gevent::Poll / gevent::Select — cooperative poll(2) and select(2) over many descriptors
// (gevent.select.poll, gevent.select.select).
//
//   pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLOUT, 0}};
//   absl::StatusOr<int> n = gevent::Poll(fds, 2, absl::Seconds(1));   // parks this greenlet only
//   if (n.ok() && *n == 0) { /* timed out */ }
//
// Semantics are poll(2)'s: the count of entries with a non-zero revents (0 when the timeout
// passed first), revents filled in by the kernel (a final real poll with a zero timeout, so they
// are exact), negative fds ignored, regular files always ready, POLLNVAL for an fd that is not
// open. Only the calling greenlet waits: the hub runs every other greenlet meanwhile.
//
// Errors (base/errors.h): the result is absl::StatusOr<int>. A timeout is not an error here — as
// poll(2) and gevent's select, which return "nothing ready" — so it is the count 0 (rule 4: a flag
// is the answer). A failure of the kernel's poll (EINVAL for too many fds, ENOMEM, EFAULT) is its
// errno status (ErrnoOf gives the errno back, which the libc hooks of //monkey set). An entry
// whose fd is closed through the monkey's close() hook while the greenlet waits wakes the wait,
// and the fd's entry then reports POLLNVAL (the number may be reused: gevent wakes with EBADF).
// Throws what a parked greenlet can be thrown (a gevent::Timeout, GreenletExit), and
// BlockingInHubError when called on the hub greenlet with a non-zero timeout.
//
// How it waits: one transient libev io watcher per distinct entry (level-triggered, so no edge is
// lost), sharing one Waiter, plus the timeout; any of them wakes the greenlet, which then asks the
// kernel again. Entries asking only for POLLPRI (or no events) are not watched: they are seen
// when something else wakes the wait, or at the timeout. Hub thread only.
#ifndef GEVENT_SOCKET_SELECT_H_
#define GEVENT_SOCKET_SELECT_H_

#include <poll.h>
#include <sys/select.h>

#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gevent {

// Poll: poll(2) for `n` entries, cooperatively. std::nullopt waits forever; zero does not wait.
absl::StatusOr<int> Poll(pollfd* fds, nfds_t n, std::optional<absl::Duration> timeout);

// Select: select(2) on top of Poll: the sets are replaced by the ready subsets and the count of
// bits set is returned (0 on timeout). An fd >= FD_SETSIZE or nfds < 0 is InvalidArgument
// (EINVAL); a closed fd in a set is EBADF, as select(2) reports it.
absl::StatusOr<int> Select(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds,
                           std::optional<absl::Duration> timeout);

namespace internal {
// WakePollers wakes every Poll of this thread's hub that waits on `fd` (the close() hook calls it
// before the real close, as CancelWait wakes the readiness waits). Returns how many. Hub thread.
int WakePollers(int fd);
// RealPoll: the poll(2) the kernel runs, whatever interposes `poll` (a direct system call).
int RealPoll(pollfd* fds, nfds_t n, int timeout_ms);
}  // namespace internal

}  // namespace gevent

#endif  // GEVENT_SOCKET_SELECT_H_
