// loadgen against real servers no one here wrote: Debian's redis-server and nginx, started by the
// test (monkey/testing/servers.h) on loopback TCP ports and stopped at its end.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "loadgen/config.h"
#include "loadgen/report.h"
#include "loadgen/run.h"
#include "monkey/testing/servers.h"

namespace loadgen {
namespace {

using gevent::testing::FreeLoopbackPort;
using gevent::testing::NginxServer;
using gevent::testing::RedisServer;

std::uint64_t Get(const Counts& c, Count k) { return c[static_cast<std::size_t>(k)]; }

Config ShortRun(Protocol protocol, int port) {
  Config c;
  c.protocol = ProtocolName(protocol);
  c.target = absl::StrCat("127.0.0.1:", port);
  c.clients = 20;
  c.duration = absl::Seconds(1);
  c.warmup = absl::Milliseconds(200);
  c.progress = false;
  return c;
}

RunOptions Quiet() {
  RunOptions o;
  o.calibrate = false;
  return o;
}

// RedisCommand: one inline command over a blocking TCP connection; the whole reply text.
std::string RedisCommand(int port, const std::string& command) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string line = command + "\r\n";
    if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
      char buf[65536];
      pollfd p{fd, POLLIN, 0};
      // INFO's reply is one bulk string: read until a pause.
      while (poll(&p, 1, out.empty() ? 5000 : 100) == 1) {
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  close(fd);
  return out;
}

// SetCalls: INFO commandstats' cmdstat_set calls.
std::uint64_t SetCalls(int port) {
  const std::string info = RedisCommand(port, "INFO commandstats");
  const std::size_t at = info.find("cmdstat_set:calls=");
  if (at == std::string::npos) return 0;
  const std::size_t start = at + std::string("cmdstat_set:calls=").size();
  std::uint64_t n = 0;
  EXPECT_TRUE(absl::SimpleAtoi(info.substr(start, info.find(',', start) - start), &n)) << info;
  return n;
}

std::unique_ptr<RedisServer> StartRedis() {
  absl::StatusOr<std::unique_ptr<RedisServer>> redis =
      RedisServer::Start(absl::Seconds(10), FreeLoopbackPort());
  EXPECT_TRUE(redis.ok()) << redis.status();
  return redis.ok() ? std::move(*redis) : nullptr;
}

std::unique_ptr<NginxServer> StartNginx() {
  absl::StatusOr<std::unique_ptr<NginxServer>> nginx = NginxServer::Start();
  EXPECT_TRUE(nginx.ok()) << nginx.status();
  return nginx.ok() ? std::move(*nginx) : nullptr;
}

TEST(RedisIntegrationTest, SetsCountedByTheServerEqualSetsSent) {
  std::unique_ptr<RedisServer> redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  Config c = ShortRun(Protocol::kRedis, redis->tcp_port());
  c.ratio = "1:1";
  c.pipeline = 4;
  c.keyspace = 1000;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_EQ(ExitCodeFor(*r), kExitOk);
  EXPECT_GT(Get(r->counts, Count::kSets), 0u);
  EXPECT_GT(Get(r->counts, Count::kGets) + Get(r->counts, Count::kMisses), 0u);
  EXPECT_EQ(r->messages, Get(r->counts, Count::kSets) + Get(r->counts, Count::kGets) +
                             Get(r->counts, Count::kMisses));
  EXPECT_EQ(Get(r->whole_run, Count::kSetsSent), SetCalls(redis->tcp_port()));
  const std::string report = FormatReport(*r);
  EXPECT_TRUE(absl::StrContains(report, "redis\n  SET")) << report;
}

TEST(RedisIntegrationTest, OpenLoopWithMissesAndReconnects) {
  std::unique_ptr<RedisServer> redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  Config c = ShortRun(Protocol::kRedis, redis->tcp_port());
  c.ratio = "0:1";  // GETs only, of keys that do not exist: every reply a miss.
  c.rate = 2000;
  c.requests_per_connection = 10;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_GT(Get(r->counts, Count::kMisses), 0u);
  EXPECT_EQ(Get(r->counts, Count::kGets), 0u);
  EXPECT_EQ(r->uncorrected.count(), r->messages);
  EXPECT_GT(Get(r->counts, Count::kPlannedReconnects), 0u);
  EXPECT_GT(r->connects, r->messages / 20);
  EXPECT_EQ(r->connect_latency.count(), r->connects);
  EXPECT_EQ(SetCalls(redis->tcp_port()), 0u);
}

TEST(RedisIntegrationTest, ErrorRepliesAreCountedWithTheirText) {
  std::unique_ptr<RedisServer> redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  // A key of another type: GET answers -WRONGTYPE (well-formed: counted, the connection kept).
  for (int k = 0; k < 5; ++k) RedisCommand(redis->tcp_port(), absl::StrCat("LPUSH key:", k, " x"));
  Config c = ShortRun(Protocol::kRedis, redis->tcp_port());
  c.ratio = "0:1";
  c.keyspace = 5;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->errors[static_cast<std::size_t>(ErrorKind::kServerError)], 0u);
  EXPECT_TRUE(absl::StartsWith(r->first_server_error, "WRONGTYPE")) << r->first_server_error;
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
  EXPECT_TRUE(absl::StrContains(FormatReport(*r), "first server error    WRONGTYPE"));
}

// RunKillingTheServer runs `c` for 2 s (1 s response timeout) and calls `kill` 0.7 s in, from
// another thread (the moment is picked, nothing waits on it); the run must end within 10 s.
absl::StatusOr<RunResult> RunKillingTheServer(Config c, const std::function<void()>& kill) {
  c.duration = absl::Seconds(2);
  c.response_timeout = absl::Seconds(1);
  std::thread killer([&kill] {
    absl::SleepFor(absl::Milliseconds(700));
    kill();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  killer.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  return r;
}

TEST(RedisIntegrationTest, ServerKilledMidRunGivesCountedErrorsInBoundedTime) {
  std::unique_ptr<RedisServer> redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  Config c = ShortRun(Protocol::kRedis, redis->tcp_port());
  absl::StatusOr<RunResult> r = RunKillingTheServer(c, [&redis] { redis->Kill(); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(TotalErrors(r->errors), 0u);
  EXPECT_GT(r->errors[static_cast<std::size_t>(ErrorKind::kConnectRefused)], 0u);
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
}

TEST(NginxIntegrationTest, RequestsLoggedByNginxEqualRequestsSent) {
  std::unique_ptr<NginxServer> nginx = StartNginx();
  ASSERT_NE(nginx, nullptr);
  Config c = ShortRun(Protocol::kHttp, nginx->port());
  c.pipeline = 2;
  c.headers = {"X-Loadgen: test"};
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_EQ(ExitCodeFor(*r), kExitOk);
  EXPECT_EQ(Get(r->counts, Count::kHttp2xx), r->messages);
  EXPECT_EQ(r->bytes / r->messages > 64, true);  // Headers and the 64-byte body.
  nginx->Stop();  // Flushes nothing (the log is unbuffered) but makes sure every line is there.
  EXPECT_EQ(Get(r->whole_run, Count::kRequestsSent), nginx->AccessLogLines());
  EXPECT_FALSE(absl::StrContains(FormatReport(*r), "Non-2xx"));
}

TEST(NginxIntegrationTest, MissingPathIsReportedAs4xxNotAsErrors) {
  std::unique_ptr<NginxServer> nginx = StartNginx();
  ASSERT_NE(nginx, nullptr);
  Config c = ShortRun(Protocol::kHttp, nginx->port());
  c.path = "/missing";
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_GT(Get(r->counts, Count::kHttp4xx), 0u);
  EXPECT_EQ(Get(r->counts, Count::kHttp2xx), 0u);
  const std::string report = FormatReport(*r);
  EXPECT_TRUE(absl::StrContains(report, absl::StrCat("Non-2xx or 3xx responses: ",
                                                     Get(r->counts, Count::kHttp4xx))))
      << report;
}

TEST(NginxIntegrationTest, RequestsPerConnectionReconnectsAndMeasuresConnects) {
  std::unique_ptr<NginxServer> nginx = StartNginx();
  ASSERT_NE(nginx, nullptr);
  Config c = ShortRun(Protocol::kHttp, nginx->port());
  c.requests_per_connection = 5;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_GE(r->connects + c.clients, r->messages / 5);  // + those made just before the window.
  EXPECT_GT(r->connect_latency.count(), 0u);
  const std::string json = ToJson(*r);
  EXPECT_TRUE(absl::StrContains(json, "\"connects_per_second\": ")) << json;
  EXPECT_TRUE(absl::StrContains(FormatReport(*r), "connect (us)"));
}

TEST(NginxIntegrationTest, ServerKilledMidRunGivesCountedErrors) {
  std::unique_ptr<NginxServer> nginx = StartNginx();
  ASSERT_NE(nginx, nullptr);
  Config c = ShortRun(Protocol::kHttp, nginx->port());
  absl::StatusOr<RunResult> r = RunKillingTheServer(c, [&nginx] { nginx->Kill(); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(TotalErrors(r->errors), 0u);
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
}

}  // namespace
}  // namespace loadgen
