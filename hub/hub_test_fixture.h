// HubTestFixture: the fixture the hub-level tests share. TearDown lets the hub finish what is
// left, checks that nothing leaked (back on the main greenlet, no ready entries, no active
// watchers but the hub's own) and destroys the hub so the next test starts from scratch.
#ifndef GEVENT_HUB_HUB_TEST_FIXTURE_H_
#define GEVENT_HUB_HUB_TEST_FIXTURE_H_

#include <gtest/gtest.h>

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

}  // namespace gevent

#endif  // GEVENT_HUB_HUB_TEST_FIXTURE_H_
