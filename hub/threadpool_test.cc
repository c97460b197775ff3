#include "hub/threadpool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hub/spawn.h"
#include "hub/hub_test_fixture.h"

namespace gevent {
namespace {

// A one-shot flag for worker threads, on std::mutex so that ThreadSanitizer sees the hand-off
// (the system abseil is not built for it).
class Notification {
 public:
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      notified_ = true;
    }
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

using ThreadPoolTest = HubTestFixture;

TEST_F(ThreadPoolTest, ApplyReturnsTheResultFromAWorkerThread) {
  ThreadPool pool(2);
  const std::thread::id here = std::this_thread::get_id();
  std::thread::id there = pool.Apply([] { return std::this_thread::get_id(); });
  EXPECT_NE(there, here);
  EXPECT_EQ(pool.Apply([] { return std::string("ok"); }), "ok");
  EXPECT_EQ(pool.outstanding(), 0u);
}

TEST_F(ThreadPoolTest, ExceptionIsRethrownInTheWaitingGreenlet) {
  ThreadPool pool(1);
  EXPECT_THROW(pool.Apply([]() -> int { throw std::runtime_error("worker failed"); }),
               std::runtime_error);
  auto r = pool.Spawn([] { throw std::out_of_range("x"); });
  EXPECT_TRUE(r.Wait());
  EXPECT_FALSE(r.successful());
  EXPECT_THROW(r.Get().IgnoreError(), std::out_of_range);
}

TEST_F(ThreadPoolTest, ManyTasksFromManyGreenlets) {
  ThreadPool pool(3);
  std::vector<GreenletRef> gs;
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) {
    gs.push_back(gevent::Spawn([&pool, &ran, i] {
      int sum = 0;
      for (int k = 0; k < 4; ++k) {
        sum += pool.Apply([&ran, i, k] {
          ran.fetch_add(1);
          return i * 10 + k;
        });
      }
      return sum;
    }));
  }
  EXPECT_TRUE(JoinAll(gs, std::nullopt, /*raise_error=*/true));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(*gs[i]->GetAs<int>(), 4 * i * 10 + 6);
  EXPECT_EQ(ran.load(), 200);
}

TEST_F(ThreadPoolTest, HubStaysAliveWhileAWorkerRunsAndOtherGreenletsRun) {
  ThreadPool pool(1);
  Notification release;
  int ticks = 0;
  // The worker blocks until a greenlet releases it: the main greenlet's wait must not end in
  // LoopExit, and other greenlets must keep running meanwhile.
  auto r = pool.Spawn([&release] {
    release.WaitForNotification();
    return 5;
  });
  gevent::Spawn([&] {
    for (int i = 0; i < 3; ++i) {
      ++ticks;
      Sleep(absl::ZeroDuration());
    }
    release.Notify();
  });
  EXPECT_EQ(*r.Get(), 5);
  EXPECT_EQ(ticks, 3);
}

TEST_F(ThreadPoolTest, WaitRunsUntilOutstandingTasksComplete) {
  ThreadPool pool(2);
  Notification go;
  auto r = pool.Spawn([&go] {
    go.WaitForNotification();
    return 1;
  });
  std::thread releaser([&go] { go.Notify(); });
  EXPECT_TRUE(Wait());  // Does not return before the task completed on the hub.
  EXPECT_TRUE(r.ready());
  releaser.join();
}

TEST_F(ThreadPoolTest, GetWithTimeoutReturnsDeadlineExceeded) {
  ThreadPool pool(1);
  Notification go;
  auto r = pool.Spawn([&go] { go.WaitForNotification(); });
  const absl::Status timed_out = r.Get(absl::Milliseconds(1));
  EXPECT_EQ(timed_out.code(), absl::StatusCode::kDeadlineExceeded) << timed_out;
  EXPECT_NE(timed_out.message().find("gevent::ThreadResult::Get"), std::string::npos) << timed_out;
  go.Notify();
  EXPECT_TRUE(r.Get().ok());
}

TEST_F(ThreadPoolTest, MisuseThrowsUsageError) {
  EXPECT_THROW(ThreadPool(0), UsageError);
  ThreadPool pool(1);
  pool.Shutdown();
  EXPECT_THROW((void)pool.Spawn([] { return 1; }), UsageError);
  EXPECT_EQ(pool.outstanding(), 0u);
}

TEST_F(ThreadPoolTest, ShutdownFinishesQueuedTasks) {
  std::atomic<int> ran{0};
  std::vector<ThreadResult<void>> results;
  {
    ThreadPool pool(1);
    for (int i = 0; i < 10; ++i) results.push_back(pool.Spawn([&ran] { ran.fetch_add(1); }));
  }
  EXPECT_EQ(ran.load(), 10);
  for (auto& r : results) EXPECT_TRUE(r.ready());
}

}  // namespace
}  // namespace gevent
