#include "hub/spawn.h"

#include "greenlet/stack.h"
#include "hub/hub_test_fixture.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace gevent {
namespace {

class SpawnTest : public HubTestFixture {
 protected:
  void SetUp() override {
    SetSpawnErrorHandler([this](Greenlet& g, std::exception_ptr) { ++reported_; });
  }
  void TearDown() override {
    HubTestFixture::TearDown();
    SetSpawnErrorHandler(nullptr);
  }
  int reported_ = 0;
};

struct Flag {
  bool* destroyed;
  ~Flag() { *destroyed = true; }
};

TEST_F(SpawnTest, SpawnRunsAndGetReturnsTheValue) {
  GreenletRef g = Spawn([](int a, std::string b) { return b + std::to_string(a); }, 42, "x");
  EXPECT_FALSE(g->started());
  EXPECT_FALSE(g->ready());
  EXPECT_EQ(*g->GetAs<std::string>(), "x42");
  EXPECT_TRUE(g->ready());
  EXPECT_TRUE(g->successful());
  EXPECT_TRUE(g->started());
  EXPECT_EQ(reported_, 0);
}

TEST_F(SpawnTest, VoidFunctionHasAnEmptyValue) {
  int ran = 0;
  GreenletRef g = Spawn([&ran] { ++ran; });
  EXPECT_TRUE(g->Join());
  EXPECT_EQ(ran, 1);
  EXPECT_FALSE(g->value().has_value());
  EXPECT_TRUE(g->successful());
}

TEST_F(SpawnTest, GetRethrowsTheExceptionAndItIsReportedOnce) {
  GreenletRef g = Spawn([]() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(
      {
        try {
          g->Get().IgnoreError();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "boom");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_THROW(g->Get().IgnoreError(), std::runtime_error);
  EXPECT_FALSE(g->successful());
  EXPECT_TRUE(g->exception() != nullptr);
  EXPECT_EQ(reported_, 1);
}

TEST_F(SpawnTest, GetWithTimeoutReturnsDeadlineExceeded) {
  GreenletRef g = Spawn([] {
    Sleep(absl::Milliseconds(50));
    return 3;
  });
  const absl::StatusOr<std::any> timed_out = g->Get(absl::Milliseconds(1));
  EXPECT_EQ(timed_out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(timed_out.status().message().find("gevent::Greenlet::Get"), std::string::npos)
      << timed_out.status();
  EXPECT_EQ(g->GetAs<int>(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(g->Join());
  EXPECT_EQ(*g->GetAs<int>(absl::ZeroDuration()), 3);
}

TEST_F(SpawnTest, MisuseThrowsUsageError) {
  EXPECT_THROW(Greenlet::Create(nullptr), UsageError);
  GreenletRef g = Spawn([] {
    GreenletRef self = GetCurrent();
    EXPECT_THROW(self->Join(), UsageError);
  });
  EXPECT_THROW(g->Link(nullptr), UsageError);
  EXPECT_TRUE(g->Join());
  EXPECT_TRUE(g->successful());
}

TEST_F(SpawnTest, SeveralGreenletsCanJoinTheSameOne) {
  Waiter gate;
  GreenletRef target = Spawn([&gate] {
    gate.Get();
    return 7;
  });
  std::vector<int> seen;
  GreenletRef j1 = Spawn([&] { seen.push_back(*target->GetAs<int>()); });
  GreenletRef j2 = Spawn([&] { seen.push_back(*target->GetAs<int>() + 1); });
  Spawn([&gate] { gate.Wake(); });
  EXPECT_EQ(*target->GetAs<int>(), 7);  // The main greenlet joins too.
  EXPECT_TRUE(JoinAll({j1, j2}));
  EXPECT_EQ(seen, (std::vector<int>{7, 8}));
}

TEST_F(SpawnTest, LinksRunInFifoOrderOnTheHubAfterTheFinish) {
  std::string log;
  GreenletRef g = Spawn([&log] { log += "run;"; });
  g->Link([&log](const GreenletRef& r) { log += r->ready() ? "a;" : "?;"; });
  g->Link([&log](const GreenletRef&) { log += "b;"; });
  g->Link([&log](const GreenletRef&) { log += "c;"; });
  g->Join();
  Wait();
  EXPECT_EQ(log, "run;a;b;c;");
}

TEST_F(SpawnTest, LinkAddedAfterTheFinishStillFires) {
  GreenletRef g = Spawn([] { return 1; });
  g->Join();
  Wait();
  GreenletRef seen;
  g->Link([&seen](const GreenletRef& r) { seen = r; });
  EXPECT_EQ(seen, nullptr);  // Not synchronously: through the hub.
  Wait();
  EXPECT_EQ(seen, g);
}

TEST_F(SpawnTest, LinkValueAndLinkExceptionFilter) {
  std::string log;
  GreenletRef ok = Spawn([] { return 1; });
  GreenletRef bad = Spawn([]() -> int { throw std::runtime_error("x"); });
  for (auto& [name, g] : {std::pair{"ok", ok}, std::pair{"bad", bad}}) {
    std::string n = name;
    g->LinkValue([&log, n](const GreenletRef&) { log += n + ":value;"; });
    g->LinkException([&log, n](const GreenletRef&) { log += n + ":exception;"; });
  }
  Wait();
  EXPECT_EQ(log, "ok:value;bad:exception;");
}

TEST_F(SpawnTest, UnlinkRemovesACallback) {
  std::string log;
  GreenletRef g = Spawn([] {});
  g->Link([&log](const GreenletRef&) { log += "a"; });
  Greenlet::LinkId b = g->Link([&log](const GreenletRef&) { log += "b"; });
  g->Link([&log](const GreenletRef&) { log += "c"; });
  EXPECT_TRUE(g->Unlink(b));
  EXPECT_FALSE(g->Unlink(b));
  Wait();
  EXPECT_EQ(log, "ac");
}

TEST_F(SpawnTest, KillUnstartedNeverRunsButLinksFire) {
  bool ran = false;
  bool linked = false;
  GreenletRef g = Spawn([&ran] { ran = true; });
  g->Link([&linked](const GreenletRef&) { linked = true; });
  EXPECT_TRUE(g->Kill());
  EXPECT_TRUE(g->dead());
  EXPECT_TRUE(g->successful());  // GreenletExit counts as success.
  Wait();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(linked);
  EXPECT_FALSE(g->started());
}

TEST_F(SpawnTest, KillUnstartedWithAnExceptionStoresIt) {
  GreenletRef g = Spawn([] {});
  g->Kill(std::make_exception_ptr(std::runtime_error("stop")));
  EXPECT_FALSE(g->successful());
  EXPECT_THROW(g->Get().IgnoreError(), std::runtime_error);
}

TEST_F(SpawnTest, KillRunningUnwindsItAndCountsAsSuccess) {
  bool destroyed = false;
  bool after = false;
  GreenletRef g = Spawn([&] {
    Flag f{&destroyed};
    Sleep(absl::Seconds(10));
    after = true;
  });
  Sleep(absl::ZeroDuration());  // Let it start and park.
  ASSERT_TRUE(g->started());
  EXPECT_TRUE(g->Kill());
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(after);
  EXPECT_TRUE(g->successful());
  EXPECT_FALSE(g->value().has_value());
  EXPECT_EQ(reported_, 0);
}

TEST_F(SpawnTest, KillWithACustomExceptionFailsTheGreenlet) {
  GreenletRef g = Spawn([] { Sleep(absl::Seconds(10)); });
  Sleep(absl::ZeroDuration());
  g->Kill(std::make_exception_ptr(std::runtime_error("killed")));
  EXPECT_FALSE(g->successful());
  EXPECT_THROW(g->Get().IgnoreError(), std::runtime_error);
}

TEST_F(SpawnTest, KillNonBlockingThenJoin) {
  GreenletRef g = Spawn([] { Sleep(absl::Seconds(10)); });
  Sleep(absl::ZeroDuration());
  EXPECT_FALSE(g->Kill(nullptr, /*block=*/false));
  EXPECT_TRUE(g->Join());
}

TEST_F(SpawnTest, KillFinishedIsHarmless) {
  GreenletRef g = Spawn([] { return 5; });
  EXPECT_EQ(*g->GetAs<int>(), 5);
  EXPECT_TRUE(g->Kill());
  EXPECT_EQ(*g->GetAs<int>(), 5);
  EXPECT_TRUE(g->successful());
}

TEST_F(SpawnTest, SpawnLaterRunsInDelayOrder) {
  std::vector<int> order;
  GreenletRef a = SpawnLater(absl::Milliseconds(20), [&order] { order.push_back(20); });
  GreenletRef b = SpawnLater(absl::Milliseconds(2), [&order] { order.push_back(2); });
  GreenletRef c = Spawn([&order] { order.push_back(0); });
  EXPECT_TRUE(JoinAll({a, b, c}));
  EXPECT_EQ(order, (std::vector<int>{0, 2, 20}));
}

TEST_F(SpawnTest, KillSpawnLaterBeforeItStarts) {
  bool ran = false;
  GreenletRef g = SpawnLater(absl::Seconds(10), [&ran] { ran = true; });
  EXPECT_TRUE(g->Kill());
  Wait();  // Returns at once: the start timer was stopped.
  EXPECT_FALSE(ran);
}

TEST_F(SpawnTest, JoinAllTimesOutAndRaisesErrors) {
  GreenletRef fast = Spawn([] { return 1; });
  GreenletRef slow = Spawn([] { Sleep(absl::Seconds(10)); });
  EXPECT_FALSE(JoinAll({fast, slow}, absl::Milliseconds(5)));
  EXPECT_TRUE(fast->ready());
  EXPECT_FALSE(slow->ready());
  GreenletRef bad = Spawn([] {
    Sleep(absl::Milliseconds(1));
    throw std::runtime_error("bad");
  });
  EXPECT_THROW(JoinAll({slow, bad}, std::nullopt, /*raise_error=*/true), std::runtime_error);
  EXPECT_FALSE(slow->ready());
  EXPECT_TRUE(KillAll({slow}));
}

TEST_F(SpawnTest, KillAllKillsEveryGreenlet) {
  int unwound = 0;
  std::vector<GreenletRef> gs;
  for (int i = 0; i < 5; ++i) {
    gs.push_back(Spawn([&unwound] {
      struct U {
        int* n;
        ~U() { ++*n; }
      } u{&unwound};
      Sleep(absl::Seconds(10));
    }));
  }
  gs.push_back(Spawn([] {}));  // Never started when killed.
  Sleep(absl::ZeroDuration());
  // The last one did run before we got here (Sleep(0) ran the whole batch).
  EXPECT_TRUE(KillAll(gs));
  EXPECT_EQ(unwound, 5);
  for (auto& g : gs) EXPECT_TRUE(g->dead());
}

TEST_F(SpawnTest, GetCurrentAndNames) {
  EXPECT_EQ(GetCurrent(), nullptr);
  SpawnOptions options;
  options.name = "worker";
  options.stack = greenlet::StackOptions{32 * 1024, greenlet::StackKind::kUnguarded};
  GreenletRef seen;
  GreenletRef g = Spawn(options, [&seen] {
    seen = GetCurrent();
    return GetCurrent()->name();
  });
  EXPECT_EQ(*g->GetAs<std::string>(), "worker");
  EXPECT_EQ(seen, g);
  g->SetName("renamed");
  EXPECT_EQ(g->name(), "renamed");
}

TEST_F(SpawnTest, LocalStorageIsPerGreenlet) {
  Local<int> counter;
  Local<std::string> label([] { return std::string("init"); });
  counter.get() = 100;  // The main greenlet's own value.
  auto body = [&](int n) {
    EXPECT_FALSE(counter.has());
    EXPECT_EQ(*label, "init");
    for (int i = 0; i < n; ++i) {
      ++counter.get();
      Sleep(absl::ZeroDuration());
    }
    *label = "set";
    return counter.get();
  };
  GreenletRef a = Spawn(body, 3);
  GreenletRef b = Spawn(body, 5);
  EXPECT_EQ(*a->GetAs<int>(), 3);
  EXPECT_EQ(*b->GetAs<int>(), 5);
  EXPECT_EQ(counter.get(), 100);
  EXPECT_EQ(*label, "init");
}

TEST_F(SpawnTest, SpawnIsCheapForManyGreenlets) {
  int done = 0;
  std::vector<GreenletRef> gs;
  for (int i = 0; i < 2000; ++i) {
    gs.push_back(Spawn([&done] {
      Sleep(absl::ZeroDuration());
      ++done;
    }));
  }
  EXPECT_TRUE(JoinAll(gs));
  EXPECT_EQ(done, 2000);
}

TEST_F(SpawnTest, FireAndForgetKeepsItselfAlive) {
  int ran = 0;
  Spawn([&ran] {
    Sleep(absl::Milliseconds(1));
    ++ran;
  });
  Wait();
  EXPECT_EQ(ran, 1);
}

TEST_F(SpawnTest, ABadStackIsReportedBySpawnItself) {
  SpawnOptions options;
  options.stack.size = 1024;  // Below greenlet::kMinStackSize.
  try {
    Spawn(options, [] {});
    FAIL() << "Spawn accepted a 1 KiB stack";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("1024"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(Wait());
}

TEST_F(SpawnTest, TheGreenletLivesAtTheTopOfItsOwnStack) {
  GreenletRef g = Spawn([] {
    const greenlet::Stack& stack = GetCurrent()->raw()->stack();
    const char* object = reinterpret_cast<const char*>(GetCurrent().get());
    const char* top = static_cast<const char*>(stack.low) + stack.size;
    // Above the part the greenlet runs on, within one page of it.
    return object >= top && object < top + 4096;
  });
  EXPECT_TRUE(*g->GetAs<bool>());
}

TEST_F(SpawnTest, StacksGoBackToThePoolWhenTheLastReferenceGoes) {
  greenlet::StackPool& pool = greenlet::StackPool::ThisThread();
  EXPECT_TRUE(Wait());  // The hub greenlet has its stack from now on.
  GreenletRef g = Spawn([] {});
  const std::size_t with_one = pool.in_use();
  g->Join();
  std::weak_ptr<Greenlet> weak = g;
  g.reset();
  EXPECT_TRUE(Wait());
  EXPECT_EQ(pool.in_use(), with_one);  // The weak reference still holds the block.
  weak.reset();
  EXPECT_EQ(pool.in_use(), with_one - 1);
}

TEST_F(SpawnTest, DestroyingTheHubReleasesGreenletsThatNeverStarted) {
  greenlet::StackPool& pool = greenlet::StackPool::ThisThread();
  GetHub();
  const std::size_t before = pool.in_use();
  bool destroyed = false;
  std::weak_ptr<Greenlet> weak = Spawn([f = std::make_shared<Flag>(Flag{&destroyed})] {});
  EXPECT_FALSE(weak.expired());  // Scheduled: it holds itself.
  DestroyHub();
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(weak.expired());
  weak.reset();
  EXPECT_EQ(pool.in_use(), before);
}

}  // namespace
}  // namespace gevent
