#include "loadgen/report.h"

#include <csignal>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace loadgen {
namespace {

// A minimal JSON reader, enough to check that ToJson's output is well formed and to read it back.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  const Json& operator[](const std::string& key) const {
    static const Json missing;
    auto it = object.find(key);
    return it == object.end() ? missing : it->second;
  }
  bool has(const std::string& key) const { return object.count(key) != 0; }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : s_(text) {}

  // Parse returns false on any syntax error or trailing garbage.
  bool Parse(Json* out) {
    if (!Value(out)) return false;
    Space();
    return i_ == s_.size();
  }

 private:
  void Space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool Literal(const char* word) {
    const std::string w = word;
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  bool String(std::string* out) {
    if (s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) return false;  // Must be escaped.
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        switch (e) {
          case '"': c = '"'; break;
          case '\\': c = '\\'; break;
          case '/': c = '/'; break;
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case 't': c = '\t'; break;
          case 'b': c = '\b'; break;
          case 'f': c = '\f'; break;
          case 'u': {
            if (i_ + 4 > s_.size()) return false;
            c = static_cast<char>(std::stoi(s_.substr(i_, 4), nullptr, 16));
            i_ += 4;
            break;
          }
          default: return false;
        }
      }
      out->push_back(c);
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool Value(Json* out) {
    Space();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') {
      out->kind = Json::kObject;
      ++i_;
      Space();
      if (s_[i_] == '}') return ++i_, true;
      while (true) {
        Space();
        std::string key;
        if (!String(&key)) return false;
        Space();
        if (s_[i_++] != ':') return false;
        if (out->object.count(key) != 0) return false;  // Duplicate key.
        if (!Value(&out->object[key])) return false;
        Space();
        if (s_[i_] == ',') { ++i_; continue; }
        if (s_[i_] == '}') return ++i_, true;
        return false;
      }
    }
    if (c == '[') {
      out->kind = Json::kArray;
      ++i_;
      Space();
      if (s_[i_] == ']') return ++i_, true;
      while (true) {
        out->array.emplace_back();
        if (!Value(&out->array.back())) return false;
        Space();
        if (s_[i_] == ',') { ++i_; continue; }
        if (s_[i_] == ']') return ++i_, true;
        return false;
      }
    }
    if (c == '"') {
      out->kind = Json::kString;
      return String(&out->string);
    }
    if (Literal("null")) return out->kind = Json::kNull, true;
    if (Literal("true")) return out->kind = Json::kBool, out->boolean = true, true;
    if (Literal("false")) return out->kind = Json::kBool, true;
    // Number: JSON's grammar, checked by strtod plus a leading-character rule.
    if (c != '-' && !std::isdigit(static_cast<unsigned char>(c))) return false;
    const char* begin = s_.c_str() + i_;
    char* end = nullptr;
    out->number = std::strtod(begin, &end);
    if (end == begin) return false;
    out->kind = Json::kNumber;
    i_ += static_cast<std::size_t>(end - begin);
    return true;
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

Json ParseOrFail(const std::string& text) {
  Json j;
  JsonReader reader(text);
  EXPECT_TRUE(reader.Parse(&j)) << "not valid JSON:\n" << text;
  return j;
}

RunResult SampleResult() {
  RunResult r;
  r.server = "embedded";
  r.clients = 1000;
  r.client_threads = 1;
  r.server_threads = 1;
  r.message_size = 64;
  r.pipeline = 1;
  r.seconds = 2.0;
  r.messages = 200'000;
  r.bytes = 200'000 * 64;
  for (int i = 1; i <= 1000; ++i) r.latency.Record(i * 1000);  // 1..1000 us.
  r.switches = 800'000;
  r.loop_iterations = 9'000;
  r.callbacks_run = 1'000;
  r.ns_per_switch = 6.5;
  r.ns_per_yield = 60.0;
  r.client_cpu_seconds = 1.0;
  r.server_cpu_seconds = 0.9;
  r.connected_clients = 1000;
  r.errors[static_cast<int>(ErrorKind::kReset)] = 2;
  r.errors[static_cast<int>(ErrorKind::kMismatch)] = 1;
  for (int s = 1; s <= 2; ++s) {
    IntervalStats i;
    i.elapsed_s = s;
    i.seconds = 1;
    i.messages = 100'000;
    i.bytes = 6'400'000;
    i.p99_ns = 990'000;
    i.active_clients = 1000;
    r.series.push_back(i);
  }
  return r;
}

TEST(ReportTest, JsonHasTheRequiredKeysAndValues) {
  const Json j = ParseOrFail(ToJson(SampleResult()));
  ASSERT_EQ(j.kind, Json::kObject);
  EXPECT_DOUBLE_EQ(j["messages_per_second"].number, 100'000);
  const Json& lat = j["latency_us"];
  ASSERT_EQ(lat.kind, Json::kObject);
  for (const char* key : {"p50", "p90", "p99", "p999", "max"}) {
    EXPECT_EQ(lat[key].kind, Json::kNumber) << key;
  }
  EXPECT_NEAR(lat["p50"].number, 500, 500 * 0.01);
  EXPECT_NEAR(lat["p99"].number, 990, 990 * 0.01);
  EXPECT_DOUBLE_EQ(lat["max"].number, 1000);
  EXPECT_DOUBLE_EQ(j["switches_per_message"].number, 4.0);
  EXPECT_DOUBLE_EQ(j["loop_iterations"].number, 9000);
  EXPECT_DOUBLE_EQ(j["callbacks_run"].number, 1000);
  EXPECT_DOUBLE_EQ(j["ns_per_switch"].number, 6.5);
  EXPECT_DOUBLE_EQ(j["errors"].number, 3);
  EXPECT_DOUBLE_EQ(j["errors_by_kind"]["reset"].number, 2);
  EXPECT_DOUBLE_EQ(j["errors_by_kind"]["connect_refused"].number, 0);
  EXPECT_NEAR(j["client_cpu_us_per_message"].number, 5.0, 1e-9);
  ASSERT_EQ(j["series"].kind, Json::kArray);
  ASSERT_EQ(j["series"].array.size(), 2u);
  EXPECT_DOUBLE_EQ(j["series"].array[1]["elapsed_s"].number, 2);
  EXPECT_DOUBLE_EQ(j["series"].array[0]["messages_per_second"].number, 100'000);
  EXPECT_FALSE(j.has("uncorrected_latency_us"));  // Closed loop.
}

TEST(ReportTest, OpenLoopJsonCarriesTheUncorrectedLatency) {
  RunResult r = SampleResult();
  r.rate = 5000;
  r.uncorrected.Record(1000);
  const Json j = ParseOrFail(ToJson(r));
  EXPECT_DOUBLE_EQ(j["uncorrected_latency_us"]["max"].number, 1);
  EXPECT_DOUBLE_EQ(j["rate"].number, 5000);
}

// The protocol's settings are in the header and the JSON (null when the protocol has none), and
// the JSON carries the whole connect latency histogram, for `loadgen merge`.
TEST(ReportTest, ProtocolSettingsAndConnectHistogramAreReported) {
  RunResult r = SampleResult();
  r.protocol = "redis";
  r.ratio = "1:10";
  r.keyspace = 1000;
  r.value_size = 32;
  r.connects = 2;
  r.connect_latency.Record(40'000);
  r.connect_latency.Record(60'000);
  EXPECT_TRUE(absl::StrContains(FormatReport(r),
                                ", redis requests (SET:GET 1:10, 1000 keys, 32-byte values), "))
      << FormatReport(r);
  Json j = ParseOrFail(ToJson(r));
  EXPECT_EQ(j["protocol"].string, "redis");
  EXPECT_EQ(j["ratio"].string, "1:10");
  EXPECT_DOUBLE_EQ(j["keyspace"].number, 1000);
  EXPECT_DOUBLE_EQ(j["value_size"].number, 32);
  EXPECT_EQ(j["path"].kind, Json::kNull);
  ASSERT_EQ(j["connect_latency_histogram"].kind, Json::kObject);
  EXPECT_DOUBLE_EQ(j["connect_latency_histogram"]["count"].number, 2);
  EXPECT_DOUBLE_EQ(j["connect_latency_histogram"]["sum"].number, 100'000);
  EXPECT_EQ(j["connect_latency_histogram"]["buckets"].array.size(), 2u);

  r = SampleResult();
  r.protocol = "http";
  r.path = "/index.html";
  EXPECT_TRUE(absl::StrContains(FormatReport(r), ", http requests (GET /index.html), "))
      << FormatReport(r);
  j = ParseOrFail(ToJson(r));
  EXPECT_EQ(j["path"].string, "/index.html");
  EXPECT_EQ(j["ratio"].kind, Json::kNull);
  EXPECT_EQ(j["keyspace"].kind, Json::kNull);
  EXPECT_DOUBLE_EQ(j["connect_latency_histogram"]["count"].number, 0);
}

// A --rate far above what was reached says so in the text and the JSON.
TEST(ReportTest, MissedRateIsReportedAsAShareOfTheRateAsked) {
  RunResult r = SampleResult();  // 100,000 msg/s reached.
  r.rate = 1'000'000;
  const std::string text = FormatReport(r);
  EXPECT_TRUE(absl::StrContains(text, "rate                  100000 of 1000000 msg/s asked "
                                      "(10.0%) -- rate missed\n"))
      << text;
  const Json j = ParseOrFail(ToJson(r));
  EXPECT_DOUBLE_EQ(j["rate_asked"].number, 1'000'000);
  EXPECT_NEAR(j["rate_reached_share"].number, 0.1, 1e-9);
  EXPECT_EQ(j["rate_missed"].kind, Json::kBool);
  EXPECT_TRUE(j["rate_missed"].boolean);
}

TEST(ReportTest, ReachedRateIsNotMissed) {
  RunResult r = SampleResult();
  r.rate = 100'000;
  const std::string text = FormatReport(r);
  EXPECT_TRUE(absl::StrContains(text, "100000 of 100000 msg/s asked (100.0%)\n")) << text;
  EXPECT_FALSE(absl::StrContains(text, "rate missed")) << text;
  const Json j = ParseOrFail(ToJson(r));
  EXPECT_NEAR(j["rate_reached_share"].number, 1.0, 1e-9);
  EXPECT_FALSE(j["rate_missed"].boolean);
}

TEST(ReportTest, ClosedLoopHasNoRateLineAndNullRateFields) {
  const RunResult r = SampleResult();
  EXPECT_FALSE(absl::StrContains(FormatReport(r), "asked")) << FormatReport(r);
  const Json j = ParseOrFail(ToJson(r));
  EXPECT_EQ(j["rate_asked"].kind, Json::kNull);
  EXPECT_EQ(j["rate_reached_share"].kind, Json::kNull);
  EXPECT_FALSE(j["rate_missed"].boolean);
}

TEST(ReportTest, InterruptedRunIsMarkedInTextAndJson) {
  RunResult r = SampleResult();
  r.seconds_asked = 10;
  r.interrupted = true;
  r.signal = SIGTERM;
  const std::string text = FormatReport(r);
  EXPECT_TRUE(absl::StrContains(text, "\ninterrupted by SIGTERM after 2.00 s of 10.00 s measured\n"))
      << text;
  const Json j = ParseOrFail(ToJson(r));
  EXPECT_EQ(j["interrupted"].kind, Json::kBool);
  EXPECT_TRUE(j["interrupted"].boolean);
  EXPECT_EQ(j["signal"].string, "SIGTERM");
  EXPECT_DOUBLE_EQ(j["seconds"].number, 2);
  EXPECT_DOUBLE_EQ(j["seconds_asked"].number, 10);

  r.interrupted = false;
  r.signal = 0;
  EXPECT_FALSE(absl::StrContains(FormatReport(r), "interrupted"));
  const Json k = ParseOrFail(ToJson(r));
  EXPECT_FALSE(k["interrupted"].boolean);
  EXPECT_EQ(k["signal"].kind, Json::kNull);
}

TEST(ReportTest, ServerConnectionErrorsAreShownWhenKnown) {
  RunResult r = SampleResult();
  EXPECT_EQ(ParseOrFail(ToJson(r))["server_connection_errors"].kind, Json::kNull);
  r.server_connection_errors = 0;
  EXPECT_TRUE(absl::StrContains(FormatReport(r), "server                0 connection errors\n"));
  EXPECT_DOUBLE_EQ(ParseOrFail(ToJson(r))["server_connection_errors"].number, 0);
}

TEST(ReportTest, EmptyRunIsValidJsonWithNullsForUnknowns) {
  RunResult r;
  r.server = "127.0.0.1:1";
  const std::string text = ToJson(r);
  const Json j = ParseOrFail(text);
  EXPECT_EQ(j["series"].array.size(), 0u);
  EXPECT_EQ(j["server_cpu_us_per_message"].kind, Json::kNull);
  EXPECT_EQ(j["client_cpu_us_per_message"].kind, Json::kNull);
  EXPECT_DOUBLE_EQ(j["messages_per_second"].number, 0);
}

TEST(ReportTest, StringsAreEscaped) {
  const std::string nasty = "a\"b\\c\nd\te\x01" "f\x7f\xc3\xa9";
  EXPECT_EQ(JsonString(nasty), "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\xc3\xa9\"");
  RunResult r = SampleResult();
  r.server = nasty;
  const Json j = ParseOrFail(ToJson(r));
  EXPECT_EQ(j["server"].string, std::string("a\"b\\c\nd\te\x01" "f\x7f\xc3\xa9"));
}

TEST(ReportTest, ProgressLineShowsTheFigures) {
  IntervalStats s;
  s.elapsed_s = 3;
  s.seconds = 1;
  s.messages = 170'412;
  s.bytes = 170'412 * 64;
  s.p99_ns = 8'123'400;
  s.active_clients = 1000;
  s.errors = 4;
  const std::string line = FormatProgressLine(s);
  EXPECT_TRUE(absl::StrContains(line, "170412 msg/s")) << line;
  EXPECT_TRUE(absl::StrContains(line, "10.91 MB/s")) << line;
  EXPECT_TRUE(absl::StrContains(line, "p99    8123.4us")) << line;
  EXPECT_TRUE(absl::StrContains(line, "clients   1000")) << line;
  EXPECT_TRUE(absl::StrContains(line, "errors 4")) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// A warm-up line shows the time into the warm-up, never a negative time ("[-1.0s] warmup").
TEST(ReportTest, WarmupProgressLineShowsTheTimeIntoTheWarmup) {
  IntervalStats s;
  s.warmup = true;
  s.elapsed_s = -1;
  s.warmup_elapsed_s = 1;
  s.seconds = 1;
  const std::string line = FormatProgressLine(s);
  EXPECT_TRUE(absl::StartsWith(line, "[   1.0s] warmup ")) << line;
  EXPECT_EQ(line.find('-'), std::string::npos) << line;
}

TEST(ReportTest, FinalReportNamesEveryFigureAndErrorKind) {
  const std::string text = FormatReport(SampleResult());
  for (const char* part : {"200000 in 2.00 s", "100000 msg/s", "p99.9", "4.00 per message",
                           "6.5 ns per greenlet switch", "client                5.00 us",
                           "server                4.50 us", "errors                  3",
                           "reset 2", "mismatch 1", "4500 loop iterations/s, 500 callbacks/s"}) {
    EXPECT_TRUE(absl::StrContains(text, part)) << "missing \"" << part << "\" in\n" << text;
  }
}

TEST(ReportTest, WriteFileWritesAndReportsFailures) {
  const std::string path = std::string(testing::TempDir()) + "/report_test.json";
  ASSERT_TRUE(WriteFile(path, "{}\n").ok());
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  EXPECT_EQ(contents.str(), "{}\n");
  std::remove(path.c_str());
  const absl::Status s = WriteFile("/nonexistent-dir/x.json", "{}");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.message(), "/nonexistent-dir/x.json")) << s.message();
  EXPECT_TRUE(absl::StrContains(s.message(), "[ENOENT]")) << s.message();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
}

}  // namespace
}  // namespace loadgen
