// gevent::Stream — a connected byte stream, plain or TLS, behind one interface.
//
// Code that talks a protocol (the echo handler, the load generator's clients, BufferedReader)
// is written once against Stream and runs over a plain TCP connection (SocketStream, below) or a
// TLS one (gevent::SslSocket in //ssl). The calls mean what Socket's calls of the same name mean
// (socket/socket.h): they park the calling greenlet, take an IoTimeout (the default: the
// underlying socket's own timeout), and report errors by the stack's rule (base/errors.h):
// timeouts are DeadlineExceeded, a reset peer Unavailable, a closed stream FailedPrecondition.
//
// Lifetime and thread-safety: as the Socket underneath — hub thread only, one reader and one
// writer greenlet at a time (a second waiter on a side throws ConcurrentObjectUseError).
#ifndef GEVENT_SOCKET_STREAM_H_
#define GEVENT_SOCKET_STREAM_H_

#include <sys/socket.h>

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "socket/io_timeout.h"
#include "socket/socket.h"

namespace gevent {

class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  virtual ~Stream() = default;

  // RecvInto reads up to buffer.size() bytes, parking until at least one is there. 0 means the
  // peer ended the stream cleanly (TLS: after its close_notify).
  virtual absl::StatusOr<size_t> RecvInto(absl::Span<char> buffer, IoTimeout timeout = {}) = 0;
  // SendAll writes all of `data` within one timeout. On error the stream should be considered
  // broken (nothing says how much went).
  virtual absl::Status SendAll(absl::string_view data, IoTimeout timeout = {}) = 0;
  // ShutdownWrite ends this side of the stream: TCP shutdown(SHUT_WR); TLS sends close_notify
  // (and does not wait for the peer's). Reading stays possible.
  virtual absl::Status ShutdownWrite(IoTimeout timeout = {}) = 0;
  // Close closes the connection at once (no close_notify); greenlets parked on it wake with the
  // close error. Closing twice is OK.
  virtual absl::Status Close() = 0;
  // socket: the connection underneath (for options, addresses, its default timeout).
  virtual Socket& socket() = 0;
};

// SocketStream: a Stream over a Socket the caller keeps alive (it does not own it).
class SocketStream final : public Stream {
 public:
  explicit SocketStream(Socket& socket) : socket_(socket) {}

  absl::StatusOr<size_t> RecvInto(absl::Span<char> buffer, IoTimeout timeout = {}) override {
    return socket_.RecvInto(buffer, timeout);
  }
  absl::Status SendAll(absl::string_view data, IoTimeout timeout = {}) override {
    return socket_.SendAll(data, timeout);
  }
  absl::Status ShutdownWrite(IoTimeout /*timeout*/ = {}) override {
    return socket_.Shutdown(SHUT_WR);
  }
  absl::Status Close() override { return socket_.Close(); }
  Socket& socket() override { return socket_; }

 private:
  Socket& socket_;
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_STREAM_H_
