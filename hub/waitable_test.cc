#include "hub/waitable.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "hub/event.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"

namespace gevent {
namespace {

using WaitableTest = HubTestFixture;

TEST_F(WaitableTest, IWaitReturnsObjectsInTheOrderTheyBecameReady) {
  Event a, b, c;
  Spawn([&] {
    c.Set();
    Sleep(absl::ZeroDuration());
    a.Set();
    Sleep(absl::ZeroDuration());
    b.Set();
  });
  IWait it({&a, &b, &c});
  EXPECT_EQ(it.Next(), &c);
  EXPECT_EQ(it.Next(), &a);
  EXPECT_EQ(it.Next(), &b);
  EXPECT_EQ(it.Next(), nullptr);
  EXPECT_TRUE(Wait());
}

TEST_F(WaitableTest, ObjectsReadyAtTheStartComeFirstInArgumentOrder) {
  Event a, b, late;
  b.Set();
  a.Set();
  Spawn([&] { late.Set(); });
  EXPECT_EQ(Wait({&late, &b, &a}), (std::vector<Waitable*>{&b, &a, &late}));
}

TEST_F(WaitableTest, WaitMixesGreenletsEventsAndAsyncResults) {
  Event never;
  AsyncResult<int> result;
  GreenletRef quick = Spawn([] { return 1; });
  GreenletRef slower = Spawn([&] {
    Sleep(absl::ZeroDuration());
    result.Set(7);
  });
  const std::vector<Waitable*> done = Wait({&never, slower.get(), &result, quick.get()},
                                           absl::Milliseconds(200), /*count=*/3);
  EXPECT_EQ(done, (std::vector<Waitable*>{quick.get(), &result, slower.get()}));
  EXPECT_EQ(*result.Get(), 7);
}

TEST_F(WaitableTest, WaitWithATimeoutReturnsWhatWasReadyInTime) {
  Event set_now, never;
  Spawn([&] { set_now.Set(); });
  // `never` keeps nothing alive, so the timeout's own timer must end the wait.
  EXPECT_EQ(Wait({&never, &set_now}, absl::Milliseconds(20)),
            (std::vector<Waitable*>{&set_now}));
}

TEST_F(WaitableTest, AnEventSetTwiceIsReturnedOnce) {
  Event e, other;
  Spawn([&] {
    e.Set();
    e.Clear();
    e.Set();
    Sleep(absl::ZeroDuration());
    other.Set();
  });
  EXPECT_EQ(Wait({&e, &other}), (std::vector<Waitable*>{&e, &other}));
}

TEST_F(WaitableTest, CountZeroReturnsAtOnce) {
  Event never;
  IWait it({&never}, std::nullopt, 0);
  EXPECT_EQ(it.Next(), nullptr);
}

TEST_F(WaitableTest, ANullObjectIsRejectedByPosition) {
  Event e;
  try {
    IWait it({&e, nullptr});
    FAIL() << "a null object was accepted";
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what()).find("object 1 is null"), std::string::npos)
        << error.what();
  }
}

TEST_F(WaitableTest, WaitingOnNothingThatCanFireRaisesLoopExit) {
  Event never;
  EXPECT_THROW(Wait({&never}), LoopExit);
}

TEST_F(WaitableTest, AnObjectDestroyedBeforeTheIWaitIsForgotten) {
  auto e = std::make_unique<Event>();
  Event other;
  IWait it({e.get(), &other});
  e.reset();  // Unlinks the IWait's observer.
  Spawn([&] { other.Set(); });
  EXPECT_EQ(it.Next(), &other);
}

}  // namespace
}  // namespace gevent
