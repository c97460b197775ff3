#include "socket/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "core/edge_poller.h"
#include "core/watchers.h"
#include "greenlet/greenlet.h"
#include "hub/hub.h"
#include "hub/threadpool.h"

namespace gevent {
namespace {

// The data calls enter the kernel directly instead of through glibc's recv/send family, which in
// a multi-threaded process are cancellation points: two atomic operations around every call,
// about 40 ns per call on these machines, a measurable share of a 64-byte echo. A hub thread is
// never cancelled (unwinding would cross libev's frames and parked greenlets), so nothing is lost.
// On x86-64 the syscall instruction is inline, not glibc's syscall(3): one call level less on the
// two calls every message makes (perf, alternating pairs on 2026-12-01: the echo server's user
// time per message 12% lower at 10 connections, 8% at 100; at 1000 within the noise).
#if defined(__x86_64__) && defined(__linux__)
long Syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6) {
  long result;
  register long r10 asm("r10") = a4;
  register long r8 asm("r8") = a5;
  register long r9 asm("r9") = a6;
  asm volatile("syscall"
               : "=a"(result)
               : "a"(number), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  // The kernel returns -errno in [-4095, -1].
  if (ABSL_PREDICT_FALSE(static_cast<unsigned long>(result) > -4096UL)) {
    errno = static_cast<int>(-result);
    return -1;
  }
  return result;
}
#else
long Syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6) {
  return syscall(number, a1, a2, a3, a4, a5, a6);
}
#endif

ssize_t SysRecvFrom(int fd, void* buf, size_t len, int flags, sockaddr* from, socklen_t* from_len) {
  return Syscall6(SYS_recvfrom, fd, reinterpret_cast<long>(buf), static_cast<long>(len), flags,
                  reinterpret_cast<long>(from), reinterpret_cast<long>(from_len));
}
ssize_t SysSendTo(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
                  socklen_t to_len) {
  return Syscall6(SYS_sendto, fd, reinterpret_cast<long>(buf), static_cast<long>(len), flags,
                  reinterpret_cast<long>(to), static_cast<long>(to_len));
}

constexpr absl::string_view kErrnoPayload = "gevent.socket.errno";

// ErrnoName: "ECONNREFUSED" and the like, from glibc's own table (strerrorname_np, glibc 2.32).
const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno";
}

absl::StatusCode CodeForErrno(int err) {
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
      return absl::StatusCode::kUnknown;
  }
}

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be `buf`.
  const char* text = strerror_r(err, buf, sizeof buf);
  return absl::StrCat(text, " [", ErrnoName(err), "]");
}

// MakeError: "<operation> <where>: <errno text> [<ERRNO>]", with the errno attached.
ABSL_ATTRIBUTE_NOINLINE absl::Status MakeError(absl::string_view operation,
                                               absl::string_view where, int err,
                                               absl::string_view extra = "") {
  std::string message = absl::StrCat(operation, where.empty() ? "" : " ", where, ": ",
                                     extra, ErrnoText(err));
  absl::Status status(CodeForErrno(err), message);
  status.SetPayload(kErrnoPayload, absl::Cord(std::to_string(err)));
  return status;
}

std::string OpName(const char* operation) { return absl::StrCat("gevent::Socket::", operation); }

absl::Status ClosedError(const char* operation) {
  return MakeError(OpName(operation), "", EBADF, "the socket is closed: ");
}

ABSL_ATTRIBUTE_NOINLINE absl::Status ClosedWhileWaiting(const char* operation, int fd) {
  return MakeError(OpName(operation), absl::StrCat("(fd ", fd, ")"), EBADF,
                   "File descriptor was closed in another greenlet: ");
}

// A wait's misuse errors, out of line: building their messages inline would widen the frame of
// every parked greenlet's WaitIo (see WaitFailed in the header).
[[noreturn]] ABSL_ATTRIBUTE_NOINLINE void ThrowSecondWaiter(const char* operation, bool read,
                                                            int fd) {
  throw ConcurrentObjectUseError(
      absl::StrCat(OpName(operation), ": another greenlet is already waiting to ",
                   read ? "read from" : "write to", " this socket (fd ", fd,
                   "); one socket may have one reader and one writer at a time"));
}

[[noreturn]] ABSL_ATTRIBUTE_NOINLINE void ThrowForeignHub(const char* operation, int fd) {
  throw std::logic_error(
      absl::StrCat(OpName(operation), ": socket fd ", fd, " belongs to another thread's hub"));
}

ABSL_ATTRIBUTE_NOINLINE absl::Status TimedOut(const char* operation, const std::string& where,
                                              std::optional<absl::Duration> timeout) {
  absl::Status status = absl::DeadlineExceededError(absl::StrCat(
      OpName(operation), where.empty() ? "" : " ", where, ": timed out after ",
      absl::FormatDuration(timeout.value_or(absl::ZeroDuration())),
      timeout.has_value() && *timeout <= absl::ZeroDuration() ? " (non-blocking: would block)"
                                                              : ""));
  status.SetPayload(kErrnoPayload, absl::Cord(std::to_string(ETIMEDOUT)));
  return status;
}

absl::Status SetNonBlockingCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    return MakeError("gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"), errno);
  }
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) {
    return MakeError("gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"), errno);
  }
  return absl::OkStatus();
}

// QueryAddress: the fd's peer (getpeername) or local (getsockname) address; false with errno set
// when the call fails.
bool QueryAddress(int fd, bool peer, SocketAddress* out) {
  socklen_t len = SocketAddress::capacity();
  const int rc = peer ? getpeername(fd, out->mutable_sockaddr(), &len)
                      : getsockname(fd, out->mutable_sockaddr(), &len);
  if (rc != 0) return false;
  out->set_size(len);
  return true;
}

std::string AddressOfFd(int fd, bool peer) {
  SocketAddress a;
  return QueryAddress(fd, peer, &a) ? a.ToString() : "";
}

}  // namespace

// ----- SocketAddress -----

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* addr, socklen_t len) {
  SocketAddress a;
  if (addr == nullptr || len > capacity()) return a;
  std::memcpy(&a.storage_, addr, len);
  a.len_ = len;
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::FromIp(absl::string_view ip, uint16_t port) {
  std::string text(ip);
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  a = SocketAddress();
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("gevent::SocketAddress: \"", ip, "\" is not a numeric IPv4 or IPv6 address"));
}

SocketAddress SocketAddress::Loopback(uint16_t port, int family) {
  return *FromIp(family == AF_INET6 ? "::1" : "127.0.0.1", port);
}

SocketAddress SocketAddress::Any(uint16_t port, int family) {
  return *FromIp(family == AF_INET6 ? "::" : "0.0.0.0", port);
}

absl::StatusOr<SocketAddress> SocketAddress::Unix(absl::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty()) {
    return absl::InvalidArgumentError("gevent::SocketAddress: empty Unix socket path");
  }
  if (path.size() > sizeof(un->sun_path) - (path[0] == '@' ? 0 : 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gevent::SocketAddress: Unix socket path \"", path, "\" is too long (",
                     path.size(), " bytes, at most ", sizeof(un->sun_path) - 1, ")"));
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    un->sun_path[0] = '\0';  // Linux abstract namespace: the length counts, no terminator.
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("gevent::SocketAddress::Parse(\"", text, "\"): ", why));
  };
  if (text.empty()) return bad("empty address");
  if (absl::StartsWith(text, "unix:")) return Unix(text.substr(5));
  if (text[0] == '/' || text[0] == '@' || absl::StartsWith(text, "./")) return Unix(text);

  absl::string_view host;
  absl::string_view port_text;
  if (text[0] == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("missing ']' after an IPv6 address");
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest[0] != ':') return bad("expected \":port\" after ']'");
    port_text = rest.substr(1);
    if (host.find(':') == absl::string_view::npos) return bad("brackets hold an IPv6 address");
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return bad("expected host:port");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return bad("an IPv6 address needs brackets: [addr]:port");
    }
    if (host.empty() || host == "*") host = "0.0.0.0";
  }
  if (port_text.empty()) return bad("missing port");
  uint32_t port = 0;
  if (!std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return bad(absl::StrCat("bad port \"", port_text, "\" (expected 0..65535)"));
  }
  absl::StatusOr<SocketAddress> a = FromIp(host, static_cast<uint16_t>(port));
  if (!a.ok()) {
    return bad(absl::StrCat("\"", host,
                            "\" is not a numeric IP address (host names are resolved by "
                            "gevent::Resolve / CreateConnection)"));
  }
  return a;
}

uint16_t SocketAddress::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

SocketAddress SocketAddress::WithPort(uint16_t port) const {
  SocketAddress a = *this;
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  }
  return a;
}

std::string SocketAddress::ip() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
              sizeof buf);
    return buf;
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
              sizeof buf);
    return buf;
  }
  return "";
}

std::string SocketAddress::ToString() const {
  switch (family()) {
    case AF_INET:
      return absl::StrCat(ip(), ":", port());
    case AF_INET6:
      return absl::StrCat("[", ip(), "]:", port());
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      const size_t path_len = len_ > offsetof(sockaddr_un, sun_path)
                                  ? len_ - offsetof(sockaddr_un, sun_path)
                                  : 0;
      if (path_len == 0) return "unix:(unnamed)";
      if (un->sun_path[0] == '\0') {
        return absl::StrCat("@", absl::string_view(un->sun_path + 1, path_len - 1));
      }
      return std::string(un->sun_path, strnlen(un->sun_path, path_len));
    }
    default:
      return "(empty)";
  }
}

std::optional<int> SocketErrno(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrnoPayload);
  if (!payload.has_value()) return std::nullopt;
  int err = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &err)) return std::nullopt;
  return err;
}

// ----- Socket internals -----

// WaitNode: a parked greenlet's entry, on its own stack. Close() marks it closed and queues it on
// the hub to resume the greenlet; from then on the parked side never touches the socket.
struct Socket::WaitNode : internal::ReadyNode {
  Hub* hub = nullptr;
  greenlet::Greenlet* greenlet = nullptr;
  bool closed = false;
  bool cancelled = false;  // By CancelWait: the socket lives on, its error is in the Direction.

  static void RunCancel(internal::ReadyNode* node) {
    auto* self = static_cast<WaitNode*>(node);
    self->hub->Resume(self->greenlet, self);
  }
};

// Direction: the read or the write side — its readiness, its timeout timer and its waiter.
//
// Readiness comes from the hub's edge-triggered descriptor set (core/edge_poller.h), one
// registration per socket for both sides (output events only from the first wait for room, see
// EdgePoller::WatchOutput): the kernel reports a change once, and never checks a reported socket
// again on the next poll as a level-triggered set would (a large share of its work per message
// with thousands of connections). The price is the edge rule: a side may park
// only after the socket was seen not ready on it (EAGAIN, a short read or write of a stream)
// since the last event for it. Every wait below follows such a call, or checks `ready` first.
//
// An event does not switch into the waiting greenlet: it queues the `wake` entry on the hub's
// ready queue. After the poll the hub runs the whole batch, each greenlet handing over straight
// to the next when it parks (one switch per wake-up instead of two), and while one runs, the hub
// prefetches the next one's stack: with thousands of connections every greenlet a poll wakes is
// cold in cache.
struct alignas(64) Socket::Direction {
  Direction(Hub& h, const void* owner)
      : hub(&h), timer(h.loop(), absl::ZeroDuration(), [this] { hub->Resume(waiter, &timer); }) {
    wake.from_poll = true;
    wake.warm = owner;  // The socket's state: the first thing the woken call reads.
    // WaitIo's return then reads `waiting` (line 1, see Layout).
    wake.lines_after = 1;
  }

  // Edge: the kernel reported a change on this side (from the poll, see State::OnEvents).
  void Edge() {
    ready = true;
    if (waiter != nullptr) {
      wake.resume = waiter;
      hub->ScheduleNode(&wake);  // Does nothing if still queued from the last poll.
    }
  }

  // Layout: what a wake-up touches comes first and in as few lines as it fits: the queue entry
  // and the waiter (line 0), then the hub, the wait node and the readiness flag (line 1). The
  // timer, used only by waits with a timeout, last.
  internal::ReadyNode wake;
  // waiter: waiting->greenlet, kept here so that an event does not read the parked stack.
  greenlet::Greenlet* waiter = nullptr;
  Hub* hub;
  WaitNode* waiting = nullptr;
  // ready: an event came since this side was last seen not ready (see the edge rule above).
  // Starts true: a new socket's first call just tries.
  bool ready = true;
  // hangup (read side of a stream): the peer shut its side, or the connection is gone
  // (EPOLLRDHUP). From then on every read returns at once (data, 0 or the error) and no further
  // event comes, so the side never waits again: a short read does not mean "not ready" any more.
  bool hangup = false;
  TimerWatcher timer;
  absl::Status cancel_error;  // Set by CancelWait for the waiter it wakes.
};

struct Socket::State : EdgePoller::Handle {
  State(Hub& h, EdgePoller& p, int fd_in, int family_in, int type_in)
      : hub(&h),
        poller(&p),
        fd(fd_in),
        family(family_in),
        type(type_in),
        read(h, this),
        write(h, this) {
    on_events = &State::OnEvents;
  }

  static void OnEvents(EdgePoller::Handle* handle, std::uint32_t events) {
    State* self = static_cast<State*>(handle);
    // Streams only: a datagram socket shut for reading still says EAGAIN.
    if ((events & EPOLLRDHUP) && self->type == SOCK_STREAM) self->read.hangup = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) self->read.Edge();
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) self->write.Edge();
  }

  Hub* hub;
  EdgePoller* poller;
  int fd;
  int family;
  int type;
  std::optional<absl::Duration> timeout;
  bool output_watched = false;  // Output events asked for (the first wait to write does).
  Direction read;
  Direction write;
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

int Socket::fd() const { return state_ ? state_->fd : -1; }
int Socket::family() const { return state_ ? state_->family : 0; }
int Socket::type() const { return state_ ? state_->type : 0; }

void Socket::SetTimeout(std::optional<absl::Duration> timeout) {
  if (state_) state_->timeout = timeout;
}

std::optional<absl::Duration> Socket::timeout() const {
  return state_ ? state_->timeout : std::nullopt;
}

absl::StatusOr<Socket> Socket::FromFd(int fd, int family, int type) {
  Hub& hub = GetHub();
  absl::StatusOr<EdgePoller*> poller = hub.edge_poller();
  if (!poller.ok()) return poller.status();
  // Everything a socket needs is built here: one allocation and one registration, at creation.
  auto state = std::make_unique<State>(hub, **poller, fd, family, type);
  if (absl::Status added = (*poller)->Add(fd, state.get()); !added.ok()) return added;
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
    return MakeError("gevent::Socket::Create",
                     absl::StrCat("(family ", family, ", type ", type, ")"), errno);
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
    return MakeError("gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"), errno,
                     "not a socket: ");
  }
  SocketAddress local;
  if (!QueryAddress(fd, /*peer=*/false, &local)) {
    return MakeError("gevent::Socket::Adopt", absl::StrCat("(fd ", fd, ")"), errno);
  }
  if (absl::Status s = SetNonBlockingCloexec(fd); !s.ok()) return s;
  return FromFd(fd, local.family(), type);
}

absl::StatusOr<std::pair<Socket, Socket>> Socket::Pair(int type, int family) {
  int fds[2];
  if (socketpair(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return MakeError("gevent::Socket::Pair", "", errno);
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
  std::string where = AddressOfFd(state_->fd, /*peer=*/true);
  if (where.empty()) where = AddressOfFd(state_->fd, /*peer=*/false);
  return MakeError(OpName(operation), absl::StrCat(where, where.empty() ? "" : " ", "(fd ",
                                                   state_->fd, ")"),
                   err);
}

absl::Status Socket::Error(const char* operation, int err, const SocketAddress& address) const {
  return MakeError(OpName(operation),
                   absl::StrCat(address.ToString(), " (fd ", state_ ? state_->fd : -1, ")"), err);
}

Socket::WaitResult Socket::WaitIo(Direction& d, std::optional<absl::Time>* deadline,
                                  std::optional<absl::Duration> timeout, const char* operation) {
  Hub& hub = *state_->hub;
  if (ABSL_PREDICT_FALSE(d.waiting != nullptr)) {
    ThrowSecondWaiter(operation, &d == &state_->read, state_->fd);
  }
  if (ABSL_PREDICT_FALSE(&hub != HubIfExists())) ThrowForeignHub(operation, state_->fd);
  std::optional<absl::Duration> remaining;
  if (timeout.has_value()) {
    hub.loop().UpdateNow();
    if (!deadline->has_value()) *deadline = hub.loop().Now() + *timeout;
    remaining = **deadline - hub.loop().Now();
    if (*remaining <= absl::ZeroDuration()) return WaitResult::kTimedOut;
  }
  WaitNode node;
  node.run = &WaitNode::RunCancel;
  node.hub = &hub;
  node.greenlet = greenlet::Greenlet::Current();
  if (ABSL_PREDICT_FALSE(d.hangup)) return WaitResult::kReady;  // No event would come.
  if (ABSL_PREDICT_FALSE(&d == &state_->write && !state_->output_watched)) {
    // The first wait for room asks for output events (see EdgePoller::WatchOutput). That fails
    // only for a descriptor closed behind the socket's back, which the caller's retry reports.
    if (!state_->poller->WatchOutput(state_->fd, state_.get()).ok()) return WaitResult::kReady;
    state_->output_watched = true;
  }
  d.waiting = &node;
  d.waiter = node.greenlet;
  d.ready = false;  // Seen not ready by the caller: only the next event wakes us (edge rule).
  hub.loop().Ref();  // While a greenlet waits, the loop must stay alive for it.
  if (remaining.has_value()) d.timer.Start(*remaining);
  const void* key;
  try {
    key = hub.Park({&d.wake, &d.timer, &node});
  } catch (...) {
    // Killed, timed out by a gevent::Timeout, or parked on the hub greenlet.
    hub.Unschedule(&node);
    if (!node.closed) {  // A close (WakeWaiters) has cleaned up already.
      hub.Unschedule(&d.wake);
      hub.loop().Unref();
      d.timer.Stop();
      d.waiting = nullptr;
      d.waiter = nullptr;
    }
    throw;
  }
  if (key == &node) {
    // Closed: the socket may be gone, touch nothing. Cancelled: CancelWait cleaned up.
    return node.closed ? WaitResult::kClosed : WaitResult::kCancelled;
  }
  // Only a wait with a timeout reads the timer: with thousands of connections each line a
  // wake-up touches is a likely miss.
  if (remaining.has_value()) d.timer.Stop();
  d.waiting = nullptr;
  d.waiter = nullptr;
  hub.loop().Unref();
  if (ABSL_PREDICT_TRUE(key == &d.wake)) return WaitResult::kReady;
  hub.Unschedule(&d.wake);  // Readiness queued in the same loop turn as the expiry.
  return WaitResult::kTimedOut;
}

absl::Status Socket::WaitOrError(Direction& d, std::optional<absl::Time>* deadline,
                                 std::optional<absl::Duration> timeout, const char* operation) {
  const int fd = state_->fd;
  const WaitResult result = WaitIo(d, deadline, timeout, operation);
  if (ABSL_PREDICT_TRUE(result == WaitResult::kReady)) return absl::OkStatus();
  return WaitFailed(result, d, fd, timeout, operation);
}

absl::Status Socket::WaitFailed(WaitResult result, Direction& d, int fd,
                                std::optional<absl::Duration> timeout, const char* operation) {
  switch (result) {
    case WaitResult::kReady:
      return absl::OkStatus();
    case WaitResult::kClosed:
      return ClosedWhileWaiting(operation, fd);
    case WaitResult::kCancelled:
      return std::move(d.cancel_error);
    case WaitResult::kTimedOut:
      break;
  }
  std::string where = AddressOfFd(fd, /*peer=*/true);
  return TimedOut(operation, where.empty() ? absl::StrCat("(fd ", fd, ")")
                                           : absl::StrCat(where, " (fd ", fd, ")"),
                  timeout);
}

void Socket::WakeWaiters() {
  state_->poller->Remove(state_->fd);  // Before the fd is closed or handed out: no more events.
  for (Direction* d : {&state_->read, &state_->write}) {
    d->timer.Stop();
    state_->hub->Unschedule(&d->wake);
    if (d->waiting != nullptr) {
      state_->hub->loop().Unref();  // The waiter's reference (see WaitIo).
      d->waiting->closed = true;
      state_->hub->ScheduleNode(d->waiting);
      d->waiting = nullptr;
      d->waiter = nullptr;
    }
  }
}

bool Socket::CancelWait(Side side, absl::Status error) {
  if (error.ok()) {
    throw std::invalid_argument("gevent::Socket::CancelWait: the error must not be OK");
  }
  if (!state_) return false;
  Direction& d = side == Side::kRead ? state_->read : state_->write;
  if (d.waiting == nullptr) return false;
  d.timer.Stop();
  d.hub->Unschedule(&d.wake);
  d.hub->loop().Unref();  // The waiter's reference (see WaitIo).
  d.cancel_error = std::move(error);
  d.waiting->cancelled = true;
  d.hub->ScheduleNode(d.waiting);
  d.waiting = nullptr;
  d.waiter = nullptr;
  return true;
}

// The edge rule (see Direction) allows a park only once the side was seen not ready. Unless no
// event came since it was, these ask the kernel first (poll with a zero timeout).
absl::Status Socket::WaitReady(Side side, const char* operation, IoTimeout timeout) {
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError(operation);
  Direction& d = side == Side::kRead ? state_->read : state_->write;
  if (d.ready) {
    const short poll_events = side == Side::kRead ? POLLIN : POLLOUT;
    pollfd p{state_->fd, poll_events, 0};
    int n;
    do {
      n = ::poll(&p, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Error(operation, errno);
    if (n > 0) return absl::OkStatus();  // Ready, or an error or hang-up the next call reports.
  }
  std::optional<absl::Time> deadline;
  return WaitOrError(d, &deadline, timeout.Resolve(state_->timeout), operation);
}

absl::Status Socket::WaitReadable(IoTimeout timeout) {
  return WaitReady(Side::kRead, "WaitReadable", timeout);
}

absl::Status Socket::WaitWritable(IoTimeout timeout) {
  return WaitReady(Side::kWrite, "WaitWritable", timeout);
}

absl::Status Socket::Close() {
  if (!state_) return absl::OkStatus();
  WakeWaiters();
  const int fd = state_->fd;
  state_.reset();
  if (::close(fd) != 0 && errno != EINTR) {
    return MakeError("gevent::Socket::Close", absl::StrCat("(fd ", fd, ")"), errno);
  }
  return absl::OkStatus();
}

int Socket::Detach() {
  if (!state_) return -1;
  WakeWaiters();
  const int fd = state_->fd;
  state_.reset();
  return fd;
}

// ----- connection set-up -----

absl::Status Socket::Connect(const SocketAddress& address, IoTimeout timeout) {
  if (!state_) return ClosedError("Connect");
  const std::optional<absl::Duration> t = timeout.Resolve(state_->timeout);
  std::optional<absl::Time> deadline;       // The TCP wait's, in loop time (see WaitIo).
  std::optional<absl::Time> unix_deadline;  // The Unix retries'.
  for (;;) {
    if (::connect(state_->fd, address.sockaddr_ptr(), address.size()) == 0) {
      return absl::OkStatus();
    }
    int err = errno;
    if (err == EINTR) continue;
    const int fd = state_->fd;
    Direction& write = state_->write;  // Held: after a close, state_ is gone.
    if (err == EAGAIN && state_->family == AF_UNIX) {
      // The listener's backlog is full. No event says when it has room (the socket stays
      // writable throughout), so try again every millisecond until the call's deadline.
      absl::Duration step = absl::Milliseconds(1);
      if (t.has_value()) {
        if (!unix_deadline.has_value()) unix_deadline = absl::Now() + *t;
        const absl::Duration left = *unix_deadline - absl::Now();
        if (left <= absl::ZeroDuration()) {
          return TimedOut("Connect", absl::StrCat("to ", address.ToString(), " (fd ", fd, ")"), t);
        }
        step = std::min(step, left);
      }
      std::optional<absl::Time> step_deadline;
      const WaitResult r = WaitIo(write, &step_deadline, step, "Connect");
      if (r != WaitResult::kReady && r != WaitResult::kTimedOut) {
        return WaitFailed(r, write, fd, t, "Connect");
      }
      continue;
    }
    if (err == EINPROGRESS || err == EALREADY) {
      // TCP: the handshake is under way; writability means it finished, SO_ERROR says how.
      const WaitResult r = WaitIo(write, &deadline, t, "Connect");
      if (r == WaitResult::kTimedOut) {
        // Names the address being connected to: the socket has no peer yet.
        return TimedOut("Connect", absl::StrCat("to ", address.ToString(), " (fd ", fd, ")"), t);
      }
      if (r != WaitResult::kReady) return WaitFailed(r, write, fd, t, "Connect");
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
      if (so_error == 0) {
        // An event that was not the handshake's end (see Direction) leaves it not writable yet:
        // connect again, which then says EALREADY and waits.
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, 0) == 0) continue;
        return absl::OkStatus();
      }
      return MakeError("gevent::Socket::Connect",
                       absl::StrCat("to ", address.ToString(), " (fd ", fd, ")"), so_error);
    }
    return MakeError("gevent::Socket::Connect",
                     absl::StrCat("to ", address.ToString(), " (fd ", state_->fd, ")"), err);
  }
}

absl::Status Socket::Bind(const SocketAddress& address) {
  if (!state_) return ClosedError("Bind");
  if (::bind(state_->fd, address.sockaddr_ptr(), address.size()) != 0) {
    return MakeError("gevent::Socket::Bind",
                     absl::StrCat("to ", address.ToString(), " (fd ", state_->fd, ")"), errno);
  }
  return absl::OkStatus();
}

absl::Status Socket::Listen(int backlog) {
  if (!state_) return ClosedError("Listen");
  if (::listen(state_->fd, backlog) != 0) return Error("Listen", errno);
  return absl::OkStatus();
}

absl::StatusOr<Socket> Socket::Accept(SocketAddress* peer, IoTimeout timeout) {
  if (!state_) return ClosedError("Accept");
  std::optional<absl::Time> deadline;
  for (;;) {
    SocketAddress from;
    socklen_t len = SocketAddress::capacity();
    int fd = ::accept4(state_->fd, from.mutable_sockaddr(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      from.set_size(len);
      if (peer != nullptr) *peer = from;
      return FromNewFd(fd, state_->family, state_->type);
    }
    int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err != EAGAIN) return Error("Accept", err);
    if (absl::Status s = WaitOrError(state_->read, &deadline, timeout.Resolve(state_->timeout),
                                     "Accept");
        !s.ok()) {
      return s;
    }
  }
}

// ----- data -----

absl::StatusOr<size_t> Socket::RecvInto(absl::Span<char> buffer, IoTimeout timeout, int flags) {
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError("RecvInto");
  State& st = *state_;
  std::optional<absl::Time> deadline;
  std::optional<absl::Duration> t;
  bool resolved = false;
  if (!st.read.ready && flags == 0) {
    // No event since the last read emptied the receive queue (or since a wait found nothing),
    // so a recv now would most likely fail with EAGAIN: wait for the next event first. A zero
    // timeout must try the call, so it does not skip.
    t = timeout.Resolve(st.timeout);
    resolved = true;
    if (!(t.has_value() && *t <= absl::ZeroDuration())) {
      if (absl::Status s = WaitOrError(st.read, &deadline, t, "RecvInto"); !s.ok()) return s;
    }
  }
  for (;;) {
    ssize_t n = SysRecvFrom(st.fd, buffer.data(), buffer.size(), flags, nullptr, nullptr);
    if (ABSL_PREDICT_TRUE(n >= 0)) {
      // A short read of a stream socket means the kernel had no more: seen not ready.
      if (n > 0 && static_cast<size_t>(n) < buffer.size() && flags == 0 &&
          st.type == SOCK_STREAM) {
        st.read.ready = st.read.hangup;  // After a hang-up, end of stream is always ready.
      }
      return static_cast<size_t>(n);
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN) return Error("RecvInto", err);
    if (!resolved) {
      t = timeout.Resolve(st.timeout);
      resolved = true;
    }
    if (absl::Status s = WaitOrError(st.read, &deadline, t, "RecvInto"); !s.ok()) return s;
  }
}

absl::StatusOr<std::string> Socket::Recv(size_t max_bytes, IoTimeout timeout) {
  std::string out(max_bytes, '\0');
  absl::StatusOr<size_t> n = RecvInto(absl::MakeSpan(out), timeout);
  if (!n.ok()) return n.status();
  out.resize(*n);
  return out;
}

absl::Status Socket::RecvExactly(absl::Span<char> buffer, IoTimeout timeout) {
  if (!state_) return ClosedError("RecvExactly");
  // One deadline for the whole buffer: resolve the timeout once and shrink it as we go.
  std::optional<absl::Duration> t = timeout.Resolve(state_->timeout);
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
      return absl::OutOfRangeError(absl::StrCat("gevent::Socket::RecvExactly: the stream ended after ",
                                                got, " of ", buffer.size(), " bytes"));
    }
    got += *n;
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Socket::Send(absl::string_view data, IoTimeout timeout, int flags) {
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError("Send");
  std::optional<absl::Time> deadline;
  for (;;) {
    ssize_t n = SysSendTo(state_->fd, data.data(), data.size(), flags | MSG_NOSIGNAL, nullptr, 0);
    if (ABSL_PREDICT_TRUE(n >= 0)) return static_cast<size_t>(n);
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN) return Error("Send", err);
    // Writable again normally means the retry sends something; a spurious wake-up waits again.
    if (absl::Status s = WaitOrError(state_->write, &deadline, timeout.Resolve(state_->timeout),
                                     "Send");
        !s.ok()) {
      return s;
    }
  }
}

absl::Status Socket::SendAll(absl::string_view data, IoTimeout timeout) {
  if (ABSL_PREDICT_FALSE(!state_)) return ClosedError("SendAll");
  std::optional<absl::Time> deadline;
  std::optional<absl::Duration> t;
  bool resolved = false;
  while (!data.empty()) {
    ssize_t n = SysSendTo(state_->fd, data.data(), data.size(), MSG_NOSIGNAL, nullptr, 0);
    int err;
    if (ABSL_PREDICT_TRUE(n >= 0)) {
      data.remove_prefix(static_cast<size_t>(n));
      if (ABSL_PREDICT_TRUE(data.empty())) break;
      // A short write of a stream socket means its send buffer is full: a retry now would fail
      // with EAGAIN, so wait for room first.
      if (state_->type != SOCK_STREAM) continue;
      err = EAGAIN;
    } else {
      err = errno;
    }
    if (err == EINTR) continue;
    if (err != EAGAIN) return Error("SendAll", err);
    if (!resolved) {
      t = timeout.Resolve(state_->timeout);
      resolved = true;
    }
    if (absl::Status s = WaitOrError(state_->write, &deadline, t, "SendAll"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Socket::SendTo(absl::string_view data, const SocketAddress& address,
                                      IoTimeout timeout) {
  if (!state_) return ClosedError("SendTo");
  std::optional<absl::Time> deadline;
  for (;;) {
    ssize_t n = SysSendTo(state_->fd, data.data(), data.size(), MSG_NOSIGNAL,
                          address.sockaddr_ptr(), address.size());
    if (n >= 0) return static_cast<size_t>(n);
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN) return Error("SendTo", err, address);
    if (absl::Status s = WaitOrError(state_->write, &deadline, timeout.Resolve(state_->timeout),
                                     "SendTo");
        !s.ok()) {
      return s;
    }
  }
}

absl::StatusOr<size_t> Socket::RecvFrom(absl::Span<char> buffer, SocketAddress* from,
                                        IoTimeout timeout) {
  if (!state_) return ClosedError("RecvFrom");
  std::optional<absl::Time> deadline;
  for (;;) {
    SocketAddress sender;
    socklen_t len = SocketAddress::capacity();
    ssize_t n = SysRecvFrom(state_->fd, buffer.data(), buffer.size(), 0, sender.mutable_sockaddr(),
                            &len);
    if (n >= 0) {
      sender.set_size(len);
      if (from != nullptr) *from = sender;
      return static_cast<size_t>(n);
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN) return Error("RecvFrom", err);
    if (absl::Status s = WaitOrError(state_->read, &deadline, timeout.Resolve(state_->timeout),
                                     "RecvFrom");
        !s.ok()) {
      return s;
    }
  }
}

absl::Status Socket::Shutdown(int how) {
  if (!state_) return ClosedError("Shutdown");
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gevent::Socket::Shutdown: how must be SHUT_RD, SHUT_WR or SHUT_RDWR, got ", how));
  }
  if (::shutdown(state_->fd, how) != 0) return Error("Shutdown", errno);
  return absl::OkStatus();
}

// ----- options -----

absl::Status Socket::SetOption(int level, int name, int value) {
  if (!state_) return ClosedError("SetOption");
  if (setsockopt(state_->fd, level, name, &value, sizeof value) != 0) {
    return MakeError("gevent::Socket::SetOption",
                     absl::StrCat("(fd ", state_->fd, ", level ", level, ", option ", name, ")"),
                     errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Socket::GetOption(int level, int name) const {
  if (!state_) return ClosedError("GetOption");
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(state_->fd, level, name, &value, &len) != 0) {
    return MakeError("gevent::Socket::GetOption",
                     absl::StrCat("(fd ", state_->fd, ", level ", level, ", option ", name, ")"),
                     errno);
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
  if (!state_) return ClosedError("LocalAddress");
  SocketAddress a;
  if (!QueryAddress(state_->fd, /*peer=*/false, &a)) return Error("LocalAddress", errno);
  return a;
}

absl::StatusOr<SocketAddress> Socket::PeerAddress() const {
  if (!state_) return ClosedError("PeerAddress");
  SocketAddress a;
  if (!QueryAddress(state_->fd, /*peer=*/true, &a)) return Error("PeerAddress", errno);
  return a;
}

// ----- resolution and CreateConnection -----

namespace {

struct LookupResult {
  int gai_error = 0;
  int sys_errno = 0;
  std::vector<SocketAddress> addresses;
};

LookupResult Lookup(const std::string& host, uint16_t port, int family) {
  LookupResult result;
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  result.gai_error = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (result.gai_error != 0) {
    result.sys_errno = errno;
    return result;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, &freeaddrinfo);
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    result.addresses.push_back(SocketAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen));
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<SocketAddress>> Resolve(absl::string_view host, uint16_t port,
                                                   int family, std::optional<absl::Duration> timeout,
                                                   ThreadPool* pool) {
  if (absl::StatusOr<SocketAddress> numeric = SocketAddress::FromIp(host, port); numeric.ok()) {
    if (family != AF_UNSPEC && numeric->family() != family) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gevent::Resolve ", host, ": the address is not of the requested family"));
    }
    return std::vector<SocketAddress>{*numeric};
  }
  if (host.empty()) return absl::InvalidArgumentError("gevent::Resolve: empty host name");
  std::unique_ptr<ThreadPool> own_pool;
  if (pool == nullptr) {
    own_pool = std::make_unique<ThreadPool>(1);
    pool = own_pool.get();
  }
  ThreadResult<LookupResult> pending =
      pool->Spawn([h = std::string(host), port, family] { return Lookup(h, port, family); });
  if (!pending.Wait(timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("gevent::Resolve ", host, ": timed out after ",
                                                    absl::FormatDuration(*timeout)));
  }
  LookupResult result = pending.Get();
  if (result.gai_error != 0) {
    std::string text = gai_strerror(result.gai_error);
    if (result.gai_error == EAI_SYSTEM) text += ": " + ErrnoText(result.sys_errno);
    absl::StatusCode code = absl::StatusCode::kUnavailable;
    if (result.gai_error == EAI_NONAME || result.gai_error == EAI_NODATA) {
      code = absl::StatusCode::kNotFound;
    }
    return absl::Status(code, absl::StrCat("gevent::Resolve ", host, ": ", text));
  }
  if (result.addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("gevent::Resolve ", host, ": no addresses"));
  }
  return result.addresses;
}

absl::StatusOr<Socket> CreateConnection(absl::string_view host, uint16_t port,
                                        std::optional<absl::Duration> timeout,
                                        const CreateConnectionOptions& options) {
  const std::string prefix = absl::StrCat("gevent::CreateConnection ", host, ":", port, ": ");
  std::optional<absl::Time> deadline;
  if (timeout.has_value()) deadline = absl::Now() + *timeout;
  auto remaining = [&]() -> std::optional<absl::Duration> {
    if (!deadline.has_value()) return std::nullopt;
    return std::max(*deadline - absl::Now(), absl::ZeroDuration());
  };
  absl::StatusOr<std::vector<SocketAddress>> addresses =
      Resolve(host, port, AF_UNSPEC, remaining(), options.resolver_pool);
  if (!addresses.ok()) {
    return absl::Status(addresses.status().code(),
                        absl::StrCat(prefix, addresses.status().message()));
  }
  absl::Status last;
  for (const SocketAddress& address : *addresses) {
    absl::StatusOr<Socket> s = Socket::Create(address.family(), SOCK_STREAM);
    if (!s.ok()) {
      last = s.status();
      continue;
    }
    if (options.source.has_value()) {
      if (absl::Status b = s->Bind(*options.source); !b.ok()) {
        last = b;
        continue;
      }
    }
    std::optional<absl::Duration> left = remaining();
    absl::Status c = s->Connect(address, left.has_value() ? IoTimeout(*left) : IoTimeout::Forever());
    if (!c.ok()) {
      last = c;
      if (absl::IsDeadlineExceeded(c)) break;  // The whole call's time is up.
      continue;
    }
    if (options.no_delay && address.family() != AF_UNIX) (void)s->SetNoDelay(true);
    s->SetTimeout(timeout);
    return s;
  }
  absl::Status out(last.code(), absl::StrCat(prefix, last.message()));
  if (std::optional<int> err = SocketErrno(last)) {
    out.SetPayload(kErrnoPayload, absl::Cord(std::to_string(*err)));
  }
  return out;
}

}  // namespace gevent
