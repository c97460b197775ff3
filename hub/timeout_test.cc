#include "hub/timeout.h"

#include <gtest/gtest.h>

#include <string>

#include "hub/spawn.h"
#include "hub/hub_test_fixture.h"

namespace gevent {
namespace {

using TimeoutTest = HubTestFixture;

TEST_F(TimeoutTest, FiresIntoTheBlockedGreenlet) {
  Timeout t(absl::Milliseconds(2));
  EXPECT_TRUE(t.pending());
  try {
    Sleep(absl::Seconds(10));
    FAIL() << "not interrupted";
  } catch (const TimeoutError& e) {
    EXPECT_EQ(e.timeout(), &t);
  }
  EXPECT_FALSE(t.pending());
  EXPECT_TRUE(t.fired());
}

TEST_F(TimeoutTest, FiresInASpawnedGreenletWaitingOnAWaiter) {
  GreenletRef g = Spawn([] {
    Waiter never;
    Timeout t(absl::Milliseconds(1));
    try {
      never.Get();
    } catch (const TimeoutError& e) {
      return e.timeout() == &t;
    }
    return false;
  });
  // A pending Timeout keeps the loop alive: no LoopExit.
  EXPECT_TRUE(*g->GetAs<bool>());
}

TEST_F(TimeoutTest, NestedTimeoutsEachFireAsThemselves) {
  Timeout outer(absl::Milliseconds(20));
  int inner_fired = 0;
  int outer_fired = 0;
  try {
    {
      Timeout inner(absl::Milliseconds(1));
      try {
        Sleep(absl::Seconds(10));
      } catch (const TimeoutError& e) {
        EXPECT_EQ(e.timeout(), &inner);
        ++inner_fired;
      }
    }
    Sleep(absl::Seconds(10));
  } catch (const TimeoutError& e) {
    EXPECT_EQ(e.timeout(), &outer);
    ++outer_fired;
  }
  EXPECT_EQ(inner_fired, 1);
  EXPECT_EQ(outer_fired, 1);

  // An outer one firing inside an inner scope is not caught as the inner one.
  Timeout outer2(absl::Milliseconds(1));
  bool outer2_fired = false;
  try {
    RunWithTimeout(absl::Seconds(10), [] { Sleep(absl::Seconds(10)); });
  } catch (const TimeoutError& e) {
    outer2_fired = e.timeout() == &outer2;
  }
  EXPECT_TRUE(outer2_fired);
}

TEST_F(TimeoutTest, WithTimeoutReturnsTheDefaultWhenItFires) {
  int v = WithTimeout(
      absl::Milliseconds(1),
      [] {
        Sleep(absl::Seconds(10));
        return 1;
      },
      -1);
  EXPECT_EQ(v, -1);
  std::string s = WithTimeout(absl::Seconds(10), [] { return std::string("done"); }, "default");
  EXPECT_EQ(s, "done");
  EXPECT_FALSE(RunWithTimeout(absl::Milliseconds(1), [] { Sleep(absl::Seconds(10)); }));
  EXPECT_TRUE(RunWithTimeout(absl::Seconds(10), [] { Sleep(absl::ZeroDuration()); }));
}

TEST_F(TimeoutTest, CancelledTimeoutDoesNotFire) {
  Timeout t(absl::Milliseconds(1));
  EXPECT_TRUE(t.pending());
  t.Cancel();
  EXPECT_FALSE(t.pending());
  Sleep(absl::Milliseconds(5));  // Not interrupted.
  EXPECT_FALSE(t.fired());
  t.Start();  // Re-armed.
  EXPECT_TRUE(t.pending());
  EXPECT_THROW(Sleep(absl::Seconds(10)), TimeoutError);
}

TEST_F(TimeoutTest, UnstartedAndInfiniteTimeoutsAreNotPending) {
  Timeout a(absl::Milliseconds(1), /*start=*/false);
  EXPECT_FALSE(a.pending());
  Timeout b(std::nullopt);
  EXPECT_FALSE(b.pending());
  Sleep(absl::Milliseconds(2));
}

TEST_F(TimeoutTest, DestructorCancels) {
  {
    Timeout t(absl::Milliseconds(1));
  }
  EXPECT_EQ(GetHub().loop().active_watcher_count(), GetHub().own_watchers());
  Sleep(absl::Milliseconds(3));
}

TEST_F(TimeoutTest, KillsAGreenletThatDoesNotCatchIt) {
  SetSpawnErrorHandler([](Greenlet&, std::exception_ptr) {});
  GreenletRef g = Spawn([] {
    Timeout t(absl::Milliseconds(1));
    Sleep(absl::Seconds(10));
  });
  EXPECT_THROW(g->Get().IgnoreError(), TimeoutError);
  SetSpawnErrorHandler(nullptr);
}

TEST_F(TimeoutTest, UnrefTimeoutDoesNotKeepTheLoopAlive) {
  Timeout t(absl::Seconds(10), /*start=*/true, /*ref=*/false);
  EXPECT_TRUE(Wait(absl::Seconds(5)));  // Returns at once: nothing keeps the loop alive.
  EXPECT_TRUE(t.pending());
}

}  // namespace
}  // namespace gevent
