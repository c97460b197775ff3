#include "loadgen/merge.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "loadgen/histogram.h"
#include "loadgen/run.h"

namespace loadgen {
namespace {

// ---- A small JSON reader: what ToJson writes, and any other well-formed JSON. ----

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  std::string text;  // kString: the decoded string; kNumber: the number as written.
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  const Json* Find(absl::string_view key) const {
    for (const auto& [k, v] : members) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    Json value;
    if (absl::Status s = ParseValue(value, 0); !s.ok()) return s;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the document");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 64;

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", what, " at offset ", pos_));
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' ||
            text_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Literal(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status ParseValue(Json& out, int depth) {
    if (depth > kMaxDepth) return Error("nested too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("expected a value");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out.kind = Json::kString;
      return ParseString(out.text);
    }
    if (Literal("null")) {
      out.kind = Json::kNull;
      return absl::OkStatus();
    }
    if (Literal("true") || Literal("false")) {
      out.kind = Json::kBool;
      out.boolean = text_[pos_ - 1] == 'e' && text_[pos_ - 2] == 'u';
      return absl::OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    return Error("expected a value");
  }

  absl::Status ParseNumber(Json& out) {
    const std::size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < text_.size() && absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) {
        ++pos_;
      }
      return pos_ > from;
    };
    if (!digits()) return Error("expected digits");
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Error("expected digits after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("expected exponent digits");
    }
    out.kind = Json::kNumber;
    out.text = std::string(text_.substr(start, pos_ - start));
    return absl::OkStatus();
  }

  absl::Status ParseString(std::string& out) {
    ++pos_;  // The opening quote.
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= text_.size()) return Error("unterminated string");
      const char e = text_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t code = 0;
          if (pos_ + 4 > text_.size()) return Error("short \\u escape");
          for (int i = 0; i < 4; ++i) {
            const char h = text_[pos_ + i];
            if (!absl::ascii_isxdigit(static_cast<unsigned char>(h))) {
              return Error("bad \\u escape");
            }
            code = code * 16 + static_cast<std::uint32_t>(
                                   h <= '9' ? h - '0' : absl::ascii_tolower(h) - 'a' + 10);
          }
          pos_ += 4;
          // UTF-8 (surrogate pairs are not combined: loadgen writes only \u00XX).
          if (code < 0x80) {
            out += static_cast<char>(code);
          } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
          }
          break;
        }
        default:
          pos_ -= 1;
          return Error("bad escape");
      }
    }
  }

  absl::Status ParseArray(Json& out, int depth) {
    out.kind = Json::kArray;
    ++pos_;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      out.items.emplace_back();
      if (absl::Status s = ParseValue(out.items.back(), depth + 1); !s.ok()) return s;
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      return Error("expected ',' or ']'");
    }
  }

  absl::Status ParseObject(Json& out, int depth) {
    out.kind = Json::kObject;
    ++pos_;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a key");
      std::string key;
      if (absl::Status s = ParseString(key); !s.ok()) return s;
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Error("expected ':'");
      ++pos_;
      Json value;
      if (absl::Status s = ParseValue(value, depth + 1); !s.ok()) return s;
      out.members.emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      return Error("expected ',' or '}'");
    }
  }

  absl::string_view text_;
  std::size_t pos_ = 0;
};

// ---- Typed field access, each error naming the field. ----

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("\"", field, "\": ", what));
}

absl::StatusOr<const Json*> Field(const Json& object, absl::string_view field) {
  const Json* v = object.Find(field);
  if (v == nullptr) return absl::InvalidArgumentError(absl::StrCat("no field \"", field, "\""));
  return v;
}

absl::StatusOr<std::uint64_t> AsUint(const Json& v, absl::string_view field) {
  std::uint64_t n = 0;
  if (v.kind != Json::kNumber || !absl::SimpleAtoi(v.text, &n)) {
    return FieldError(field, "not a non-negative integer");
  }
  return n;
}

absl::StatusOr<std::int64_t> AsInt(const Json& v, absl::string_view field) {
  std::int64_t n = 0;
  if (v.kind != Json::kNumber || !absl::SimpleAtoi(v.text, &n)) {
    return FieldError(field, "not an integer");
  }
  return n;
}

// AsDouble: a number; null reads as `null_value` when allowed.
absl::StatusOr<double> AsDouble(const Json& v, absl::string_view field, bool null_ok = false,
                                double null_value = 0) {
  if (v.kind == Json::kNull && null_ok) return null_value;
  double d = 0;
  if (v.kind != Json::kNumber || !absl::SimpleAtod(v.text, &d)) {
    return FieldError(field, "not a number");
  }
  return d;
}

#define LOADGEN_ASSIGN_OR_RETURN(lhs, expr) \
  do {                                      \
    auto status_or = (expr);                \
    if (!status_or.ok()) return status_or.status(); \
    lhs = *std::move(status_or);            \
  } while (0)

absl::StatusOr<std::uint64_t> GetUint(const Json& o, absl::string_view field) {
  const Json* v;
  LOADGEN_ASSIGN_OR_RETURN(v, Field(o, field));
  return AsUint(*v, field);
}

absl::StatusOr<std::int64_t> GetInt(const Json& o, absl::string_view field) {
  const Json* v;
  LOADGEN_ASSIGN_OR_RETURN(v, Field(o, field));
  return AsInt(*v, field);
}

absl::StatusOr<int> GetSmallInt(const Json& o, absl::string_view field) {
  std::int64_t n = 0;
  LOADGEN_ASSIGN_OR_RETURN(n, GetInt(o, field));
  if (n < INT32_MIN || n > INT32_MAX) return FieldError(field, "out of range");
  return static_cast<int>(n);
}

absl::StatusOr<double> GetDouble(const Json& o, absl::string_view field, bool null_ok = false,
                                 double null_value = 0) {
  const Json* v;
  LOADGEN_ASSIGN_OR_RETURN(v, Field(o, field));
  return AsDouble(*v, field, null_ok, null_value);
}

absl::StatusOr<Histogram> HistogramFromJson(const Json& v, absl::string_view field) {
  if (v.kind != Json::kObject) return FieldError(field, "not an object");
  Histogram::Serialized s;
  std::int64_t n = 0;
  LOADGEN_ASSIGN_OR_RETURN(n, GetInt(v, "version"));
  s.version = static_cast<int>(std::max<std::int64_t>(std::min<std::int64_t>(n, INT32_MAX), -1));
  if (s.version != Histogram::kSerialVersion) {
    return FieldError(field, absl::StrCat("histogram version ", n, ", this loadgen reads ",
                                          Histogram::kSerialVersion));
  }
  auto in_field = [&](absl::Status s) {
    return absl::InvalidArgumentError(absl::StrCat("\"", field, "\": ", s.message()));
  };
  absl::StatusOr<std::int64_t> bits = GetInt(v, "precision_bits");
  if (!bits.ok()) return in_field(bits.status());
  s.precision_bits = static_cast<int>(std::max<std::int64_t>(std::min<std::int64_t>(*bits, 1000), -1));
  for (auto [name, dest] : {std::pair<const char*, std::uint64_t*>{"bucket_count", &s.bucket_count},
                            {"count", &s.count},
                            {"min", &s.min},
                            {"max", &s.max},
                            {"rejected", &s.rejected}}) {
    absl::StatusOr<std::uint64_t> x = GetUint(v, name);
    if (!x.ok()) return in_field(x.status());
    *dest = *x;
  }
  absl::StatusOr<double> sum = GetDouble(v, "sum");
  if (!sum.ok()) return in_field(sum.status());
  s.sum = *sum;
  const Json* buckets = v.Find("buckets");
  if (buckets == nullptr || buckets->kind != Json::kArray) {
    return FieldError(field, "no \"buckets\" array");
  }
  s.buckets.reserve(buckets->items.size());
  for (const Json& pair : buckets->items) {
    if (pair.kind != Json::kArray || pair.items.size() != 2) {
      return FieldError(field, "a bucket is not an [index, count] pair");
    }
    absl::StatusOr<std::uint64_t> index = AsUint(pair.items[0], "buckets");
    absl::StatusOr<std::uint64_t> count = AsUint(pair.items[1], "buckets");
    if (!index.ok() || !count.ok()) {
      return FieldError(field, "a bucket is not an [index, count] pair of integers");
    }
    s.buckets.emplace_back(*index, *count);
  }
  absl::StatusOr<Histogram> h = Histogram::Import(s);
  if (!h.ok()) return in_field(h.status());
  return h;
}

int SignalNumber(absl::string_view name) {
  if (name == "SIGINT") return SIGINT;
  if (name == "SIGTERM") return SIGTERM;
  return 0;
}

absl::StatusOr<RunResult> ResultFromObject(const Json& j) {
  if (j.kind != Json::kObject) return absl::InvalidArgumentError("not a JSON object");
  const Json* version = j.Find("format_version");
  if (version == nullptr) {
    return absl::InvalidArgumentError(
        "no \"format_version\": not a loadgen --json result, or one written before results "
        "carried their histograms");
  }
  std::int64_t v = 0;
  LOADGEN_ASSIGN_OR_RETURN(v, AsInt(*version, "format_version"));
  if (v != kJsonFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("format_version ", v, ", this loadgen reads ", kJsonFormatVersion));
  }
  RunResult r;
  const Json* server;
  LOADGEN_ASSIGN_OR_RETURN(server, Field(j, "server"));
  if (server->kind != Json::kString) return FieldError("server", "not a string");
  r.server = server->text;
  LOADGEN_ASSIGN_OR_RETURN(r.clients, GetSmallInt(j, "clients"));
  LOADGEN_ASSIGN_OR_RETURN(r.client_threads, GetSmallInt(j, "client_threads"));
  LOADGEN_ASSIGN_OR_RETURN(r.server_threads, GetSmallInt(j, "server_threads"));
  LOADGEN_ASSIGN_OR_RETURN(r.message_size, GetSmallInt(j, "message_size"));
  LOADGEN_ASSIGN_OR_RETURN(r.pipeline, GetSmallInt(j, "pipeline"));
  LOADGEN_ASSIGN_OR_RETURN(r.rate, GetDouble(j, "rate"));
  LOADGEN_ASSIGN_OR_RETURN(r.seconds, GetDouble(j, "seconds"));
  LOADGEN_ASSIGN_OR_RETURN(r.seconds_asked, GetDouble(j, "seconds_asked"));
  const Json* interrupted;
  LOADGEN_ASSIGN_OR_RETURN(interrupted, Field(j, "interrupted"));
  if (interrupted->kind != Json::kBool) return FieldError("interrupted", "not a boolean");
  r.interrupted = interrupted->boolean;
  if (const Json* signal = j.Find("signal"); signal != nullptr && signal->kind == Json::kString) {
    r.signal = SignalNumber(signal->text);
  }
  LOADGEN_ASSIGN_OR_RETURN(r.messages, GetUint(j, "messages"));
  LOADGEN_ASSIGN_OR_RETURN(r.bytes, GetUint(j, "bytes"));
  const Json* latency;
  LOADGEN_ASSIGN_OR_RETURN(latency, Field(j, "latency_histogram"));
  LOADGEN_ASSIGN_OR_RETURN(r.latency, HistogramFromJson(*latency, "latency_histogram"));
  if (r.open_loop()) {
    const Json* uncorrected;
    LOADGEN_ASSIGN_OR_RETURN(uncorrected, Field(j, "uncorrected_latency_histogram"));
    LOADGEN_ASSIGN_OR_RETURN(r.uncorrected,
                             HistogramFromJson(*uncorrected, "uncorrected_latency_histogram"));
  }
  LOADGEN_ASSIGN_OR_RETURN(r.switches, GetUint(j, "switches"));
  LOADGEN_ASSIGN_OR_RETURN(r.ns_per_switch, GetDouble(j, "ns_per_switch", true, 0));
  LOADGEN_ASSIGN_OR_RETURN(r.ns_per_yield, GetDouble(j, "ns_per_yield", true, 0));
  LOADGEN_ASSIGN_OR_RETURN(r.loop_iterations, GetUint(j, "loop_iterations"));
  LOADGEN_ASSIGN_OR_RETURN(r.callbacks_run, GetUint(j, "callbacks_run"));
  LOADGEN_ASSIGN_OR_RETURN(r.client_cpu_seconds, GetDouble(j, "client_cpu_seconds"));
  LOADGEN_ASSIGN_OR_RETURN(r.server_cpu_seconds, GetDouble(j, "server_cpu_seconds", true, -1));
  LOADGEN_ASSIGN_OR_RETURN(r.connected_clients, GetInt(j, "connected_clients"));
  const Json* server_errors;
  LOADGEN_ASSIGN_OR_RETURN(server_errors, Field(j, "server_connection_errors"));
  if (server_errors->kind == Json::kNull) {
    r.server_connection_errors = -1;
  } else {
    LOADGEN_ASSIGN_OR_RETURN(r.server_connection_errors,
                             AsInt(*server_errors, "server_connection_errors"));
  }
  // The protocol, its settings, its counters and the connects.
  const Json* protocol;
  LOADGEN_ASSIGN_OR_RETURN(protocol, Field(j, "protocol"));
  if (protocol->kind != Json::kString) return FieldError("protocol", "not a string");
  if (protocol->text != "echo" && protocol->text != "redis" && protocol->text != "http") {
    return FieldError("protocol", absl::StrCat("unknown protocol \"", protocol->text,
                                               "\" (written by another loadgen version?)"));
  }
  r.protocol = protocol->text;
  for (auto [name, dest] : {std::pair<const char*, std::string*>{"ratio", &r.ratio},
                            {"path", &r.path},
                            {"first_server_error", &r.first_server_error},
                            {"first_malformed", &r.first_malformed}}) {
    const Json* v;
    LOADGEN_ASSIGN_OR_RETURN(v, Field(j, name));
    if (v->kind == Json::kString) {
      *dest = v->text;
    } else if (v->kind != Json::kNull) {
      return FieldError(name, "not a string or null");
    }
  }
  // keyspace and value_size: null when the protocol has none (read as 0).
  const Json* keyspace;
  LOADGEN_ASSIGN_OR_RETURN(keyspace, Field(j, "keyspace"));
  if (keyspace->kind != Json::kNull) {
    LOADGEN_ASSIGN_OR_RETURN(r.keyspace, AsInt(*keyspace, "keyspace"));
  }
  const Json* value_size;
  LOADGEN_ASSIGN_OR_RETURN(value_size, Field(j, "value_size"));
  if (value_size->kind != Json::kNull) {
    LOADGEN_ASSIGN_OR_RETURN(r.value_size, GetSmallInt(j, "value_size"));
  }
  LOADGEN_ASSIGN_OR_RETURN(r.connects, GetUint(j, "connects"));
  const Json* connect_latency;
  LOADGEN_ASSIGN_OR_RETURN(connect_latency, Field(j, "connect_latency_histogram"));
  LOADGEN_ASSIGN_OR_RETURN(r.connect_latency,
                           HistogramFromJson(*connect_latency, "connect_latency_histogram"));
  for (auto [key, dest] : {std::pair<const char*, Counts*>{"counts", &r.counts},
                           {"whole_run_counts", &r.whole_run}}) {
    const Json* counts;
    LOADGEN_ASSIGN_OR_RETURN(counts, Field(j, key));
    if (counts->kind != Json::kObject) return FieldError(key, "not an object");
    for (const auto& [name, count] : counts->members) {
      std::size_t k = 0;
      while (k < kCountCount && name != CountName(static_cast<Count>(k))) ++k;
      if (k == kCountCount) {
        return FieldError(key, absl::StrCat("unknown count \"", name,
                                            "\" (written by another loadgen version?)"));
      }
      LOADGEN_ASSIGN_OR_RETURN((*dest)[k], AsUint(count, key));
    }
  }
  const Json* by_kind;
  LOADGEN_ASSIGN_OR_RETURN(by_kind, Field(j, "errors_by_kind"));
  if (by_kind->kind != Json::kObject) return FieldError("errors_by_kind", "not an object");
  for (const auto& [name, count] : by_kind->members) {
    std::size_t k = 0;
    while (k < kErrorKindCount && name != ErrorKindName(static_cast<ErrorKind>(k))) ++k;
    if (k == kErrorKindCount) {
      return FieldError("errors_by_kind",
                        absl::StrCat("unknown error kind \"", name,
                                     "\" (written by another loadgen version?)"));
    }
    LOADGEN_ASSIGN_OR_RETURN(r.errors[k], AsUint(count, "errors_by_kind"));
  }
  return r;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open: ", std::strerror(errno)));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read: ", std::strerror(errno)));
  return s.str();
}

void PrintError(std::FILE* err, absl::string_view text) {
  std::fprintf(err, "loadgen merge: %s\n", std::string(text).c_str());
}

}  // namespace

absl::StatusOr<RunResult> ResultFromJson(absl::string_view text) {
  absl::StatusOr<Json> doc = JsonParser(text).ParseDocument();
  if (!doc.ok()) return doc.status();
  return ResultFromObject(*doc);
}

absl::StatusOr<RunResult> MergeResults(const std::vector<RunResult>& runs,
                                       const std::vector<std::string>& names) {
  if (runs.empty()) return absl::InvalidArgumentError("no run to merge");
  auto name = [&](std::size_t i) { return i < names.size() ? names[i] : absl::StrCat("run ", i); };
  RunResult m = runs[0];
  m.series.clear();
  std::vector<std::string> servers;
  for (absl::string_view part : absl::StrSplit(runs[0].server, ", ")) {
    if (std::find(servers.begin(), servers.end(), part) == servers.end()) {
      servers.emplace_back(part);
    }
  }
  int calibrated = runs[0].ns_per_switch > 0 ? 1 : 0;
  double ns_per_switch = runs[0].ns_per_switch > 0 ? runs[0].ns_per_switch : 0;
  double ns_per_yield = runs[0].ns_per_switch > 0 ? runs[0].ns_per_yield : 0;
  for (std::size_t i = 1; i < runs.size(); ++i) {
    const RunResult& r = runs[i];
    auto differs = [&](absl::string_view what, auto mine, auto first) {
      return absl::InvalidArgumentError(absl::StrCat(name(i), ": ", what, " ", mine, ", ", name(0),
                                                     " has ", first, "; runs merge only with the "
                                                     "same ", what));
    };
    if (r.message_size != runs[0].message_size) {
      return differs("message_size", r.message_size, runs[0].message_size);
    }
    if (r.pipeline != runs[0].pipeline) return differs("pipeline", r.pipeline, runs[0].pipeline);
    // The protocol and its settings: a SET count summed with another ratio's, or hits summed
    // over other keyspaces or paths, describe no load.
    if (r.protocol != runs[0].protocol) return differs("protocol", r.protocol, runs[0].protocol);
    if (r.ratio != runs[0].ratio) return differs("ratio", r.ratio, runs[0].ratio);
    if (r.keyspace != runs[0].keyspace) return differs("keyspace", r.keyspace, runs[0].keyspace);
    if (r.value_size != runs[0].value_size) {
      return differs("value_size", r.value_size, runs[0].value_size);
    }
    if (r.path != runs[0].path) return differs("path", r.path, runs[0].path);
    if (r.open_loop() != runs[0].open_loop()) {
      return differs("loop", r.open_loop() ? "open" : "closed",
                     runs[0].open_loop() ? "open" : "closed");
    }
    // A merged result's server is already a list: its parts count one by one.
    for (absl::string_view part : absl::StrSplit(r.server, ", ")) {
      if (std::find(servers.begin(), servers.end(), part) == servers.end()) {
        servers.emplace_back(part);
      }
    }
    m.clients += r.clients;
    m.client_threads += r.client_threads;
    m.server_threads += r.server_threads;
    m.rate += r.rate;
    m.seconds_asked = std::max(m.seconds_asked, r.seconds_asked);
    m.seconds = std::max(m.seconds, r.seconds);
    m.messages += r.messages;
    m.bytes += r.bytes;
    m.latency.Merge(r.latency);
    m.uncorrected.Merge(r.uncorrected);
    m.switches += r.switches;
    m.loop_iterations += r.loop_iterations;
    m.callbacks_run += r.callbacks_run;
    if (r.ns_per_switch > 0) {
      ++calibrated;
      ns_per_switch += r.ns_per_switch;
      ns_per_yield += r.ns_per_yield;
    }
    m.client_cpu_seconds += r.client_cpu_seconds;
    m.server_cpu_seconds = (m.server_cpu_seconds < 0 || r.server_cpu_seconds < 0)
                               ? -1
                               : m.server_cpu_seconds + r.server_cpu_seconds;
    m.connected_clients += r.connected_clients;
    for (std::size_t k = 0; k < kErrorKindCount; ++k) m.errors[k] += r.errors[k];
    for (std::size_t k = 0; k < kCountCount; ++k) {
      m.counts[k] += r.counts[k];
      m.whole_run[k] += r.whole_run[k];
    }
    m.connects += r.connects;
    m.connect_latency.Merge(r.connect_latency);
    if (m.first_server_error.empty()) m.first_server_error = r.first_server_error;
    if (m.first_malformed.empty()) m.first_malformed = r.first_malformed;
    m.server_connection_errors = (m.server_connection_errors < 0 || r.server_connection_errors < 0)
                                     ? -1
                                     : m.server_connection_errors + r.server_connection_errors;
    if (r.interrupted && !m.interrupted) {
      m.interrupted = true;
      m.signal = r.signal;
    }
  }
  m.server = absl::StrJoin(servers, ", ");
  m.ns_per_switch = calibrated > 0 ? ns_per_switch / calibrated : 0;
  m.ns_per_yield = calibrated > 0 ? ns_per_yield / calibrated : 0;
  return m;
}

std::string MergeUsageText() {
  return "usage: loadgen merge [--json=OUT] FILE.json...\n"
         "\n"
         "Merges the --json results of loadgen runs made in parallel (one per machine) into one\n"
         "report: latency histograms added bucket by bucket (exact percentiles of all samples),\n"
         "counts summed, throughput = total messages / the longest measured window.\n"
         "  --json=OUT  also write the merged result as JSON (same format: merges compose)\n"
         "Exit codes: 0 merged, no error counted; 1 the runs counted errors or no message;\n"
         "2 usage error; 3 an input file cannot be read or merged, or OUT is not writable.\n";
}

absl::StatusOr<MergeArgs> ParseMergeArgs(const std::vector<std::string>& args) {
  MergeArgs a;
  bool flags_done = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!flags_done && arg == "--") {
      flags_done = true;
    } else if (!flags_done && (arg == "--help" || arg == "-h" || arg == "-help")) {
      a.help = true;
    } else if (!flags_done && (absl::StartsWith(arg, "--json=") || absl::StartsWith(arg, "-json="))) {
      a.json_path = arg.substr(arg.find('=') + 1);
      if (a.json_path.empty()) {
        return absl::InvalidArgumentError("--json=: needs a file path");
      }
    } else if (!flags_done && (arg == "--json" || arg == "-json")) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError("--json: needs a file path");
      a.json_path = args[++i];
    } else if (!flags_done && absl::StartsWith(arg, "-") && arg != "-") {
      return absl::InvalidArgumentError(
          absl::StrCat(arg, ": unknown flag (merge takes --json=OUT and result files)"));
    } else {
      a.files.push_back(arg);
    }
  }
  if (a.files.empty() && !a.help) {
    return absl::InvalidArgumentError(
        "no input file (usage: loadgen merge [--json=OUT] FILE.json...)");
  }
  return a;
}

int MergeMain(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
  absl::StatusOr<MergeArgs> a = ParseMergeArgs(args);
  if (!a.ok()) {
    PrintError(err, a.status().message());
    return kExitUsage;
  }
  if (a->help) {
    std::fputs(MergeUsageText().c_str(), out);
    return kExitOk;
  }
  std::vector<RunResult> runs;
  runs.reserve(a->files.size());
  for (const std::string& file : a->files) {
    absl::StatusOr<std::string> text = ReadFile(file);
    if (!text.ok()) {
      PrintError(err, absl::StrCat(file, ": ", text.status().message()));
      return kExitBadInput;
    }
    if (text->empty()) {
      PrintError(err, absl::StrCat(file, ": empty file (the run did not finish?)"));
      return kExitBadInput;
    }
    absl::StatusOr<RunResult> r = ResultFromJson(*text);
    if (!r.ok()) {
      PrintError(err, absl::StrCat(file, ": ", r.status().message()));
      return kExitBadInput;
    }
    runs.push_back(*std::move(r));
  }
  absl::StatusOr<RunResult> merged = MergeResults(runs, a->files);
  if (!merged.ok()) {
    PrintError(err, merged.status().message());
    return kExitBadInput;
  }
  std::fprintf(out, "merged %zu run%s: %s\n", runs.size(), runs.size() == 1 ? "" : "s",
               absl::StrJoin(a->files, ", ").c_str());
  std::fputs(FormatReport(*merged).c_str(), out);
  std::fflush(out);
  if (!a->json_path.empty()) {
    if (absl::Status s = WriteFile(a->json_path, ToJson(*merged)); !s.ok()) {
      PrintError(err, absl::StrCat("--json=", a->json_path, ": ", s.message()));
      return kExitBadInput;
    }
  }
  const int code = ExitCodeFor(*merged);
  if (code != kExitOk) {
    PrintError(err, TotalErrors(merged->errors) > 0 ? "the runs counted errors (see the report)"
                                                    : "no message completed");
  }
  return code;
}

}  // namespace loadgen
