#include "hub/event.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "hub/sync_test_util.h"

namespace gevent {
namespace {

using EventTest = testing::SyncTest;

TEST_F(EventTest, SetClearIsSet) {
  Event e;
  EXPECT_FALSE(e.IsSet());
  e.Set();
  EXPECT_TRUE(e.IsSet());
  EXPECT_TRUE(e.Wait());  // Set: returns at once without parking.
  e.Clear();
  EXPECT_FALSE(e.IsSet());
}

TEST_F(EventTest, WaitReturnsWhenAnotherGreenletSets) {
  Event e;
  std::vector<std::string> log;
  Start([&] {
    log.push_back("wait");
    EXPECT_TRUE(e.Wait());
    log.push_back("woken");
  });
  Start([&] {
    log.push_back("set");
    e.Set();
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"wait", "set", "woken"}));
}

TEST_F(EventTest, SetWakesEveryWaiterInFifoOrder) {
  Event e;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    Start([&, i] {
      EXPECT_TRUE(e.Wait());
      order.push_back(i);
    });
  }
  Start([&] {
    EXPECT_EQ(e.waiter_count(), 5u);
    e.Set();
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST_F(EventTest, SetThenClearBeforeWaitersRunStillWakesThemAll) {
  Event e;
  int woken = 0;
  for (int i = 0; i < 3; ++i) {
    Start([&] {
      EXPECT_TRUE(e.Wait(absl::Seconds(30)));
      ++woken;
    });
  }
  Start([&] {
    e.Set();
    e.Clear();
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(woken, 3);
  EXPECT_FALSE(e.IsSet());
}

TEST_F(EventTest, WaitTimesOutAndReturnsFalse) {
  Event e;
  const absl::Time before = absl::Now();
  EXPECT_FALSE(e.Wait(absl::Milliseconds(10)));
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(9));
  EXPECT_EQ(e.waiter_count(), 0u);
}

TEST_F(EventTest, WaitForeverWithNothingAliveRaisesLoopExit) {
  Event e;
  EXPECT_THROW(e.Wait(), LoopExit);
  EXPECT_EQ(e.waiter_count(), 0u);
}

TEST_F(EventTest, WaitOnTheHubGreenletIsRejected) {
  Event e;
  bool threw = false;
  GetHub().Schedule([&] {
    try {
      e.Wait();
    } catch (const BlockingInHubError&) {
      threw = true;
    }
  });
  EXPECT_TRUE(Wait());
  EXPECT_TRUE(threw);
}

TEST_F(EventTest, KilledWaiterLeavesTheList) {
  Event e;
  greenlet::Greenlet* g = Start([&] { e.Wait(); });
  Start([&] { EXPECT_EQ(e.waiter_count(), 1u); });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(e.waiter_count(), 1u);
  greenlets_.clear();  // Unwinds the parked greenlet with GreenletExit.
  (void)g;
  EXPECT_EQ(e.waiter_count(), 0u);
}

using AsyncResultTest = testing::SyncTest;

TEST_F(AsyncResultTest, GetReturnsTheValueSetByAnotherGreenlet) {
  AsyncResult<int> r;
  absl::StatusOr<int> got;
  Start([&] { got = r.Get(); });
  Start([&] {
    EXPECT_FALSE(r.ready());
    r.Set(42);
  });
  EXPECT_TRUE(Wait());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 42);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(*r.Get(), 42);  // Ready: no parking.
}

TEST_F(AsyncResultTest, GetRethrowsTheException) {
  AsyncResult<std::string> r;
  std::string message;
  for (int i = 0; i < 2; ++i) {
    Start([&] {
      try {
        r.Get().IgnoreError();
      } catch (const std::runtime_error& e) {
        message += e.what();
      }
    });
  }
  Start([&] { r.SetException(std::make_exception_ptr(std::runtime_error("boom"))); });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(message, "boomboom");
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  EXPECT_NE(r.exception(), nullptr);
  EXPECT_TRUE(r.Wait());  // Wait never throws the result's exception.
}

TEST_F(AsyncResultTest, GetTimesOutWithDeadlineExceeded) {
  AsyncResult<int> r;
  absl::StatusOr<int> got = r.Get(absl::Milliseconds(5));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(got.status().message().find("timed out"), std::string::npos);
  EXPECT_FALSE(r.Wait(absl::ZeroDuration()));
  EXPECT_EQ(r.GetNowait().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(AsyncResultTest, UsableAsALinkTarget) {
  AsyncResult<int> r;
  AsyncResult<int> s;
  absl::AnyInvocable<void(int)> link = s.Setter();
  Start([&] { EXPECT_EQ(*r.Get(), 7); });
  Start([&] {
    r(7);
    link(8);
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(*s.Get(), 8);
}

TEST_F(AsyncResultTest, WaitersWakeInFifoOrder) {
  AsyncResult<int> r;
  std::vector<int> order;
  for (int i = 0; i < 4; ++i) {
    Start([&, i] {
      r.Wait();
      order.push_back(i);
    });
  }
  Start([&] { r.Set(1); });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace gevent
