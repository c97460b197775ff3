#include "loadgen/protocol.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/flags.h"

namespace loadgen {
namespace {

using gevent::FlagError;

// AppendNumber: decimal digits of v appended without a temporary string.
void AppendNumber(std::uint64_t v, std::string* out) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out->push_back(digits[--n]);
}

std::size_t NumberLength(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 10) v /= 10, ++n;
  return n;
}

Reply Malformed(std::size_t offset, const char* expected) {
  Reply r;
  r.state = ParseState::kMalformed;
  r.error_offset = offset;
  r.expected = expected;
  return r;
}

Reply Complete(std::size_t consumed) {
  Reply r;
  r.state = ParseState::kComplete;
  r.consumed = consumed;
  return r;
}

// ParseDecimal: a non-negative decimal of at most 18 digits (no sign); false otherwise.
bool ParseDecimal(absl::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

bool ParseHex(absl::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 15) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * 16 + static_cast<std::uint64_t>(d);
  }
  *out = v;
  return true;
}

bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (absl::EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

// Line: the line starting at `at` in `bytes`, ended by "\n" (a "\r" before it stripped). Returns
// false when no "\n" is there yet; *next is the offset after the "\n".
bool Line(absl::string_view bytes, std::size_t at, absl::string_view* line, std::size_t* next) {
  const std::size_t lf = bytes.find('\n', at);
  if (lf == absl::string_view::npos) return false;
  std::size_t end = lf;
  if (end > at && bytes[end - 1] == '\r') --end;
  *line = bytes.substr(at, end - at);
  *next = lf + 1;
  return true;
}

}  // namespace

absl::StatusOr<Protocol> ParseProtocol(absl::string_view text) {
  if (text == "echo") return Protocol::kEcho;
  if (text == "redis") return Protocol::kRedis;
  if (text == "http") return Protocol::kHttp;
  return FlagError("--protocol", text, "must be echo, redis or http");
}

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kEcho:
      return "echo";
    case Protocol::kRedis:
      return "redis";
    case Protocol::kHttp:
      return "http";
  }
  return "unknown";
}

absl::StatusOr<Ratio> ParseRatio(absl::string_view text) {
  const std::size_t colon = text.find(':');
  Ratio r;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(text.substr(0, colon), &r.sets) ||
      !absl::SimpleAtoi(text.substr(colon + 1), &r.gets) || r.sets < 0 || r.gets < 0 ||
      text.substr(0, colon).find_first_not_of("0123456789") != absl::string_view::npos ||
      text.substr(colon + 1).find_first_not_of("0123456789") != absl::string_view::npos) {
    return FlagError("--ratio", text, "must be SET:GET, two non-negative integers (e.g. 1:10)");
  }
  if (r.sets == 0 && r.gets == 0) return FlagError("--ratio", text, "must not be 0:0");
  return r;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseHeader(absl::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return FlagError("--header", text, "must be NAME:VALUE (no colon)");
  }
  const absl::string_view name = text.substr(0, colon);
  if (name.empty()) return FlagError("--header", text, "must be NAME:VALUE (empty name)");
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        std::strchr("!#$%&'*+-.^_`|~", c) == nullptr) {
      return FlagError("--header", text, "the name must be an HTTP token (letters, digits, -...)");
    }
  }
  if (text.find_first_of("\r\n") != absl::string_view::npos) {
    return FlagError("--header", text, "must not contain CR or LF");
  }
  return std::make_pair(std::string(name),
                        std::string(absl::StripAsciiWhitespace(text.substr(colon + 1))));
}

absl::Status CheckPath(absl::string_view path) {
  if (!absl::StartsWith(path, "/")) return FlagError("--path", path, "must start with '/'");
  if (path.find_first_of(" \r\n\t") != absl::string_view::npos) {
    return FlagError("--path", path, "must not contain spaces, tabs, CR or LF");
  }
  return absl::OkStatus();
}

// ----- Redis -----

RedisRequests::RedisRequests(Ratio ratio, std::uint64_t keyspace, std::size_t value_size,
                             std::uint64_t seed)
    : ratio_(ratio), keyspace_(std::max<std::uint64_t>(keyspace, 1)), rng_(seed | 1) {
  value_header_ = absl::StrCat("$", value_size, "\r\n");
  value_.assign(value_size, 'x');
  value_ += "\r\n";
}

RedisCommand RedisRequests::Append(std::uint64_t seq, std::string* out) {
  const std::uint64_t period = static_cast<std::uint64_t>(ratio_.sets) + ratio_.gets;
  const RedisCommand command =
      seq % period < static_cast<std::uint64_t>(ratio_.sets) ? RedisCommand::kSet : RedisCommand::kGet;
  // xorshift64*: a key per request, uniform over the keyspace.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  const std::uint64_t key = (rng_ * 0x2545F4914F6CDD1Dull) % keyspace_;
  const std::size_t key_len = 4 + NumberLength(key);
  if (command == RedisCommand::kSet) {
    out->append("*3\r\n$3\r\nSET\r\n$");
  } else {
    out->append("*2\r\n$3\r\nGET\r\n$");
  }
  AppendNumber(key_len, out);
  out->append("\r\nkey:");
  AppendNumber(key, out);
  out->append("\r\n");
  if (command == RedisCommand::kSet) {
    out->append(value_header_);
    out->append(value_);
  }
  return command;
}

Reply ParseRedisReply(absl::string_view bytes, RedisCommand command, std::size_t max_bytes) {
  if (bytes.empty()) return Reply();
  const char* const what = command == RedisCommand::kSet
                               ? "a RESP reply to SET (+OK or -error)"
                               : "a RESP reply to GET ($<length> bulk string, $-1 or -error)";
  const std::size_t crlf = bytes.find("\r\n");
  if (crlf == absl::string_view::npos) {
    if (bytes.size() > 64 * 1024) return Malformed(0, "a RESP line ended by CRLF within 64 KiB");
    // A type byte that can never start a valid reply is malformed at once.
    if (bytes[0] != '+' && bytes[0] != '-' && bytes[0] != '$') return Malformed(0, what);
    return Reply();
  }
  const absl::string_view line = bytes.substr(1, crlf - 1);
  switch (bytes[0]) {
    case '-': {
      Reply r = Complete(crlf + 2);
      r.outcome = Reply::kError;
      r.error_text = line;
      return r;
    }
    case '+':
      if (command == RedisCommand::kSet && line == "OK") return Complete(crlf + 2);
      return Malformed(0, what);
    case '$': {
      if (command != RedisCommand::kGet) return Malformed(0, what);
      if (line == "-1") {
        Reply r = Complete(crlf + 2);
        r.outcome = Reply::kMiss;
        return r;
      }
      std::uint64_t n = 0;
      if (!ParseDecimal(line, &n)) return Malformed(1, "a bulk length (digits, or -1)");
      if (n > max_bytes) return Malformed(1, "a bulk length within the reader's buffer (1 MiB)");
      const std::size_t total = crlf + 2 + static_cast<std::size_t>(n) + 2;
      if (bytes.size() < total) return Reply();
      if (bytes.substr(total - 2, 2) != "\r\n") return Malformed(total - 2, "CRLF after the bulk string");
      return Complete(total);
    }
    default:
      return Malformed(0, what);
  }
}

// ----- HTTP -----

std::string HttpRequest(absl::string_view path, absl::string_view host,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = absl::StrCat("GET ", path, " HTTP/1.1\r\n");
  bool have_host = false;
  for (const auto& [name, value] : headers) have_host |= absl::EqualsIgnoreCase(name, "host");
  if (!have_host) absl::StrAppend(&out, "Host: ", host, "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  out += "\r\n";
  return out;
}

Reply ParseHttpResponse(absl::string_view bytes, std::size_t max_bytes) {
  if (bytes.empty()) return Reply();
  absl::string_view line;
  std::size_t at = 0;
  // Status line: "HTTP/1.x NNN[ reason]".
  if (!Line(bytes, 0, &line, &at)) {
    const std::size_t n = std::min<std::size_t>(bytes.size(), 5);
    if (bytes.substr(0, n) != absl::string_view("HTTP/", n)) {
      return Malformed(0, "an HTTP/1.x status line");
    }
    if (bytes.size() > 8 * 1024) return Malformed(0, "a status line within 8 KiB");
    return Reply();
  }
  if (line.size() < 12 || !absl::StartsWith(line, "HTTP/1.") || line[8] != ' ' ||
      !absl::ascii_isdigit(static_cast<unsigned char>(line[9])) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(line[10])) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(line[11])) ||
      (line.size() > 12 && line[12] != ' ')) {
    return Malformed(0, "an HTTP/1.x status line (\"HTTP/1.1 200 OK\")");
  }
  const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status < 100 || status > 599) return Malformed(9, "a status code between 100 and 599");
  bool close = line[7] == '0';  // HTTP/1.0: closes unless keep-alive.
  bool chunked = false;
  bool have_length = false;
  std::uint64_t length = 0;
  // Headers up to an empty line.
  for (;;) {
    const std::size_t line_start = at;
    if (!Line(bytes, at, &line, &at)) {
      if (bytes.size() > max_bytes) return Malformed(line_start, "the end of the headers within 1 MiB");
      return Reply();
    }
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return Malformed(line_start, "a header line (NAME: VALUE)");
    }
    const absl::string_view name = line.substr(0, colon);
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (absl::EqualsIgnoreCase(name, "content-length")) {
      if (!ParseDecimal(value, &length)) return Malformed(line_start, "a decimal Content-Length");
      have_length = true;
    } else if (absl::EqualsIgnoreCase(name, "transfer-encoding")) {
      if (ContainsIgnoreCase(value, "chunked")) chunked = true;
    } else if (absl::EqualsIgnoreCase(name, "connection")) {
      if (ContainsIgnoreCase(value, "close")) close = true;
      if (ContainsIgnoreCase(value, "keep-alive")) close = false;
    }
  }
  Reply r;
  r.status = status;
  r.close = close;
  r.state = ParseState::kComplete;
  if (status < 200 || status == 204 || status == 304) {
    r.consumed = at;
    return r;
  }
  if (chunked) {
    for (;;) {
      const std::size_t size_start = at;
      if (!Line(bytes, at, &line, &at)) {
        if (bytes.size() > max_bytes) return Malformed(size_start, "a response within 1 MiB");
        return Reply();
      }
      const absl::string_view size_text = line.substr(0, line.find(';'));
      std::uint64_t size = 0;
      if (!ParseHex(absl::StripAsciiWhitespace(size_text), &size)) {
        return Malformed(size_start, "a hexadecimal chunk size");
      }
      if (size > max_bytes) return Malformed(size_start, "a chunk within 1 MiB");
      if (size == 0) break;
      const std::size_t end = at + static_cast<std::size_t>(size);
      if (bytes.size() < end + 2) {
        if (end > max_bytes) return Malformed(size_start, "a response within 1 MiB");
        return Reply();
      }
      if (bytes.substr(end, 2) != "\r\n") return Malformed(end, "CRLF after the chunk data");
      at = end + 2;
    }
    // Trailers, up to an empty line.
    for (;;) {
      if (!Line(bytes, at, &line, &at)) return Reply();
      if (line.empty()) break;
    }
    r.consumed = at;
    return r;
  }
  if (!have_length) {
    return Malformed(at, "a Content-Length or chunked body (a body to the end of the connection "
                         "is not supported)");
  }
  if (length > max_bytes) return Malformed(at, "a body within 1 MiB");
  if (bytes.size() < at + length) return Reply();
  r.consumed = at + static_cast<std::size_t>(length);
  return r;
}

std::string DescribeMalformed(const Reply& reply, absl::string_view bytes, std::uint64_t base) {
  absl::string_view got = bytes.substr(std::min(reply.error_offset, bytes.size()));
  got = got.substr(0, 40);
  std::string shown;
  for (char c : got) {
    if (c == '\r') {
      shown += "\\r";
    } else if (c == '\n') {
      shown += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      absl::StrAppend(&shown, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      shown += c;
    }
  }
  return absl::StrCat("malformed reply at byte ", base + reply.error_offset,
                      " of the connection's stream: expected ", reply.expected, ", got \"", shown,
                      "\"");
}

}  // namespace loadgen
