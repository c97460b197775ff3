// In-process runs: a short load against the embedded echo server, an open-loop run, and runs
// against servers that misbehave (closes every connection, echoes wrong bytes, refuses). The
// assertions are about counts and kinds, never about timing.
#include "loadgen/run.h"

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "loadgen/config.h"
#include "socket/server.h"
#include "socket/socket.h"
#include "socket/testing.h"

namespace loadgen {
namespace {

Config ShortRun() {
  Config c;
  c.clients = 20;
  c.duration = absl::Seconds(1);
  c.warmup = absl::Milliseconds(200);
  c.connect_timeout = absl::Seconds(5);
  c.progress = false;
  return c;
}

std::uint64_t Errors(const RunResult& r, ErrorKind kind) {
  return r.errors[static_cast<std::size_t>(kind)];
}

RunOptions Quiet() {
  RunOptions o;
  o.calibrate = false;
  return o;
}

TEST(RunTest, ShortRunAgainstTheEmbeddedServerHasNoErrors) {
  Config c = ShortRun();
  c.client_threads = 2;
  RunOptions o;
  o.calibrate = true;
  absl::StatusOr<RunResult> r = RunLoad(c, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u);
  EXPECT_EQ(ExitCodeFor(*r), kExitOk);
  EXPECT_EQ(r->bytes, r->messages * 64);
  EXPECT_EQ(r->latency.count(), r->messages);
  EXPECT_GT(r->switches, 0u);
  EXPECT_GT(r->loop_iterations, 0u);
  EXPECT_GT(r->ns_per_switch, 0);
  EXPECT_GT(r->ns_per_yield, 0);
  EXPECT_EQ(r->connected_clients, 20);
  EXPECT_FALSE(r->series.empty());
  EXPECT_GE(r->server_cpu_seconds, 0);
}

TEST(RunTest, PipelinedRunWithOddMessageSizeHasNoErrors) {
  Config c = ShortRun();
  c.pipeline = 4;
  c.message_size = 1000;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u);
  EXPECT_EQ(r->bytes, r->messages * 1000);
}

TEST(RunTest, OpenLoopRecordsBothLatencies) {
  Config c = ShortRun();
  c.rate = 2000;
  c.pipeline = 2;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u);
  EXPECT_EQ(r->uncorrected.count(), r->messages);
  EXPECT_EQ(r->latency.count(), r->messages);
  // A message is never sent before it is due, so the corrected latency is the larger.
  EXPECT_GE(r->latency.max(), r->uncorrected.max());
}

// OneServerThread runs a gevent::MultiThreadServer with one thread and `handler`.
class MisbehavingServer {
 public:
  explicit MisbehavingServer(gevent::StreamHandler handler)
      : server_(gevent::SocketAddress::Loopback(0), std::move(handler), 1) {}
  absl::Status Start() { return server_.Start(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", server_.port()); }
  ~MisbehavingServer() { server_.Stop(absl::ZeroDuration()); }

 private:
  gevent::MultiThreadServer server_;
};

TEST(RunTest, ServerThatClosesConnectionsIsCountedAndFailsTheRun) {
  // Reads one message, then closes: every client sees end of stream.
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    char buf[64];
    conn.RecvInto(buf, sizeof buf).IgnoreError();
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kEof) + Errors(*r, ErrorKind::kReset), 0u);
  EXPECT_EQ(r->messages, 0u);
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
  EXPECT_LT(r->server_cpu_seconds, 0);  // External: not measured.
}

TEST(RunTest, ShortEchoIsCounted) {
  // Echoes half of the first message, then closes.
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    char buf[64];
    if (conn.RecvExactly(absl::MakeSpan(buf, sizeof buf)).ok()) {
      conn.SendAll(absl::string_view(buf, 32)).IgnoreError();
    }
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kShortEcho), 0u);
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
}

TEST(RunTest, WrongBytesAreAMismatch) {
  // Echoes every message with its first byte flipped.
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    char buf[64];
    while (conn.RecvExactly(absl::MakeSpan(buf, sizeof buf)).ok()) {
      buf[0] = static_cast<char>(buf[0] ^ 0x55);
      if (!conn.SendAll(absl::string_view(buf, sizeof buf)).ok()) return;
    }
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kMismatch), 0u);
  EXPECT_EQ(r->messages, 0u);
}

TEST(RunTest, SilentServerTimesOutAndTheRunStillEnds) {
  // Accepts and reads, never answers.
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    char buf[4096];
    while (true) {
      absl::StatusOr<std::size_t> n = conn.RecvInto(buf, sizeof buf);
      if (!n.ok() || *n == 0) return;
    }
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.target = server.target();
  c.response_timeout = absl::Milliseconds(100);
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kTimeout), 0u);
  EXPECT_EQ(r->messages, 0u);
}

TEST(RunTest, RefusedConnectionsAreCounted) {
  // A port that was just free: bind, read the port, close without listening.
  absl::StatusOr<gevent::Socket> probe = gevent::Socket::Create(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(probe.ok());
  ASSERT_TRUE(probe->Bind(gevent::SocketAddress::Loopback(0)).ok());
  const int port = probe->LocalAddress()->port();
  ASSERT_TRUE(probe->Close().ok());
  Config c = ShortRun();
  c.target = absl::StrCat("127.0.0.1:", port);
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kConnectRefused), 0u);
  EXPECT_EQ(r->connected_clients, 0);
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
}

// A name that does not resolve stops the run at start-up with the resolver's text (it used to
// retry for the whole run and never show it).
TEST(RunTest, UnresolvableHostFailsAtStartWithTheResolversMessage) {
  Config c = ShortRun();
  c.clients = 2;
  c.duration = absl::Seconds(30);
  c.target = "no-such-host.invalid:7";
  const absl::Time start = absl::Now();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "--target=no-such-host.invalid:7: "))
      << r.status();
  EXPECT_GT(r.status().message().size(), std::string("--target=no-such-host.invalid:7: ").size());
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

// No connection within --connect_timeout: the run stops then, with the reason, instead of
// retrying for the whole duration.
TEST(RunTest, DeadTargetStopsAfterTheConnectTimeout) {
  const int port = gevent::testing::RefusedPort();
  Config c = ShortRun();
  c.duration = absl::Seconds(30);
  c.connect_timeout = absl::Milliseconds(500);
  c.target = absl::StrCat("127.0.0.1:", port);
  const absl::Time start = absl::Now();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_TRUE(absl::StartsWith(r.status().message(),
                               absl::StrCat("no connection to 127.0.0.1:", port, " within 500ms: ")))
      << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "Connection refused")) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

// The end of a run drains the echoes and closes cleanly: the embedded server counts no
// connection error (it used to count a reset for nearly every client).
TEST(RunTest, EndOfRunClosesCleanlyWithoutServerErrors) {
  for (int pipeline : {1, 4}) {
    Config c = ShortRun();
    c.clients = 50;
    c.pipeline = pipeline;
    c.client_threads = 2;
    absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GT(r->messages, 0u);
    EXPECT_EQ(TotalErrors(r->errors), 0u);
    EXPECT_EQ(r->server_connection_errors, 0) << "pipeline " << pipeline;
  }
}

// The same with an open loop (clients between two sends wait in a read the stop can cancel).
TEST(RunTest, OpenLoopEndOfRunClosesCleanly) {
  Config c = ShortRun();
  c.rate = 100;  // One message per client per 0.2 s: most are waiting for the next send.
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(TotalErrors(r->errors), 0u);
  EXPECT_EQ(r->server_connection_errors, 0);
}

// A rate far above capacity is reported as missed (exit code unchanged).
TEST(RunTest, RateFarAboveCapacityIsReportedMissed) {
  Config c = ShortRun();
  c.clients = 4;
  c.rate = 1e9;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->rate_missed());
  EXPECT_LT(r->rate_reached_share(), 0.5);
  EXPECT_TRUE(absl::StrContains(FormatReport(*r), "rate missed")) << FormatReport(*r);
}

// Reads one request (whatever one recv gives), then answers with `reply`; false when the client
// has gone.
bool Answer(gevent::Socket& conn, absl::string_view reply) {
  char buf[4096];
  absl::StatusOr<std::size_t> n = conn.RecvInto(buf, sizeof buf);
  return n.ok() && *n > 0 && conn.SendAll(reply).ok();
}

TEST(RunTest, MalformedRedisReplyIsCountedAndNamesTheOffset) {
  // +OK to the first SET, then a line that is no RESP reply.
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    if (!Answer(conn, "+OK\r\n") || !Answer(conn, "HELLO\r\n")) return;
    char buf[4096];
    while (conn.RecvInto(buf, sizeof buf).value_or(0) > 0) {
    }
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.protocol = "redis";
  c.ratio = "1:0";
  c.clients = 4;
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kMalformed), 0u);
  EXPECT_EQ(r->first_malformed,
            "malformed reply at byte 5 of the connection's stream: expected a RESP reply to SET "
            "(+OK or -error), got \"HELLO\\r\\n\"");
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
  EXPECT_TRUE(absl::StrContains(FormatReport(*r), "first malformed reply malformed reply at byte 5"))
      << FormatReport(*r);
}

TEST(RunTest, HttpServerThatClosesIsReconnectedAndCountedNotAnError) {
  // One response with Connection: close per connection (HTTP/1.1 pipelining is off: pipeline 1).
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    Answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.protocol = "http";
  c.clients = 4;
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(r->counts[static_cast<std::size_t>(Count::kHttp2xx)], r->messages);
  EXPECT_GT(r->counts[static_cast<std::size_t>(Count::kServerCloses)], 0u);
  EXPECT_GE(r->connects + c.clients, r->messages);
}

TEST(RunTest, HttpServerThatClosesBeforeAnyResponseIsAnError) {
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    char buf[4096];
    conn.RecvInto(buf, sizeof buf).IgnoreError();
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.protocol = "http";
  c.clients = 2;
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Errors(*r, ErrorKind::kEof) + Errors(*r, ErrorKind::kReset), 0u);
  EXPECT_EQ(ExitCodeFor(*r), kExitRunErrors);
}

TEST(RunTest, EchoWithRequestsPerConnectionReconnects) {
  Config c = ShortRun();
  c.requests_per_connection = 3;
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  // Connections made just before the window may complete requests inside it.
  EXPECT_GE(r->connects + c.clients, r->messages / 3);
  EXPECT_GT(r->counts[static_cast<std::size_t>(Count::kPlannedReconnects)], 0u);
}

TEST(RunTest, HttpInterimResponsesAreCountedAndTheFinalOneCompletesTheRequest) {
  MisbehavingServer server([](gevent::Socket conn, const gevent::SocketAddress&) {
    while (Answer(conn,
                  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                  "\r\n2\r\nok\r\n0\r\n\r\n")) {
    }
  });
  ASSERT_TRUE(server.Start().ok());
  Config c = ShortRun();
  c.protocol = "http";
  c.clients = 2;
  c.target = server.target();
  absl::StatusOr<RunResult> r = RunLoad(c, Quiet());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TotalErrors(r->errors), 0u) << FormatReport(*r);
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(r->counts[static_cast<std::size_t>(Count::kHttp2xx)], r->messages);
  EXPECT_GT(r->counts[static_cast<std::size_t>(Count::kHttp1xx)], 0u);
}

}  // namespace
}  // namespace loadgen
