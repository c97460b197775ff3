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

using Notification = ThreadNotification;
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

TEST_F(ThreadPoolTest, WorkersStartOnDemand) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.size(), 4u);
  EXPECT_EQ(pool.started(), 0u);
  // One task at a time needs one worker: each finds the first one idle again.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pool.Apply([i] { return i; }), i);
  EXPECT_EQ(pool.started(), 1u);
  // Three tasks held at once need three, all running together (the new workers start the next
  // ones themselves: the hub thread is blocked here meanwhile).
  Notification go;
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  std::vector<ThreadResult<void>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(pool.Spawn([&] {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++running;
      }
      cv.notify_all();
      go.WaitForNotification();
    }));
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return running == 3; });
  }
  EXPECT_EQ(pool.started(), 3u);
  go.Notify();
  for (auto& r : held) EXPECT_TRUE(r.Get().ok());
  // Never more than size().
  for (int i = 0; i < 10; ++i) held.push_back(pool.Spawn([] {}));
  EXPECT_LE(pool.started(), 4u);
  for (auto& r : held) EXPECT_TRUE(r.Get().ok());
}

TEST_F(ThreadPoolTest, AnAbandonedTaskDoesNotKeepTheLoopAlive) {
  ThreadPool pool(1);
  Notification go;
  auto r = pool.Spawn([&go] {
    go.WaitForNotification();
    return 7;
  });
  EXPECT_FALSE(r.Wait(absl::Milliseconds(1)));
  r.Abandon();
  r.Abandon();  // Idempotent.
  // Join returns although the worker still runs: nobody waits for it.
  EXPECT_TRUE(GetHub().Join(absl::Seconds(5)));
  EXPECT_FALSE(r.ready());
  EXPECT_EQ(pool.outstanding(), 1u);
  // A new task that is waited for makes the loop wait again, and the abandoned one still ends.
  auto next = pool.Spawn([] { return 8; });
  go.Notify();
  EXPECT_EQ(*next.Get(), 8);
  EXPECT_EQ(*r.Get(), 7);
  EXPECT_EQ(pool.outstanding(), 0u);
  r.Abandon();  // A no-op once done.
}

TEST_F(ThreadPoolTest, AnAbandonedTasksExceptionGoesToTheLoopsErrorHandler) {
  std::vector<std::string> reported;
  GetHub().loop().SetErrorHandler([&](std::string_view kind, std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      reported.push_back(std::string(kind) + ": " + e.what());
    }
  });
  ThreadPool pool(1);
  Notification go;
  auto r = pool.Spawn([&go] {
    go.WaitForNotification();
    throw std::runtime_error("lookup failed late");
  });
  r.Abandon();
  // Waited for by a second task behind it on the one worker, so the first has completed too.
  auto next = pool.Spawn([] {});
  go.Notify();
  EXPECT_TRUE(next.Get().ok());
  EXPECT_TRUE(r.ready());
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0], "threadpool: lookup failed late");
  GetHub().loop().SetErrorHandler(nullptr);
}

TEST_F(ThreadPoolTest, TheHubPoolIsSharedAndGoesWithTheHub) {
  ThreadPool& pool = HubThreadPool();
  EXPECT_EQ(&pool, &HubThreadPool(GetHub()));
  EXPECT_EQ(pool.size(), kHubThreadPoolSize);
  EXPECT_EQ(pool.Apply([] { return 3; }), 3);
  DestroyHub();  // Destroys the pool first (its watcher is on the hub's loop).
  ThreadPool& fresh = HubThreadPool();
  EXPECT_EQ(fresh.started(), 0u);
  EXPECT_EQ(fresh.Apply([] { return 4; }), 4);
}

}  // namespace
}  // namespace gevent
