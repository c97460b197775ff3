// HubTestFixture: the fixture the hub-level tests share. TearDown lets the hub finish what is
// left, checks that nothing leaked (back on the main greenlet, no ready entries, no active
// watchers but the hub's own) and destroys the hub so the next test starts from scratch.
// ThreadNotification: a one-shot flag for handing off to and from worker threads.
#ifndef GEVENT_HUB_HUB_TEST_FIXTURE_H_
#define GEVENT_HUB_HUB_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "hub/hub.h"

namespace gevent {

class HubTestFixture : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(greenlet::Greenlet::Current(), greenlet::Greenlet::Main());
    if (Hub* hub = HubIfExists()) {
      Wait();
      EXPECT_EQ(hub->ready_count(), 0u);
      EXPECT_EQ(hub->loop().active_watcher_count(), hub->own_watchers());
    }
    DestroyHub();
  }
};

// ThreadNotification: Notify once, WaitForNotification on any thread (blocks the thread, not a
// greenlet). On std::mutex so that ThreadSanitizer sees the hand-off (the system abseil is not
// built for it).
class ThreadNotification {
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

}  // namespace gevent

#endif  // GEVENT_HUB_HUB_TEST_FIXTURE_H_
