// gevent::Socket — cooperative sockets on the hub (gevent.socket).
//
// A Socket owns a non-blocking file descriptor (TCP over IPv4/IPv6, UDP, Unix-domain). Its calls
// look blocking: when the kernel says EAGAIN, the calling greenlet parks on the hub until the fd
// is ready or the timeout expires; other greenlets of the thread run meanwhile. Readiness comes
// from the hub's edge-triggered epoll set (one registration per socket, made when the Socket is
// created; socket/internal/readiness.h), not from libev io watchers. gevent::WaitRead and friends
// (socket/wait.h) wait on a socket's fd through the same registration.
//
//   absl::StatusOr<gevent::Socket> s = gevent::CreateConnection("127.0.0.1", 8080, absl::Seconds(5));
//   if (!s.ok()) return s.status();
//   if (absl::Status sent = s->SendAll("hello"); !sent.ok()) return sent;
//   char buf[4096];
//   absl::StatusOr<size_t> n = s->RecvInto(absl::MakeSpan(buf));   // 0 at end of stream
//
// Hot path. A Recv/Send that the kernel completes at once is the system call and nothing else: no
// allocation, no clock read, no status text. Status text is built only for errors. After a short
// read (or write) of a stream socket, the next RecvInto (or the rest of SendAll) waits for
// readiness before the call instead of making one that would fail with EAGAIN, unless readiness
// was reported meanwhile; with a zero timeout it always makes the call.
//
// Timeouts. Each socket has a default (SetTimeout): std::nullopt (the initial value) blocks
// forever, a positive duration limits each call, zero makes every call non-blocking (it fails at
// once instead of parking). Every blocking call takes an IoTimeout that overrides the default for
// that call. The timeout covers the whole call (SendAll: all the data), measured from the first
// time the call parks. Expiry (and "would block" under a zero timeout) is
// absl::DeadlineExceededError.
//
// Errors (the stack's rule: base/errors.h). absl::Status with "gevent::Socket::<Operation>
// <address>: <errno text> [<ERRNO>]"; the errno is attached (SocketErrno, ErrnoOf). Codes:
// refused/reset/broken pipe/unreachable → Unavailable; timeouts → DeadlineExceeded; out of fds or
// memory → ResourceExhausted; address in use → AlreadyExists; bad arguments → InvalidArgument;
// closed socket → FailedPrecondition; permission → PermissionDenied; other errnos as
// absl::ErrnoToStatus maps them (base/errno.h).
//
// Closing. Close() (or the destructor, or Detach) while other greenlets are parked on the socket
// wakes them at once: their calls return FailedPrecondition "File descriptor was closed in another
// greenlet [EBADF]" (gevent's cancel_wait). They never touch the socket object again, so it may be
// destroyed right after.
//
// Misuse (gevent::UsageError subclasses). Two greenlets waiting to read (or two waiting to write)
// on one socket at once is a programming error: the second throws ConcurrentObjectUseError
// (hub/hub.h) naming the socket. One reader and one writer at once are fine. A blocking call from
// the hub greenlet (a loop callback) throws BlockingInHubError; a wait on a socket of another
// thread's hub throws UsageError. Calls on a closed or moved-from socket return
// FailedPrecondition "the socket is closed [EBADF]".
//
// Lifetime and thread-safety: hub thread only. A Socket belongs to the hub of the thread that
// created (or adopted) it and must be used and destroyed on that thread, before the hub. Move-only;
// the destructor closes the fd. Moving a socket while a greenlet is parked on it is allowed (the
// parked state lives on the heap and does not move). The data calls are not POSIX cancellation
// points (they bypass glibc's wrappers): a hub thread must not be cancelled with pthread_cancel.
#ifndef GEVENT_SOCKET_SOCKET_H_
#define GEVENT_SOCKET_SOCKET_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/errno.h"
#include "socket/address.h"
#include "socket/io_timeout.h"

namespace gevent {

// SocketErrno: the errno recorded in a status returned by this package, if any (ErrnoOf).
inline std::optional<int> SocketErrno(const absl::Status& status) { return ErrnoOf(status); }

class Socket {
 public:
  // Socket: an empty (closed) socket; every call on it fails with FailedPrecondition.
  Socket() noexcept;
  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;  // Closes what this held first.
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  // ~Socket: Close() (errors ignored).
  ~Socket();

  // Create makes a socket: family AF_INET / AF_INET6 / AF_UNIX, type SOCK_STREAM / SOCK_DGRAM
  // (SOCK_NONBLOCK and SOCK_CLOEXEC are added). Errors as socket(2) gives them, and those of the
  // registration with the hub's epoll set (EdgePoller::Create / Add: out of descriptors, say).
  static absl::StatusOr<Socket> Create(int family, int type, int protocol = 0);

  // Adopt takes ownership of an open socket fd (it is made non-blocking and close-on-exec; the
  // family and type are read from it). InvalidArgument if fd < 0 or not a socket (the fd is then
  // not closed: ownership is taken only on success).
  static absl::StatusOr<Socket> Adopt(int fd);

  // Pair: two connected sockets (socketpair(2)), AF_UNIX by default.
  static absl::StatusOr<std::pair<Socket, Socket>> Pair(int type = SOCK_STREAM,
                                                        int family = AF_UNIX);

  // ----- connection set-up -----

  // Connect connects to `address`, parking while the kernel completes it (EINPROGRESS; for a
  // Unix socket whose listener's backlog is full, EAGAIN is retried). Returns the real connect
  // error (SO_ERROR), e.g. Unavailable "Connection refused [ECONNREFUSED]", or DeadlineExceeded.
  absl::Status Connect(const SocketAddress& address, IoTimeout timeout = {});
  // Bind binds to `address` (port 0: the kernel picks one; read it with LocalAddress).
  absl::Status Bind(const SocketAddress& address);
  // Listen marks the socket as accepting connections; the kernel caps `backlog` at somaxconn.
  absl::Status Listen(int backlog = 1024);
  // Accept parks until a connection arrives and returns it (its peer in *peer if not null).
  // The new socket has no default timeout. EMFILE/ENFILE come back as ResourceExhausted.
  absl::StatusOr<Socket> Accept(SocketAddress* peer = nullptr, IoTimeout timeout = {});

  // ----- data -----

  // RecvInto reads up to buffer.size() bytes into `buffer`, parking until at least one byte (or
  // the end of the stream, or a datagram) is there. Returns the count; 0 means end of stream
  // (or an empty datagram, or an empty buffer).
  absl::StatusOr<size_t> RecvInto(absl::Span<char> buffer, IoTimeout timeout = {}, int flags = 0);
  absl::StatusOr<size_t> RecvInto(void* buffer, size_t size, IoTimeout timeout = {},
                                  int flags = 0) {
    return RecvInto(absl::Span<char>(static_cast<char*>(buffer), size), timeout, flags);
  }
  // Recv: RecvInto a new string of at most `max_bytes` (allocates; prefer RecvInto in loops).
  absl::StatusOr<std::string> Recv(size_t max_bytes, IoTimeout timeout = {});
  // RecvExactly fills all of `buffer`. A stream that ends first gives OutOfRange naming the
  // count received (the bytes read are in the front of buffer).
  absl::Status RecvExactly(absl::Span<char> buffer, IoTimeout timeout = {});

  // Send writes some of `data` (parking once if the send buffer is full, then trying once more)
  // and returns how many bytes went; fewer than data.size() is not an error. MSG_NOSIGNAL is
  // always added: a reset peer gives Unavailable "Broken pipe [EPIPE]", never SIGPIPE.
  absl::StatusOr<size_t> Send(absl::string_view data, IoTimeout timeout = {}, int flags = 0);
  // SendAll writes all of `data`, parking as often as needed, all within one timeout. On error
  // nothing says how much went; the connection should be considered broken.
  absl::Status SendAll(absl::string_view data, IoTimeout timeout = {});
  // SendTo sends one datagram to `address`; returns the bytes sent.
  absl::StatusOr<size_t> SendTo(absl::string_view data, const SocketAddress& address,
                                IoTimeout timeout = {});
  // RecvFrom receives one datagram into `buffer` (truncated to its size); the sender goes to
  // *from if not null.
  absl::StatusOr<size_t> RecvFrom(absl::Span<char> buffer, SocketAddress* from,
                                  IoTimeout timeout = {});

  // WaitReadable / WaitWritable park until the socket is readable / writable, without reading or
  // writing (gevent's wait_read and wait_write). OK when ready; DeadlineExceeded when `timeout`
  // expires first (a zero timeout expires at once: use a call with a zero timeout to test
  // readiness); the close error if the socket is closed meanwhile; CancelWait's error. The same
  // one-waiter-per-side rule as the data calls applies.
  absl::Status WaitReadable(IoTimeout timeout = {});
  absl::Status WaitWritable(IoTimeout timeout = {});

  // CancelWait wakes the greenlet parked on the read side (or the write side) of this socket, in
  // any call; that call returns `error` (gevent's cancel_wait). The socket stays open and usable.
  // Returns whether a greenlet was waiting. Throws std::invalid_argument if `error` is OK.
  enum class Side { kRead, kWrite };
  bool CancelWait(Side side, absl::Status error);

  // Shutdown: shutdown(2) with SHUT_RD, SHUT_WR or SHUT_RDWR. Greenlets parked on the socket are
  // not woken by it (the kernel makes the fd readable/writable, which wakes them).
  absl::Status Shutdown(int how);

  // Close wakes every greenlet parked on the socket (see the file comment) and closes the fd.
  // Closing a closed socket is OK. Returns close(2)'s error, if any (the fd is gone regardless).
  absl::Status Close();

  // Detach gives up the fd without closing it (parked greenlets are woken as for Close) and
  // returns it, or -1 if the socket was closed. The fd stays non-blocking.
  int Detach();

  // ----- options and state -----

  // SetOption / GetOption: setsockopt / getsockopt with an int value.
  absl::Status SetOption(int level, int name, int value);
  absl::StatusOr<int> GetOption(int level, int name) const;
  // Typed helpers.
  absl::Status SetNoDelay(bool on);          // TCP_NODELAY (TCP only)
  absl::Status SetReuseAddr(bool on);        // SO_REUSEADDR
  absl::Status SetReusePort(bool on);        // SO_REUSEPORT
  absl::Status SetKeepAlive(bool on);        // SO_KEEPALIVE
  absl::Status SetSendBufferSize(int bytes);     // SO_SNDBUF (the kernel doubles it)
  absl::Status SetReceiveBufferSize(int bytes);  // SO_RCVBUF (the kernel doubles it)

  // LocalAddress / PeerAddress: getsockname / getpeername.
  absl::StatusOr<SocketAddress> LocalAddress() const;
  absl::StatusOr<SocketAddress> PeerAddress() const;

  // SetTimeout / timeout: the default for calls made without an IoTimeout (see file comment).
  void SetTimeout(std::optional<absl::Duration> timeout);
  std::optional<absl::Duration> timeout() const;

  // fd: the descriptor, or -1 when closed. is_open: fd() >= 0.
  int fd() const;
  bool is_open() const { return state_ != nullptr; }
  // family / type: as created (AF_INET..., SOCK_STREAM / SOCK_DGRAM), 0 when closed.
  int family() const;
  int type() const;

 private:
  struct State;

  explicit Socket(std::unique_ptr<State> state);
  // FromFd builds the Socket for `fd` and registers it with the hub's epoll set; on failure
  // the fd is left open (Adopt's contract). FromNewFd does the same for a descriptor made here
  // (socket, accept4, socketpair) and closes it on failure, so no error path leaks it.
  static absl::StatusOr<Socket> FromFd(int fd, int family, int type);
  static absl::StatusOr<Socket> FromNewFd(int fd, int family, int type);
  // Error: the status of a failed call, naming the socket's addresses (or `address`) and fd.
  absl::Status Error(const char* operation, int err) const;
  absl::Status Error(const char* operation, int err, const SocketAddress& address) const;

  std::unique_ptr<State> state_;
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_SOCKET_H_
