#include "hub/queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hub/sync_test_util.h"

namespace gevent {
namespace {

using QueueTest = testing::SyncTest;

TEST_F(QueueTest, PutThenGetIsFifo) {
  Queue<int> q;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.Put(i).ok());
  EXPECT_EQ(q.size(), 4u);
  EXPECT_FALSE(q.full());  // Unbounded.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(*q.Get(), i);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, BoundedPutBlocksUntilAGetMakesRoom) {
  Queue<int> q(1);
  std::vector<std::string> log;
  Start([&] {
    ASSERT_TRUE(q.Put(1).ok());
    EXPECT_TRUE(q.full());
    log.push_back("put1");
    ASSERT_TRUE(q.Put(2).ok());  // Parks: full.
    log.push_back("put2");
  });
  Start([&] {
    log.push_back("get");
    EXPECT_EQ(q.putter_count(), 1u);
    EXPECT_EQ(*q.Get(), 1);  // Moves the parked putter's item in.
    EXPECT_EQ(q.size(), 1u);
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"put1", "get", "put2"}));
  EXPECT_EQ(*q.GetNowait(), 2);
}

TEST_F(QueueTest, GetBlocksUntilAPut) {
  Queue<std::string> q;
  std::string got;
  Start([&] { got = *q.Get(); });
  Start([&] {
    EXPECT_EQ(q.getter_count(), 1u);
    ASSERT_TRUE(q.Put("hello").ok());
    EXPECT_TRUE(q.empty());  // Handed straight to the parked getter.
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(got, "hello");
}

TEST_F(QueueTest, NowaitVariantsReturnFullAndEmptyErrors) {
  Queue<int> q(1);
  absl::StatusOr<int> empty = q.GetNowait();
  EXPECT_TRUE(IsQueueEmpty(empty.status()));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(empty.status().message(), "queue empty");
  ASSERT_TRUE(q.PutNowait(1).ok());
  absl::Status full = q.PutNowait(2);
  EXPECT_TRUE(IsQueueFull(full));
  EXPECT_EQ(full.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(full.message(), "queue full");
  EXPECT_EQ(*q.GetNowait(), 1);
}

TEST_F(QueueTest, BlockingTimeoutsReturnFullAndEmpty) {
  Queue<int> q(1);
  EXPECT_TRUE(IsQueueEmpty(q.Get(true, absl::Milliseconds(5)).status()));
  ASSERT_TRUE(q.Put(1).ok());
  EXPECT_TRUE(IsQueueFull(q.Put(2, true, absl::Milliseconds(5))));
  EXPECT_EQ(q.putter_count(), 0u);
  EXPECT_EQ(q.getter_count(), 0u);
  EXPECT_EQ(q.size(), 1u);
}

TEST_F(QueueTest, GettersWakeInFifoOrder) {
  Queue<int> q;
  std::vector<std::pair<int, int>> got;  // (getter, item)
  for (int i = 0; i < 3; ++i) {
    Start([&, i] { got.emplace_back(i, *q.Get()); });
  }
  Start([&] {
    for (int item = 10; item < 13; ++item) ASSERT_TRUE(q.Put(item).ok());
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(got, (std::vector<std::pair<int, int>>{{0, 10}, {1, 11}, {2, 12}}));
}

TEST_F(QueueTest, PuttersWakeInFifoOrder) {
  Queue<int> q(1);
  ASSERT_TRUE(q.Put(0).ok());
  for (int i = 1; i <= 3; ++i) {
    Start([&, i] { ASSERT_TRUE(q.Put(i).ok()); });
  }
  std::vector<int> got;
  Start([&] {
    for (int i = 0; i < 4; ++i) got.push_back(*q.Get());
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(QueueTest, JoinWaitsForEveryTaskDone) {
  Queue<int> q;
  std::vector<std::string> log;
  ASSERT_TRUE(q.Put(1).ok());
  ASSERT_TRUE(q.Put(2).ok());
  Start([&] {
    EXPECT_TRUE(q.Join(absl::Seconds(30)));
    log.push_back("joined");
  });
  Start([&] {
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(q.Get().ok());
      log.push_back("done");
      ASSERT_TRUE(q.TaskDone().ok());
      Sleep(absl::ZeroDuration());
    }
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"done", "done", "joined"}));
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_TRUE(q.Join());  // Nothing unfinished: at once.
}

TEST_F(QueueTest, JoinTimesOut) {
  Queue<int> q;
  ASSERT_TRUE(q.Put(1).ok());
  EXPECT_FALSE(q.Join(absl::Milliseconds(5)));
}

TEST_F(QueueTest, TaskDoneOverCallIsAnError) {
  Queue<int> q;
  ASSERT_TRUE(q.Put(1).ok());
  ASSERT_TRUE(q.Get().ok());
  ASSERT_TRUE(q.TaskDone().ok());
  absl::Status s = q.TaskDone();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "task_done() called too many times");
}

TEST_F(QueueTest, LifoQueueGetsNewestFirst) {
  LifoQueue<int> q;
  for (int i : {1, 2, 3}) ASSERT_TRUE(q.Put(i).ok());
  EXPECT_EQ(*q.Get(), 3);
  EXPECT_EQ(*q.Get(), 2);
  EXPECT_EQ(*q.Get(), 1);
}

TEST_F(QueueTest, PriorityQueueGetsSmallestFirst) {
  PriorityQueue<int> q;
  for (int i : {5, 1, 4, 2, 3}) ASSERT_TRUE(q.Put(i).ok());
  std::vector<int> got;
  while (!q.empty()) got.push_back(*q.Get());
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4, 5}));

  PriorityQueue<int, std::greater<int>> largest;
  for (int i : {5, 1, 4}) ASSERT_TRUE(largest.Put(i).ok());
  EXPECT_EQ(*largest.Get(), 5);
}

TEST_F(QueueTest, MoveOnlyItems) {
  Queue<std::unique_ptr<int>> q(1);
  std::unique_ptr<int> got;
  Start([&] {
    ASSERT_TRUE(q.Put(std::make_unique<int>(1)).ok());
    ASSERT_TRUE(q.Put(std::make_unique<int>(2)).ok());
  });
  Start([&] {
    got = *q.Get();
    got = *q.Get();
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(*got, 2);
}

TEST_F(QueueTest, GetThatCanNeverBeSatisfiedRaisesLoopExit) {
  Queue<int> q;
  EXPECT_THROW(q.Get().IgnoreError(), LoopExit);
  EXPECT_EQ(q.getter_count(), 0u);
}

TEST_F(QueueTest, KilledGetterPassesItsItemOn) {
  Queue<int> q;
  int second = -1;
  Start([&] { q.Get().IgnoreError(); });   // Will be killed after the hand-off.
  Start([&] { second = *q.Get(); });
  Start([&] {
    ASSERT_TRUE(q.Put(7).ok());  // Handed to the first getter.
    greenlets_[0]->Throw(greenlet::GreenletExit());
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(second, 7);
}

using ChannelTest = testing::SyncTest;

TEST_F(ChannelTest, PutBlocksUntilAGetTakesTheItem) {
  Channel<int> ch;
  std::vector<std::string> log;
  Start([&] {
    log.push_back("put");
    ASSERT_TRUE(ch.Put(1).ok());
    log.push_back("taken");
  });
  Start([&] {
    log.push_back("get");
    EXPECT_EQ(*ch.Get(), 1);
    log.push_back("got");
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(log, (std::vector<std::string>{"put", "get", "got", "taken"}));
}

TEST_F(ChannelTest, GetBlocksUntilAPut) {
  Channel<std::string> ch;
  std::string got;
  Start([&] { got = *ch.Get(); });
  Start([&] { ASSERT_TRUE(ch.Put("x").ok()); });  // A getter waits: returns at once.
  EXPECT_TRUE(Wait());
  EXPECT_EQ(got, "x");
}

TEST_F(ChannelTest, NowaitAndTimeoutErrors) {
  Channel<int> ch;
  EXPECT_TRUE(IsQueueFull(ch.PutNowait(1)));
  EXPECT_TRUE(IsQueueEmpty(ch.GetNowait().status()));
  EXPECT_TRUE(IsQueueFull(ch.Put(1, true, absl::Milliseconds(5))));
  EXPECT_TRUE(IsQueueEmpty(ch.Get(true, absl::Milliseconds(5)).status()));
  EXPECT_EQ(ch.putter_count(), 0u);
}

TEST_F(ChannelTest, PuttersAreServedInFifoOrder) {
  Channel<int> ch;
  for (int i = 0; i < 3; ++i) {
    Start([&, i] { ASSERT_TRUE(ch.Put(i).ok()); });
  }
  std::vector<int> got;
  Start([&] {
    for (int i = 0; i < 3; ++i) got.push_back(*ch.Get());
  });
  EXPECT_TRUE(Wait());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
}

}  // namespace
}  // namespace gevent
