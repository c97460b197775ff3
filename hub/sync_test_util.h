// Test fixture for the synchronisation primitives: greenlets started like spawns (parent = hub).
#ifndef GEVENT_HUB_SYNC_TEST_UTIL_H_
#define GEVENT_HUB_SYNC_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

#include "hub/hub.h"

namespace gevent {
namespace testing {

class SyncTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(greenlet::Greenlet::Current(), greenlet::Greenlet::Main());
    // Kill greenlets left parked (a failing test), then check nothing is left behind.
    greenlets_.clear();
    if (Hub* hub = HubIfExists()) {
      EXPECT_EQ(hub->ready_count(), 0u);
      EXPECT_EQ(hub->loop().active_watcher_count(), hub->own_watchers());
    }
    DestroyHub();
  }

  // Start runs `fn` in a new greenlet whose parent is the hub, scheduled like a spawn.
  greenlet::Greenlet* Start(std::function<void()> fn) {
    Hub& hub = GetHub();
    greenlets_.push_back(std::make_unique<greenlet::Greenlet>(std::move(fn), hub.greenlet()));
    greenlet::Greenlet* g = greenlets_.back().get();
    hub.Schedule([g] { g->Switch(); });
    return g;
  }

  std::vector<std::unique_ptr<greenlet::Greenlet>> greenlets_;
};

}  // namespace testing
}  // namespace gevent

#endif  // GEVENT_HUB_SYNC_TEST_UTIL_H_
