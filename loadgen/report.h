// The load generator's output: the per-second progress line, the final text report and the JSON
// document (--json), all computed from plain values so they are tested without running a load.
//
// Units: latencies are recorded in nanoseconds and printed in microseconds; MB/s is 10^6 bytes of
// payload per second in one direction (each message is sent once and echoed once). A "switch" is
// one greenlet::Greenlet switch counted by the client hubs, HubStats::switches(): a client greenlet
// parks (to the hub or straight to the next ready greenlet) or the hub wakes one. The first switch
// into a new greenlet and its final switch out when it ends are not counted (one each per
// connection, not per message).
//
// Thread-safety: everything here is thread-compatible (values and pure functions).
#ifndef LOADGEN_REPORT_H_
#define LOADGEN_REPORT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "loadgen/histogram.h"

namespace loadgen {

// ErrorKind: why a connection attempt or a message failed. Each error is counted once, under the
// first kind that applies; after any error the client closes its connection and makes a new one.
enum class ErrorKind : int {
  kConnectRefused,  // ECONNREFUSED on connect.
  kConnectTimeout,  // connect did not finish within --connect_timeout.
  kConnectFailed,   // any other connect or name-resolution failure.
  kReset,           // ECONNRESET / EPIPE while sending or receiving.
  kEof,             // the server closed the connection between two echoes.
  kShortEcho,       // the server closed the connection in the middle of an echo.
  kMismatch,        // echoed bytes differ from what was sent.
  kTimeout,         // no echo within --response_timeout.
  kIoFailed,        // any other send/recv error.
  kMalformed,       // redis/http: a reply that does not parse (the connection is re-made).
  kServerError,     // redis: an error reply (-ERR ...); the connection is kept.
  kCount,
};
inline constexpr std::size_t kErrorKindCount = static_cast<std::size_t>(ErrorKind::kCount);
using ErrorCounts = std::array<std::uint64_t, kErrorKindCount>;

// Count: what the redis and http protocols count besides messages (one array, summed like the
// errors). Sent counts cover the requests written; the others the replies parsed.
enum class Count : int {
  kRequestsSent,  // Every protocol: requests (messages) written.
  kSetsSent,      // redis
  kGetsSent,      // redis
  kSets,          // redis: +OK replies to SET.
  kGets,          // redis: GET replies with a value.
  kMisses,        // redis: nil GET replies.
  kHttp1xx,
  kHttp2xx,
  kHttp3xx,
  kHttp4xx,
  kHttp5xx,
  kServerCloses,  // http: the server closed a keep-alive connection (Connection: close, EOF or
                  // reset between responses); the client reconnected. Not an error.
  kPlannedReconnects,  // --requests_per_connection reached.
  kCount,
};
inline constexpr std::size_t kCountCount = static_cast<std::size_t>(Count::kCount);
using Counts = std::array<std::uint64_t, kCountCount>;
const char* CountName(Count c);

// ErrorKindName: the snake_case name used in the report and JSON ("connect_refused", ...).
const char* ErrorKindName(ErrorKind kind);
std::uint64_t TotalErrors(const ErrorCounts& errors);

// IntervalStats: one progress interval (normally one second).
struct IntervalStats {
  double elapsed_s = 0;   // Since the start of measurement at the end of the interval (negative
                          // during warm-up).
  double seconds = 0;     // Length of the interval.
  bool warmup = false;
  double warmup_elapsed_s = 0;  // Since the start of the warm-up: what the progress line shows
                                // for a warm-up interval (never a negative time).
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t p50_ns = 0;
  std::uint64_t p99_ns = 0;
  std::uint64_t max_ns = 0;
  std::int64_t active_clients = 0;  // Connected at the end of the interval.
  std::uint64_t errors = 0;         // Errors during the interval.

  double messages_per_second() const { return seconds > 0 ? messages / seconds : 0; }
  double megabytes_per_second() const { return seconds > 0 ? bytes / seconds / 1e6 : 0; }
};

// RunResult: everything the final report and the JSON say.
struct RunResult {
  // What ran.
  std::string server;  // "embedded" or the --target.
  int clients = 0;
  int client_threads = 0;
  int server_threads = 0;  // 0 with an external server.
  int message_size = 0;
  int pipeline = 0;
  double rate = 0;  // 0: closed loop.
  double seconds_asked = 0;  // --duration.

  // What was measured (the measured window only, warm-up excluded).
  double seconds = 0;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  Histogram latency;      // Closed loop: send to echo. Open loop: intended send time to echo.
  Histogram uncorrected;  // Open loop only: actual send to echo.
  std::uint64_t switches = 0;
  std::uint64_t loop_iterations = 0;  // Client hubs' event-loop polls (HubStats::polls).
  std::uint64_t callbacks_run = 0;    // Client hubs' scheduled callbacks (HubStats::callbacks_run).
  double ns_per_switch = 0;  // Calibration: raw greenlet::Greenlet ping-pong.
  double ns_per_yield = 0;   // Calibration: hub Sleep(0) ping-pong, per Sleep(0).
  double client_cpu_seconds = 0;
  double server_cpu_seconds = -1;  // Negative: not known (external server).
  std::int64_t connected_clients = 0;  // At the end of the run.
  ErrorCounts errors{};
  std::vector<IntervalStats> series;  // Measured intervals (warm-up ones are not kept).
  // Embedded server only: connections its handlers ended with an error (a reset...); -1 unknown.
  std::int64_t server_connection_errors = -1;
  // SIGINT / SIGTERM ended the run early (signal: its number, 0 if none); `seconds` is then the
  // measured time until the signal (0 if it came during the warm-up).
  bool interrupted = false;
  int signal = 0;

  // Protocols (protocol.h). "echo" prints as before; redis and http add their section.
  std::string protocol = "echo";
  // The protocol's settings, as the report header shows them (empty / 0 when the protocol has
  // none): runs merge only when they are equal (merge.h).
  std::string ratio;          // redis: --ratio as SET:GET, normalised ("1:10").
  std::int64_t keyspace = 0;  // redis: --keyspace.
  int value_size = 0;         // redis: --value_size.
  std::string path;           // http: --path.
  Counts counts{};           // Measured window.
  Counts whole_run{};        // The whole run (warm-up and end-of-run drain included): what a
                             // server's own counters (INFO commandstats, an access log) saw.
  std::uint64_t connects = 0;   // Connections made in the measured window.
  Histogram connect_latency;    // Their connect times (SYN to established).
  std::string first_server_error;  // redis: the first error reply's text.
  std::string first_malformed;     // The first malformed reply's description (with its offset).

  // Open loop: the rate reached as a share of the rate asked (0 for a closed loop), and whether
  // it fell short by more than kRateMissedShare.
  double rate_reached_share() const { return rate > 0 ? messages_per_second() / rate : 0; }
  bool rate_missed() const { return rate > 0 && rate_reached_share() < kRateMissedShare; }
  static constexpr double kRateMissedShare = 0.95;

  double messages_per_second() const { return seconds > 0 ? messages / seconds : 0; }
  double megabytes_per_second() const { return seconds > 0 ? bytes / seconds / 1e6 : 0; }
  double switches_per_second() const { return seconds > 0 ? switches / seconds : 0; }
  double switches_per_message() const {
    return messages > 0 ? static_cast<double>(switches) / messages : 0;
  }
  bool open_loop() const { return rate > 0; }
};

// FormatProgressLine: one line, no newline, e.g.
// "[  3.0s] 170412 msg/s  10.9 MB/s  p99 8123.4us  clients 1000  errors 0"; a warm-up interval
// shows the time since the start of the warm-up and " warmup" ("[  1.0s] warmup ...").
std::string FormatProgressLine(const IntervalStats& interval);

// FormatReport: the final multi-line report (ends with a newline). An interrupted run says so on
// its second line ("interrupted by SIGINT after 3.01 s of 10.00 s measured"); an open-loop run
// has a "rate" line, "41234 of 1000000 msg/s asked (4.1%)", followed by " -- rate missed" when
// below 95% of the rate asked (the exit code does not change, as with wrk2).
std::string FormatReport(const RunResult& result);

// kJsonFormatVersion: ToJson's "format_version"; `loadgen merge` reads only this version.
inline constexpr int kJsonFormatVersion = 1;

// ToJson: the result as one JSON object (ends with a newline). Keys: format_version,
// latency_histogram and uncorrected_latency_histogram (open loop) (Histogram::ToJson: the whole
// histogram, for `loadgen merge`, merge.h), bytes, client_cpu_seconds, server_cpu_seconds (null
// for an external server), messages_per_second,
// latency_us {p50, p90, p99, p999, max, mean}, uncorrected_latency_us (open loop), switches_per_message,
// ns_per_switch, loop_iterations, callbacks_run, errors (total), errors_by_kind, series [{elapsed_s, messages_per_second, ...}], and
// the run's parameters, interrupted (bool) and signal ("SIGINT", "SIGTERM" or null), rate_asked
// and rate_reached_share (null for a closed loop), rate_missed, server_connection_errors (null
// for an external server), protocol, ratio, keyspace, value_size, path (null when the protocol
// has no such setting), connects, connects_per_second, connect_latency_us,
// connect_latency_histogram (Histogram::ToJson, as latency_histogram), counts
// and whole_run_counts {requests_sent, sets_sent, ..., http_4xx, server_closes, ...},
// first_server_error and first_malformed (null when none). Non-finite numbers are written as null.
std::string ToJson(const RunResult& result);

// JsonString: `text` as a quoted JSON string (quotes, backslashes and control characters
// escaped; other bytes, UTF-8 included, copied as they are).
std::string JsonString(absl::string_view text);

// WriteFile writes `contents` to `path` (replacing it). Errors: gevent::ErrnoError's status,
// naming the step, the path and the errno (text and name; the code as base/errno.h maps it, e.g.
// NotFound for a missing directory, PermissionDenied, ResourceExhausted for a full disk).
absl::Status WriteFile(const std::string& path, absl::string_view contents);

}  // namespace loadgen

#endif  // LOADGEN_REPORT_H_
