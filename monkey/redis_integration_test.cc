// hiredis's blocking API (redisConnectUnix, redisCommand) in greenlets after
// gevent::monkey::PatchAll(), against a real redis-server (Debian's redis-server, started by the
// fixture on a Unix socket in the test's temporary folder). hiredis 0.14 connects non-blocking,
// waits in poll(2), then clears O_NONBLOCK and does blocking read(2)/write(2): all patched.
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "hub/spawn.h"
#include "monkey/monkey.h"
#include "monkey/testing/servers.h"
#include "monkey/testing/timing.h"

namespace {

using gevent::testing::RedisServer;

// hiredis and the sanitizers' frames want more than the default 64 KiB.
gevent::SpawnOptions ClientStack() {
  gevent::SpawnOptions options;
  options.stack.size = 512 * 1024;
  return options;
}

struct RedisFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, RedisFree>;
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

class RedisIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = RedisServer::Start();
    if (!server.ok()) {
      start_error_ = new std::string(server.status().ToString());
      return;
    }
    server_ = server->release();
    gevent::monkey::PatchAll();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << *start_error_; }

  static Context Connect() { return Context(redisConnectUnix(server_->socket_path().c_str())); }

  static RedisServer* server_;
  static std::string* start_error_;
};
RedisServer* RedisIntegrationTest::server_ = nullptr;
std::string* RedisIntegrationTest::start_error_ = nullptr;

// 100 BLPOPs with a 0.3 s timeout on empty keys overlap: serially they would take 30 s. The
// bound is OverlapBound() (monkey/testing/timing.h: 0.9 s, 5 s under ThreadSanitizer); they must
// also have waited at least the 0.3 s.
TEST_F(RedisIntegrationTest, HundredBlpopTimeoutsOverlap) {
  constexpr int kClients = 100;
  std::vector<std::string> errors;
  int nil_replies = 0;
  std::vector<gevent::GreenletRef> greenlets;
  const absl::Time start = absl::Now();
  absl::Time last_return = start;
  for (int i = 0; i < kClients; ++i) {
    greenlets.push_back(gevent::Spawn(ClientStack(), [&, i] {
      Context c = Connect();
      if (c == nullptr || c->err != 0) {
        errors.push_back(c ? c->errstr : "redisConnectUnix returned null");
        return;
      }
      Reply r(static_cast<redisReply*>(
          redisCommand(c.get(), "BLPOP %s 0.3", absl::StrCat("empty_", i).c_str())));
      if (r == nullptr) {
        errors.push_back(absl::StrCat("BLPOP ", i, ": ", c->errstr));
      } else if (r->type == REDIS_REPLY_NIL) {
        ++nil_replies;
      } else {
        errors.push_back(absl::StrCat("BLPOP ", i, ": reply type ", r->type));
      }
      last_return = std::max(last_return, absl::Now());
    }));
  }
  ASSERT_TRUE(gevent::JoinAll(greenlets, absl::Seconds(60))) << "BLPOPs still running after 60 s";
  const absl::Duration wall = last_return - start;
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(nil_replies, kClients);
  EXPECT_GE(wall, absl::Milliseconds(300));
  EXPECT_LT(wall, gevent::testing::OverlapBound()) << "100 x BLPOP 0.3 took " << wall
                                           << ": the greenlets did not overlap";
  std::printf("100 x BLPOP 0.3: %s from first spawn to last return\n",
              absl::FormatDuration(wall).c_str());
}

// 100 greenlets, each with its own context, SET then GET their own keys, 20 times over while
// the others do the same: every value comes back, none lost or crossed.
TEST_F(RedisIntegrationTest, HundredClientsSetAndGetTheirOwnKeys) {
  constexpr int kClients = 100;
  constexpr int kRounds = 20;
  std::vector<std::string> errors;
  int matched = 0;
  std::vector<gevent::GreenletRef> greenlets;
  for (int i = 0; i < kClients; ++i) {
    greenlets.push_back(gevent::Spawn(ClientStack(), [&, i] {
      Context c = Connect();
      if (c == nullptr || c->err != 0) {
        errors.push_back(c ? c->errstr : "redisConnectUnix returned null");
        return;
      }
      for (int round = 0; round < kRounds; ++round) {
        const std::string key = absl::StrCat("key_", i);
        const std::string value = absl::StrCat("value_", i, "_", round, std::string(64, 'x'));
        Reply set(static_cast<redisReply*>(
            redisCommand(c.get(), "SET %s %b", key.c_str(), value.data(), value.size())));
        if (set == nullptr || set->type != REDIS_REPLY_STATUS) {
          errors.push_back(absl::StrCat("SET ", key, ": ", c->errstr));
          return;
        }
        Reply get(static_cast<redisReply*>(redisCommand(c.get(), "GET %s", key.c_str())));
        if (get == nullptr || get->type != REDIS_REPLY_STRING) {
          errors.push_back(absl::StrCat("GET ", key, ": ", c->errstr));
          return;
        }
        if (std::string(get->str, get->len) == value) {
          ++matched;
        } else {
          errors.push_back(absl::StrCat("GET ", key, " gave ", std::string(get->str, get->len)));
        }
      }
    }));
  }
  ASSERT_TRUE(gevent::JoinAll(greenlets, absl::Seconds(60)));
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, the first: " << errors.front();
  EXPECT_EQ(matched, kClients * kRounds);
}

}  // namespace
