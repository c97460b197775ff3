#include "core/watchers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/loop.h"
#include "core/testing/pipe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gevent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Watchers are pinned in memory: libev holds their address.
template <typename W>
constexpr bool kPinned = !std::is_copy_constructible_v<W> && !std::is_copy_assignable_v<W> &&
                         !std::is_move_constructible_v<W> && !std::is_move_assignable_v<W>;
static_assert(kPinned<IoWatcher>);
static_assert(kPinned<TimerWatcher>);
static_assert(kPinned<SignalWatcher>);
static_assert(kPinned<IdleWatcher>);
static_assert(kPinned<PrepareWatcher>);
static_assert(kPinned<CheckWatcher>);
static_assert(kPinned<ForkWatcher>);
static_assert(kPinned<AsyncWatcher>);
static_assert(kPinned<ChildWatcher>);
static_assert(kPinned<StatWatcher>);
static_assert(kPinned<Loop>);

std::unique_ptr<Loop> NewLoop() { return *Loop::Create(); }

using Pipe = gevent::testutil::TestPipe;

// Guard: a timer that fails the test and breaks the loop if `Run` would otherwise wait for an
// event that never comes. Unref'd, so it never keeps the loop alive by itself.
class Deadline {
 public:
  Deadline(Loop& loop, absl::Duration limit)
      : timer_(loop, limit, [this, &loop] {
          expired_ = true;
          loop.Break(BreakMode::kAll);
        }) {
    timer_.Unref();
    timer_.Start();
  }
  ~Deadline() { EXPECT_FALSE(expired_) << "deadline expired"; }

 private:
  bool expired_ = false;
  TimerWatcher timer_;
};

template <typename Exception, typename F>
std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const Exception& e) {
    return e.what();
  }
  return "<no exception>";
}

// --- IoWatcher ---------------------------------------------------------------------------------

TEST(IoWatcherTest, FiresWhenPipeIsReadable) {
  auto loop = NewLoop();
  Pipe p;
  int got = 0;
  char byte = 0;
  IoWatcher io(*loop, p.read_fd, EV_READ, [&](int revents) {
    got = revents;
    ASSERT_EQ(read(p.read_fd, &byte, 1), 1);
    io.Stop();
  });
  io.Start();
  EXPECT_TRUE(io.active());
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(got, 0);  // Nothing written yet.
  ASSERT_EQ(write(p.write_fd, "z", 1), 1);
  Deadline deadline(*loop, absl::Seconds(10));
  loop->Run();
  EXPECT_EQ(got, EV_READ);
  EXPECT_EQ(byte, 'z');
  EXPECT_FALSE(io.active());
}

TEST(IoWatcherTest, FiresWhenPipeIsWritable) {
  auto loop = NewLoop();
  Pipe p;
  int got = 0;
  IoWatcher io(*loop, p.write_fd, EV_WRITE, [&](int revents) {
    got = revents;
    io.Stop();
  });
  EXPECT_EQ(io.fd(), p.write_fd);
  EXPECT_EQ(io.events(), EV_WRITE);
  io.Start();
  loop->Run();
  EXPECT_EQ(got, EV_WRITE);
}

TEST(IoWatcherTest, RejectsNegativeFd) {
  auto loop = NewLoop();
  EXPECT_THAT(ErrorOf<UsageError>([&] { IoWatcher(*loop, -1, EV_READ, [](int) {}); }),
              HasSubstr("gevent::IoWatcher: fd must be >= 0, got -1"));
}

TEST(IoWatcherTest, RejectsUnknownOrEmptyEventMask) {
  auto loop = NewLoop();
  EXPECT_THAT(ErrorOf<UsageError>(
                  [&] { IoWatcher(*loop, 0, EV_READ | EV_TIMER, [](int) {}); }),
              HasSubstr("events must be EV_READ, EV_WRITE or both"));
  EXPECT_THAT(ErrorOf<UsageError>([&] { IoWatcher(*loop, 0, 0, [](int) {}); }),
              HasSubstr("events must be EV_READ, EV_WRITE or both, got 0"));
}

TEST(IoWatcherTest, RejectsEmptyCallback) {
  auto loop = NewLoop();
  EXPECT_THAT(ErrorOf<UsageError>([&] { IoWatcher(*loop, 0, EV_READ, nullptr); }),
              HasSubstr("gevent::IoWatcher: callback must not be empty"));
}

TEST(IoWatcherTest, SetWhileActiveIsRejected) {
  auto loop = NewLoop();
  Pipe p;
  IoWatcher io(*loop, p.read_fd, EV_READ, [](int) {});
  io.Start();
  EXPECT_THAT(ErrorOf<UsageError>([&] { io.Set(p.write_fd, EV_WRITE); }),
              HasSubstr("active"));
  io.Stop();
  io.Set(p.write_fd, EV_WRITE);
  EXPECT_EQ(io.fd(), p.write_fd);
}

TEST(IoWatcherTest, ExceptionGoesToHandlerAndStopsTheWatcher) {
  auto loop = NewLoop();
  Pipe p;
  std::vector<std::string> errors;
  loop->SetErrorHandler([&](std::string_view kind, std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      errors.push_back(std::string(kind) + ": " + ex.what());
    }
  });
  int calls = 0;
  IoWatcher io(*loop, p.read_fd, EV_READ, [&](int) {
    ++calls;
    throw std::runtime_error("io boom");
  });
  io.Start();
  ASSERT_EQ(write(p.write_fd, "x", 1), 1);
  loop->Run();  // Returns: the watcher was stopped, nothing else is active.
  EXPECT_THAT(errors, ElementsAre("io: io boom"));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(io.active());
}

TEST(IoWatcherTest, CallbackMayDestroyItsOwnWatcher) {
  auto loop = NewLoop();
  Pipe p;
  std::unique_ptr<IoWatcher> io;
  io = std::make_unique<IoWatcher>(*loop, p.write_fd, EV_WRITE, [&](int) { io.reset(); });
  io->Start();
  loop->Run();
  EXPECT_EQ(io, nullptr);
}

// --- TimerWatcher ------------------------------------------------------------------------------

TEST(TimerWatcherTest, OneShotFiresOnceAndBecomesInactive) {
  auto loop = NewLoop();
  int fired = 0;
  TimerWatcher timer(*loop, absl::Milliseconds(1), [&] { ++fired; });
  timer.Start();
  EXPECT_TRUE(timer.active());
  loop->Run();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(timer.active());
}

TEST(TimerWatcherTest, RepeatFiresUntilStopped) {
  auto loop = NewLoop();
  int fired = 0;
  TimerWatcher timer(*loop, absl::Milliseconds(1), absl::Milliseconds(1), [&] {
    if (++fired == 3) timer.Stop();
  });
  EXPECT_EQ(timer.repeat(), absl::Milliseconds(1));
  timer.Start();
  loop->Run();
  EXPECT_EQ(fired, 3);
  EXPECT_FALSE(timer.active());
}

TEST(TimerWatcherTest, AgainRestartsWithRepeatInterval) {
  auto loop = NewLoop();
  TimerWatcher timer(*loop, absl::Hours(2), absl::Seconds(30), [] {});
  timer.Start();
  EXPECT_GT(timer.remaining(), absl::Hours(1));
  timer.Again();  // Now fires `repeat` from now.
  EXPECT_TRUE(timer.active());
  EXPECT_LE(timer.remaining(), absl::Seconds(30));
  EXPECT_GT(timer.remaining(), absl::Seconds(29));
  timer.Stop();
  timer.Again();  // Inactive with repeat > 0: starts it.
  EXPECT_TRUE(timer.active());
  timer.set_repeat(absl::ZeroDuration());
  timer.Again();  // repeat == 0: stops it.
  EXPECT_FALSE(timer.active());
}

TEST(TimerWatcherTest, AgainKeepsAnUnrefdTimerUnrefd) {
  auto loop = NewLoop();
  TimerWatcher timer(*loop, absl::Hours(1), absl::Hours(1), [] {});
  timer.Unref();
  timer.Again();
  EXPECT_TRUE(timer.active());
  EXPECT_FALSE(loop->Run());  // Returns at once: the timer holds no reference.
  timer.Stop();
}

TEST(TimerWatcherTest, RemainingShrinksAsTimePasses) {
  auto loop = NewLoop();
  TimerWatcher timer(*loop, absl::Seconds(10), [] {});
  timer.Start();
  const absl::Duration first = timer.remaining();
  EXPECT_LE(first, absl::Seconds(10));
  const double start = ev_time();
  while (ev_time() < start + 0.002) {
  }
  loop->UpdateNow();
  EXPECT_LT(timer.remaining(), first);
}

TEST(TimerWatcherTest, RejectsNegativeAfterAndRepeat) {
  auto loop = NewLoop();
  EXPECT_THAT(ErrorOf<UsageError>(
                  [&] { TimerWatcher(*loop, absl::Seconds(-1), [] {}); }),
              HasSubstr("gevent::TimerWatcher: after must be finite and >= 0, got -1s"));
  EXPECT_THAT(ErrorOf<UsageError>([&] {
                TimerWatcher(*loop, absl::Seconds(1), absl::Milliseconds(-5), [] {});
              }),
              HasSubstr("repeat must be finite and >= 0, got -5ms"));
  TimerWatcher timer(*loop, absl::Seconds(1), [] {});
  EXPECT_THAT(ErrorOf<UsageError>([&] { timer.set_repeat(absl::Seconds(-2)); }),
              HasSubstr("repeat must be finite and >= 0"));
  EXPECT_THAT(
      ErrorOf<UsageError>([&] { timer.Start(absl::InfiniteDuration()); }),
      HasSubstr("after must be finite"));
}

TEST(TimerWatcherTest, ExceptionGoesToHandlerWithTimerKind) {
  auto loop = NewLoop();
  std::string kind;
  loop->SetErrorHandler([&](std::string_view k, std::exception_ptr) { kind = std::string(k); });
  TimerWatcher timer(*loop, absl::ZeroDuration(), [] { throw 17; });
  timer.Start();
  loop->Run();
  EXPECT_EQ(kind, "timer");
}

TEST(TimerWatcherTest, DefaultErrorHandlerPrintsKindAndMessageAndLoopKeepsRunning) {
  auto loop = NewLoop();
  int after = 0;
  TimerWatcher bad(*loop, absl::ZeroDuration(), [] { throw std::runtime_error("timer boom"); });
  TimerWatcher good(*loop, absl::Milliseconds(2), [&] { ++after; });
  bad.Start();
  good.Start();
  testing::internal::CaptureStderr();
  loop->Run();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("exception in timer callback: timer boom"));
  EXPECT_EQ(after, 1);
}

// --- Ref / Unref -------------------------------------------------------------------------------

TEST(RefTest, RunReturnsImmediatelyWhenOnlyUnrefdWatchersAreActive) {
  auto loop = NewLoop();
  bool fired = false;
  TimerWatcher timer(*loop, absl::Hours(1), [&] { fired = true; });
  timer.Unref();
  EXPECT_FALSE(timer.has_ref());
  timer.Start();
  EXPECT_FALSE(loop->Run());
  EXPECT_TRUE(timer.active());
  EXPECT_FALSE(fired);
}

TEST(RefTest, RefdWatcherKeepsLoopAliveUntilItFires) {
  auto loop = NewLoop();
  bool fired = false;
  TimerWatcher timer(*loop, absl::Milliseconds(1), [&] { fired = true; });
  timer.Unref();
  timer.Start();
  timer.Ref();  // Back to keeping the loop alive.
  loop->Run();
  EXPECT_TRUE(fired);
}

TEST(RefTest, UnrefWhileActiveReleasesTheLoop) {
  auto loop = NewLoop();
  IdleWatcher idle(*loop, [] {});
  int checks = 0;
  CheckWatcher check(*loop, [&] {
    if (++checks == 2) idle.Unref();
  });
  idle.Start();
  check.Start();
  check.Unref();
  loop->Run();  // Returns once idle is unref'd.
  EXPECT_EQ(checks, 2);
  EXPECT_TRUE(idle.active());
}

TEST(RefTest, LibevAutoStopOfUnrefdTimerKeepsTheLoopCountBalanced) {
  auto loop = NewLoop();
  bool unrefd_fired = false, refd_fired = false;
  TimerWatcher unrefd(*loop, absl::ZeroDuration(), [&] { unrefd_fired = true; });
  TimerWatcher refd(*loop, absl::Milliseconds(20), [&] { refd_fired = true; });
  unrefd.Unref();
  unrefd.Start();
  refd.Start();
  // If libev's stop of the expired unref'd timer were not compensated, the loop's count would
  // drop to zero and Run would return before `refd` fires.
  loop->Run();
  EXPECT_TRUE(unrefd_fired);
  EXPECT_TRUE(refd_fired);
}

TEST(RefTest, StopOfUnrefdWatcherRestoresTheReference) {
  auto loop = NewLoop();
  IdleWatcher unrefd(*loop, [] {});
  unrefd.Unref();
  unrefd.Start();
  unrefd.Stop();
  bool fired = false;
  TimerWatcher refd(*loop, absl::Milliseconds(5), [&] { fired = true; });
  refd.Start();
  loop->Run();
  EXPECT_TRUE(fired);
}

// --- Priority / Feed / pending -----------------------------------------------------------------

TEST(PriorityTest, SetPriorityWhileActiveIsRejected) {
  auto loop = NewLoop();
  IdleWatcher idle(*loop, [] {});
  idle.SetPriority(2);
  EXPECT_EQ(idle.priority(), 2);
  idle.Start();
  EXPECT_THAT(ErrorOf<UsageError>([&] { idle.SetPriority(1); }),
              HasSubstr("gevent::IdleWatcher: cannot change the priority of an active"));
  EXPECT_EQ(idle.priority(), 2);
  idle.Stop();
  idle.SetPriority(-1);
  EXPECT_EQ(idle.priority(), -1);
}

TEST(PriorityTest, OutOfRangePriorityIsRejected) {
  auto loop = NewLoop();
  TimerWatcher timer(*loop, absl::Seconds(1), [] {});
  EXPECT_THAT(ErrorOf<UsageError>([&] { timer.SetPriority(EV_MAXPRI + 1); }),
              HasSubstr("gevent::TimerWatcher: priority must be in [-2, 2], got 3"));
  EXPECT_THAT(ErrorOf<UsageError>([&] { timer.SetPriority(EV_MINPRI - 1); }),
              HasSubstr("got -3"));
}

TEST(PriorityTest, HigherPriorityRunsFirst) {
  auto loop = NewLoop();
  std::vector<std::string> order;
  TimerWatcher low(*loop, absl::ZeroDuration(), [&] { order.push_back("low"); });
  TimerWatcher high(*loop, absl::ZeroDuration(), [&] { order.push_back("high"); });
  low.SetPriority(-1);
  high.SetPriority(1);
  low.Start();
  high.Start();
  loop->Run();
  EXPECT_THAT(order, ElementsAre("high", "low"));
}

TEST(FeedTest, FeedMakesCallbackRunWithRevents) {
  auto loop = NewLoop();
  Pipe p;
  int got = 0;
  IoWatcher io(*loop, p.read_fd, EV_READ, [&](int revents) { got = revents; });
  EXPECT_FALSE(io.pending());
  io.Feed(EV_READ);  // Nothing was written; the event is synthetic.
  EXPECT_TRUE(io.pending());
  EXPECT_FALSE(io.active());
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(got, EV_READ);
  EXPECT_FALSE(io.pending());
}

TEST(FeedTest, DestroyingAPendingWatcherCancelsItsEvent) {
  auto loop = NewLoop();
  bool fired = false;
  {
    PrepareWatcher prepare(*loop, [&] { fired = true; });
    prepare.Feed(EV_PREPARE);
    EXPECT_EQ(loop->pending_count(), 1u);
  }
  // libev leaves a no-op placeholder in the pending queue; the callback must not run (and ASan
  // would catch a call into the destroyed watcher).
  loop->Run(RunMode::kNoWait);
  EXPECT_FALSE(fired);
  EXPECT_EQ(loop->pending_count(), 0u);
}

// --- Signal ------------------------------------------------------------------------------------

TEST(SignalWatcherTest, FiresOnRaisedSignal) {
  auto loop = NewLoop();
  int fired = 0;
  SignalWatcher sig(*loop, SIGUSR1, [&] {
    ++fired;
    sig.Stop();
  });
  EXPECT_EQ(sig.signum(), SIGUSR1);
  sig.Start();
  ASSERT_EQ(raise(SIGUSR1), 0);
  Deadline deadline(*loop, absl::Seconds(10));
  loop->Run();
  EXPECT_EQ(fired, 1);
}

TEST(SignalWatcherTest, RejectsBadSignalNumbers) {
  auto loop = NewLoop();
  for (int bad : {0, -3, NSIG, NSIG + 10}) {
    EXPECT_THAT(ErrorOf<UsageError>([&] { SignalWatcher(*loop, bad, [] {}); }),
                HasSubstr("gevent::SignalWatcher: signal number must be in [1, " +
                          std::to_string(NSIG - 1) + "], got " + std::to_string(bad)));
  }
}

// --- Idle / Prepare / Check --------------------------------------------------------------------

TEST(IdlePrepareCheckTest, OneIterationRunsPrepareThenCheckThenIdle) {
  auto loop = NewLoop();
  std::vector<std::string> order;
  PrepareWatcher prepare(*loop, [&] { order.push_back("prepare"); });
  CheckWatcher check(*loop, [&] { order.push_back("check"); });
  IdleWatcher idle(*loop, [&] { order.push_back("idle"); });
  prepare.Start();
  check.Start();
  idle.Start();
  loop->Run(RunMode::kOnce);  // The active idle watcher keeps the backend from blocking.
  EXPECT_THAT(order, ElementsAre("prepare", "check", "idle"));
}

TEST(IdlePrepareCheckTest, IdleDoesNotRunWhileHigherPriorityEventsArePending) {
  auto loop = NewLoop();
  std::vector<std::string> order;
  IdleWatcher idle(*loop, [&] {
    order.push_back("idle");
    idle.Stop();
  });
  TimerWatcher timer(*loop, absl::ZeroDuration(), [&] { order.push_back("timer"); });
  timer.SetPriority(1);
  idle.Start();
  timer.Start();
  loop->Run();
  EXPECT_THAT(order, ElementsAre("timer", "idle"));
}

// --- Fork --------------------------------------------------------------------------------------

TEST(ForkWatcherTest, RunsInChildAfterLoopFork) {
  auto loop = NewLoop();
  int fork_calls = 0;
  ForkWatcher watcher(*loop, [&] { ++fork_calls; });
  watcher.Start();
  loop->Run(RunMode::kNoWait);
  ASSERT_EQ(fork_calls, 0);  // Nothing happens without Fork().
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    loop->Fork();
    loop->Run(RunMode::kNoWait);
    _exit(fork_calls == 1 ? 0 : 10 + fork_calls);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(fork_calls, 0);  // The parent never called Fork().
}

// --- Async -------------------------------------------------------------------------------------

TEST(AsyncWatcherTest, SendFromAnotherThreadWakesTheLoop) {
  auto loop = NewLoop();
  int fired = 0;
  AsyncWatcher async(*loop, [&] {
    ++fired;
    async.Stop();
  });
  async.Start();
  EXPECT_FALSE(async.async_pending());
  std::thread sender([&] { async.Send(); });
  Deadline deadline(*loop, absl::Seconds(10));
  loop->Run();  // Blocks until the other thread's Send arrives.
  sender.join();
  EXPECT_EQ(fired, 1);
}

TEST(AsyncWatcherTest, SendIsPendingUntilTheLoopRuns) {
  auto loop = NewLoop();
  int fired = 0;
  AsyncWatcher async(*loop, [&] { ++fired; });
  async.Start();
  async.Send();
  async.Send();  // Coalesced.
  EXPECT_TRUE(async.async_pending());
  loop->Run(RunMode::kNoWait);
  EXPECT_FALSE(async.async_pending());
  EXPECT_EQ(fired, 1);
}

// --- Child -------------------------------------------------------------------------------------

TEST(ChildWatcherTest, ReportsPidAndExitStatusOfChild) {
  Loop& loop = Loop::Default();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(7);
  int fired = 0;
  ChildWatcher child(loop, pid, [&] {
    ++fired;
    child.Stop();
  });
  EXPECT_EQ(child.pid(), pid);
  child.Start();
  Deadline deadline(loop, absl::Seconds(10));
  loop.Run();
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(child.rpid(), pid);
  ASSERT_TRUE(WIFEXITED(child.rstatus()));
  EXPECT_EQ(WEXITSTATUS(child.rstatus()), 7);
}

TEST(ChildWatcherTest, RejectsNonDefaultLoop) {
  auto loop = NewLoop();
  EXPECT_THAT(ErrorOf<UsageError>([&] { ChildWatcher(*loop, 0, [] {}); }),
              HasSubstr("gevent::ChildWatcher: child watchers need the default loop"));
}

TEST(ChildWatcherTest, RejectsNegativePid) {
  EXPECT_THAT(ErrorOf<UsageError>([&] { ChildWatcher(Loop::Default(), -4, [] {}); }),
              HasSubstr("pid must be >= 0, got -4"));
}

// --- Stat --------------------------------------------------------------------------------------

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(StatWatcherTest, FiresWhenFileChanges) {
  auto loop = NewLoop();
  const std::string path = TempPath("stat_watcher_test.txt");
  unlink(path.c_str());
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  off_t size_seen = -1;
  off_t prev_size = -1;
  StatWatcher stat(*loop, path, absl::Milliseconds(10), [&] {
    size_seen = stat.attr().st_size;
    prev_size = stat.prev().st_size;
    stat.Stop();
  });
  EXPECT_EQ(stat.path(), path);
  stat.Start();
  EXPECT_EQ(stat.attr().st_size, 0);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  close(fd);
  Deadline deadline(*loop, absl::Seconds(10));
  loop->Run();  // Until libev notices (inotify, or polling every 10ms).
  EXPECT_EQ(size_seen, 5);
  EXPECT_EQ(prev_size, 0);
  unlink(path.c_str());
}

TEST(StatWatcherTest, StatRefreshesAttributesWithoutCallback) {
  auto loop = NewLoop();
  const std::string path = TempPath("stat_watcher_refresh.txt");
  unlink(path.c_str());
  bool fired = false;
  StatWatcher stat(*loop, path, absl::ZeroDuration(), [&] { fired = true; });
  stat.Stat();
  EXPECT_EQ(stat.attr().st_nlink, 0u);  // Does not exist.
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  stat.Stat();
  EXPECT_GT(stat.attr().st_nlink, 0u);
  EXPECT_FALSE(fired);
  unlink(path.c_str());
}

TEST(StatWatcherTest, RejectsEmptyPathAndNegativeInterval) {
  auto loop = NewLoop();
  EXPECT_THAT(ErrorOf<UsageError>(
                  [&] { StatWatcher(*loop, "", absl::ZeroDuration(), [] {}); }),
              HasSubstr("gevent::StatWatcher: path must not be empty"));
  EXPECT_THAT(ErrorOf<UsageError>(
                  [&] { StatWatcher(*loop, "/tmp", absl::Seconds(-1), [] {}); }),
              HasSubstr("interval must be finite and >= 0"));
}

// --- Misc --------------------------------------------------------------------------------------

TEST(WatcherTest, KindNamesMatchLibevTypes) {
  EXPECT_STREQ(IoWatcher::kind(), "io");
  EXPECT_STREQ(TimerWatcher::kind(), "timer");
  EXPECT_STREQ(SignalWatcher::kind(), "signal");
  EXPECT_STREQ(IdleWatcher::kind(), "idle");
  EXPECT_STREQ(PrepareWatcher::kind(), "prepare");
  EXPECT_STREQ(CheckWatcher::kind(), "check");
  EXPECT_STREQ(ForkWatcher::kind(), "fork");
  EXPECT_STREQ(AsyncWatcher::kind(), "async");
  EXPECT_STREQ(ChildWatcher::kind(), "child");
  EXPECT_STREQ(StatWatcher::kind(), "stat");
}

TEST(WatcherTest, DestructorStopsTheWatcher) {
  auto loop = NewLoop();
  {
    IdleWatcher idle(*loop, [] {});
    idle.Start();
    EXPECT_EQ(loop->active_watcher_count(), 1u);
  }
  EXPECT_EQ(loop->active_watcher_count(), 0u);
  EXPECT_FALSE(loop->Run());  // No leftover reference.
}

TEST(WatcherTest, SetCallbackReplacesAndRejectsEmpty) {
  auto loop = NewLoop();
  int which = 0;
  IdleWatcher idle(*loop, [&] { which = 1; });
  idle.set_callback([&] { which = 2; });
  idle.Feed(EV_IDLE);
  loop->Run(RunMode::kNoWait);
  EXPECT_EQ(which, 2);
  EXPECT_THAT(ErrorOf<UsageError>([&] { idle.set_callback(nullptr); }),
              HasSubstr("gevent::IdleWatcher: callback must not be empty"));
}

}  // namespace
}  // namespace gevent
