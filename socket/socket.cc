#include "socket/socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/syscall.h"
#include "hub/hub.h"
#include "socket/internal/readiness.h"

namespace gevent {
namespace {

using internal::Readiness;
// Not `Side`: inside Socket that names Socket::Side.
using IoSide = internal::Side;

ABSL_ATTRIBUTE_NOINLINE absl::Status ClosedError(const char* operation) {
  return ErrnoError(EBADF, operation, "", "the socket is closed: ");
}

absl::Status SetNonBlockingCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    return ErrnoError(errno, "gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"));
  }
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) {
    return ErrnoError(errno, "gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

// State: the socket's readiness on the hub (socket/internal/readiness.h) and what it was made as.
// One allocation per socket, at creation; it does not move when the Socket does.
struct Socket::State : Readiness {
  State(Hub& hub, EdgePoller& poller, int fd, int family_in, int type_in)
      : Readiness(hub, poller, fd, /*stream=*/type_in == SOCK_STREAM),
        family(family_in),
        type(type_in) {}
  int family;
  int type;
};

Socket::Socket() noexcept = default;
Socket::Socket(std::unique_ptr<State> state) : state_(std::move(state)) {}
Socket::Socket(Socket&& other) noexcept = default;

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    (void)Close();
    state_ = std::move(other.state_);
  }
  return *this;
}

Socket::~Socket() { (void)Close(); }

int Socket::fd() const { return state_ ? state_->fd() : -1; }
int Socket::family() const { return state_ ? state_->family : 0; }
int Socket::type() const { return state_ ? state_->type : 0; }

void Socket::SetTimeout(std::optional<absl::Duration> timeout) {
  if (state_) state_->set_default_timeout(timeout);
}

std::optional<absl::Duration> Socket::timeout() const {
  return state_ ? state_->default_timeout() : std::nullopt;
}

absl::StatusOr<Socket> Socket::FromFd(int fd, int family, int type) {
  Hub& hub = GetHub();
  absl::StatusOr<EdgePoller*> poller = hub.edge_poller();
  if (!poller.ok()) return poller.status();
  auto state = std::make_unique<State>(hub, **poller, fd, family, type);
  if (absl::Status added = state->Register(); !added.ok()) return added;
  return Socket(std::move(state));
}

absl::StatusOr<Socket> Socket::FromNewFd(int fd, int family, int type) {
  absl::StatusOr<Socket> socket = FromFd(fd, family, type);
  if (!socket.ok()) ::close(fd);
  return socket;
}

absl::StatusOr<Socket> Socket::Create(int family, int type, int protocol) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    return ErrnoError(errno, "gevent::Socket::Create",
                      absl::StrCat("(family ", family, ", type ", type, ")"));
  }
  return FromNewFd(fd, family, type);
}

absl::StatusOr<Socket> Socket::Adopt(int fd) {
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gevent::Socket::Adopt: fd must be >= 0, got ", fd));
  }
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return ErrnoError(errno, "gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"),
                      "not a socket: ");
  }
  SocketAddress local;
  if (!internal::QueryAddress(fd, /*peer=*/false, &local)) {
    return ErrnoError(errno, "gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"));
  }
  if (absl::Status s = SetNonBlockingCloexec(fd); !s.ok()) return s;
  return FromFd(fd, local.family(), type);
}

absl::StatusOr<std::pair<Socket, Socket>> Socket::Pair(int type, int family) {
  int fds[2];
  if (socketpair(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoError(errno, "gevent::Socket::Pair");
  }
  absl::StatusOr<Socket> a = FromNewFd(fds[0], family, type);
  if (!a.ok()) {
    ::close(fds[1]);
    return a.status();
  }
  absl::StatusOr<Socket> b = FromNewFd(fds[1], family, type);
  if (!b.ok()) return b.status();  // fds[0] is a's, closed with it.
  return std::make_pair(std::move(*a), std::move(*b));
}

absl::Status Socket::Error(const char* operation, int err) const {
  if (!state_) return ClosedError(operation);
  return ErrnoError(err, operation, internal::DescribeFd(state_->fd()));
}

absl::Status Socket::Error(const char* operation, int err, const SocketAddress& address) const {
  return ErrnoError(err, operation,
                    absl::StrCat(address.ToString(), " (fd ", state_ ? state_->fd() : -1, ")"));
}

absl::Status Socket::WaitReadable(IoTimeout timeout) {
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError("gevent::Socket::WaitReadable");
  return state_->WaitReady(IoSide::kRead, timeout.Resolve(state_->default_timeout()),
                           "gevent::Socket::WaitReadable");
}

absl::Status Socket::WaitWritable(IoTimeout timeout) {
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError("gevent::Socket::WaitWritable");
  return state_->WaitReady(IoSide::kWrite, timeout.Resolve(state_->default_timeout()),
                           "gevent::Socket::WaitWritable");
}

bool Socket::CancelWait(Side side, absl::Status error) {
  if (error.ok()) throw UsageError("gevent::Socket::CancelWait: the error must not be OK");
  if (!state_) return false;
  return state_->Cancel(side == Side::kRead ? IoSide::kRead : IoSide::kWrite, std::move(error)) >
         0;
}

absl::Status Socket::Close() {
  if (!state_) return absl::OkStatus();
  state_->Close();
  const int fd = state_->fd();
  state_.reset();
  if (::close(fd) != 0 && errno != EINTR) {
    return ErrnoError(errno, "gevent::Socket::Close", absl::StrCat("(fd ", fd, ")"));
  }
  return absl::OkStatus();
}

int Socket::Detach() {
  if (!state_) return -1;
  state_->Close();
  const int fd = state_->fd();
  state_.reset();
  return fd;
}

// ----- connection set-up -----

absl::Status Socket::Connect(const SocketAddress& address, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::Socket::Connect";
  if (!state_) return ClosedError(kOp);
  const std::optional<absl::Duration> t = timeout.Resolve(state_->default_timeout());
  const int fd = state_->fd();
  // Connect's errors name the address it connects to: the socket has no peer yet.
  auto where = [&] { return absl::StrCat("to ", address.ToString(), " (fd ", fd, ")"); };
  auto error = [&](int err) { return ErrnoError(err, kOp, where()); };
  auto timed_out = [&] { return Readiness::TimedOutError(kOp, where(), t); };
  std::optional<absl::Time> deadline;       // The TCP wait's, in loop time (see Readiness::Wait).
  std::optional<absl::Time> unix_deadline;  // The Unix retries'.
  for (;;) {
    if (::connect(fd, address.sockaddr_ptr(), address.size()) == 0) return absl::OkStatus();
    const int err = errno;
    if (err == EINTR) continue;
    Readiness& readiness = *state_;  // Held: after a close, state_ is gone.
    if (err == EAGAIN && state_->family == AF_UNIX) {
      // The listener's backlog is full. No event says when it has room (the socket stays
      // writable throughout), so try again every millisecond until the call's deadline.
      absl::Duration step = absl::Milliseconds(1);
      if (t.has_value()) {
        if (!unix_deadline.has_value()) unix_deadline = absl::Now() + *t;
        const absl::Duration left = *unix_deadline - absl::Now();
        if (left <= absl::ZeroDuration()) return timed_out();
        step = std::min(step, left);
      }
      std::optional<absl::Time> step_deadline;
      absl::Status waited = readiness.Wait(IoSide::kWrite, &step_deadline, step, kOp);
      if (!waited.ok() && !absl::IsDeadlineExceeded(waited)) return waited;
      continue;
    }
    if (err != EINPROGRESS && err != EALREADY) return error(err);
    // TCP: the handshake is under way; writability means it finished, SO_ERROR says how.
    absl::Status waited = readiness.Wait(IoSide::kWrite, &deadline, t, kOp);
    if (absl::IsDeadlineExceeded(waited)) return timed_out();
    if (!waited.ok()) return waited;
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
    if (so_error != 0) return error(so_error);
    // An event that was not the handshake's end leaves it not writable yet: connect again,
    // which then says EALREADY and waits.
    const int writable = sys::PollNow(fd, POLLOUT);
    if (writable < 0) return error(errno);
    if (writable == 0) continue;
    return absl::OkStatus();
  }
}

absl::Status Socket::Bind(const SocketAddress& address) {
  if (!state_) return ClosedError("gevent::Socket::Bind");
  if (::bind(state_->fd(), address.sockaddr_ptr(), address.size()) != 0) {
    return ErrnoError(errno, "gevent::Socket::Bind",
                      absl::StrCat("to ", address.ToString(), " (fd ", state_->fd(), ")"));
  }
  return absl::OkStatus();
}

absl::Status Socket::Listen(int backlog) {
  if (!state_) return ClosedError("gevent::Socket::Listen");
  if (::listen(state_->fd(), backlog) != 0) return Error("gevent::Socket::Listen", errno);
  return absl::OkStatus();
}

absl::StatusOr<Socket> Socket::Accept(SocketAddress* peer, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::Socket::Accept";
  if (!state_) return ClosedError(kOp);
  SocketAddress from;
  const int listen_fd = state_->fd();
  absl::StatusOr<size_t> fd = state_->Io(
      IoSide::kRead, timeout, /*wait_first=*/false, kOp, nullptr,
      [&] {
        int accepted;
        do {  // A connection reset before it was accepted: take the next one.
          socklen_t len = SocketAddress::capacity();
          accepted =
              ::accept4(listen_fd, from.mutable_sockaddr(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (accepted >= 0) from.set_size(len);
        } while (accepted < 0 && errno == ECONNABORTED);
        return accepted;
      },
      [&](int err) { return Error(kOp, err); });
  if (!fd.ok()) return fd.status();
  if (peer != nullptr) *peer = from;
  return FromNewFd(static_cast<int>(*fd), state_->family, state_->type);
}

// ----- data -----

absl::StatusOr<size_t> Socket::RecvInto(absl::Span<char> buffer, IoTimeout timeout, int flags) {
  static constexpr char kOp[] = "gevent::Socket::RecvInto";
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError(kOp);
  State& st = *state_;
  absl::StatusOr<size_t> n = st.Io(
      IoSide::kRead, timeout, /*wait_first=*/flags == 0, kOp, nullptr,
      [&] { return sys::RecvFrom(st.fd(), buffer.data(), buffer.size(), flags, nullptr, nullptr); },
      [&](int err) { return Error(kOp, err); });
  // A short read of a stream socket means the kernel had no more: seen not ready.
  if (ABSL_PREDICT_TRUE(n.ok()) && *n > 0 && *n < buffer.size() && flags == 0 && st.stream()) {
    st.MarkNotReady(IoSide::kRead);
  }
  return n;
}

absl::StatusOr<std::string> Socket::Recv(size_t max_bytes, IoTimeout timeout) {
  std::string out(max_bytes, '\0');
  absl::StatusOr<size_t> n = RecvInto(absl::MakeSpan(out), timeout);
  if (!n.ok()) return n.status();
  out.resize(*n);
  return out;
}

absl::Status Socket::RecvExactly(absl::Span<char> buffer, IoTimeout timeout) {
  if (!state_) return ClosedError("gevent::Socket::RecvExactly");
  // One deadline for the whole buffer: resolve the timeout once and shrink it as we go.
  std::optional<absl::Duration> t = timeout.Resolve(state_->default_timeout());
  std::optional<absl::Time> deadline;
  size_t got = 0;
  while (got < buffer.size()) {
    IoTimeout step = IoTimeout::Forever();
    if (t.has_value()) {
      if (!deadline.has_value()) deadline = absl::Now() + *t;
      step = std::max(*deadline - absl::Now(), absl::ZeroDuration());
    }
    absl::StatusOr<size_t> n = RecvInto(buffer.subspan(got), step);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::OutOfRangeError(
          absl::StrCat("gevent::Socket::RecvExactly: the stream ended after ", got, " of ",
                       buffer.size(), " bytes"));
    }
    got += *n;
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Socket::Send(absl::string_view data, IoTimeout timeout, int flags) {
  static constexpr char kOp[] = "gevent::Socket::Send";
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError(kOp);
  const int fd = state_->fd();
  // Writable again normally means the retry sends something; a spurious wake-up waits again.
  return state_->Io(
      IoSide::kWrite, timeout, /*wait_first=*/false, kOp, nullptr,
      [&] { return sys::SendTo(fd, data.data(), data.size(), flags | MSG_NOSIGNAL, nullptr, 0); },
      [&](int err) { return Error(kOp, err); });
}

absl::Status Socket::SendAll(absl::string_view data, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::Socket::SendAll";
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError(kOp);
  State& st = *state_;
  std::optional<absl::Time> deadline;  // One timeout for all of the data.
  while (!data.empty()) {
    absl::StatusOr<size_t> n = st.Io(
        IoSide::kWrite, timeout, /*wait_first=*/true, kOp, &deadline,
        [&] { return sys::SendTo(st.fd(), data.data(), data.size(), MSG_NOSIGNAL, nullptr, 0); },
        [&](int err) { return Error(kOp, err); });
    if (ABSL_PREDICT_FALSE(!n.ok())) return n.status();
    data.remove_prefix(*n);
    // A short write of a stream socket means its send buffer is full: a retry now would fail
    // with EAGAIN, so the next call waits for room first.
    if (ABSL_PREDICT_FALSE(!data.empty()) && st.stream()) st.MarkNotReady(IoSide::kWrite);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Socket::SendTo(absl::string_view data, const SocketAddress& address,
                                      IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::Socket::SendTo";
  if (!state_) return ClosedError(kOp);
  const int fd = state_->fd();
  return state_->Io(
      IoSide::kWrite, timeout, /*wait_first=*/false, kOp, nullptr,
      [&] {
        return sys::SendTo(fd, data.data(), data.size(), MSG_NOSIGNAL, address.sockaddr_ptr(),
                           address.size());
      },
      [&](int err) { return Error(kOp, err, address); });
}

absl::StatusOr<size_t> Socket::RecvFrom(absl::Span<char> buffer, SocketAddress* from,
                                        IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::Socket::RecvFrom";
  if (!state_) return ClosedError(kOp);
  const int fd = state_->fd();
  SocketAddress sender;
  absl::StatusOr<size_t> n = state_->Io(
      IoSide::kRead, timeout, /*wait_first=*/false, kOp, nullptr,
      [&] {
        socklen_t len = SocketAddress::capacity();
        const ssize_t got =
            sys::RecvFrom(fd, buffer.data(), buffer.size(), 0, sender.mutable_sockaddr(), &len);
        if (got >= 0) sender.set_size(len);
        return got;
      },
      [&](int err) { return Error(kOp, err); });
  if (n.ok() && from != nullptr) *from = sender;
  return n;
}

absl::Status Socket::Shutdown(int how) {
  if (!state_) return ClosedError("gevent::Socket::Shutdown");
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gevent::Socket::Shutdown: how must be SHUT_RD, SHUT_WR or SHUT_RDWR, got ", how));
  }
  if (::shutdown(state_->fd(), how) != 0) return Error("gevent::Socket::Shutdown", errno);
  return absl::OkStatus();
}

// ----- options -----

absl::Status Socket::SetOption(int level, int name, int value) {
  if (!state_) return ClosedError("gevent::Socket::SetOption");
  if (setsockopt(state_->fd(), level, name, &value, sizeof value) != 0) {
    return ErrnoError(
        errno, "gevent::Socket::SetOption",
        absl::StrCat("(fd ", state_->fd(), ", level ", level, ", option ", name, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Socket::GetOption(int level, int name) const {
  if (!state_) return ClosedError("gevent::Socket::GetOption");
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(state_->fd(), level, name, &value, &len) != 0) {
    return ErrnoError(
        errno, "gevent::Socket::GetOption",
        absl::StrCat("(fd ", state_->fd(), ", level ", level, ", option ", name, ")"));
  }
  return value;
}

absl::Status Socket::SetNoDelay(bool on) { return SetOption(IPPROTO_TCP, TCP_NODELAY, on); }
absl::Status Socket::SetReuseAddr(bool on) { return SetOption(SOL_SOCKET, SO_REUSEADDR, on); }
absl::Status Socket::SetReusePort(bool on) { return SetOption(SOL_SOCKET, SO_REUSEPORT, on); }
absl::Status Socket::SetKeepAlive(bool on) { return SetOption(SOL_SOCKET, SO_KEEPALIVE, on); }
absl::Status Socket::SetSendBufferSize(int bytes) {
  return SetOption(SOL_SOCKET, SO_SNDBUF, bytes);
}
absl::Status Socket::SetReceiveBufferSize(int bytes) {
  return SetOption(SOL_SOCKET, SO_RCVBUF, bytes);
}

absl::StatusOr<SocketAddress> Socket::LocalAddress() const {
  if (!state_) return ClosedError("gevent::Socket::LocalAddress");
  SocketAddress a;
  if (!internal::QueryAddress(state_->fd(), /*peer=*/false, &a)) {
    return Error("gevent::Socket::LocalAddress", errno);
  }
  return a;
}

absl::StatusOr<SocketAddress> Socket::PeerAddress() const {
  if (!state_) return ClosedError("gevent::Socket::PeerAddress");
  SocketAddress a;
  if (!internal::QueryAddress(state_->fd(), /*peer=*/true, &a)) {
    return Error("gevent::Socket::PeerAddress", errno);
  }
  return a;
}

}  // namespace gevent
