#include "greenlet/greenlet.h"

#include <gtest/gtest.h>

#include <any>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace greenlet {
namespace {

static_assert(!std::is_copy_constructible_v<Greenlet>);
static_assert(!std::is_move_constructible_v<Greenlet>);
static_assert(!std::is_copy_assignable_v<Greenlet>);

struct Boom : std::runtime_error {
  Boom() : std::runtime_error("boom") {}
};

// Sets a flag when destroyed: shows that a frame was unwound.
struct SetOnDestroy {
  bool* flag;
  ~SetOnDestroy() { *flag = true; }
};

class GreenletTest : public ::testing::Test {
 protected:
  void SetUp() override { in_use_before_ = StackPool::ThisThread().in_use(); }
  void TearDown() override {
    // Nothing leaks between tests: we are back on the main greenlet and every stack came back.
    EXPECT_EQ(Greenlet::Current(), Greenlet::Main());
    EXPECT_EQ(StackPool::ThisThread().in_use(), in_use_before_);
  }
  std::size_t in_use_before_ = 0;
};

TEST_F(GreenletTest, CurrentIsTheImplicitMainGreenlet) {
  Greenlet* main = Greenlet::Current();
  ASSERT_NE(main, nullptr);
  EXPECT_TRUE(main->is_main());
  EXPECT_TRUE(main->started());
  EXPECT_TRUE(main->active());
  EXPECT_FALSE(main->dead());
  EXPECT_EQ(main->parent(), nullptr);
}

TEST_F(GreenletTest, StartsLazilyWithTheFirstSwitchValueAsArgument) {
  std::any received;
  Greenlet g([&](std::any arg) { received = arg; });
  EXPECT_FALSE(g.started());
  EXPECT_FALSE(received.has_value());
  g.Switch(7);
  EXPECT_EQ(std::any_cast<int>(received), 7);
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, SwitchCarriesValuesBothWays) {
  Greenlet* main = Greenlet::Current();
  Greenlet g([main](std::any first) {
    int x = std::any_cast<int>(first);
    x = std::any_cast<int>(main->Switch(x * 10));
    return x + 1;
  });
  EXPECT_EQ(std::any_cast<int>(g.Switch(4)), 40);
  EXPECT_TRUE(g.active());
  EXPECT_EQ(std::any_cast<int>(g.Switch(5)), 6);
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, ReturnValueGoesToParent) {
  Greenlet g([] { return std::string("done"); });
  EXPECT_EQ(g.parent(), Greenlet::Current());
  std::any r = g.Switch();
  EXPECT_EQ(std::any_cast<std::string>(r), "done");
  EXPECT_TRUE(g.dead());
  EXPECT_FALSE(g.active());
}

TEST_F(GreenletTest, FinishedChildReturnsToItsExplicitParentNotToTheSwitcher) {
  std::vector<std::string> log;
  Greenlet* main = Greenlet::Current();
  Greenlet parent([&](std::any v) {
    log.push_back("parent got " + std::any_cast<std::string>(v));
    return std::string("parent done");
  });
  Greenlet child([&] { return std::string("child result"); }, &parent);
  EXPECT_EQ(child.parent(), &parent);
  // Main starts the child; the child's result starts its parent; the parent's result comes to
  // main, which is the parent's parent.
  std::any r = child.Switch();
  EXPECT_EQ(std::any_cast<std::string>(r), "parent done");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "parent got child result");
  EXPECT_EQ(Greenlet::Current(), main);
}

TEST_F(GreenletTest, ExceptionEscapingIsRethrownInParentAtItsSwitchPoint) {
  Greenlet g([] { throw Boom(); });
  EXPECT_THROW(g.Switch(), Boom);
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, ExceptionPropagatesThroughTwoLevelsOfParents) {
  Greenlet outer([] {
    Greenlet inner([] { throw Boom(); });
    inner.Switch();  // Rethrows here, escapes outer too.
  });
  EXPECT_THROW(outer.Switch(), Boom);
  EXPECT_TRUE(outer.dead());
}

TEST_F(GreenletTest, GreenletExitEscapingCountsAsNormalFinish) {
  Greenlet g([] { throw GreenletExit(); });
  std::any r;
  EXPECT_NO_THROW(r = g.Switch());
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, ThrowRaisesInsideTheTargetAtItsSwitchPoint) {
  Greenlet* main = Greenlet::Current();
  std::string caught;
  Greenlet g([&] {
    try {
      main->Switch();
    } catch (const Boom& e) {
      caught = e.what();
      return 1;
    }
    return 0;
  });
  g.Switch();
  std::any r = g.Throw(Boom());
  EXPECT_EQ(caught, "boom");
  EXPECT_EQ(std::any_cast<int>(r), 1);
}

TEST_F(GreenletTest, UncaughtThrownExceptionComesBackToParent) {
  Greenlet* main = Greenlet::Current();
  Greenlet g([main] { main->Switch(); });
  g.Switch();
  EXPECT_THROW(g.Throw(Boom()), Boom);
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, ThrowIntoUnstartedGreenletKillsItWithoutRunning) {
  bool ran = false;
  Greenlet g([&] { ran = true; });
  EXPECT_THROW(g.Throw(Boom()), Boom);  // Goes on to the parent: us.
  EXPECT_FALSE(ran);
  EXPECT_TRUE(g.dead());
  EXPECT_FALSE(g.started() && g.active());
}

TEST_F(GreenletTest, KillOfUnstartedGreenletReturnsEmptyAndNeverRuns) {
  bool ran = false;
  Greenlet g([&] { ran = true; });
  std::any r = g.Kill();
  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(ran);
  EXPECT_TRUE(g.dead());
  g.Switch();  // A dead greenlet's switch goes to its parent: here, a no-op.
  EXPECT_FALSE(ran);
}

TEST_F(GreenletTest, KillOfDeadGreenletIsANoOpReturningEmpty) {
  // python-greenlet: throw() of GreenletExit into a dead greenlet is a regular return.
  Greenlet finished([] { return 5; });
  EXPECT_EQ(std::any_cast<int>(finished.Switch()), 5);
  ASSERT_TRUE(finished.dead());
  std::any r = finished.Kill();
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(finished.dead());
  EXPECT_FALSE(finished.Throw(GreenletExit()).has_value());  // Again: still nothing raised.

  Greenlet killed([] {});
  killed.Kill();  // Killed before it ran: dead too.
  ASSERT_TRUE(killed.dead());
  EXPECT_FALSE(killed.Kill().has_value());

  // Another exception thrown into a dead greenlet is still raised in its nearest live ancestor.
  EXPECT_THROW(finished.Throw(Boom()), Boom);
}

TEST_F(GreenletTest, KillOfDeadGreenletResumesItsLiveAncestorWithEmpty) {
  Greenlet* main = Greenlet::Current();
  std::any seen = 1;
  bool resumed = false;
  Greenlet waiter([&] {
    seen = main->Switch();
    resumed = true;
  });
  waiter.Switch();  // waiter suspends in main->Switch().
  Greenlet dead_child([] {});
  dead_child.Switch();
  ASSERT_TRUE(dead_child.dead());
  dead_child.SetParent(&waiter);
  // The kill is a switch with an empty value to the nearest live ancestor: waiter resumes
  // normally (no GreenletExit raised in it), finishes, and its empty result comes back here.
  EXPECT_FALSE(dead_child.Kill().has_value());
  EXPECT_TRUE(resumed);
  EXPECT_FALSE(seen.has_value());
  EXPECT_TRUE(waiter.dead());
}

TEST_F(GreenletTest, KillUnwindsTheGreenletStackRunningDestructors) {
  Greenlet* main = Greenlet::Current();
  bool destroyed = false;
  bool after_switch = false;
  Greenlet g([&] {
    SetOnDestroy guard{&destroyed};
    main->Switch();
    after_switch = true;
  });
  g.Switch();
  EXPECT_FALSE(destroyed);
  std::any r = g.Kill();
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(after_switch);
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, DestroyingASuspendedGreenletUnwindsIt) {
  Greenlet* main = Greenlet::Current();
  bool destroyed = false;
  {
    Greenlet g([&] {
      SetOnDestroy guard{&destroyed};
      main->Switch();
      ADD_FAILURE() << "resumed after destruction";
    });
    g.Switch();
    EXPECT_FALSE(destroyed);
  }
  EXPECT_TRUE(destroyed);
}

TEST_F(GreenletTest, DestroyingASuspendedGreenletReturnsToTheDestroyerNotTheParent) {
  Greenlet* main = Greenlet::Current();
  std::vector<std::string> log;
  auto child = std::make_unique<Greenlet>([&] { main->Switch(); });  // Parent: main.
  child->Switch();                                                    // Child suspends.
  Greenlet destroyer([&] {
    child.reset();  // Unwinds the child, which must finish back into us, not into main.
    log.push_back("destroyer continues");
  });
  destroyer.Switch();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_TRUE(destroyer.dead());
}

TEST_F(GreenletTest, DestroyingAnUnstartedGreenletNeverRunsIt) {
  bool ran = false;
  { Greenlet g([&] { ran = true; }); }
  EXPECT_FALSE(ran);
}

TEST_F(GreenletTest, CapturedStateIsReleasedWhenTheFunctionFinishes) {
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> weak = token;
  Greenlet g([token = std::move(token)] { return *token; });
  EXPECT_FALSE(weak.expired());
  g.Switch();
  EXPECT_TRUE(weak.expired());
}

TEST_F(GreenletTest, SwitchToDeadGreenletSwitchesToItsParent) {
  Greenlet* main = Greenlet::Current();
  Greenlet dead_one([] {});
  dead_one.Switch();
  ASSERT_TRUE(dead_one.dead());
  std::any seen;
  Greenlet waiter([&] { seen = main->Switch(); });
  waiter.Switch();  // waiter suspends in main->Switch().
  // A child of `waiter` that is dead: switching to it lands in `waiter`.
  Greenlet dead_child([] {}, &waiter);
  dead_child.Kill();  // Unstarted + GreenletExit: dead, and `waiter` (its parent) gets empty.
  EXPECT_TRUE(dead_child.dead());
  EXPECT_TRUE(waiter.dead());  // The kill's empty value resumed waiter, which then finished.
  EXPECT_FALSE(seen.has_value());
  // Switching to a dead greenlet whose ancestors are dead up to main is a switch to main.
  EXPECT_EQ(std::any_cast<int>(dead_one.Switch(3)), 3);
}

TEST_F(GreenletTest, SwitchToSelfReturnsTheValue) {
  Greenlet* self = Greenlet::Current();
  EXPECT_EQ(std::any_cast<int>(self->Switch(9)), 9);
  Greenlet g([](std::any v) {
    Greenlet* me = Greenlet::Current();
    return std::any_cast<int>(me->Switch(std::any_cast<int>(v) + 1));
  });
  EXPECT_EQ(std::any_cast<int>(g.Switch(1)), 2);
}

TEST_F(GreenletTest, ThrowIntoTheCurrentGreenletThrowsRightHere) {
  EXPECT_THROW(Greenlet::Current()->Throw(Boom()), Boom);
}

TEST_F(GreenletTest, StatesFollowTheLifecycle) {
  Greenlet* main = Greenlet::Current();
  Greenlet* seen_current = nullptr;
  Greenlet g([&] {
    seen_current = Greenlet::Current();
    main->Switch();
  });
  EXPECT_FALSE(g.started());
  EXPECT_FALSE(g.active());
  EXPECT_FALSE(g.dead());
  g.Switch();
  EXPECT_EQ(seen_current, &g);
  EXPECT_TRUE(g.started());
  EXPECT_TRUE(g.active());
  EXPECT_FALSE(g.dead());
  g.Switch();
  EXPECT_TRUE(g.started());
  EXPECT_FALSE(g.active());
  EXPECT_TRUE(g.dead());
}

TEST_F(GreenletTest, SetParentRejectsACycle) {
  Greenlet a([] {});
  Greenlet b([] {}, &a);
  Greenlet c([] {}, &b);
  try {
    a.SetParent(&c);
    FAIL() << "cycle accepted";
  } catch (const GreenletError& e) {
    EXPECT_NE(std::string(e.what()).find("cyclic parent chain"), std::string::npos) << e.what();
  }
  EXPECT_THROW(a.SetParent(&a), GreenletError);
  EXPECT_EQ(a.parent(), Greenlet::Current());  // Unchanged.
  c.SetParent(&a);                              // Not a cycle.
  EXPECT_EQ(c.parent(), &a);
}

TEST_F(GreenletTest, SetParentRejectsNullAndMainGreenlets) {
  Greenlet a([] {});
  EXPECT_THROW(a.SetParent(nullptr), GreenletError);
  try {
    Greenlet::Main()->SetParent(&a);
    FAIL() << "main greenlet accepted a parent";
  } catch (const GreenletError& e) {
    EXPECT_NE(std::string(e.what()).find("main greenlet"), std::string::npos) << e.what();
  }
}

TEST_F(GreenletTest, DestroyingAParentReparentsItsChildrenToTheGrandparent) {
  auto parent = std::make_unique<Greenlet>([] {});
  Greenlet child([] { return 5; }, parent.get());
  parent.reset();
  EXPECT_EQ(child.parent(), Greenlet::Current());
  EXPECT_EQ(std::any_cast<int>(child.Switch()), 5);
}

TEST_F(GreenletTest, EmptyFunctionIsRejected) {
  try {
    Greenlet g{Greenlet::Function{}};
    FAIL() << "empty function accepted";
  } catch (const GreenletError& e) {
    EXPECT_NE(std::string(e.what()).find("function is empty"), std::string::npos) << e.what();
  }
}

TEST_F(GreenletTest, TooSmallStackIsRejected) {
  try {
    Greenlet g([] {}, nullptr, StackOptions{1024, StackKind::kGuarded});
    FAIL() << "tiny stack accepted";
  } catch (const gevent::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("stack size 1024"), std::string::npos) << e.what();
  }
}

TEST_F(GreenletTest, ThrowOfANullExceptionPtrIsRejected) {
  Greenlet g([] {});
  EXPECT_THROW(g.Throw(std::exception_ptr()), GreenletError);
  EXPECT_FALSE(g.started());
}

TEST_F(GreenletTest, SwitchIntoAnotherThreadsGreenletIsRejected) {
  std::promise<Greenlet*> made;
  std::promise<void> tested;
  std::thread other([&] {
    Greenlet g([] {});
    made.set_value(&g);
    tested.get_future().wait();  // g must die on its own thread.
  });
  Greenlet* foreign = made.get_future().get();
  try {
    foreign->Switch();
    ADD_FAILURE() << "cross-thread switch accepted";
  } catch (const GreenletError& e) {
    EXPECT_NE(std::string(e.what()).find("another thread"), std::string::npos) << e.what();
  }
  EXPECT_THROW(foreign->Throw(Boom()), GreenletError);
  Greenlet local([] {});
  EXPECT_THROW(local.SetParent(foreign), GreenletError);
  tested.set_value();
  other.join();
}

TEST_F(GreenletTest, EachThreadHasItsOwnMainGreenlet) {
  Greenlet* here = Greenlet::Main();
  Greenlet* there = nullptr;
  int result = 0;
  std::thread t([&] {
    there = Greenlet::Main();
    Greenlet g([] { return 21; });
    result = std::any_cast<int>(g.Switch()) * 2;
  });
  t.join();
  EXPECT_NE(here, there);
  EXPECT_EQ(result, 42);
}

TEST_F(GreenletTest, ExceptionsThrownAndCaughtInsideAGreenletStayThere) {
  Greenlet g([] {
    int caught = 0;
    for (int i = 0; i < 100; ++i) {
      try {
        throw Boom();
      } catch (const Boom&) {
        ++caught;
      }
    }
    return caught;
  });
  EXPECT_EQ(std::any_cast<int>(g.Switch()), 100);
}

TEST_F(GreenletTest, ManyUnguardedGreenletsCanBeSuspendedAndUnwoundAtOnce) {
#if defined(GREENLET_HAVE_TSAN)
  constexpr int kCount = 4000;  // ThreadSanitizer counts each fiber as a thread (8128 at most).
#else
  constexpr int kCount = 10000;
#endif
  Greenlet* main = Greenlet::Current();
  int unwound = 0;
  {
    std::vector<std::unique_ptr<Greenlet>> all;
    for (int i = 0; i < kCount; ++i) {
      all.push_back(std::make_unique<Greenlet>(
          [&unwound, main] {
            struct Count {
              int* n;
              ~Count() { ++*n; }
            } c{&unwound};
            main->Switch();
          },
          nullptr, StackOptions{32 * 1024, StackKind::kUnguarded}));
      all.back()->Switch();
    }
    EXPECT_EQ(StackPool::ThisThread().in_use(), in_use_before_ + kCount);
  }
  EXPECT_EQ(unwound, kCount);
}

TEST_F(GreenletTest, StackIsTakenOnStartAndReturnedOnFinish) {
  Greenlet* main = Greenlet::Current();
  Greenlet g([main] { main->Switch(); });
  EXPECT_FALSE(g.stack());
  g.Switch();
  EXPECT_TRUE(g.stack());
  EXPECT_EQ(StackPool::ThisThread().in_use(), in_use_before_ + 1);
  g.Switch();
  EXPECT_FALSE(g.stack());
  EXPECT_EQ(StackPool::ThisThread().in_use(), in_use_before_);
}

TEST_F(GreenletTest, ProvidedStackIsUsedAndLeftToTheCaller) {
  Stack stack = StackPool::ThisThread().Allocate({kMinStackSize, StackKind::kUnguarded});
  // The caller keeps its own data in the top bytes and gives the greenlet the rest.
  Stack below = stack;
  below.size -= 256;
  int* bookkeeping = reinterpret_cast<int*>(static_cast<char*>(below.top()));
  *bookkeeping = 1234;
  bool on_provided_stack = false;
  {
    Greenlet g(
        [&] {
          int local = 0;
          auto* addr = reinterpret_cast<char*>(&local);
          on_provided_stack = addr >= static_cast<char*>(below.low) && addr < below.top();
        },
        nullptr, below);
    g.Switch();
    EXPECT_TRUE(g.dead());
  }
  EXPECT_TRUE(on_provided_stack);
  EXPECT_EQ(*bookkeeping, 1234);
  EXPECT_EQ(StackPool::ThisThread().in_use(), in_use_before_ + 1);  // Not released by the greenlet.
  StackPool::ThisThread().Release(stack);
  EXPECT_THROW(Greenlet([] {}, nullptr, Stack{}), GreenletError);
}

// Death tests: misuse that cannot be reported by an exception aborts with a message.
TEST_F(GreenletTest, FinishToSendsTheResultElsewhereAndKeepsTheParent) {
  Greenlet* main = Greenlet::Current();
  std::any received;
  Greenlet waiting([&](std::any first) {
    received = main->Switch();  // Suspended here until `finisher` finishes into it.
    return first;
  });
  waiting.Switch(std::any(0));
  Greenlet finisher([&] {
    Greenlet::Current()->FinishTo(&waiting);
    return 42;
  });
  EXPECT_EQ(std::any_cast<int>(finisher.Switch()), 0);  // `waiting` finished back to main.
  EXPECT_EQ(std::any_cast<int>(received), 42);
  EXPECT_EQ(finisher.parent(), main);
  EXPECT_TRUE(finisher.dead());
}

TEST_F(GreenletTest, FinishToDoesNotRedirectAnEscapingException) {
  Greenlet* main = Greenlet::Current();
  Greenlet waiting([&] { main->Switch(); });
  waiting.Switch();
  Greenlet failing([&] {
    Greenlet::Current()->FinishTo(&waiting);
    throw std::runtime_error("boom");
  });
  EXPECT_THROW(failing.Switch(), std::runtime_error);  // Raised in the parent, main.
  EXPECT_FALSE(waiting.dead());
  waiting.Switch();
  EXPECT_TRUE(waiting.dead());
}

using GreenletDeathTest = GreenletTest;

TEST_F(GreenletDeathTest, SwallowingGreenletExitAndSwitchingAwayAbortsOnDestroy) {
  EXPECT_DEATH(
      {
        Greenlet* main = Greenlet::Current();
        auto g = std::make_unique<Greenlet>([main] {
          for (;;) {
            try {
              main->Switch();
            } catch (const GreenletExit&) {
              // Wrong: swallowed.
            }
          }
        });
        g->Switch();
        g.reset();
      },
      "caught GreenletExit and switched away");
}

TEST_F(GreenletDeathTest, DestroyingTheRunningGreenletAborts) {
  EXPECT_DEATH(
      {
        Greenlet* self = nullptr;
        auto g = std::make_unique<Greenlet>([&self] { delete self; });
        self = g.release();
        self->Switch();
      },
      "running greenlet was destroyed");
}

int Recurse(int depth) {
  volatile char buffer[512];
  buffer[0] = static_cast<char>(depth);
  if (depth == 0) return buffer[0];
  return Recurse(depth - 1) + buffer[0];
}

TEST_F(GreenletDeathTest, GuardedStackOverflowFaultsImmediately) {
  EXPECT_DEATH(
      {
        Greenlet g([] { return Recurse(1 << 20); }, nullptr, {kMinStackSize, StackKind::kGuarded});
        g.Switch();
      },
      "");
}

// Overflows an unguarded stack by about 1 KiB (into the canary, not as far as the guard page of
// its slab): one frame larger than the whole stack, written end to end as a real frame would be.
__attribute__((noinline)) void OverflowByALittle() {
  volatile char big[kMinStackSize + 1024];
  for (std::size_t i = 0; i < sizeof(big); ++i) big[i] = 1;
}

TEST_F(GreenletDeathTest, UnguardedStackOverflowIsDetectedOnSwitch) {
  EXPECT_DEATH(
      {
        // Make the next slot one with a canary: a slab's first slot has the guard page below it
        // instead, and is held aside here.
        std::vector<Stack> held;
        for (;;) {
          const Stack s = StackPool::ThisThread().Allocate({kMinStackSize, StackKind::kUnguarded});
          if (s.canary != nullptr) {
            StackPool::ThisThread().Release(s);  // The greenlet below gets this slot back.
            break;
          }
          held.push_back(s);
        }
        Greenlet* main = Greenlet::Current();
        Greenlet g(
            [main] {
              OverflowByALittle();
              main->Switch();
            },
            nullptr, {kMinStackSize, StackKind::kUnguarded});
        g.Switch();
      },
      "stack overflow detected");
}

TEST_F(GreenletDeathTest, OverflowOfASlabsFirstSlotFaultsOnTheGuardPage) {
  EXPECT_DEATH(
      {
        Greenlet g([] { return Recurse(1 << 20); }, nullptr,
                   {kMinStackSize, StackKind::kUnguarded});
        g.Switch();
      },
      "");
}

}  // namespace
}  // namespace greenlet
