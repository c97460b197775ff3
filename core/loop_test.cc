#include "core/loop.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "core/testing/pipe.h"
#include "core/watchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gevent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Loop> NewLoop() {
  auto loop = Loop::Create();
  EXPECT_TRUE(loop.ok()) << loop.status();
  return *std::move(loop);
}

TEST(LoopTest, DefaultLoopIsASingletonAndDefault) {
  Loop& a = Loop::Default();
  Loop& b = Loop::Default();
  EXPECT_EQ(&a, &b);
  EXPECT_TRUE(a.is_default());
  EXPECT_EQ(a.raw(), ev_default_loop(0));
}

TEST(LoopTest, CreateMakesIndependentNonDefaultLoops) {
  auto a = NewLoop();
  auto b = NewLoop();
  EXPECT_FALSE(a->is_default());
  EXPECT_NE(a->raw(), b->raw());
  EXPECT_NE(a->raw(), Loop::Default().raw());
}

TEST(LoopTest, CreateHonoursBackendChoice) {
  for (const char* name : {"select", "poll", "epoll"}) {
    Loop::Options options;
    options.backend = name;
    auto loop = Loop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    EXPECT_EQ((*loop)->backend_name(), name);
  }
}

TEST(LoopTest, CreateRejectsUnknownBackendName) {
  Loop::Options options;
  options.backend = "carrier-pigeon";
  auto loop = Loop::Create(options);
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loop.status().message()), HasSubstr("unknown backend \"carrier-pigeon\""));
}

TEST(LoopTest, CreateReportsUnsupportedBackendAsUnavailable) {
  Loop::Options options;
  options.backend = "kqueue";  // BSD only.
  auto loop = Loop::Create(options);
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), absl::StatusCode::kUnavailable);
}

TEST(LoopTest, RunReturnsFalseImmediatelyWithNothingToDo) {
  auto loop = NewLoop();
  EXPECT_FALSE(loop->Run());
  EXPECT_FALSE(loop->Run(RunMode::kNoWait));
}

TEST(LoopTest, IterationCountsIterationsAndDepthNesting) {
  auto loop = NewLoop();
  const unsigned before = loop->iteration();
  EXPECT_EQ(loop->depth(), 0u);
  loop->Run(RunMode::kNoWait);
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(loop->iteration(), before + 2);
  unsigned depth_inside = 0;
  IdleWatcher idle(*loop, [&] { depth_inside = loop->depth(); });
  idle.Start();
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(depth_inside, 1u);
}

TEST(LoopTest, PendingCountCountsFedEvents) {
  auto loop = NewLoop();
  IdleWatcher idle(*loop, [] {});
  EXPECT_EQ(loop->pending_count(), 0u);
  idle.Feed(EV_IDLE);
  EXPECT_EQ(loop->pending_count(), 1u);
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(loop->pending_count(), 0u);
}

TEST(LoopTest, ActiveWatcherCountFollowsStartStopAndLibevAutoStop) {
  auto loop = NewLoop();
  TimerWatcher oneshot(*loop, absl::ZeroDuration(), [] {});
  IdleWatcher idle(*loop, [] {});
  EXPECT_EQ(loop->active_watcher_count(), 0u);
  oneshot.Start();
  idle.Start();
  idle.Unref();  // Unref'd watchers are still active.
  EXPECT_EQ(loop->active_watcher_count(), 2u);
  loop->Run(RunMode::kNoWait);  // The one-shot timer expires: libev stops it.
  EXPECT_FALSE(oneshot.active());
  EXPECT_EQ(loop->active_watcher_count(), 1u);
  idle.Stop();
  EXPECT_EQ(loop->active_watcher_count(), 0u);
}

TEST(LoopTest, NowAndUpdateNowTrackWallClock) {
  auto loop = NewLoop();
  loop->UpdateNow();
  const absl::Time wall = absl::Now();
  EXPECT_LT(absl::AbsDuration(loop->Now() - wall), absl::Seconds(5));
  EXPECT_DOUBLE_EQ(absl::ToUnixMicros(loop->Now()) / 1e6, loop->now());
  const double before = loop->now();
  // Spin until the clock has visibly advanced, then the cached time moves only on UpdateNow.
  while (ev_time() <= before + 0.001) {
  }
  EXPECT_EQ(loop->now(), before);
  loop->UpdateNow();
  EXPECT_GT(loop->now(), before);
}

TEST(LoopTest, BreakOneStopsRunWithActiveWatchers) {
  auto loop = NewLoop();
  int runs = 0;
  IdleWatcher idle(*loop, [&] {
    if (++runs == 3) loop->Break();
  });
  idle.Start();
  EXPECT_TRUE(loop->Run());
  EXPECT_EQ(runs, 3);
  EXPECT_TRUE(idle.active());
}

TEST(LoopTest, BreakAllUnwindsNestedRuns) {
  auto loop = NewLoop();
  int outer_returns = 0;
  unsigned max_depth = 0;
  IdleWatcher idle(*loop, [&] {
    max_depth = std::max(max_depth, loop->depth());
    if (loop->depth() < 3) {
      loop->Run();  // Nested.
      ++outer_returns;
    } else {
      loop->Break(BreakMode::kAll);
    }
  });
  idle.Start();
  loop->Run();
  EXPECT_EQ(max_depth, 3u);
  EXPECT_EQ(outer_returns, 2);
}

TEST(LoopTest, RefAndUnrefAdjustWhetherRunKeepsGoing) {
  auto loop = NewLoop();
  int fired = 0;
  TimerWatcher timer(*loop, absl::Milliseconds(1), [&] { ++fired; });
  timer.Start();
  loop->Unref();
  EXPECT_FALSE(loop->Run());  // The only reference is gone: returns without waiting.
  EXPECT_EQ(fired, 0);
  loop->Ref();
  loop->Run();
  EXPECT_EQ(fired, 1);
}

#ifndef NDEBUG
TEST(LoopDeathTest, DestroyingLoopBeforeItsWatchersAbortsInDebugBuilds) {
  EXPECT_DEATH(
      {
        auto loop = NewLoop();
        new IdleWatcher(*loop, [] {});  // Never destroyed: outlives the loop.
      },
      "idle watcher \\(and maybe others\\) outlives its loop");
}
#endif

// --- RunCallback ---------------------------------------------------------------------------

TEST(RunCallbackTest, RunsCallbacksInFifoOrder) {
  auto loop = NewLoop();
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) loop->RunCallback([&order, i] { order.push_back(i); });
  EXPECT_EQ(loop->pending_callbacks(), 5u);
  loop->Run();
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(loop->pending_callbacks(), 0u);
}

TEST(RunCallbackTest, HandleReportsPendingUntilRun) {
  auto loop = NewLoop();
  CallbackHandle handle = loop->RunCallback([] {});
  EXPECT_TRUE(handle.pending());
  loop->Run();
  EXPECT_FALSE(handle.pending());
  EXPECT_FALSE(CallbackHandle().pending());
}

TEST(RunCallbackTest, StopBeforeRunCancelsAndReleasesCapture) {
  auto loop = NewLoop();
  auto token = std::make_shared<int>(7);
  bool ran = false;
  CallbackHandle handle = loop->RunCallback([&ran, token] { ran = true; });
  EXPECT_EQ(token.use_count(), 2);
  handle.Stop();
  EXPECT_FALSE(handle.pending());
  EXPECT_EQ(token.use_count(), 1);
  loop->Run();
  EXPECT_FALSE(ran);
  EXPECT_EQ(loop->pending_callbacks(), 0u);
}

TEST(RunCallbackTest, QueuedCallbackKeepsRunAliveAndRunsFirstIteration) {
  auto loop = NewLoop();
  bool ran = false;
  loop->RunCallback([&] { ran = true; });
  loop->Run(RunMode::kNoWait);
  EXPECT_TRUE(ran);
}

TEST(RunCallbackTest, CallbacksQueuedDuringThePassRunNextIteration) {
  auto loop = NewLoop();
  std::vector<unsigned> iterations;
  loop->RunCallback([&] {
    iterations.push_back(loop->iteration());
    loop->RunCallback([&] { iterations.push_back(loop->iteration()); });
  });
  loop->Run();
  ASSERT_EQ(iterations.size(), 2u);
  EXPECT_EQ(iterations[1], iterations[0] + 1);
}

TEST(RunCallbackTest, PendingCallbacksKeepTheBackendFromBlocking) {
  auto loop = NewLoop();
  // A referenced hour-long timer: if the backend blocked while callbacks were pending, Run would
  // not return for an hour (the test times out).
  TimerWatcher hour(*loop, absl::Hours(1), [] {});
  hour.Start();
  int remaining = 5;
  std::function<void()> step = [&] {
    if (--remaining == 0) {
      loop->Break();
      return;
    }
    loop->RunCallback([&] { step(); });
  };
  loop->RunCallback([&] { step(); });
  loop->Run();
  EXPECT_EQ(remaining, 0);
}

TEST(RunCallbackTest, SelfRequeuingCallbackDoesNotStarveIo) {
  auto loop = NewLoop();
  testutil::TestPipe pipe;
  int requeues = 0;
  bool io_fired = false;
  std::function<void()> spin = [&] {
    ++requeues;
    if (!io_fired && requeues < 10000) loop->RunCallback([&] { spin(); });
  };
  IoWatcher io(*loop, pipe.read_fd, EV_READ, [&](int) {
    io_fired = true;
    loop->Break();
  });
  io.Start();
  ASSERT_EQ(write(pipe.write_fd, "x", 1), 1);
  loop->RunCallback([&] { spin(); });
  loop->Run();
  EXPECT_TRUE(io_fired);
  EXPECT_LT(requeues, 5);
  io.Stop();
}

TEST(RunCallbackTest, CallbacksPerIterationBoundsOnePass) {
  Loop::Options options;
  options.callbacks_per_iteration = 2;
  auto loop = *Loop::Create(options);
  std::vector<unsigned> iterations;
  for (int i = 0; i < 5; ++i) loop->RunCallback([&] { iterations.push_back(loop->iteration()); });
  loop->Run();
  ASSERT_EQ(iterations.size(), 5u);
  EXPECT_EQ(iterations[0], iterations[1]);
  EXPECT_EQ(iterations[2], iterations[0] + 1);
  EXPECT_EQ(iterations[4], iterations[0] + 2);
}

TEST(RunCallbackTest, EmptyCallbackIsRejected) {
  auto loop = NewLoop();
  try {
    loop->RunCallback(nullptr);
    FAIL() << "expected gevent::UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("gevent::Loop::RunCallback: callback must not be empty"));
  }
}

TEST(RunCallbackTest, ExceptionGoesToErrorHandlerAndLaterCallbacksStillRun) {
  auto loop = NewLoop();
  std::string kind, what;
  loop->SetErrorHandler([&](std::string_view k, std::exception_ptr e) {
    kind = std::string(k);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    }
  });
  bool second_ran = false;
  loop->RunCallback([] { throw std::runtime_error("callback boom"); });
  loop->RunCallback([&] { second_ran = true; });
  loop->Run();
  EXPECT_EQ(kind, "callback");
  EXPECT_EQ(what, "callback boom");
  EXPECT_TRUE(second_ran);
}

TEST(RunCallbackTest, QueuedCallbacksAreDroppedWhenTheLoopDies) {
  CallbackHandle handle;
  {
    auto loop = NewLoop();
    handle = loop->RunCallback([] {});
  }
  EXPECT_FALSE(handle.pending());
  handle.Stop();  // Harmless after the loop is gone.
}

}  // namespace
}  // namespace gevent
