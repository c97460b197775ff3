// loadgen merge: histograms serialised, read back and merged equal one histogram of all the
// samples (every bucket, count, percentile, min, max, mean); the other figures merge as merge.h
// says; every bad input is an error naming the problem (and the file, in MergeMain).
#include "loadgen/merge.h"

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "loadgen/histogram.h"
#include "loadgen/report.h"

namespace loadgen {
namespace {

// Samples: a deterministic long-tailed spread over ~9 decades of nanoseconds (exact buckets,
// wide buckets, and the top of the range), integers so that every sum is exact in a double.
std::vector<std::uint64_t> Samples(std::uint32_t seed, std::size_t n) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> spread(11.0, 2.5);
  std::vector<std::uint64_t> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    double v = spread(rng);
    if (v > 1e12) v = 1e12;
    out.push_back(static_cast<std::uint64_t>(v));
  }
  out.push_back(0);
  out.push_back(127);
  out.push_back(128);
  return out;
}

Histogram Record(const std::vector<std::uint64_t>& samples) {
  Histogram h;
  for (std::uint64_t v : samples) h.Record(v);
  return h;
}

RunResult MakeRun(const std::string& server, const Histogram& latency, std::uint64_t messages,
              double seconds) {
  RunResult r;
  r.server = server;
  r.clients = 10;
  r.client_threads = 1;
  r.server_threads = 1;
  r.message_size = 64;
  r.pipeline = 1;
  r.seconds_asked = 10;
  r.seconds = seconds;
  r.messages = messages;
  r.bytes = messages * 64;
  r.latency = latency;
  r.switches = 3 * messages;
  r.loop_iterations = messages;
  r.callbacks_run = 7;
  r.ns_per_switch = 40;
  r.ns_per_yield = 120;
  r.client_cpu_seconds = 1.5;
  r.server_cpu_seconds = 2.25;
  r.connected_clients = 10;
  r.server_connection_errors = 0;
  return r;
}

// Through the file format: ToJson, then ResultFromJson.
RunResult RoundTrip(const RunResult& r) {
  absl::StatusOr<RunResult> back = ResultFromJson(ToJson(r));
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : RunResult{};
}

// Every figure a report shows of a histogram, and its every bucket.
void ExpectSameHistogram(const Histogram& got, const Histogram& want) {
  EXPECT_EQ(got.count(), want.count());
  EXPECT_EQ(got.min(), want.min());
  EXPECT_EQ(got.max(), want.max());
  EXPECT_EQ(got.mean(), want.mean());
  EXPECT_EQ(got.rejected(), want.rejected());
  for (int tenth = 0; tenth <= 1000; ++tenth) {
    EXPECT_EQ(got.Percentile(tenth / 10.0), want.Percentile(tenth / 10.0)) << tenth / 10.0;
  }
  for (double p : {99.99, 99.999, 99.9999, 0.001}) {
    EXPECT_EQ(got.Percentile(p), want.Percentile(p)) << p;
  }
  EXPECT_EQ(got.Export().buckets, want.Export().buckets);
}

TEST(HistogramSerialTest, ExportImportIsExact) {
  const Histogram h = Record(Samples(1, 5000));
  absl::StatusOr<Histogram> back = Histogram::Import(h.Export());
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameHistogram(*back, h);
}

TEST(HistogramSerialTest, EmptyHistogramRoundTrips) {
  absl::StatusOr<Histogram> back = Histogram::Import(Histogram().Export());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->count(), 0u);
  EXPECT_EQ(Histogram().ToJson(),
            "{\"version\": 1, \"precision_bits\": 7, \"bucket_count\": 7424, \"count\": 0, "
            "\"min\": 0, \"max\": 0, \"sum\": 0, \"rejected\": 0, \"buckets\": []}");
}

TEST(HistogramSerialTest, ToJsonKeepsOnlyNonEmptyBuckets) {
  Histogram h;
  h.Record(5, 2);
  h.Record(1000);
  EXPECT_EQ(h.ToJson(),
            absl::StrCat("{\"version\": 1, \"precision_bits\": 7, \"bucket_count\": 7424, "
                         "\"count\": 3, \"min\": 5, \"max\": 1000, \"sum\": 1010, \"rejected\": 0, "
                         "\"buckets\": [[5, 2], [",
                         Histogram::BucketIndex(1000), ", 1]]}"));
}

TEST(HistogramSerialTest, ImportRejectsInconsistentInput) {
  const Histogram::Serialized good = Record({5, 1000, 70000}).Export();
  auto expect_error = [&](Histogram::Serialized s, absl::string_view text) {
    absl::StatusOr<Histogram> h = Histogram::Import(s);
    ASSERT_FALSE(h.ok());
    EXPECT_TRUE(absl::StrContains(h.status().message(), text)) << h.status();
  };
  Histogram::Serialized s = good;
  s.version = 2;
  expect_error(s, "histogram version 2, this loadgen reads 1");
  s = good;
  s.precision_bits = 5;
  expect_error(s, "bucket layout precision_bits 5");
  s = good;
  s.bucket_count = 100;
  expect_error(s, "bucket_count 100");
  s = good;
  s.count = 4;
  expect_error(s, "add up to 3, not count 4");
  s = good;
  s.buckets[1].first = Histogram::kBucketCount;
  expect_error(s, "out of range");
  s = good;
  std::swap(s.buckets[0], s.buckets[1]);
  expect_error(s, "not after");
  s = good;
  s.min = 900;
  expect_error(s, "disagree with its buckets");
  s = good;
  s.buckets[0].second = 0;
  expect_error(s, "bad count 0");
}

// The acceptance case: A and B serialised, read back and merged equal one histogram of A and B.
TEST(MergeTest, MergedHistogramEqualsTheHistogramOfAllSamples) {
  const std::vector<std::uint64_t> a = Samples(2, 20000);
  const std::vector<std::uint64_t> b = Samples(3, 7000);
  std::vector<std::uint64_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  const Histogram union_histogram = Record(all);

  const RunResult ra = RoundTrip(MakeRun("10.0.0.1:9000", Record(a), a.size(), 10.0));
  const RunResult rb = RoundTrip(MakeRun("10.0.0.1:9000", Record(b), b.size(), 10.0));
  absl::StatusOr<RunResult> m = MergeResults({ra, rb}, {"a.json", "b.json"});
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectSameHistogram(m->latency, union_histogram);
  EXPECT_EQ(m->latency.count(), all.size());
  // And again through the merged file (merges compose).
  ExpectSameHistogram(RoundTrip(*m).latency, union_histogram);
}

TEST(MergeTest, OpenLoopMergesBothHistograms) {
  const std::vector<std::uint64_t> a = Samples(4, 3000);
  const std::vector<std::uint64_t> b = Samples(5, 3000);
  const std::vector<std::uint64_t> ua = Samples(6, 3000);
  const std::vector<std::uint64_t> ub = Samples(7, 3000);
  RunResult ra = MakeRun("x:1", Record(a), a.size(), 5);
  RunResult rb = MakeRun("x:1", Record(b), b.size(), 5);
  ra.rate = 1000;
  rb.rate = 2000;
  ra.uncorrected = Record(ua);
  rb.uncorrected = Record(ub);
  absl::StatusOr<RunResult> m = MergeResults({RoundTrip(ra), RoundTrip(rb)}, {"a", "b"});
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<std::uint64_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::vector<std::uint64_t> uall = ua;
  uall.insert(uall.end(), ub.begin(), ub.end());
  ExpectSameHistogram(m->latency, Record(all));
  ExpectSameHistogram(m->uncorrected, Record(uall));
  EXPECT_DOUBLE_EQ(m->rate, 3000);  // The rates asked add up.
  EXPECT_TRUE(absl::StrContains(FormatReport(*m), "from actual send"));
}

TEST(MergeTest, CountsAddUpAndThroughputIsTotalOverTheLongestWindow) {
  RunResult a = MakeRun("10.0.0.1:9000", Record({1000, 2000}), 1000, 10.0);
  RunResult b = MakeRun("10.0.0.2:9000", Record({3000}), 500, 8.0);
  RunResult c = MakeRun("10.0.0.1:9000", Record({4000}), 250, 9.0);
  a.errors[static_cast<std::size_t>(ErrorKind::kReset)] = 2;
  b.errors[static_cast<std::size_t>(ErrorKind::kReset)] = 1;
  b.errors[static_cast<std::size_t>(ErrorKind::kTimeout)] = 4;
  b.ns_per_switch = 60;
  b.ns_per_yield = 180;
  c.ns_per_switch = 0;  // Not calibrated: left out of the mean.
  c.server_cpu_seconds = -1;
  b.interrupted = true;
  b.signal = SIGTERM;
  absl::StatusOr<RunResult> m =
      MergeResults({RoundTrip(a), RoundTrip(b), RoundTrip(c)}, {"a", "b", "c"});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->messages, 1750u);
  EXPECT_EQ(m->bytes, 1750u * 64);
  EXPECT_DOUBLE_EQ(m->seconds, 10.0);
  EXPECT_DOUBLE_EQ(m->messages_per_second(), 175.0);
  EXPECT_EQ(m->clients, 30);
  EXPECT_EQ(m->client_threads, 3);
  EXPECT_EQ(m->switches, 3u * 1750);
  EXPECT_EQ(m->errors[static_cast<std::size_t>(ErrorKind::kReset)], 3u);
  EXPECT_EQ(m->errors[static_cast<std::size_t>(ErrorKind::kTimeout)], 4u);
  EXPECT_EQ(TotalErrors(m->errors), 7u);
  EXPECT_DOUBLE_EQ(m->client_cpu_seconds, 4.5);
  EXPECT_LT(m->server_cpu_seconds, 0);  // One run did not measure it.
  EXPECT_DOUBLE_EQ(m->ns_per_switch, 50);
  EXPECT_DOUBLE_EQ(m->ns_per_yield, 150);
  EXPECT_EQ(m->server, "10.0.0.1:9000, 10.0.0.2:9000");
  EXPECT_TRUE(m->interrupted);
  EXPECT_EQ(m->signal, SIGTERM);
  EXPECT_TRUE(m->series.empty());
  const std::string report = FormatReport(*m);
  EXPECT_TRUE(absl::StrContains(report, "messages              1750 in 10.00 s")) << report;
  EXPECT_TRUE(absl::StrContains(report, "errors                  7 (reset 3, timeout 4)"))
      << report;
}

TEST(MergeTest, MergesCompose) {
  const RunResult a = MakeRun("a:1", Record(Samples(8, 2000)), 2003, 10);
  const RunResult b = MakeRun("b:1", Record(Samples(9, 2000)), 2003, 10);
  const RunResult c = MakeRun("c:1", Record(Samples(10, 2000)), 2003, 10);
  absl::StatusOr<RunResult> ab = MergeResults({a, b}, {});
  ASSERT_TRUE(ab.ok());
  absl::StatusOr<RunResult> ab_c = MergeResults({RoundTrip(*ab), c}, {});
  absl::StatusOr<RunResult> abc = MergeResults({a, b, c}, {});
  ASSERT_TRUE(ab_c.ok());
  ASSERT_TRUE(abc.ok());
  ExpectSameHistogram(ab_c->latency, abc->latency);
  EXPECT_EQ(ab_c->messages, abc->messages);
  EXPECT_EQ(ab_c->server, "a:1, b:1, c:1");
  EXPECT_EQ(FormatReport(*ab_c), FormatReport(*abc));
}

TEST(MergeTest, RunsThatDifferInShapeDoNotMerge) {
  const RunResult a = MakeRun("a:1", Record({1}), 1, 1);
  RunResult b = a;
  b.message_size = 128;
  absl::StatusOr<RunResult> m = MergeResults({a, b}, {"a.json", "b.json"});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            "b.json: message_size 128, a.json has 64; runs merge only with the same message_size");
  b = a;
  b.pipeline = 4;
  EXPECT_FALSE(MergeResults({a, b}, {"a", "b"}).ok());
  b = a;
  b.rate = 100;
  m = MergeResults({a, b}, {"a", "b"});
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::StrContains(m.status().message(), "b: loop open, a has closed")) << m.status();
  EXPECT_FALSE(MergeResults({}, {}).ok());
}

// ---- Protocols: redis and http runs merge their counters, connects and connect latency. ----

std::uint64_t Of(const Counts& c, Count k) { return c[static_cast<std::size_t>(k)]; }
std::uint64_t& At(ErrorCounts& e, ErrorKind k) { return e[static_cast<std::size_t>(k)]; }

// MakeProtocolRun: a run of `protocol` whose request latency is `latency`, whose connects took
// `connect_latency`, with every counter (measured window and whole run) a distinct multiple of
// `scale`, so that a wrong or missing sum shows.
RunResult MakeProtocolRun(const std::string& protocol, const Histogram& latency,
                          const Histogram& connect_latency, std::uint64_t scale) {
  RunResult r = MakeRun("10.0.0.5:6379", latency, latency.count(), 10.0);
  r.server_threads = 0;
  r.server_cpu_seconds = -1;
  r.server_connection_errors = -1;
  r.protocol = protocol;
  if (protocol == "redis") {
    r.ratio = "1:10";
    r.keyspace = 1000;
    r.value_size = 32;
  } else if (protocol == "http") {
    r.path = "/index.html";
  }
  for (std::size_t k = 0; k < kCountCount; ++k) {
    r.counts[k] = scale * (k + 1);
    r.whole_run[k] = scale * (k + 1) + 100 * (k + 1);
  }
  r.connects = connect_latency.count();
  r.connect_latency = connect_latency;
  At(r.errors, ErrorKind::kMalformed) = scale;
  At(r.errors, ErrorKind::kServerError) = 2 * scale;
  return r;
}

struct ProtocolMerge {
  RunResult a, b;
  Histogram latency_union, connect_union;
  absl::StatusOr<RunResult> merged;
};

// MergeTwo: two runs of `protocol` with their own request and connect latencies, each through
// the file format, merged.
ProtocolMerge MergeTwo(const std::string& protocol) {
  ProtocolMerge p;
  const std::vector<std::uint64_t> la = Samples(20, 6000), lb = Samples(21, 4000);
  std::vector<std::uint64_t> ca = Samples(22, 300), cb = Samples(23, 500);
  p.a = MakeProtocolRun(protocol, Record(la), Record(ca), 3);
  p.b = MakeProtocolRun(protocol, Record(lb), Record(cb), 1000);
  p.a.first_malformed = "";
  p.b.first_malformed = "HTTP/1.1 2x0: bad status at offset 9";
  p.a.first_server_error = "ERR wrong number of arguments";
  p.b.first_server_error = "ERR other";
  std::vector<std::uint64_t> all = la;
  all.insert(all.end(), lb.begin(), lb.end());
  p.latency_union = Record(all);
  ca.insert(ca.end(), cb.begin(), cb.end());
  p.connect_union = Record(ca);
  p.merged = MergeResults({RoundTrip(p.a), RoundTrip(p.b)}, {"a.json", "b.json"});
  return p;
}

void ExpectSummed(const ProtocolMerge& p, const RunResult& m) {
  for (std::size_t k = 0; k < kCountCount; ++k) {
    EXPECT_EQ(m.counts[k], p.a.counts[k] + p.b.counts[k]) << CountName(static_cast<Count>(k));
    EXPECT_EQ(m.whole_run[k], p.a.whole_run[k] + p.b.whole_run[k])
        << CountName(static_cast<Count>(k));
  }
  for (std::size_t k = 0; k < kErrorKindCount; ++k) {
    EXPECT_EQ(m.errors[k], p.a.errors[k] + p.b.errors[k])
        << ErrorKindName(static_cast<ErrorKind>(k));
  }
  EXPECT_EQ(m.connects, p.a.connects + p.b.connects);
  EXPECT_EQ(m.connects, p.connect_union.count());
  ExpectSameHistogram(m.latency, p.latency_union);
  ExpectSameHistogram(m.connect_latency, p.connect_union);
}

TEST(MergeProtocolTest, RedisRunsSumTheirCountersAndMergeBothHistogramsExactly) {
  ProtocolMerge p = MergeTwo("redis");
  ASSERT_TRUE(p.merged.ok()) << p.merged.status();
  const RunResult& m = *p.merged;
  EXPECT_EQ(m.protocol, "redis");
  EXPECT_EQ(m.ratio, "1:10");
  EXPECT_EQ(m.keyspace, 1000);
  EXPECT_EQ(m.value_size, 32);
  ExpectSummed(p, m);
  // The first run's first error that has one, in input order.
  EXPECT_EQ(m.first_server_error, "ERR wrong number of arguments");
  EXPECT_EQ(m.first_malformed, "HTTP/1.1 2x0: bad status at offset 9");
  // Merges compose: the merged file reads back with everything.
  const RunResult again = RoundTrip(m);
  ExpectSummed(p, again);
  EXPECT_EQ(again.protocol, "redis");
  EXPECT_EQ(again.ratio, "1:10");

  const std::string report = FormatReport(m);
  const std::uint64_t sets = Of(p.a.counts, Count::kSets) +
                             Of(p.b.counts, Count::kSets);
  const std::uint64_t hits = Of(p.a.counts, Count::kGets) +
                             Of(p.b.counts, Count::kGets);
  const std::uint64_t misses = Of(p.a.counts, Count::kMisses) +
                               Of(p.b.counts, Count::kMisses);
  const std::uint64_t sets_sent = Of(p.a.whole_run, Count::kSetsSent) +
                                  Of(p.b.whole_run, Count::kSetsSent);
  const std::uint64_t gets_sent = Of(p.a.whole_run, Count::kGetsSent) +
                                  Of(p.b.whole_run, Count::kGetsSent);
  const std::uint64_t planned = Of(p.a.counts, Count::kPlannedReconnects) +
                                Of(p.b.counts, Count::kPlannedReconnects);
  EXPECT_TRUE(absl::StrContains(
      report, "redis requests (SET:GET 1:10, 1000 keys, 32-byte values), pipeline 1, closed loop"))
      << report;
  EXPECT_FALSE(absl::StrContains(report, "-byte messages")) << report;
  EXPECT_FALSE(absl::StrContains(report, "send to echo")) << report;
  EXPECT_TRUE(absl::StrContains(report, "request to reply")) << report;
  EXPECT_TRUE(absl::StrContains(report, absl::StrCat("\nredis\n  SET                   ", sets,
                                                     " (")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, absl::StrCat(hits, " hits, ", misses, " misses")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, absl::StrCat("whole run             ", sets_sent,
                                                     " SETs and ", gets_sent, " GETs sent")))
      << report;
  // connects/s: total connects over the longest window (10 s), as throughput.
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrFormat("connects                %d (%.1f /s), %d planned reconnects",
                              m.connects, m.connects / 10.0, planned)))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "connect (us)")) << report;
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("(malformed ", 3 + 1000, ", server_error ", 2 * (3 + 1000), ")")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "first server error    ERR wrong number of arguments"))
      << report;
}

TEST(MergeProtocolTest, HttpRunsSumTheirStatusClassesAndServerCloses) {
  ProtocolMerge p = MergeTwo("http");
  ASSERT_TRUE(p.merged.ok()) << p.merged.status();
  const RunResult& m = *p.merged;
  EXPECT_EQ(m.protocol, "http");
  EXPECT_EQ(m.path, "/index.html");
  ExpectSummed(p, m);
  ExpectSummed(p, RoundTrip(m));
  auto sum = [&](Count k) {
    return Of(p.a.counts, k) + Of(p.b.counts, k);
  };
  const std::string report = FormatReport(m);
  EXPECT_TRUE(absl::StrContains(report, "http requests (GET /index.html), pipeline 1")) << report;
  EXPECT_FALSE(absl::StrContains(report, "send to echo")) << report;
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("\nhttp\n  responses             2xx ", sum(Count::kHttp2xx), ", 3xx ",
                           sum(Count::kHttp3xx), ", 4xx ", sum(Count::kHttp4xx), ", 5xx ",
                           sum(Count::kHttp5xx), ", 1xx (interim) ", sum(Count::kHttp1xx))))
      << report;
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("Non-2xx or 3xx responses: ", sum(Count::kHttp4xx) +
                                                             sum(Count::kHttp5xx))))
      << report;
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("server closes         ", sum(Count::kServerCloses), " (reconnected)")))
      << report;
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("whole run             ",
                           Of(p.a.whole_run, Count::kRequestsSent) +
                               Of(p.b.whole_run, Count::kRequestsSent),
                           " requests sent")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "connect (us)")) << report;
}

TEST(MergeProtocolTest, RunsOfAnotherProtocolOrSettingsDoNotMerge) {
  const RunResult redis = MakeProtocolRun("redis", Record({1}), Record({2}), 1);
  const RunResult http = MakeProtocolRun("http", Record({1}), Record({2}), 1);
  const RunResult echo = MakeRun("10.0.0.5:6379", Record({1}), 1, 10.0);
  auto refused = [](const RunResult& a, const RunResult& b) {
    absl::StatusOr<RunResult> m = MergeResults({RoundTrip(a), RoundTrip(b)}, {"a.json", "b.json"});
    EXPECT_FALSE(m.ok());
    return m.ok() ? std::string("merged") : std::string(m.status().message());
  };
  EXPECT_EQ(refused(redis, http),
            "b.json: protocol http, a.json has redis; runs merge only with the same protocol");
  EXPECT_EQ(refused(echo, redis),
            "b.json: protocol redis, a.json has echo; runs merge only with the same protocol");
  RunResult other = redis;
  other.ratio = "1:1";
  EXPECT_EQ(refused(redis, other),
            "b.json: ratio 1:1, a.json has 1:10; runs merge only with the same ratio");
  other = redis;
  other.keyspace = 5;
  EXPECT_TRUE(absl::StrContains(refused(redis, other), "b.json: keyspace 5, a.json has 1000"));
  other = redis;
  other.value_size = 4096;
  EXPECT_TRUE(absl::StrContains(refused(redis, other), "b.json: value_size 4096, a.json has 32"));
  other = http;
  other.path = "/other";
  EXPECT_TRUE(
      absl::StrContains(refused(http, other), "b.json: path /other, a.json has /index.html"));
  // Same settings merge.
  EXPECT_TRUE(MergeResults({redis, redis}, {"a", "b"}).ok());
}

void ExpectBadJson(const std::string& text, absl::string_view error) {
  absl::StatusOr<RunResult> r = ResultFromJson(text);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_TRUE(absl::StrContains(r.status().message(), error)) << r.status();
}

TEST(MergeTest, BadDocumentsAreRejectedWithTheProblem) {
  const std::string good = ToJson(MakeRun("a:1", Record({1, 500, 90000}), 3, 1));
  ASSERT_TRUE(ResultFromJson(good).ok());
  ExpectBadJson("", "not JSON: expected a value at offset 0");
  ExpectBadJson("hello", "not JSON: expected a value at offset 0");
  ExpectBadJson(good.substr(0, good.size() / 2), "not JSON");
  ExpectBadJson(good + "x", "not JSON: unexpected text after the document");
  ExpectBadJson("[1, 2]", "not a JSON object");
  ExpectBadJson(std::string(1000, '['), "nested too deep");
  ExpectBadJson("{\"messages\": 3}", "no \"format_version\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"format_version\": 1", "\"format_version\": 2"}}),
                "format_version 2, this loadgen reads 1");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"precision_bits\": 7", "\"precision_bits\": 5"}}),
                "\"latency_histogram\": histogram bucket layout precision_bits 5 / bucket_count "
                "7424, this loadgen's is 7 / 7424");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"version\": 1, ", "\"version\": 9, "}}),
                "histogram version 9");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"count\": 3, \"min\"", "\"count\": 4, \"min\""}}),
                "add up to 3, not count 4");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"bytes\": ", "\"bytes_\": "}}), "no field \"bytes\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"messages\": 3", "\"messages\": -3"}}),
                "\"messages\": not a non-negative integer");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"latency_histogram\"", "\"old_histogram\""}}),
                "no field \"latency_histogram\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"reset\": 0", "\"gremlins\": 0"}}),
                "unknown error kind \"gremlins\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"misses\": 0", "\"gremlins\": 0"}}),
                "\"counts\": unknown count \"gremlins\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"protocol\": \"echo\"", "\"protocol\": \"smtp\""}}),
                "\"protocol\": unknown protocol \"smtp\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"connect_latency_histogram\"", "\"x\""}}),
                "no field \"connect_latency_histogram\"");
  ExpectBadJson(absl::StrReplaceAll(good, {{"\"whole_run_counts\"", "\"x\""}}),
                "no field \"whole_run_counts\"");
}

// ---- MergeMain: arguments, files, exit codes. ----

std::string TempPath(const std::string& name) {
  return absl::StrCat(testing::TempDir(), "/merge_test_", name);
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct MainOutput {
  int code = -1;
  std::string out;
  std::string err;
};

MainOutput RunMain(const std::vector<std::string>& args) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  MainOutput r;
  r.code = MergeMain(args, out, err);
  for (auto [file, text] : {std::pair{out, &r.out}, std::pair{err, &r.err}}) {
    std::fflush(file);
    std::rewind(file);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) text->append(buf, n);
    std::fclose(file);
  }
  return r;
}

TEST(MergeMainTest, ParsesItsArguments) {
  absl::StatusOr<MergeArgs> a = ParseMergeArgs({"merge", "a.json", "--json=m.json", "b.json"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->files, (std::vector<std::string>{"a.json", "b.json"}));
  EXPECT_EQ(a->json_path, "m.json");
  a = ParseMergeArgs({"merge", "--json", "m.json", "--", "--odd-name.json"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->files, std::vector<std::string>{"--odd-name.json"});
  EXPECT_EQ(a->json_path, "m.json");
  EXPECT_TRUE(ParseMergeArgs({"merge", "--help"})->help);
}

TEST(MergeMainTest, UsageErrorsExit2) {
  MainOutput r = RunMain({"merge"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "loadgen merge: no input file (usage: loadgen merge [--json=OUT] FILE.json...)\n");
  EXPECT_EQ(r.out, "");
  r = RunMain({"merge", "--jsn=x", "a.json"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "loadgen merge: --jsn=x: unknown flag (merge takes --json=OUT and result files)\n");
  r = RunMain({"merge", "a.json", "--json="});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "loadgen merge: --json=: needs a file path\n");
  r = RunMain({"merge", "a.json", "--json"});
  EXPECT_EQ(r.code, kExitUsage);
  r = RunMain({"merge", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_TRUE(absl::StartsWith(r.out, "usage: loadgen merge")) << r.out;
}

TEST(MergeMainTest, InputErrorsExit3NamingTheFile) {
  const std::string good = TempPath("good.json");
  WriteText(good, ToJson(MakeRun("a:1", Record({1, 2, 3}), 3, 1)));
  const std::string missing = TempPath("missing.json");
  std::remove(missing.c_str());
  MainOutput r = RunMain({"merge", good, missing});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(r.err, absl::StrCat("loadgen merge: ", missing,
                                ": cannot open: No such file or directory\n"));
  EXPECT_EQ(r.out, "");  // Nothing is printed before every file is read.

  const std::string empty = TempPath("empty.json");
  WriteText(empty, "");
  r = RunMain({"merge", good, empty});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(r.err, absl::StrCat("loadgen merge: ", empty, ": empty file (the run did not finish?)\n"));

  const std::string text = TempPath("text.json");
  WriteText(text, "not json\n");
  r = RunMain({"merge", text, good});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(r.err, absl::StrCat("loadgen merge: ", text, ": not JSON: expected a value at offset 0\n"));

  const std::string v2 = TempPath("v2.json");
  WriteText(v2, absl::StrReplaceAll(ReadText(good), {{"\"format_version\": 1", "\"format_version\": 2"}}));
  r = RunMain({"merge", good, v2});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(r.err, absl::StrCat("loadgen merge: ", v2, ": format_version 2, this loadgen reads 1\n"));

  const std::string layout = TempPath("layout.json");
  WriteText(layout, absl::StrReplaceAll(ReadText(good), {{"\"bucket_count\": 7424", "\"bucket_count\": 3712"}}));
  r = RunMain({"merge", good, layout});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(absl::StartsWith(r.err, absl::StrCat("loadgen merge: ", layout,
                                                   ": \"latency_histogram\": histogram bucket "
                                                   "layout precision_bits 7 / bucket_count 3712")))
      << r.err;

  const std::string directory = testing::TempDir();
  r = RunMain({"merge", good, "--json=" + directory + "/no/such/dir/m.json"});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(absl::StrContains(r.err, "--json=" + directory + "/no/such/dir/m.json: "))
      << r.err;
}

TEST(MergeMainTest, PrintsOneReportAndWritesTheMergedJson) {
  const std::string a = TempPath("main_a.json");
  const std::string b = TempPath("main_b.json");
  const std::string m = TempPath("main_m.json");
  WriteText(a, ToJson(MakeRun("h:1", Record({1000, 2000, 3000}), 300, 2)));
  WriteText(b, ToJson(MakeRun("h:1", Record({4000}), 100, 2)));
  MainOutput r = RunMain({"merge", a, b, "--json=" + m});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(absl::StartsWith(r.out, absl::StrCat("merged 2 runs: ", a, ", ", b, "\nloadgen: 20 "
                                                   "clients (2 client threads) -> h:1")))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "messages              400 in 2.00 s")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "throughput            200 msg/s")) << r.out;
  absl::StatusOr<RunResult> merged = ResultFromJson(ReadText(m));
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->messages, 400u);
  EXPECT_EQ(merged->latency.count(), 4u);

  // Runs of another protocol do not merge: exit 3, the field named.
  WriteText(b, ToJson(MakeProtocolRun("redis", Record({4000}), Record({50000}), 1)));
  r = RunMain({"merge", a, b});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(r.err, absl::StrCat("loadgen merge: ", b, ": protocol redis, ", a,
                                " has echo; runs merge only with the same protocol\n"));
  EXPECT_EQ(r.out, "");

  // A run with errors merges, reports, and exits 1 as the run did.
  RunResult with_errors = MakeRun("h:1", Record({5}), 1, 1);
  with_errors.errors[static_cast<std::size_t>(ErrorKind::kEof)] = 1;
  WriteText(b, ToJson(with_errors));
  r = RunMain({"merge", a, b});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.out, "errors                  1 (eof 1)")) << r.out;
  EXPECT_EQ(r.err, "loadgen merge: the runs counted errors (see the report)\n");
}

}  // namespace
}  // namespace loadgen
