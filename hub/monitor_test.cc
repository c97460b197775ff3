#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "hub/event.h"
#include "hub/hub.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"

namespace gevent {
namespace {

class MonitorTest : public HubTestFixture {
 protected:
  void TearDown() override {
    if (Hub* hub = HubIfExists()) hub->StopMonitor();
    HubTestFixture::TearDown();
  }

  MonitorOptions Collecting(absl::Duration threshold) {
    MonitorOptions options;
    options.threshold = threshold;
    options.report = [this](const BlockReport& r) {
      std::lock_guard<std::mutex> lock(mu_);
      reports_.push_back(r);
      report_count_.store(static_cast<int>(reports_.size()));
    };
    return options;
  }

  // Burns CPU on the hub thread without yielding until the monitor reported `n` times, or
  // gives up after a generous deadline (the test then fails on the count).
  void BlockUntilReported(int n) {
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (report_count_.load() < n && absl::Now() < give_up) {
    }
  }

  std::vector<BlockReport> Reports() {
    std::lock_guard<std::mutex> lock(mu_);
    return reports_;
  }

  std::mutex mu_;
  std::vector<BlockReport> reports_;
  std::atomic<int> report_count_{0};
};

TEST_F(MonitorTest, AGreenletThatHoldsTheHubIsReportedByName) {
  const absl::Duration threshold = absl::Milliseconds(20);
  GetHub().StartMonitor(Collecting(threshold));
  SpawnOptions options;
  options.name = "hog";
  Spawn(options, [&] { BlockUntilReported(1); });
  EXPECT_TRUE(Wait());
  const std::vector<BlockReport> reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].greenlet, "greenlet 'hog'");
  EXPECT_GE(reports[0].blocked_for, threshold);
}

TEST_F(MonitorTest, OneEpisodeIsReportedOnce) {
  // Long enough that a preempted hub thread (a loaded 2-CPU machine under tsan) does not look
  // like a second episode: 10 ms was seen to.
  const absl::Duration threshold = absl::Milliseconds(40);
  GetHub().StartMonitor(Collecting(threshold));
  Spawn([&] {
    BlockUntilReported(1);
    const absl::Time until = absl::Now() + 10 * threshold;  // Still blocking, many periods on.
    while (absl::Now() < until) {
    }
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(Reports().size(), 1u);
}

TEST_F(MonitorTest, ABlockingLoopCallbackIsReportedAsTheHub) {
  GetHub().StartMonitor(Collecting(absl::Milliseconds(20)));
  GetHub().Schedule([&] { BlockUntilReported(1); });
  EXPECT_TRUE(Wait());
  const std::vector<BlockReport> reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].greenlet.find("the hub itself"), std::string::npos) << reports[0].greenlet;
}

TEST_F(MonitorTest, AHubWaitingForTimersIsIdleNotBlocked) {
  // Long enough that the few instructions between polls, delayed by a loaded machine under
  // tsan, do not look blocked: 10 ms failed most tsan runs at a load of 4 on 2 CPUs.
  const absl::Duration threshold = absl::Milliseconds(100);
  GetHub().StartMonitor(Collecting(threshold));
  Sleep(5 * threshold);  // The loop waits in its poll the whole time.
  EXPECT_TRUE(Reports().empty());
}

TEST_F(MonitorTest, GreenletsThatKeepYieldingAreNotReported) {
  // A generous threshold: only an OS stall of that length could make this fail.
  const absl::Duration threshold = absl::Milliseconds(200);
  GetHub().StartMonitor(Collecting(threshold));
  for (int i = 0; i < 2; ++i) {
    Spawn([threshold] {
      const absl::Time until = absl::Now() + 2 * threshold;
      while (absl::Now() < until) Sleep(absl::ZeroDuration());
    });
  }
  EXPECT_TRUE(Wait());
  EXPECT_TRUE(Reports().empty());
}

TEST_F(MonitorTest, AThrowingReportGoesToTheLoopErrorHandlerAndTheMonitorGoesOn) {
  Hub& hub = GetHub();
  std::vector<std::string> errors;  // Hub thread only.
  Event error_seen;
  hub.loop().SetErrorHandler([&](std::string_view kind, std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      errors.push_back(std::string(kind) + ": " + e.what());
    }
    error_seen.Set();
  });
  MonitorOptions options = Collecting(absl::Milliseconds(20));
  options.report = [this, collect = std::move(options.report)](const BlockReport& r) {
    collect(r);
    if (report_count_.load() == 1) throw std::runtime_error("report failed");
  };
  hub.StartMonitor(std::move(options));
  Spawn([&] {
    BlockUntilReported(1);  // The first report throws on the monitor thread.
    // Parked: the hub runs its loop, and the exception reaches the error handler.
    EXPECT_TRUE(error_seen.Wait(absl::Seconds(20)));
    BlockUntilReported(2);  // A later episode is still reported.
  });
  EXPECT_TRUE(Wait());
  hub.loop().SetErrorHandler(nullptr);
  EXPECT_EQ(Reports().size(), 2u);
  EXPECT_EQ(errors, (std::vector<std::string>{"monitor: report failed"}));
}

TEST_F(MonitorTest, ANonPositiveThresholdIsRejected) {
  MonitorOptions options;
  options.threshold = absl::ZeroDuration();
  try {
    GetHub().StartMonitor(options);
    FAIL() << "a zero threshold was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("threshold"), std::string::npos) << e.what();
  }
}

TEST_F(MonitorTest, StopMonitorStopsReporting) {
  Hub& hub = GetHub();
  hub.StartMonitor(Collecting(absl::Milliseconds(10)));
  hub.StopMonitor();
  hub.Schedule([] {
    const absl::Time until = absl::Now() + absl::Milliseconds(100);
    while (absl::Now() < until) {
    }
  });
  EXPECT_TRUE(Wait());
  EXPECT_TRUE(Reports().empty());
}

}  // namespace
}  // namespace gevent
