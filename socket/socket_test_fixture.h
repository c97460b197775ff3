// SocketTestFixture: the fixture of the socket tests. Like //hub's HubTestFixture (which is
// private to //hub): TearDown lets the hub finish what is left, checks that nothing leaked (back
// on the main greenlet, no ready entries, no active watchers but the hub's own) and destroys the
// hub so that the next test starts from scratch.
#ifndef GEVENT_SOCKET_SOCKET_TEST_FIXTURE_H_
#define GEVENT_SOCKET_SOCKET_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include "hub/hub.h"

namespace gevent {

class SocketTestFixture : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(greenlet::Greenlet::Current(), greenlet::Greenlet::Main());
    if (Hub* hub = HubIfExists()) {
      Wait();
      EXPECT_EQ(hub->ready_count(), 0u);
      EXPECT_EQ(hub->loop().active_watcher_count(), Hub::kOwnWatchers);
    }
    DestroyHub();
  }
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_SOCKET_TEST_FIXTURE_H_
