#include "hub/pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
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
  std::vector<int> out;
  for (int r : pool.ImapUnordered(
           [](int yields) {
             for (int i = 0; i < yields; ++i) Sleep(absl::ZeroDuration());
             return yields;
           },
           in)) {
    out.push_back(r);
  }
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(pool.size(), 0u);
}

// The first result is available while a later input is still running: input 1 waits for an
// Event that the consumer sets only after it received result 0 (the old ImapUnordered returned
// only after every input finished, so it could never see it). Timeouts turn a hang into a failure.
TEST_F(PoolTest, ImapUnorderedIsLazy) {
  Pool pool(2);
  Event gate;
  auto results = pool.ImapUnordered(
      [&gate](int i) {
        if (i == 1) {
          EXPECT_TRUE(gate.Wait(absl::Seconds(30)));
        }
        return i;
      },
      std::vector<int>{0, 1});
  absl::StatusOr<std::optional<int>> first = results.Next(absl::Seconds(30));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(**first, 0);
  EXPECT_EQ(results.running(), 1u);  // Input 1 still runs.
  gate.Set();
  absl::StatusOr<std::optional<int>> second = results.Next(absl::Seconds(30));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->value_or(-1), 1);
  EXPECT_EQ(results.Next(), std::nullopt);
}

TEST_F(PoolTest, ImapIsLazyToo) {
  Pool pool(2);
  Event gate;
  auto results = pool.Imap(
      [&gate](int i) {
        if (i == 1) {
          EXPECT_TRUE(gate.Wait(absl::Seconds(30)));
        }
        return i * 10;
      },
      std::vector<int>{0, 1});
  absl::StatusOr<std::optional<int>> first = results.Next(absl::Seconds(30));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->value_or(-1), 0);
  gate.Set();
  EXPECT_EQ(results.Next(), 10);
  EXPECT_EQ(results.Next(), std::nullopt);
}

TEST_F(PoolTest, ImapNextTimesOutWithDeadlineExceeded) {
  Pool pool(1);
  Event gate;
  auto results = pool.ImapUnordered([&gate](int i) { gate.Wait(); return i; },
                                    std::vector<int>{7});
  absl::StatusOr<std::optional<int>> r = results.Next(absl::Milliseconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  gate.Set();
  EXPECT_EQ(results.Next(), 7);
}

TEST_F(PoolTest, ImapKeepsInputOrderWhenMembersFinishOutOfOrder) {
  Pool pool(4);
  std::vector<int> finished;
  std::vector<int> out;
  for (int r : pool.Imap(
           [&finished](int yields) {
             for (int i = 0; i < yields; ++i) Sleep(absl::ZeroDuration());
             finished.push_back(yields);
             return yields * 10;
           },
           std::vector<int>{3, 0, 2, 1})) {
    out.push_back(r);
  }
  EXPECT_EQ(finished, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(out, (std::vector<int>{30, 0, 20, 10}));
}

TEST_F(PoolTest, ImapRespectsTheInFlightBound) {
  for (std::size_t bound : {std::size_t{0}, std::size_t{3}}) {
    Pool pool(10);
    int running = 0;
    int max_running = 0;
    std::vector<int> in(1000);
    for (int i = 0; i < 1000; ++i) in[i] = i;
    long sum = 0;
    std::size_t count = 0;
    auto results = pool.ImapUnordered(
        [&](int i) {
          max_running = std::max(max_running, ++running);
          for (int k = 0; k < i % 4; ++k) Sleep(absl::ZeroDuration());
          --running;
          return i;
        },
        in, ImapOptions{bound, 0});
    for (int r : results) {
      sum += r;
      ++count;
    }
    const int limit = bound == 0 ? 10 : static_cast<int>(bound);
    EXPECT_EQ(count, 1000u);
    EXPECT_EQ(sum, 999L * 1000 / 2);
    EXPECT_LE(max_running, limit);
    EXPECT_GE(max_running, 2);  // Really concurrent.
    EXPECT_LE(results.max_running_seen(), static_cast<std::size_t>(limit));
    EXPECT_EQ(pool.size(), 0u);
  }
}

TEST_F(PoolTest, ImapRethrowsAFailureAtItsStep) {
  auto old = SetSpawnErrorHandler([](Greenlet&, std::exception_ptr) {});
  auto fn = [](int x) -> int {
    if (x == 2) throw std::runtime_error("bad input");
    for (int i = 0; i < 3; ++i) Sleep(absl::ZeroDuration());  // Others finish after 2.
    return x;
  };
  {
    // Input order: 0, 1, then the failure of 2, then 3 still comes.
    Pool pool(4);
    auto results = pool.Imap(fn, std::vector<int>{0, 1, 2, 3});
    EXPECT_EQ(results.Next(), 0);
    EXPECT_EQ(results.Next(), 1);
    EXPECT_THROW(results.Next(), std::runtime_error);
    EXPECT_EQ(results.Next(), 3);
    EXPECT_EQ(results.Next(), std::nullopt);
  }
  {
    // Completion order: 2 fails first, so the first step throws.
    Pool pool(4);
    auto results = pool.ImapUnordered(fn, std::vector<int>{0, 1, 2, 3});
    EXPECT_THROW(results.Next(), std::runtime_error);
    std::vector<int> rest;
    for (int r : results) rest.push_back(r);
    std::sort(rest.begin(), rest.end());
    EXPECT_EQ(rest, (std::vector<int>{0, 1, 3}));
  }
  SetSpawnErrorHandler(old);
}

TEST_F(PoolTest, DestroyingAnImapEarlyKillsTheRunningMembers) {
  Pool pool(3);
  Event never;
  int started = 0;
  int unwound = 0;
  struct Unwind {
    int* n;
    ~Unwind() { ++*n; }
  };
  {
    auto results = pool.ImapUnordered(
        [&](int i) {
          ++started;
          if (i == 0) return i;
          Unwind u{&unwound};
          never.Wait();
          return i;
        },
        std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    EXPECT_EQ(results.Next(), 0);
    Sleep(absl::ZeroDuration());  // The replacement of input 0 starts.
    EXPECT_EQ(results.running(), 3u);
    EXPECT_EQ(pool.size(), 3u);
  }
  EXPECT_EQ(started, 4);
  EXPECT_EQ(unwound, 3);  // Every running member unwound before the destructor returned.
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(pool.free_count(), 3u);
  EXPECT_TRUE(pool.Join(absl::ZeroDuration()));
  Sleep(absl::ZeroDuration());
  EXPECT_EQ(started, 4);  // No input started after the range was gone.
}

TEST_F(PoolTest, ImapOfNoInputsEndsAtOnce) {
  Pool pool(2);
  auto fn = [](int x) { return x; };
  int steps = 0;
  for (int r : pool.ImapUnordered(fn, std::vector<int>{})) steps += r + 1;
  for (int r : pool.Imap(fn, std::vector<int>{})) steps += r + 1;
  EXPECT_EQ(steps, 0);
  auto results = pool.Imap(fn, std::vector<int>{});
  EXPECT_EQ(results.Next(), std::nullopt);
  EXPECT_EQ(results.Next(), std::nullopt);
}

TEST_F(PoolTest, ImapOfAVoidFunctionYieldsOneStepPerInput) {
  Group group;
  int calls = 0;
  int steps = 0;
  for (std::monostate r : group.Imap([&calls](int) { ++calls; }, std::vector<int>{1, 2, 3})) {
    (void)r;
    ++steps;
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(steps, 3);
}

// A counting input iterator: a huge input that is never materialised.
struct Counter {
  int i;
  int operator*() const { return i; }
  Counter& operator++() {
    ++i;
    return *this;
  }
  bool operator==(const Counter& o) const { return i == o.i; }
};

// A spawn costs milliseconds under tsan (its fiber switches): fewer inputs there, same checks.
#if defined(__SANITIZE_THREAD__)
constexpr int kHugeInputs = 2000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kHugeInputs = 2000;
#else
constexpr int kHugeInputs = 100000;
#endif
#else
constexpr int kHugeInputs = 100000;
#endif

TEST_F(PoolTest, ImapOfAHugeInputKeepsMemoryBounded) {
  constexpr int kInputs = kHugeInputs;
  Pool pool(8);
  long sum = 0;
  int count = 0;
  int next = 0;
  bool in_order = true;
  auto results = pool.Imap([](int x) { return x; }, Counter{0}, Counter{kInputs});
  for (int r : results) {
    in_order = in_order && r == next++;
    sum += r;
    ++count;
  }
  EXPECT_TRUE(in_order);
  EXPECT_EQ(count, kInputs);
  EXPECT_EQ(sum, static_cast<long>(kInputs) * (kInputs - 1) / 2);
  EXPECT_LE(results.max_running_seen(), 8u);
  EXPECT_LE(results.max_buffered_seen(), 8u);
  EXPECT_EQ(pool.size(), 0u);
}

TEST_F(PoolTest, ASlowConsumerStopsTheProducer) {
  Pool pool(8);
  int started = 0;
  auto results = pool.ImapUnordered(
      [&started](int x) {
        ++started;
        return x;
      },
      Counter{0}, Counter{200}, ImapOptions{0, 4});
  for (int i = 0; i < 5; ++i) Sleep(absl::ZeroDuration());  // The consumer does not consume.
  EXPECT_EQ(started, 4);  // max_buffered results held: the producer waits.
  int count = 0;
  for (int r : results) {
    (void)r;
    ++count;
  }
  EXPECT_EQ(count, 200);
  EXPECT_LE(results.max_buffered_seen(), 4u);
  EXPECT_LE(results.max_running_seen(), 4u);
}

TEST_F(PoolTest, ImapFromAnotherThreadIsMisuse) {
  Pool pool(1);
  auto results = pool.ImapUnordered([](int x) { return x; }, std::vector<int>{1});
  bool threw = false;
  std::thread t([&] {
    try {
      results.Next();
    } catch (const UsageError&) {
      threw = true;
    }
  });
  t.join();
  EXPECT_TRUE(threw);
  EXPECT_EQ(results.Next(), 1);
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
