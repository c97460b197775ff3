// The load generator's request/reply protocols beyond echo: Redis (RESP SET/GET) and HTTP/1.1
// keep-alive GET. Pure formatting and parsing, so every rule is tested without a server.
//
// Requests are formatted into a caller-owned std::string that is cleared and reused (no
// allocation once it has grown to the largest request). Replies are parsed from the bytes a
// gevent::BufferedReader has buffered (Peek()): a parser looks at the buffered bytes without
// copying, and says the reply is incomplete (read more and parse again), complete (consume
// `consumed` bytes), or malformed (what was expected, at which offset of the bytes given).
//
// Redis. Key k is "key:<k>" (k uniform in 0..keyspace-1), values `value_size` bytes of 'x'. A SET
// reply must be +OK; a GET reply a bulk string ($<n> and n bytes) or nil ($-1: a miss). An error
// reply (-ERR ..., -WRONGTYPE ...) to either is a server error: counted, the connection kept.
//
// HTTP. GET only, HTTP/1.1 keep-alive; --pipeline requests in flight are HTTP/1.1 pipelining.
// The request is fixed for a run ("GET <path> HTTP/1.1", Host, the --header lines), built
// once. A response is a status line "HTTP/1.x NNN ...", headers up to an empty line (CRLF or LF
// line ends), and a body framed by Content-Length or chunked transfer coding (chunk extensions
// and trailers skipped); 1xx, 204 and 304 have none (the client counts an interim 1xx and reads
// on to the final response). A response with neither (a body to the end
// of the connection) is reported as malformed: a load generator needs framed responses. The
// whole response must fit the reader's buffer (1 MiB); larger is malformed too.
//
// Thread-compatible: values and pure functions.
#ifndef LOADGEN_PROTOCOL_H_
#define LOADGEN_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loadgen {

enum class Protocol { kEcho, kRedis, kHttp };

// ParseProtocol: "echo", "redis", "http"; InvalidArgument naming --protocol otherwise.
absl::StatusOr<Protocol> ParseProtocol(absl::string_view text);
const char* ProtocolName(Protocol p);

// Ratio: --ratio=SET:GET (memtier's flag).
struct Ratio {
  int sets = 1;
  int gets = 10;
};
// ParseRatio: "S:G" with S, G >= 0 integers, not both 0; InvalidArgument naming --ratio.
absl::StatusOr<Ratio> ParseRatio(absl::string_view text);

// ParseHeader: "NAME:VALUE" (spaces around VALUE trimmed); InvalidArgument naming --header
// without a colon, with an empty or invalid name, or with CR/LF in it.
absl::StatusOr<std::pair<std::string, std::string>> ParseHeader(absl::string_view text);
// CheckPath: starts with '/', no spaces, CR or LF; InvalidArgument naming --path.
absl::Status CheckPath(absl::string_view path);

// ----- Redis -----

enum class RedisCommand : std::uint8_t { kSet, kGet };

// RedisRequests: formats requests into a reused buffer.
class RedisRequests {
 public:
  RedisRequests(Ratio ratio, std::uint64_t keyspace, std::size_t value_size, std::uint64_t seed);
  // Append: request number `seq` of this client appended to *out; returns its command.
  RedisCommand Append(std::uint64_t seq, std::string* out);

 private:
  Ratio ratio_;
  std::uint64_t keyspace_;
  std::uint64_t rng_;
  std::string value_header_;  // "$<value_size>\r\n"
  std::string value_;         // value_size bytes, then "\r\n".
};

enum class ParseState : std::uint8_t { kIncomplete, kComplete, kMalformed };

// Reply: what a parser found.
struct Reply {
  ParseState state = ParseState::kIncomplete;
  std::size_t consumed = 0;  // kComplete: the reply's length.
  // kComplete: Redis: kOk (+OK / a bulk value), kMiss (nil), kError (text: the error line);
  // HTTP: status (100..599), close (Connection: close).
  enum Outcome : std::uint8_t { kOk, kMiss, kError } outcome = kOk;
  absl::string_view error_text;  // Redis error line without "-" (into the bytes given).
  int status = 0;
  bool close = false;
  // kMalformed: offset into the bytes given and what was expected (a static string).
  std::size_t error_offset = 0;
  const char* expected = "";
};

// ParseRedisReply: one reply to `command` at the start of `bytes`. max_bytes bounds a reply.
Reply ParseRedisReply(absl::string_view bytes, RedisCommand command,
                      std::size_t max_bytes = 1024 * 1024);

// ----- HTTP -----

// HttpRequest: "GET <path> HTTP/1.1\r\nHost: <host>\r\n<headers>\r\n".
std::string HttpRequest(absl::string_view path, absl::string_view host,
                        const std::vector<std::pair<std::string, std::string>>& headers);

// ParseHttpResponse: one response at the start of `bytes`.
Reply ParseHttpResponse(absl::string_view bytes, std::size_t max_bytes = 1024 * 1024);

// Describe: "expected X at byte N of the connection's stream, got "..."" for a malformed reply
// whose bytes started at stream offset `base` (allocates: for the error path only).
std::string DescribeMalformed(const Reply& reply, absl::string_view bytes, std::uint64_t base);

}  // namespace loadgen

#endif  // LOADGEN_PROTOCOL_H_
