#include "hub/pool.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gevent {
namespace {

class PoolTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(greenlet::Greenlet::Current(), greenlet::Greenlet::Main());
    DestroyHub();
  }
};

TEST_F(PoolTest, GroupJoinWaitsForEveryMember) {
  Group group;
  std::vector<int> done;
  for (int i = 0; i < 3; ++i) {
    group.Spawn([&done, i] {
      Sleep(absl::Milliseconds(3 - i));
      done.push_back(i);
    });
  }
  EXPECT_EQ(group.size(), 3u);
  EXPECT_TRUE(group.Join(absl::Seconds(30)));
  EXPECT_EQ(group.size(), 0u);
  EXPECT_EQ(done.size(), 3u);
}

TEST_F(PoolTest, KillAllLeavesTheGroupEmpty) {
  // gevent: len(group) == 0 once kill() returns. One member parked, one not started yet.
  Group group;
  GreenletRef parked = group.Spawn([] { Sleep(absl::Seconds(30)); });
  Sleep(absl::ZeroDuration());  // `parked` runs up to its Sleep.
  ASSERT_TRUE(parked->started());
  GreenletRef unstarted = group.Spawn([] {});
  ASSERT_FALSE(unstarted->started());
  group.KillAll();
  EXPECT_TRUE(parked->dead());
  EXPECT_TRUE(unstarted->dead());
  EXPECT_EQ(group.size(), 0u);
  EXPECT_FALSE(group.Contains(parked));
  EXPECT_FALSE(group.Contains(unstarted));
  EXPECT_TRUE(group.Join(absl::ZeroDuration()));

  // Only members that never ran: their kill finishes them at once, before their links run.
  group.Spawn([] {});
  group.Spawn([] {});
  group.KillAll();
  EXPECT_EQ(group.size(), 0u);
  EXPECT_TRUE(group.Join(absl::ZeroDuration()));
}

TEST_F(PoolTest, KillAllFreesEveryPoolSlot) {
  Pool pool(2);
  pool.Spawn([] { Sleep(absl::Seconds(30)); });
  pool.Spawn([] { Sleep(absl::Seconds(30)); });
  ASSERT_TRUE(pool.full());
  pool.KillAll();
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(pool.free_count(), 2u);
  EXPECT_FALSE(pool.full());
}

TEST_F(PoolTest, SpawnBlocksWhenFull) {
  Pool pool(2);
  std::vector<std::string> log;
  Event release;
  pool.Spawn([&] { release.Wait(); log.push_back("a"); });
  pool.Spawn([&] { release.Wait(); log.push_back("b"); });
  EXPECT_TRUE(pool.full());
  Spawn([&] { log.push_back("release"); release.Set(); });
  pool.Spawn([&] { log.push_back("c"); });  // Parks until a or b finishes.
  log.push_back("spawned-c");
  EXPECT_TRUE(pool.Join(absl::Seconds(30)));
  EXPECT_EQ(log, (std::vector<std::string>{"release", "a", "b", "spawned-c", "c"}));
}

TEST_F(PoolTest, NonBlockingAddOnAFullPoolFailsWithPoolFull) {
  Pool pool(1);
  Event release;
  pool.Spawn([&] { release.Wait(); });
  GreenletRef extra = Greenlet::Create([]() -> std::any { return {}; });
  absl::Status s = pool.Add(extra, /*block=*/false);
  EXPECT_TRUE(IsPoolFull(s));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.message(), "pool is full");
  absl::Status timed_out = pool.Add(extra, true, absl::Milliseconds(5));
  EXPECT_TRUE(IsPoolFull(timed_out));
  EXPECT_EQ(timed_out.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(pool.WaitAvailable(absl::Milliseconds(5)));
  release.Set();
  EXPECT_TRUE(pool.WaitAvailable(absl::Seconds(30)));
  EXPECT_EQ(pool.free_count(), 1u);
  EXPECT_TRUE(pool.Join());
}

TEST_F(PoolTest, MapReturnsResultsInInputOrder) {
  Pool pool(2);
  std::vector<int> in = {3, 1, 2};
  std::vector<int> out = pool.Map(
      [](int ms) {
        Sleep(absl::Milliseconds(ms));
        return ms * 10;
      },
      in);
  EXPECT_EQ(out, (std::vector<int>{30, 10, 20}));
}

TEST_F(PoolTest, ImapUnorderedReturnsResultsInCompletionOrder) {
  Pool pool(3);
  std::vector<int> in = {2, 0, 1};  // Number of yields before finishing.
  std::vector<int> out = pool.ImapUnordered(
      [](int yields) {
        for (int i = 0; i < yields; ++i) Sleep(absl::ZeroDuration());
        return yields;
      },
      in);
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2}));
}

TEST_F(PoolTest, MapRethrowsAFailure) {
  Group group;
  std::vector<int> in = {1, 2};
  auto old = SetSpawnErrorHandler([](Greenlet&, std::exception_ptr) {});
  EXPECT_THROW(group.Map(
                   [](int x) -> int {
                     if (x == 2) throw std::runtime_error("bad input");
                     return x;
                   },
                   in),
               std::runtime_error);
  SetSpawnErrorHandler(old);
  EXPECT_TRUE(group.Join());
}

}  // namespace
}  // namespace gevent
