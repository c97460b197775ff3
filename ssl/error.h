// OpenSSL's errors as absl::Status values (the stack's error rule, base/errors.h).
//
// OpenSSL reports a failure through a per-thread error queue (ERR_get_error) and, for an SSL
// call, SSL_get_error. SslError drains the queue and turns both into one status whose message
// names the operation and carries OpenSSL's reason text, e.g.
//   UNAVAILABLE: gevent::SslSocket::Handshake 127.0.0.1:4433: certificate verify failed:
//   self-signed certificate
// Codes: a peer that went away, reset, or broke the protocol (a bad record, "wrong version
// number", a failed verification, an alert) → Unavailable; bad local input (a file that does not
// exist or does not parse, a key that does not match its certificate) → InvalidArgument (NotFound
// for a missing file); out of memory → ResourceExhausted.
//
// The status carries the first OpenSSL error code of the queue as a payload (SslErrorCode reads
// it: ERR_GET_LIB / ERR_GET_REASON of it say what failed). IsSslUnexpectedEof says whether the
// status is OpenSSL 3's "unexpected eof while reading": the peer closed the TCP connection
// without sending close_notify (a truncation attack, or just a careless peer).
//
// Thread-safety: the error queue is per thread; call SslError on the thread of the failed call,
// right after it.
#ifndef GEVENT_SSL_ERROR_H_
#define GEVENT_SSL_ERROR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gevent {

// SslError: drains the calling thread's OpenSSL error queue into a status with `code` naming
// `operation` (and `where`, e.g. the peer address, if not empty). If the queue is empty,
// `fallback` is the cause text. Never returns OK.
absl::Status SslError(absl::StatusCode code, absl::string_view operation, absl::string_view where,
                      absl::string_view fallback = "unknown OpenSSL error");

// SslCallError: the status of a failed SSL_* call whose SSL_get_error gave `ssl_error`
// (SSL_ERROR_SSL, SSL_ERROR_SYSCALL, SSL_ERROR_ZERO_RETURN...); `sys_errno` is the errno of the
// system call under it (for SSL_ERROR_SYSCALL), 0 if none. Drains the error queue. Not for
// SSL_ERROR_WANT_READ / WANT_WRITE (the caller waits for those).
absl::Status SslCallError(int ssl_error, int sys_errno, absl::string_view operation,
                          absl::string_view where);

// SslErrorCode: the OpenSSL error code (ERR_get_error's packed value) carried by `status`, if
// any.
std::optional<uint64_t> SslErrorCode(const absl::Status& status);

// IsSslUnexpectedEof: the peer closed the connection without close_notify (see file comment).
bool IsSslUnexpectedEof(const absl::Status& status);

// ClearSslErrors: empties the calling thread's error queue (before an SSL call whose errors are
// read with SSL_get_error, as OpenSSL requires).
void ClearSslErrors();

}  // namespace gevent

#endif  // GEVENT_SSL_ERROR_H_
