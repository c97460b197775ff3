// gevent::SslSocket — TLS over a cooperative gevent::Socket (gevent.ssl.SSLSocket).
//
//   absl::StatusOr<std::shared_ptr<gevent::SslContext>> ctx = gevent::SslContext::Create({});
//   absl::StatusOr<std::unique_ptr<gevent::SslSocket>> tls =
//       gevent::CreateSslConnection("example.com", 443, *ctx, absl::Seconds(5));
//   (*tls)->SendAll("GET / HTTP/1.0\r\n\r\n");
//   char buf[4096];
//   absl::StatusOr<size_t> n = (*tls)->RecvInto(absl::MakeSpan(buf));  // 0: the peer's close_notify
//
//   // A server's handler (or use ssl/server.h, which does this with a handshake timeout):
//   auto tls = gevent::SslSocket::Server(std::move(connection), server_ctx);
//   absl::Status s = (*tls)->Handshake(absl::Seconds(10));
//
// What it is. An SslSocket owns a connected stream Socket (moved in) and an OpenSSL session on it.
// OpenSSL reads and writes the descriptor through a BIO of ours that makes the raw non-blocking
// system calls (send with MSG_NOSIGNAL: a reset peer is an error, never SIGPIPE) and never
// parks; when OpenSSL wants to read or write (SSL_ERROR_WANT_READ / WANT_WRITE, in any call and in
// either direction: a read may need to write and a write to read), the calling greenlet parks on
// the socket's own readiness (the same edge-triggered registration as Socket's calls) and retries
// the same OpenSSL call, a write with the same buffer and length. Bytes OpenSSL already holds
// (SSL_pending, read-ahead) are always returned before any wait: every receive calls SSL_read
// first. TLS 1.3 post-handshake messages (session tickets, key updates) that arrive between
// application records are processed inside RecvInto, which goes on waiting for data.
//
// Handshake. Explicit (Handshake), or implicit on the first RecvInto/Send: a client session set
// up by Client() connects, a Server() one accepts. Verification failures, a wrong host name, a
// peer that speaks something else than TLS ("wrong version number", "http request"), an alert
// from the peer: Unavailable with OpenSSL's reason and, for a certificate, X509's verify text
// ("certificate verify failed: self-signed certificate").
//
// Timeouts: the socket's rules (socket/socket.h). Every call takes an IoTimeout; the default is
// the underlying socket's timeout (Socket::SetTimeout). It covers the whole call from its first
// wait (a handshake: every round trip; SendAll: all the data). Expiry is DeadlineExceeded.
//
// End of stream. RecvInto returns 0 after the peer's close_notify. A peer that closes TCP
// without close_notify gives Unavailable "unexpected eof while reading", which
// IsSslUnexpectedEof (ssl/error.h) recognises: the data before it may have been truncated.
// ShutdownWrite sends close_notify (then shuts TCP's write side) and does not wait for the
// peer's; Unwrap does the full two-way closure and gives the plain socket back.
//
// Closing. Close() (or the destructor) closes the socket at once, without close_notify; greenlets
// parked in a call on it wake with FailedPrecondition "File descriptor was closed in another
// greenlet [EBADF]" and do not touch the SslSocket again (it may be destroyed right after Close
// returns). Later calls return FailedPrecondition "the TLS socket is closed".
//
// Misuse (exceptions, base/errors.h): two greenlets waiting to read at once (or to write)
// throws ConcurrentObjectUseError, as Socket's; one reader plus one writer is fine once the
// handshake is done (run Handshake before splitting a connection between two greenlets). A call
// from the hub greenlet throws BlockingInHubError; from another thread's hub, UsageError.
//
// Lifetime and thread-safety: hub thread only, like the Socket inside; not movable (the BIO
// points at it): held by std::unique_ptr. It keeps its SslContext alive.
#ifndef GEVENT_SSL_SSL_SOCKET_H_
#define GEVENT_SSL_SSL_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "socket/io_timeout.h"
#include "socket/socket.h"
#include "socket/stream.h"
#include "ssl/context.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace gevent {

struct SocketBioMethodHolder;

class SslSocket final : public Stream {
 public:
  // Client: a client session over `socket` (connected). `server_hostname` is sent as SNI (a DNS
  // name; not for an IP address) and checked against the certificate when the context verifies
  // with check_hostname (DNS names and IP addresses); it may be empty only when it is not
  // checked. InvalidArgument for a server context or a missing host name.
  static absl::StatusOr<std::unique_ptr<SslSocket>> Client(Socket socket,
                                                           std::shared_ptr<SslContext> context,
                                                           absl::string_view server_hostname);
  // Server: a server session over an accepted `socket`. InvalidArgument for a client context.
  static absl::StatusOr<std::unique_ptr<SslSocket>> Server(Socket socket,
                                                           std::shared_ptr<SslContext> context);

  ~SslSocket() override;

  // Handshake runs the TLS handshake to its end (OK at once if done already).
  absl::Status Handshake(IoTimeout timeout = {});
  bool handshake_done() const;

  // RecvInto reads up to buffer.size() decrypted bytes, parking until at least one is there.
  // 0: the peer's close_notify (or an empty buffer).
  absl::StatusOr<size_t> RecvInto(absl::Span<char> buffer, IoTimeout timeout = {}) override;
  // Recv: RecvInto a new string of at most max_bytes.
  absl::StatusOr<std::string> Recv(size_t max_bytes, IoTimeout timeout = {});
  // Send writes some of `data` (at least one byte unless it is empty; up to a record, 16 KiB)
  // and returns how many bytes went.
  absl::StatusOr<size_t> Send(absl::string_view data, IoTimeout timeout = {});
  // SendAll writes all of `data` within one timeout. On error the session is broken.
  absl::Status SendAll(absl::string_view data, IoTimeout timeout = {}) override;
  // ShutdownWrite sends close_notify and shuts the socket's write side (see the file comment).
  // A second call is OK. Reading stays possible until the peer's close_notify (RecvInto 0).
  absl::Status ShutdownWrite(IoTimeout timeout = {}) override;
  // Close: see the file comment. Closing twice is OK.
  absl::Status Close() override;
  // Unwrap sends close_notify, reads until the peer's (application data arriving meanwhile is
  // discarded), and returns the plain socket; this SslSocket is closed afterwards.
  absl::StatusOr<Socket> Unwrap(IoTimeout timeout = {});
  // KeyUpdate sends a TLS 1.3 KeyUpdate now (request_peer: ask the peer to update its keys too).
  // FailedPrecondition before the handshake or on TLS 1.2.
  absl::Status KeyUpdate(bool request_peer, IoTimeout timeout = {});

  // pending: decrypted bytes OpenSSL holds that RecvInto returns without a wait.
  size_t pending() const;
  // After the handshake: the ALPN protocol chosen ("" if none), the SNI name the client sent
  // (server side; "" if none), "TLSv1.3" / "TLSv1.2", the cipher suite's name, whether the
  // session was resumed, and the peer certificate's subject ("" if the peer sent none).
  std::string alpn_protocol() const;
  std::string server_name() const;
  std::string version() const;
  std::string cipher() const;
  bool session_reused() const;
  std::string peer_subject() const;

  // socket: the connection underneath (do not read or write it directly while TLS runs on it).
  Socket& socket() override { return socket_; }
  const std::shared_ptr<SslContext>& context() const { return context_; }
  // native: the SSL session, for what this class does not cover.
  SSL* native() const { return ssl_; }

 private:
  enum class Op { kHandshake, kRead, kWrite, kShutdown };
  SslSocket(Socket socket, std::shared_ptr<SslContext> context);
  absl::Status Setup(bool server, absl::string_view server_hostname);
  // Drive: runs `call` (an SSL_* call returning > 0 on success) until it succeeds, waiting on
  // WANT_READ / WANT_WRITE; returns its result, or 0 for a clean close_notify (reads), or the
  // error. `deadline` spans one public call.
  template <typename Call>
  absl::StatusOr<int> Drive(const char* operation, IoTimeout timeout,
                            std::optional<absl::Time>* deadline, Call&& call);
  absl::Status Error(const char* operation, int ssl_error);
  absl::Status ClosedError(const char* operation) const;
  absl::Status WaitFor(bool read, const char* operation, IoTimeout timeout,
                       std::optional<absl::Time>* deadline);

  friend struct SocketBioMethodHolder;
  static int BioRead(BIO* bio, char* data, int size);
  static int BioWrite(BIO* bio, const char* data, int size);
  static long BioCtrl(BIO* bio, int cmd, long num, void* ptr);

  Socket socket_;
  std::shared_ptr<SslContext> context_;
  SSL* ssl_ = nullptr;
  int sys_errno_ = 0;  // The errno of the BIO's last failed system call (not EAGAIN).
  bool write_shut_ = false;
  bool eof_ = false;   // The BIO read the end of the TCP stream.
  // The BIO's read / write saw EAGAIN during the current OpenSSL call (Drive parks only then).
  bool read_blocked_ = false;
  bool write_blocked_ = false;
  bool call_now_ = false;  // The current call has a zero timeout: the BIO always calls recv.
};

// CreateSslConnection: CreateConnection(host, port, timeout) (socket/resolve.h; `timeout` also
// becomes the socket's default), then a client session for `host` and its handshake within
// `timeout`. Errors: the connect's, then the handshake's.
absl::StatusOr<std::unique_ptr<SslSocket>> CreateSslConnection(
    absl::string_view host, uint16_t port, std::shared_ptr<SslContext> context,
    std::optional<absl::Duration> timeout = std::nullopt);

}  // namespace gevent

#endif  // GEVENT_SSL_SSL_SOCKET_H_
