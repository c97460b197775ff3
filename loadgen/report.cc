#include "loadgen/report.h"

#include <cerrno>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/errno.h"

namespace loadgen {

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnectRefused:
      return "connect_refused";
    case ErrorKind::kConnectTimeout:
      return "connect_timeout";
    case ErrorKind::kConnectFailed:
      return "connect_failed";
    case ErrorKind::kReset:
      return "reset";
    case ErrorKind::kEof:
      return "eof";
    case ErrorKind::kShortEcho:
      return "short_echo";
    case ErrorKind::kMismatch:
      return "mismatch";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kIoFailed:
      return "io_failed";
    case ErrorKind::kMalformed:
      return "malformed";
    case ErrorKind::kServerError:
      return "server_error";
    case ErrorKind::kCount:
      break;
  }
  return "unknown";
}

const char* CountName(Count c) {
  switch (c) {
    case Count::kRequestsSent:
      return "requests_sent";
    case Count::kSetsSent:
      return "sets_sent";
    case Count::kGetsSent:
      return "gets_sent";
    case Count::kSets:
      return "sets";
    case Count::kGets:
      return "gets";
    case Count::kMisses:
      return "misses";
    case Count::kHttp1xx:
      return "http_1xx";
    case Count::kHttp2xx:
      return "http_2xx";
    case Count::kHttp3xx:
      return "http_3xx";
    case Count::kHttp4xx:
      return "http_4xx";
    case Count::kHttp5xx:
      return "http_5xx";
    case Count::kServerCloses:
      return "server_closes";
    case Count::kPlannedReconnects:
      return "planned_reconnects";
    case Count::kCount:
      break;
  }
  return "unknown";
}

std::uint64_t TotalErrors(const ErrorCounts& errors) {
  std::uint64_t total = 0;
  for (std::uint64_t n : errors) total += n;
  return total;
}

namespace {

double Micros(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

// JsonNumber: a JSON number, or null for NaN and infinities (JSON has neither).
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

// ExactNumber: the shortest of %.15g..%.17g that reads back as the same double.
std::string ExactNumber(double v) {
  if (!std::isfinite(v)) return "null";
  for (int precision = 15; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(text.c_str(), nullptr) == v) return text;
  }
  return absl::StrFormat("%.17g", v);
}

std::string LatencyJson(const Histogram& h) {
  return absl::StrCat("{\"p50\": ", JsonNumber(Micros(h.Percentile(50))),
                      ", \"p90\": ", JsonNumber(Micros(h.Percentile(90))),
                      ", \"p99\": ", JsonNumber(Micros(h.Percentile(99))),
                      ", \"p999\": ", JsonNumber(Micros(h.Percentile(99.9))),
                      ", \"max\": ", JsonNumber(Micros(h.max())),
                      ", \"mean\": ", JsonNumber(h.mean() / 1000.0),
                      ", \"count\": ", h.count(), "}");
}

const char* SignalName(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "a signal";
  }
}

std::string LatencyLine(absl::string_view label, const Histogram& h) {
  return absl::StrFormat(
      "  %-22s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f)\n", label,
      Micros(h.Percentile(50)), Micros(h.Percentile(90)), Micros(h.Percentile(99)),
      Micros(h.Percentile(99.9)), Micros(h.max()), h.mean() / 1000.0);
}

std::uint64_t C(const Counts& c, Count k) { return c[static_cast<std::size_t>(k)]; }

// ProtocolSection: the redis / http figures and the connects (empty for a plain echo run, whose
// report stays as it was).
std::string ProtocolSection(const RunResult& r) {
  std::string out;
  const Counts& c = r.counts;
  const double seconds = r.seconds > 0 ? r.seconds : 1;
  if (r.protocol == "redis") {
    out += "redis\n";
    absl::StrAppendFormat(&out, "  SET                   %d (%.0f /s)\n", C(c, Count::kSets),
                          C(c, Count::kSets) / seconds);
    absl::StrAppendFormat(&out, "  GET                   %d (%.0f /s), %d hits, %d misses\n",
                          C(c, Count::kGets) + C(c, Count::kMisses),
                          (C(c, Count::kGets) + C(c, Count::kMisses)) / seconds, C(c, Count::kGets),
                          C(c, Count::kMisses));
    absl::StrAppendFormat(&out, "  whole run             %d SETs and %d GETs sent\n",
                          C(r.whole_run, Count::kSetsSent), C(r.whole_run, Count::kGetsSent));
  } else if (r.protocol == "http") {
    out += "http\n";
    absl::StrAppendFormat(&out, "  responses             2xx %d, 3xx %d, 4xx %d, 5xx %d, 1xx (interim) %d\n",
                          C(c, Count::kHttp2xx), C(c, Count::kHttp3xx), C(c, Count::kHttp4xx),
                          C(c, Count::kHttp5xx), C(c, Count::kHttp1xx));
    // As wrk: final responses outside 200..399 (interim 1xx responses are not final).
    const std::uint64_t non = C(c, Count::kHttp4xx) + C(c, Count::kHttp5xx);
    if (non > 0) absl::StrAppendFormat(&out, "  Non-2xx or 3xx responses: %d\n", non);
    absl::StrAppendFormat(&out, "  server closes         %d (reconnected)\n",
                          C(c, Count::kServerCloses));
    absl::StrAppendFormat(&out, "  whole run             %d requests sent\n",
                          C(r.whole_run, Count::kRequestsSent));
  }
  if (r.protocol != "echo" || C(c, Count::kPlannedReconnects) > 0) {
    absl::StrAppendFormat(&out, "connects                %d (%.1f /s), %d planned reconnects\n",
                          r.connects, r.connects / seconds, C(c, Count::kPlannedReconnects));
    if (r.connect_latency.count() > 0) out += LatencyLine("connect (us)", r.connect_latency);
  }
  return out;
}

}  // namespace

std::string FormatProgressLine(const IntervalStats& s) {
  return absl::StrFormat("[%6.1fs]%s %8.0f msg/s %7.2f MB/s  p99 %9.1fus  clients %6d  errors %d",
                         s.warmup ? s.warmup_elapsed_s : s.elapsed_s, s.warmup ? " warmup" : "",
                         s.messages_per_second(),
                         s.megabytes_per_second(), Micros(s.p99_ns), s.active_clients, s.errors);
}

std::string FormatReport(const RunResult& r) {
  std::string out;
  absl::StrAppendFormat(&out, "loadgen: %d clients (%d client thread%s) -> %s", r.clients,
                        r.client_threads, r.client_threads == 1 ? "" : "s", r.server);
  if (r.server_threads > 0) {
    absl::StrAppendFormat(&out, " (%d server thread%s)", r.server_threads,
                          r.server_threads == 1 ? "" : "s");
  }
  const bool echo = r.protocol == "echo";
  if (echo) {
    absl::StrAppendFormat(&out, ", %d-byte messages", r.message_size);
  } else if (r.protocol == "redis") {
    absl::StrAppendFormat(&out, ", redis requests (SET:GET %s, %d keys, %d-byte values)", r.ratio,
                          r.keyspace, r.value_size);
  } else if (r.protocol == "http") {
    absl::StrAppendFormat(&out, ", http requests (GET %s)", r.path);
  } else {
    absl::StrAppendFormat(&out, ", %s requests", r.protocol);
  }
  absl::StrAppendFormat(&out, ", pipeline %d, %s\n", r.pipeline,
                        r.open_loop() ? absl::StrFormat("open loop at %.0f msg/s", r.rate)
                                      : std::string("closed loop"));
  if (r.interrupted) {
    absl::StrAppendFormat(&out, "interrupted by %s after %.2f s of %.2f s measured\n",
                          SignalName(r.signal), r.seconds, r.seconds_asked);
  }
  absl::StrAppendFormat(&out, "  messages              %d in %.2f s\n", r.messages, r.seconds);
  absl::StrAppendFormat(&out, "  throughput            %.0f msg/s, %.2f MB/s each way\n",
                        r.messages_per_second(), r.megabytes_per_second());
  if (r.open_loop()) {
    absl::StrAppendFormat(&out, "  rate                  %.0f of %.0f msg/s asked (%.1f%%)%s\n",
                          r.messages_per_second(), r.rate, 100 * r.rate_reached_share(),
                          r.rate_missed() ? " -- rate missed" : "");
  }
  out += "latency (us)\n";
  if (r.open_loop()) {
    out += LatencyLine("from intended send", r.latency);
    out += LatencyLine("from actual send", r.uncorrected);
  } else {
    out += LatencyLine(echo ? "send to echo" : "request to reply", r.latency);
  }
  out += "greenlets\n";
  absl::StrAppendFormat(&out, "  switches              %.0f /s, %.2f per message\n",
                        r.switches_per_second(), r.switches_per_message());
  absl::StrAppendFormat(&out,
                        "  switch cost           %.1f ns per greenlet switch (raw ping-pong), "
                        "%.1f ns per hub Sleep(0)\n",
                        r.ns_per_switch, r.ns_per_yield);
  absl::StrAppendFormat(&out, "  switching per message %.0f ns (switches per message x ns per switch)\n",
                        r.switches_per_message() * r.ns_per_switch);
  const double seconds = r.seconds > 0 ? r.seconds : 1;
  absl::StrAppendFormat(&out, "  client hubs           %.0f loop iterations/s, %.0f callbacks/s\n",
                        static_cast<double>(r.loop_iterations) / seconds,
                        static_cast<double>(r.callbacks_run) / seconds);
  out += "cpu per message\n";
  const double per_msg = r.messages > 0 ? 1e6 / static_cast<double>(r.messages) : 0;
  absl::StrAppendFormat(&out, "  client                %.2f us (%.2f s on %d thread%s)\n",
                        r.client_cpu_seconds * per_msg, r.client_cpu_seconds, r.client_threads,
                        r.client_threads == 1 ? "" : "s");
  if (r.server_cpu_seconds >= 0) {
    absl::StrAppendFormat(&out, "  server                %.2f us (%.2f s)\n",
                          r.server_cpu_seconds * per_msg, r.server_cpu_seconds);
  } else {
    out += "  server                not measured (external server)\n";
  }
  out += ProtocolSection(r);
  const std::uint64_t total_errors = TotalErrors(r.errors);
  absl::StrAppendFormat(&out, "errors                  %d", total_errors);
  if (total_errors > 0) {
    std::string sep = " (";
    for (std::size_t k = 0; k < kErrorKindCount; ++k) {
      if (r.errors[k] == 0) continue;
      absl::StrAppend(&out, sep, ErrorKindName(static_cast<ErrorKind>(k)), " ", r.errors[k]);
      sep = ", ";
    }
    out += ")";
  }
  absl::StrAppendFormat(&out, "; %d of %d clients connected at the end\n", r.connected_clients,
                        r.clients);
  if (r.server_connection_errors >= 0) {
    absl::StrAppendFormat(&out, "  server                %d connection errors\n",
                          r.server_connection_errors);
  }
  if (!r.first_server_error.empty()) {
    absl::StrAppendFormat(&out, "  first server error    %s\n", r.first_server_error);
  }
  if (!r.first_malformed.empty()) {
    absl::StrAppendFormat(&out, "  first malformed reply %s\n", r.first_malformed);
  }
  return out;
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string ToJson(const RunResult& r) {
  std::string out = "{\n";
  absl::StrAppend(&out, "  \"format_version\": ", kJsonFormatVersion, ",\n");
  absl::StrAppend(&out, "  \"server\": ", JsonString(r.server), ",\n");
  absl::StrAppend(&out, "  \"clients\": ", r.clients, ",\n");
  absl::StrAppend(&out, "  \"client_threads\": ", r.client_threads, ",\n");
  absl::StrAppend(&out, "  \"server_threads\": ", r.server_threads, ",\n");
  absl::StrAppend(&out, "  \"message_size\": ", r.message_size, ",\n");
  absl::StrAppend(&out, "  \"pipeline\": ", r.pipeline, ",\n");
  absl::StrAppend(&out, "  \"rate\": ", JsonNumber(r.rate), ",\n");
  absl::StrAppend(&out, "  \"seconds\": ", ExactNumber(r.seconds), ",\n");
  absl::StrAppend(&out, "  \"seconds_asked\": ", JsonNumber(r.seconds_asked), ",\n");
  absl::StrAppend(&out, "  \"interrupted\": ", r.interrupted ? "true" : "false", ",\n");
  absl::StrAppend(&out, "  \"signal\": ",
                  r.interrupted ? JsonString(SignalName(r.signal)) : std::string("null"), ",\n");
  absl::StrAppend(&out, "  \"rate_asked\": ",
                  r.open_loop() ? JsonNumber(r.rate) : std::string("null"), ",\n");
  absl::StrAppend(&out, "  \"rate_reached_share\": ",
                  r.open_loop() ? JsonNumber(r.rate_reached_share()) : std::string("null"), ",\n");
  absl::StrAppend(&out, "  \"rate_missed\": ", r.rate_missed() ? "true" : "false", ",\n");
  absl::StrAppend(&out, "  \"messages\": ", r.messages, ",\n");
  absl::StrAppend(&out, "  \"bytes\": ", r.bytes, ",\n");
  absl::StrAppend(&out, "  \"messages_per_second\": ", JsonNumber(r.messages_per_second()), ",\n");
  absl::StrAppend(&out, "  \"megabytes_per_second\": ", JsonNumber(r.megabytes_per_second()),
                  ",\n");
  absl::StrAppend(&out, "  \"latency_us\": ", LatencyJson(r.latency), ",\n");
  if (r.open_loop()) {
    absl::StrAppend(&out, "  \"uncorrected_latency_us\": ", LatencyJson(r.uncorrected), ",\n");
  }
  // The whole histograms, for `loadgen merge` (merge.h).
  absl::StrAppend(&out, "  \"latency_histogram\": ", r.latency.ToJson(), ",\n");
  if (r.open_loop()) {
    absl::StrAppend(&out, "  \"uncorrected_latency_histogram\": ", r.uncorrected.ToJson(), ",\n");
  }
  absl::StrAppend(&out, "  \"switches\": ", r.switches, ",\n");
  absl::StrAppend(&out, "  \"switches_per_second\": ", JsonNumber(r.switches_per_second()), ",\n");
  absl::StrAppend(&out, "  \"switches_per_message\": ", JsonNumber(r.switches_per_message()),
                  ",\n");
  absl::StrAppend(&out, "  \"ns_per_switch\": ", JsonNumber(r.ns_per_switch), ",\n");
  absl::StrAppend(&out, "  \"ns_per_yield\": ", JsonNumber(r.ns_per_yield), ",\n");
  absl::StrAppend(&out, "  \"loop_iterations\": ", r.loop_iterations, ",\n");
  absl::StrAppend(&out, "  \"callbacks_run\": ", r.callbacks_run, ",\n");
  const double per_msg = r.messages > 0 ? 1e6 / static_cast<double>(r.messages) : NAN;
  absl::StrAppend(&out, "  \"client_cpu_seconds\": ", ExactNumber(r.client_cpu_seconds),
                  ",\n");
  absl::StrAppend(&out, "  \"server_cpu_seconds\": ",
                  r.server_cpu_seconds >= 0 ? ExactNumber(r.server_cpu_seconds)
                                            : std::string("null"),
                  ",\n");
  absl::StrAppend(&out, "  \"client_cpu_us_per_message\": ",
                  JsonNumber(r.client_cpu_seconds * per_msg), ",\n");
  absl::StrAppend(&out, "  \"server_cpu_us_per_message\": ",
                  r.server_cpu_seconds >= 0 ? JsonNumber(r.server_cpu_seconds * per_msg)
                                            : std::string("null"),
                  ",\n");
  absl::StrAppend(&out, "  \"connected_clients\": ", r.connected_clients, ",\n");
  absl::StrAppend(&out, "  \"server_connection_errors\": ",
                  r.server_connection_errors >= 0 ? absl::StrCat(r.server_connection_errors)
                                                  : std::string("null"),
                  ",\n");
  absl::StrAppend(&out, "  \"protocol\": ", JsonString(r.protocol), ",\n");
  absl::StrAppend(&out, "  \"ratio\": ",
                  r.ratio.empty() ? std::string("null") : JsonString(r.ratio), ",\n");
  absl::StrAppend(&out, "  \"keyspace\": ",
                  r.keyspace > 0 ? absl::StrCat(r.keyspace) : std::string("null"), ",\n");
  absl::StrAppend(&out, "  \"value_size\": ",
                  r.value_size > 0 ? absl::StrCat(r.value_size) : std::string("null"), ",\n");
  absl::StrAppend(&out, "  \"path\": ", r.path.empty() ? std::string("null") : JsonString(r.path),
                  ",\n");
  absl::StrAppend(&out, "  \"connects\": ", r.connects, ",\n");
  absl::StrAppend(&out, "  \"connects_per_second\": ",
                  JsonNumber(r.seconds > 0 ? r.connects / r.seconds : 0), ",\n");
  absl::StrAppend(&out, "  \"connect_latency_us\": ", LatencyJson(r.connect_latency), ",\n");
  absl::StrAppend(&out, "  \"connect_latency_histogram\": ", r.connect_latency.ToJson(), ",\n");
  for (const auto& [key, counts] : {std::make_pair("counts", &r.counts),
                                    std::make_pair("whole_run_counts", &r.whole_run)}) {
    absl::StrAppend(&out, "  \"", key, "\": {");
    for (std::size_t k = 0; k < kCountCount; ++k) {
      absl::StrAppend(&out, k == 0 ? "" : ", ", JsonString(CountName(static_cast<Count>(k))), ": ",
                      (*counts)[k]);
    }
    out += "},\n";
  }
  absl::StrAppend(&out, "  \"first_server_error\": ",
                  r.first_server_error.empty() ? std::string("null") : JsonString(r.first_server_error),
                  ",\n");
  absl::StrAppend(&out, "  \"first_malformed\": ",
                  r.first_malformed.empty() ? std::string("null") : JsonString(r.first_malformed),
                  ",\n");
  absl::StrAppend(&out, "  \"errors\": ", TotalErrors(r.errors), ",\n");
  out += "  \"errors_by_kind\": {";
  for (std::size_t k = 0; k < kErrorKindCount; ++k) {
    absl::StrAppend(&out, k == 0 ? "" : ", ", JsonString(ErrorKindName(static_cast<ErrorKind>(k))),
                    ": ", r.errors[k]);
  }
  out += "},\n";
  out += "  \"series\": [";
  for (std::size_t i = 0; i < r.series.size(); ++i) {
    const IntervalStats& s = r.series[i];
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "    {\"elapsed_s\": ", JsonNumber(s.elapsed_s),
                    ", \"messages\": ", s.messages,
                    ", \"messages_per_second\": ", JsonNumber(s.messages_per_second()),
                    ", \"megabytes_per_second\": ", JsonNumber(s.megabytes_per_second()),
                    ", \"p50_us\": ", JsonNumber(Micros(s.p50_ns)),
                    ", \"p99_us\": ", JsonNumber(Micros(s.p99_ns)),
                    ", \"max_us\": ", JsonNumber(Micros(s.max_ns)),
                    ", \"active_clients\": ", s.active_clients, ", \"errors\": ", s.errors, "}");
  }
  out += r.series.empty() ? "]\n" : "\n  ]\n";
  out += "}\n";
  return out;
}

namespace {

// FileError: the failed stdio call's errno as a status; EIO if the call left errno 0 (a short
// fwrite need not set it), so that a failure is never an OK status.
absl::Status FileError(absl::string_view operation, absl::string_view where) {
  return gevent::ErrnoError(errno != 0 ? errno : EIO, operation, where);
}

}  // namespace

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "w"));
  if (!file) return FileError("cannot open", absl::StrCat(path, " for writing"));
  errno = 0;
  if (std::fwrite(contents.data(), 1, contents.size(), file.get()) != contents.size() ||
      std::fflush(file.get()) != 0) {
    return FileError("cannot write", path);
  }
  if (std::fclose(file.release()) != 0) return FileError("cannot close", path);
  return absl::OkStatus();
}

}  // namespace loadgen
