#include "ssl/error.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/errno.h"

namespace gevent {
namespace {

constexpr char kCodePayload[] = "gevent.ssl/openssl-error";

// ReasonText: "<reason>" of one error, with OpenSSL's extra data (the verify result) appended.
std::string ReasonText(unsigned long code, const char* data, int flags) {
  if (ERR_SYSTEM_ERROR(code)) {
    std::string text = ErrnoText(ERR_GET_REASON(code));
    if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
      absl::StrAppend(&text, " (", data, ")");
    }
    return text;
  }
  const char* reason = ERR_reason_error_string(code);
  std::string text = reason != nullptr ? reason : absl::StrCat("OpenSSL error ", code);
  if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
    absl::StrAppend(&text, ": ", data);
  }
  return text;
}

std::string Prefix(absl::string_view operation, absl::string_view where) {
  return where.empty() ? std::string(operation) : absl::StrCat(operation, " ", where);
}

absl::StatusCode CodeFor(unsigned long code, absl::StatusCode fallback) {
  const int lib = ERR_GET_LIB(code);
  const int reason = ERR_GET_REASON(code);
  if (reason == ERR_R_MALLOC_FAILURE) return absl::StatusCode::kResourceExhausted;
  if (lib == ERR_LIB_SYS) {
    return reason == ENOENT ? absl::StatusCode::kNotFound : ErrnoCode(reason);
  }
  return fallback;
}

}  // namespace

void ClearSslErrors() { ERR_clear_error(); }

absl::Status SslError(absl::StatusCode code, absl::string_view operation, absl::string_view where,
                      absl::string_view fallback) {
  unsigned long first = 0;
  std::string text;
  for (;;) {
    const char* data = nullptr;
    int flags = 0;
    const unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags);
    if (e == 0) break;
    if (first == 0) {
      first = e;
      text = ReasonText(e, data, flags);
    } else if (text.size() < 512 && !ERR_SYSTEM_ERROR(first) && ERR_GET_LIB(e) != ERR_LIB_SYS) {
      absl::StrAppend(&text, " (then: ", ReasonText(e, data, flags), ")");
    }
  }
  if (first == 0) text = std::string(fallback);
  if (first != 0) code = CodeFor(first, code);
  absl::Status status(code, absl::StrCat(Prefix(operation, where), ": ", text));
  if (first != 0) status.SetPayload(kCodePayload, absl::Cord(absl::StrCat(first)));
  return status;
}

absl::Status SslCallError(int ssl_error, int sys_errno, absl::string_view operation,
                          absl::string_view where) {
  switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return absl::UnavailableError(
          absl::StrCat(Prefix(operation, where), ": the peer closed the TLS session (close_notify)"));
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        if (sys_errno != 0) return ErrnoError(sys_errno, operation, where);
        return absl::UnavailableError(
            absl::StrCat(Prefix(operation, where), ": unexpected eof while reading"));
      }
      return SslError(absl::StatusCode::kUnavailable, operation, where);
    case SSL_ERROR_SSL:
      return SslError(absl::StatusCode::kUnavailable, operation, where);
    default:
      return SslError(absl::StatusCode::kUnavailable, operation, where,
                      absl::StrCat("SSL_get_error ", ssl_error));
  }
}

std::optional<uint64_t> SslErrorCode(const absl::Status& status) {
  auto payload = status.GetPayload(kCodePayload);
  if (!payload.has_value()) return std::nullopt;
  uint64_t code = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

bool IsSslUnexpectedEof(const absl::Status& status) {
  std::optional<uint64_t> code = SslErrorCode(status);
  return code.has_value() && ERR_GET_LIB(*code) == ERR_LIB_SSL &&
         ERR_GET_REASON(*code) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

}  // namespace gevent
