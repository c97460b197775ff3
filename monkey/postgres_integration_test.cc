// libpq's blocking API (PQconnectdb, PQexec) in greenlets after gevent::monkey::PatchAll(),
// against a throwaway PostgreSQL cluster (Debian's postgresql: initdb + postgres started by the
// fixture in a temporary folder, reached over a Unix socket there). libpq 15 sets O_NONBLOCK on
// its socket itself and waits in poll(2): patched.
#include <postgresql/libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/event.h"
#include "hub/spawn.h"
#include "monkey/monkey.h"
#include "monkey/testing/servers.h"
#include "monkey/testing/timing.h"

namespace {

using gevent::testing::PostgresServer;
using ::testing::AnyOf;
using ::testing::HasSubstr;

gevent::SpawnOptions ClientStack() {
  gevent::SpawnOptions options;
  options.stack.size = 512 * 1024;
  return options;
}

struct PQfinisher {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, PQfinisher>;
struct PQclearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, PQclearer>;

std::unique_ptr<PostgresServer> StartOrFail(std::string* error) {
  auto server = PostgresServer::Start();
  if (!server.ok()) {
    *error = server.status().ToString();
    return nullptr;
  }
  return std::move(*server);
}

class PostgresIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    start_error_ = new std::string();
    server_ = StartOrFail(start_error_).release();
    gevent::monkey::PatchAll();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << *start_error_; }

  static PostgresServer* server_;
  static std::string* start_error_;
};
PostgresServer* PostgresIntegrationTest::server_ = nullptr;
std::string* PostgresIntegrationTest::start_error_ = nullptr;

// 50 connections, made concurrently first; then each runs pg_sleep(0.2) at once. The queries
// overlap: from the go to the last return is about 0.2 s (bound: OverlapBound(), 0.9 s; serially 10 s).
TEST_F(PostgresIntegrationTest, FiftySleepsOverlap) {
  constexpr int kClients = 50;
  std::vector<std::string> errors;
  int connected = 0, done = 0;
  gevent::Event all_connected, go;
  absl::Time last_return;
  std::vector<gevent::GreenletRef> greenlets;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kClients; ++i) {
    greenlets.push_back(gevent::Spawn(ClientStack(), [&] {
      Conn c(PQconnectdb(server_->conninfo().c_str()));
      if (PQstatus(c.get()) != CONNECTION_OK) {
        errors.push_back(PQerrorMessage(c.get()));
      }
      if (++connected == kClients) all_connected.Set();
      go.Wait();
      if (PQstatus(c.get()) != CONNECTION_OK) return;
      Result r(PQexec(c.get(), "SELECT pg_sleep(0.2)"));
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        errors.push_back(PQresultErrorMessage(r.get()));
      } else {
        ++done;
      }
      last_return = std::max(last_return, absl::Now());
    }));
  }
  ASSERT_TRUE(all_connected.Wait(absl::Seconds(60))) << "50 connections not made in 60 s";
  const absl::Duration connecting = absl::Now() - start;
  const absl::Time go_time = absl::Now();
  last_return = go_time;
  go.Set();
  ASSERT_TRUE(gevent::JoinAll(greenlets, absl::Seconds(60))) << "queries still running after 60 s";
  const absl::Duration wall = last_return - go_time;
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(done, kClients);
  EXPECT_GE(wall, absl::Milliseconds(200));
  EXPECT_LT(wall, gevent::testing::OverlapBound()) << "50 x pg_sleep(0.2) took " << wall;
  std::printf("50 connects: %s; 50 x pg_sleep(0.2): %s from the go to the last return\n",
              absl::FormatDuration(connecting).c_str(), absl::FormatDuration(wall).c_str());
}

// A failing query returns libpq's error, and the connection stays usable.
TEST_F(PostgresIntegrationTest, AFailingQueryGivesLibpqsError) {
  std::string error;
  std::string after;
  gevent::GreenletRef g = gevent::Spawn(ClientStack(), [&] {
    Conn c(PQconnectdb(server_->conninfo().c_str()));
    if (PQstatus(c.get()) != CONNECTION_OK) {
      error = PQerrorMessage(c.get());
      return;
    }
    Result r(PQexec(c.get(), "SELECT * FROM nope"));
    if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR) error = PQresultErrorMessage(r.get());
    Result ok(PQexec(c.get(), "SELECT 'still here'"));
    if (PQresultStatus(ok.get()) == PGRES_TUPLES_OK) after = PQgetvalue(ok.get(), 0, 0);
  });
  ASSERT_TRUE(g->Join(absl::Seconds(30)));
  EXPECT_THAT(error, HasSubstr("relation \"nope\" does not exist"));
  EXPECT_EQ(after, "still here");
}

// The server shuts down immediately (SIGQUIT to the postmaster, as `pg_ctl stop -m immediate`)
// while 5 greenlets are inside a 30 s pg_sleep: each PQexec returns libpq's error within
// seconds, none hangs. "Mid-query" is checked, not slept for: pg_stat_activity is polled (every
// 5 ms, up to 10 s) until the 5 sleeps run.
TEST(PostgresKilledTest, AServerKilledMidQueryGivesLibpqsErrorNotAHang) {
  std::string start_error;
  std::unique_ptr<PostgresServer> server = StartOrFail(&start_error);
  ASSERT_NE(server, nullptr) << start_error;
  gevent::monkey::PatchAll();
  constexpr int kClients = 5;
  std::vector<std::string> errors;
  std::vector<absl::Time> returned;
  std::vector<gevent::GreenletRef> greenlets;
  for (int i = 0; i < kClients; ++i) {
    greenlets.push_back(gevent::Spawn(ClientStack(), [&] {
      Conn c(PQconnectdb(server->conninfo().c_str()));
      if (PQstatus(c.get()) != CONNECTION_OK) {
        errors.push_back(absl::StrCat("connect: ", PQerrorMessage(c.get())));
        return;
      }
      Result r(PQexec(c.get(), "SELECT pg_sleep(30)"));
      errors.push_back(PQresultStatus(r.get()) == PGRES_TUPLES_OK ? "the query succeeded"
                                                                   : PQerrorMessage(c.get()));
      returned.push_back(absl::Now());
    }));
  }
  absl::Time killed;
  gevent::GreenletRef killer = gevent::Spawn(ClientStack(), [&] {
    Conn watch(PQconnectdb(server->conninfo().c_str()));
    const absl::Time end = absl::Now() + absl::Seconds(10);
    for (;;) {
      Result r(PQexec(watch.get(),
                      "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                      "AND query = 'SELECT pg_sleep(30)'"));
      if (PQresultStatus(r.get()) == PGRES_TUPLES_OK &&
          std::string(PQgetvalue(r.get(), 0, 0)) == absl::StrCat(kClients)) {
        break;
      }
      if (absl::Now() >= end) break;  // Kill anyway; the assertions below say what ran.
      gevent::Sleep(absl::Milliseconds(5));
    }
    killed = absl::Now();
    server->StopImmediately();
  });
  ASSERT_TRUE(gevent::JoinAll(greenlets, absl::Seconds(30)))
      << "a PQexec still hangs 30 s after the server was killed";
  ASSERT_TRUE(killer->Join(absl::Seconds(30)));
  ASSERT_EQ(errors.size(), kClients);
  for (const std::string& e : errors) {
    EXPECT_THAT(e, AnyOf(HasSubstr("terminating connection"),
                         HasSubstr("server closed the connection unexpectedly")));
  }
  for (absl::Time t : returned) EXPECT_LT(t - killed, absl::Seconds(5));
}

}  // namespace
