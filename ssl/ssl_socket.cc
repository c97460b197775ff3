#include "ssl/ssl_socket.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"
#include "base/syscall.h"
#include "socket/address.h"
#include "socket/internal/readiness.h"
#include "socket/resolve.h"
#include "ssl/error.h"

namespace gevent {
namespace {

BIO_METHOD* SocketBioMethod();

bool IsIpAddress(absl::string_view host) { return SocketAddress::FromIp(host, 0).ok(); }

}  // namespace

// ----- the BIO: raw non-blocking system calls on the socket's fd -----

int SslSocket::BioRead(BIO* bio, char* data, int size) {
  auto* self = static_cast<SslSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const int fd = self->socket_.fd();
  if (fd < 0) {
    self->sys_errno_ = EBADF;
    return -1;
  }
  // The socket's edge rule (socket/internal/readiness.h): after a short read, with no event
  // since, the kernel has nothing more, so park without the recv that would say EAGAIN; and tell
  // the readiness what a recv saw, so that the wait parks without polling first. With
  // read-ahead every record is a short read: this saves two system calls per record read.
  internal::Readiness* readiness = internal::Readiness::Find(fd);
  if (readiness != nullptr && !self->call_now_ && !readiness->seen_ready(internal::Side::kRead)) {
    self->read_blocked_ = true;
    BIO_set_retry_read(bio);
    return -1;
  }
  for (;;) {
    const ssize_t n = sys::RecvFrom(fd, data, static_cast<size_t>(size), 0, nullptr, nullptr);
    if (ABSL_PREDICT_TRUE(n > 0)) {
      if (n < size && readiness != nullptr) readiness->MarkNotReady(internal::Side::kRead);
      return static_cast<int>(n);
    }
    if (n == 0) {
      self->eof_ = true;  // OpenSSL asks (BIO_CTRL_EOF) to tell a truncation from a retry.
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (readiness != nullptr) readiness->MarkNotReady(internal::Side::kRead);
      self->read_blocked_ = true;
      BIO_set_retry_read(bio);
    } else {
      self->sys_errno_ = errno;
    }
    return -1;
  }
}

int SslSocket::BioWrite(BIO* bio, const char* data, int size) {
  auto* self = static_cast<SslSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const int fd = self->socket_.fd();
  if (fd < 0) {
    self->sys_errno_ = EBADF;
    return -1;
  }
  for (;;) {
    const ssize_t n = sys::SendTo(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL, nullptr, 0);
    if (ABSL_PREDICT_TRUE(n >= 0)) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      self->write_blocked_ = true;
      BIO_set_retry_write(bio);
    } else {
      self->sys_errno_ = errno;
    }
    return -1;
  }
}

long SslSocket::BioCtrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_EOF:
      return static_cast<SslSocket*>(BIO_get_data(bio))->eof_ ? 1 : 0;
    case BIO_CTRL_FLUSH:
      return 1;  // Nothing is buffered here.
    default:
      return 0;
  }
}

namespace {

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

}  // namespace

// Defined here to reach the private static callbacks.
struct SocketBioMethodHolder {
  static BIO_METHOD* Make() {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gevent::SslSocket");
    BIO_meth_set_read(m, &SslSocket::BioRead);
    BIO_meth_set_write(m, &SslSocket::BioWrite);
    BIO_meth_set_ctrl(m, &SslSocket::BioCtrl);
    BIO_meth_set_create(m, &BioCreate);
    return m;
  }
};

namespace {
BIO_METHOD* SocketBioMethod() {
  static BIO_METHOD* const method = SocketBioMethodHolder::Make();  // Process lifetime.
  return method;
}
}  // namespace

// ----- construction -----

SslSocket::SslSocket(Socket socket, std::shared_ptr<SslContext> context)
    : socket_(std::move(socket)), context_(std::move(context)) {}

SslSocket::~SslSocket() {
  (void)socket_.Close();
  SSL_free(ssl_);  // Frees the BIO too.
}

absl::Status SslSocket::Setup(bool server, absl::string_view server_hostname) {
  static constexpr char kOp[] = "gevent::SslSocket:";
  if (!socket_.is_open()) {
    return absl::FailedPreconditionError(absl::StrCat(kOp, " the socket is closed"));
  }
  if (socket_.type() != SOCK_STREAM) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, " TLS needs a stream socket"));
  }
  ERR_clear_error();
  ssl_ = SSL_new(context_->native());
  if (ssl_ == nullptr) return SslError(absl::StatusCode::kResourceExhausted, kOp, "SSL_new");
  BIO* bio = BIO_new(SocketBioMethod());
  if (bio == nullptr) return SslError(absl::StatusCode::kResourceExhausted, kOp, "BIO_new");
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  // One recv takes what the kernel has (up to a record and more), not a header then a body.
  SSL_set_read_ahead(ssl_, 1);
  if (server) {
    SSL_set_accept_state(ssl_);
    return absl::OkStatus();
  }
  SSL_set_connect_state(ssl_);
  const bool ip = IsIpAddress(server_hostname);
  if (!server_hostname.empty() && !ip) {
    if (SSL_set_tlsext_host_name(ssl_, std::string(server_hostname).c_str()) != 1) {
      return SslError(absl::StatusCode::kInvalidArgument, kOp,
                      absl::StrCat("server_hostname ", server_hostname));
    }
  }
  if (context_->verify_peer() && context_->check_hostname()) {
    if (server_hostname.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          kOp, " the context checks host names (check_hostname) but no server_hostname given"));
    }
    const std::string host(server_hostname);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str())
                      : SSL_set1_host(ssl_, host.c_str());
    if (ok != 1) {
      return SslError(absl::StatusCode::kInvalidArgument, kOp,
                      absl::StrCat("server_hostname ", server_hostname));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SslSocket>> SslSocket::Client(Socket socket,
                                                             std::shared_ptr<SslContext> context,
                                                             absl::string_view server_hostname) {
  if (context == nullptr || context->role() != SslRole::kClient) {
    return absl::InvalidArgumentError("gevent::SslSocket::Client: needs a client SslContext");
  }
  std::unique_ptr<SslSocket> self(new SslSocket(std::move(socket), std::move(context)));
  if (absl::Status s = self->Setup(/*server=*/false, server_hostname); !s.ok()) return s;
  return self;
}

absl::StatusOr<std::unique_ptr<SslSocket>> SslSocket::Server(Socket socket,
                                                             std::shared_ptr<SslContext> context) {
  if (context == nullptr || context->role() != SslRole::kServer) {
    return absl::InvalidArgumentError("gevent::SslSocket::Server: needs a server SslContext");
  }
  std::unique_ptr<SslSocket> self(new SslSocket(std::move(socket), std::move(context)));
  if (absl::Status s = self->Setup(/*server=*/true, ""); !s.ok()) return s;
  return self;
}

// ----- the retry loop -----

absl::Status SslSocket::ClosedError(const char* operation) const {
  return ErrnoError(EBADF, operation, "", "the TLS socket is closed: ");
}

absl::Status SslSocket::WaitFor(bool read, const char* operation, IoTimeout timeout,
                                std::optional<absl::Time>* deadline) {
  internal::Readiness* r = internal::Readiness::Find(socket_.fd());
  if (r == nullptr) return ClosedError(operation);
  // The BIO's call just failed with EAGAIN on this side: seen not ready (the edge rule).
  // After a close the Readiness (and this object) may be gone: return without touching them.
  return r->Wait(read ? internal::Side::kRead : internal::Side::kWrite, deadline,
                 timeout.Resolve(r->default_timeout()), operation);
}

absl::Status SslSocket::Error(const char* operation, int ssl_error) {
  std::string where;
  if (absl::StatusOr<SocketAddress> peer = socket_.PeerAddress(); peer.ok()) {
    where = peer->ToString();
  }
  const unsigned long first = ERR_peek_error();
  const long verify = SSL_get_verify_result(ssl_);
  absl::Status status = SslCallError(ssl_error, sys_errno_, operation, where);
  sys_errno_ = 0;
  if (first != 0 && ERR_GET_LIB(first) == ERR_LIB_SSL &&
      ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
    absl::Status detailed(status.code(), absl::StrCat(status.message(), ": ",
                                                      X509_verify_cert_error_string(verify)));
    status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
      detailed.SetPayload(url, payload);
    });
    return detailed;
  }
  return status;
}

template <typename Call>
absl::StatusOr<int> SslSocket::Drive(const char* operation, IoTimeout timeout,
                                     std::optional<absl::Time>* deadline, Call&& call) {
  if (ABSL_PREDICT_FALSE(!socket_.is_open())) return ClosedError(operation);
  // A zero timeout always makes the system calls (as Socket's calls do): no early "retry".
  call_now_ = timeout.Resolve(socket_.timeout()) == absl::ZeroDuration();
  for (;;) {
    // SSL_get_error needs an empty error queue: clear it only when something is queued (peeking
    // costs less than clearing, and this runs for every record).
    if (ABSL_PREDICT_FALSE(ERR_peek_error() != 0)) ERR_clear_error();
    read_blocked_ = write_blocked_ = false;
    const int n = call();
    if (ABSL_PREDICT_TRUE(n > 0)) return n;
    const int e = SSL_get_error(ssl_, n);
    switch (e) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        // Park only if the socket itself said EAGAIN in this call. Without SSL_MODE_AUTO_RETRY,
        // OpenSSL also "wants to read" right after it processed a post-handshake message (a
        // session ticket, a KeyUpdate) when its own buffer is empty, though the kernel may hold
        // more: an edge-triggered wait then would never wake. Decrypted bytes it holds
        // (SSL_pending) are likewise taken by calling again, not by waiting. (Not
        // SSL_has_pending: a partial record in the read-ahead buffer needs more bytes, a wait.)
        if (!(e == SSL_ERROR_WANT_READ ? read_blocked_ : write_blocked_) ||
            SSL_pending(ssl_) > 0) {
          continue;
        }
        if (absl::Status s = WaitFor(e == SSL_ERROR_WANT_READ, operation, timeout, deadline);
            !s.ok()) {
          return s;
        }
        if (ABSL_PREDICT_FALSE(!socket_.is_open())) return ClosedError(operation);
        continue;
      case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
      default:
        return Error(operation, e);
    }
  }
}

// ----- calls -----

bool SslSocket::handshake_done() const { return ssl_ != nullptr && SSL_is_init_finished(ssl_); }

absl::Status SslSocket::Handshake(IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::Handshake";
  if (handshake_done()) return absl::OkStatus();
  std::optional<absl::Time> deadline;
  absl::StatusOr<int> r = Drive(kOp, timeout, &deadline, [&] { return SSL_do_handshake(ssl_); });
  if (!r.ok()) return r.status();
  if (*r == 0) {
    return absl::UnavailableError(
        absl::StrCat(kOp, ": the peer closed the TLS session during the handshake"));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SslSocket::RecvInto(absl::Span<char> buffer, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::RecvInto";
  if (buffer.empty()) {
    if (ABSL_PREDICT_FALSE(!socket_.is_open())) return ClosedError(kOp);
    return 0;
  }
  std::optional<absl::Time> deadline;
  // The edge rule before the call (as Socket::RecvInto): nothing decrypted or buffered here and
  // no event since the kernel was seen empty, so SSL_read could only fail with WANT_READ; park
  // first. Saves a failing SSL_read per record on a conversation (a zero timeout still calls).
  if (ABSL_PREDICT_TRUE(ssl_ != nullptr && SSL_is_init_finished(ssl_) && !SSL_has_pending(ssl_))) {
    internal::Readiness* readiness = internal::Readiness::Find(socket_.fd());
    if (readiness != nullptr && !readiness->seen_ready(internal::Side::kRead) &&
        timeout.Resolve(readiness->default_timeout()) != absl::ZeroDuration()) {
      if (absl::Status s = WaitFor(true, kOp, timeout, &deadline); !s.ok()) return s;
    }
  }
  const int size = static_cast<int>(std::min<size_t>(buffer.size(), 1 << 30));
  absl::StatusOr<int> r =
      Drive(kOp, timeout, &deadline, [&] { return SSL_read(ssl_, buffer.data(), size); });
  if (!r.ok()) return r.status();
  return static_cast<size_t>(*r);
}

absl::StatusOr<std::string> SslSocket::Recv(size_t max_bytes, IoTimeout timeout) {
  std::string out(max_bytes, '\0');
  absl::StatusOr<size_t> n = RecvInto(absl::MakeSpan(out), timeout);
  if (!n.ok()) return n.status();
  out.resize(*n);
  return out;
}

absl::StatusOr<size_t> SslSocket::Send(absl::string_view data, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::Send";
  if (data.empty()) {
    if (ABSL_PREDICT_FALSE(!socket_.is_open())) return ClosedError(kOp);
    return 0;
  }
  std::optional<absl::Time> deadline;
  // The same buffer and length on every retry (OpenSSL's rule for a write that wanted I/O).
  const int size = static_cast<int>(std::min<size_t>(data.size(), 1 << 30));
  absl::StatusOr<int> r =
      Drive(kOp, timeout, &deadline, [&] { return SSL_write(ssl_, data.data(), size); });
  if (!r.ok()) return r.status();
  if (*r == 0) {
    return absl::UnavailableError(absl::StrCat(kOp, ": the peer closed the TLS session"));
  }
  return static_cast<size_t>(*r);
}

absl::Status SslSocket::SendAll(absl::string_view data, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::SendAll";
  if (ABSL_PREDICT_FALSE(!socket_.is_open())) return ClosedError(kOp);
  std::optional<absl::Time> deadline;
  while (!data.empty()) {
    const int size = static_cast<int>(std::min<size_t>(data.size(), 1 << 30));
    absl::StatusOr<int> r =
        Drive(kOp, timeout, &deadline, [&] { return SSL_write(ssl_, data.data(), size); });
    if (!r.ok()) return r.status();
    if (*r == 0) {
      return absl::UnavailableError(absl::StrCat(kOp, ": the peer closed the TLS session"));
    }
    data.remove_prefix(static_cast<size_t>(*r));
  }
  return absl::OkStatus();
}

absl::Status SslSocket::ShutdownWrite(IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::ShutdownWrite";
  if (!socket_.is_open()) return ClosedError(kOp);
  if (write_shut_) return absl::OkStatus();
  if (!handshake_done()) {
    // No session to close: just end the TCP stream.
    write_shut_ = true;
    return socket_.Shutdown(SHUT_WR);
  }
  std::optional<absl::Time> deadline;
  // SSL_shutdown: 0 once our close_notify is out (the peer's not yet seen), 1 if both are done.
  absl::StatusOr<int> r = Drive(kOp, timeout, &deadline, [&] {
    const int n = SSL_shutdown(ssl_);
    return n >= 0 && (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) != 0 ? 1 : n;
  });
  if (!r.ok()) return r.status();
  write_shut_ = true;
  return socket_.Shutdown(SHUT_WR);
}

absl::Status SslSocket::Close() { return socket_.Close(); }

absl::StatusOr<Socket> SslSocket::Unwrap(IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::Unwrap";
  if (!socket_.is_open()) return ClosedError(kOp);
  if (handshake_done()) {
    std::optional<absl::Time> deadline;
    if (!write_shut_) {
      absl::StatusOr<int> sent = Drive(kOp, timeout, &deadline, [&] {
        const int n = SSL_shutdown(ssl_);
        return n >= 0 && (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) != 0 ? 1 : n;
      });
      if (!sent.ok()) return sent.status();
      write_shut_ = true;
    }
    // Ours is out; read (and drop) until the peer's close_notify (Drive returns 0 for it).
    char discard[4096];
    for (;;) {
      absl::StatusOr<int> r = Drive(kOp, timeout, &deadline,
                                    [&] { return SSL_read(ssl_, discard, sizeof discard); });
      if (!r.ok()) return r.status();
      if (*r == 0) break;
    }
  }
  Socket plain = std::move(socket_);
  return plain;
}

absl::Status SslSocket::KeyUpdate(bool request_peer, IoTimeout timeout) {
  static constexpr char kOp[] = "gevent::SslSocket::KeyUpdate";
  if (!socket_.is_open()) return ClosedError(kOp);
  if (!handshake_done() || SSL_version(ssl_) < TLS1_3_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat(kOp, ": needs a finished TLS 1.3 handshake"));
  }
  ERR_clear_error();
  if (SSL_key_update(ssl_, request_peer ? SSL_KEY_UPDATE_REQUESTED
                                        : SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
    return SslError(absl::StatusCode::kFailedPrecondition, kOp, "");
  }
  std::optional<absl::Time> deadline;
  // SSL_do_handshake sends the pending KeyUpdate now instead of with the next write.
  absl::StatusOr<int> r = Drive(kOp, timeout, &deadline, [&] { return SSL_do_handshake(ssl_); });
  return r.status();
}

size_t SslSocket::pending() const {
  return ssl_ == nullptr ? 0 : static_cast<size_t>(SSL_pending(ssl_));
}

std::string SslSocket::alpn_protocol() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr ? "" : std::string(reinterpret_cast<const char*>(data), len);
}

std::string SslSocket::server_name() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name == nullptr ? "" : name;
}

std::string SslSocket::version() const { return SSL_get_version(ssl_); }

std::string SslSocket::cipher() const {
  const char* name = SSL_get_cipher_name(ssl_);
  return name == nullptr ? "" : name;
}

bool SslSocket::session_reused() const { return SSL_session_reused(ssl_) == 1; }

std::string SslSocket::peer_subject() const {
  X509* peer = SSL_get1_peer_certificate(ssl_);
  if (peer == nullptr) return "";
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(peer), buf, sizeof buf);
  X509_free(peer);
  return buf;
}

absl::StatusOr<std::unique_ptr<SslSocket>> CreateSslConnection(
    absl::string_view host, uint16_t port, std::shared_ptr<SslContext> context,
    std::optional<absl::Duration> timeout) {
  absl::StatusOr<Socket> socket = CreateConnection(host, port, timeout);
  if (!socket.ok()) return socket.status();
  absl::StatusOr<std::unique_ptr<SslSocket>> tls =
      SslSocket::Client(std::move(*socket), std::move(context), host);
  if (!tls.ok()) return tls.status();
  if (absl::Status s = (*tls)->Handshake(); !s.ok()) return s;
  return tls;
}

}  // namespace gevent
