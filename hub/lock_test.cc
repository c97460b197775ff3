#include "hub/lock.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "hub/sync_test_util.h"

namespace gevent {
namespace {

using LockTest = testing::SyncTest;

TEST_F(LockTest, SemaphoreCountsPermits) {
  Semaphore s(2);
  EXPECT_EQ(s.counter(), 2u);
  EXPECT_TRUE(s.Acquire());
  EXPECT_TRUE(s.Acquire(false));
  EXPECT_TRUE(s.locked());
  EXPECT_FALSE(s.Acquire(false));
  EXPECT_FALSE(s.Acquire(true, absl::Milliseconds(5)));
  EXPECT_EQ(s.waiter_count(), 0u);
  s.Release();
  s.Release();
  s.Release();  // Unbounded: may exceed the initial value.
  EXPECT_EQ(s.counter(), 3u);
}

TEST_F(LockTest, SemaphoreWakesAcquirersInFifoOrder) {
  Semaphore s(0);
  std::vector<int> order;
  for (int i = 0; i < 4; ++i) {
    Start([&, i] {
      ASSERT_TRUE(s.Acquire());
      order.push_back(i);
    });
  }
  Start([&] {
    EXPECT_EQ(s.waiter_count(), 4u);
    for (int i = 0; i < 4; ++i) s.Release();
    EXPECT_EQ(s.counter(), 0u);  // Every permit went to a parked acquirer.
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(LockTest, ReleasedPermitCannotBeStolenByALaterArrival) {
  Semaphore s(0);
  std::vector<std::string> log;
  Start([&] {
    ASSERT_TRUE(s.Acquire());
    log.push_back("parked");
  });
  Start([&] {
    s.Release();                // Granted to the parked greenlet...
    EXPECT_FALSE(s.Acquire(false));  // ...so this one cannot take it.
    log.push_back("late");
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"late", "parked"}));
}

TEST_F(LockTest, AcquireThatCanNeverSucceedRaisesLoopExit) {
  Semaphore s(0);
  EXPECT_THROW(s.Acquire(), LoopExit);
  EXPECT_EQ(s.waiter_count(), 0u);
}

TEST_F(LockTest, BoundedSemaphoreOverReleaseIsAnError) {
  BoundedSemaphore s(2);
  ASSERT_TRUE(s.Acquire());
  s.Release();
  try {
    s.Release();
    FAIL() << "expected LockReleaseError";
  } catch (const LockReleaseError& e) {
    EXPECT_STREQ(e.what(), "gevent::BoundedSemaphore::Release: semaphore released too many times");
  }
  EXPECT_EQ(s.counter(), 2u);
}

TEST_F(LockTest, LockIsBinaryAndOwnerless) {
  Lock lock;
  std::vector<std::string> log;
  Start([&] {
    Guard<Lock> g(lock);
    log.push_back("a-in");
    Sleep(absl::ZeroDuration());
    log.push_back("a-out");
  });
  Start([&] {
    Guard<Lock> g(lock);
    log.push_back("b-in");
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"a-in", "a-out", "b-in"}));
  EXPECT_FALSE(lock.locked());
  ASSERT_TRUE(lock.Acquire());
  Start([&] { lock.Release(); });  // Any greenlet may release it.
  EXPECT_TRUE(Wait());
  EXPECT_FALSE(lock.locked());
  EXPECT_THROW(lock.Release(), LockReleaseError);
}

TEST_F(LockTest, StdLockGuardWorks) {
  Semaphore s(1);
  {
    std::lock_guard<Semaphore> g(s);
    EXPECT_TRUE(s.locked());
  }
  EXPECT_FALSE(s.locked());
}

TEST_F(LockTest, RLockIsReentrantForItsOwner) {
  RLock lock;
  ASSERT_TRUE(lock.Acquire());
  ASSERT_TRUE(lock.Acquire());
  EXPECT_EQ(lock.count(), 2u);
  EXPECT_TRUE(lock.IsOwnedByCurrent());
  bool other_got_it = true;
  Start([&] { other_got_it = lock.Acquire(true, absl::Milliseconds(5)); });
  EXPECT_TRUE(Wait());
  EXPECT_FALSE(other_got_it);
  lock.Release();
  EXPECT_TRUE(lock.locked());
  lock.Release();
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(lock.owner(), nullptr);
}

TEST_F(LockTest, RLockPassesToTheNextGreenletWhenFullyReleased) {
  RLock lock;
  std::vector<std::string> log;
  Start([&] {
    Guard<RLock> outer(lock);
    {
      Guard<RLock> inner(lock);
      log.push_back("a2");
      Sleep(absl::ZeroDuration());
    }
    log.push_back("a1");
    Sleep(absl::ZeroDuration());
  });
  Start([&] {
    Guard<RLock> g(lock);
    log.push_back("b");
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"a2", "a1", "b"}));
}

TEST_F(LockTest, RLockReleaseByANonOwnerIsAnError) {
  RLock lock;
  ASSERT_TRUE(lock.Acquire());
  std::string message;
  Start([&] {
    try {
      lock.Release();
    } catch (const LockReleaseError& e) {
      message = e.what();
    }
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(message,
            "gevent::RLock::Release: cannot release an RLock the calling greenlet does not own");
  EXPECT_EQ(lock.count(), 1u);
  lock.Release();
  EXPECT_THROW(lock.Release(), LockReleaseError);  // Unlocked: nobody owns it.
}

TEST_F(LockTest, KilledAcquirerPassesItsGrantedPermitOn) {
  Semaphore s(0);
  bool second = false;
  Start([&] { s.Acquire(); });
  Start([&] { second = s.Acquire(); });
  Start([&] {
    s.Release();  // Granted to the first acquirer...
    greenlets_[0]->Throw(greenlet::GreenletExit());  // ...which dies before running.
  });
  EXPECT_TRUE(Wait());
  EXPECT_TRUE(second);
  EXPECT_EQ(s.counter(), 0u);
}

}  // namespace
}  // namespace gevent
