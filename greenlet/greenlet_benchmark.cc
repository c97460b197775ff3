// Greenlet switch cost beside the raw Boost.Context switch it is built on, read from one run.
//
//   bazel run //greenlet:greenlet_benchmark
//
// Every switch benchmark counts one switch per iteration (a round trip is two iterations), so
// the figures compare directly: target BM_GreenletSwitch <= 1.2 x BM_RawBoostContextSwitch.
#include <benchmark/benchmark.h>

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <any>
#include <memory>
#include <vector>

#include "greenlet/greenlet.h"

namespace {

namespace bctx = boost::context;

// Two greenlets switching: the main greenlet and a child that switches straight back.
void BM_GreenletSwitch(benchmark::State& state) {
  greenlet::Greenlet* main = greenlet::Greenlet::Current();
  bool done = false;
  greenlet::Greenlet other([main, &done] {
    while (!done) main->Switch();
  });
  while (state.KeepRunningBatch(2)) {
    other.Switch();
  }
  done = true;
  other.Switch();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GreenletSwitch);

// Round trips from the main greenlet into N greenlets in turn, on 64 KiB unguarded (slab) stacks:
// each switch lands on a stack last touched N switches ago, as a server's wake-ups do at N
// connections. Against BM_GreenletSwitch it shows what colder stacks cost when nothing else
// competes for the caches (a server's kernel work does).
void BM_GreenletSwitchRoundRobin(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  greenlet::Greenlet* main = greenlet::Greenlet::Current();
  bool done = false;
  std::vector<std::unique_ptr<greenlet::Greenlet>> others;
  others.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    others.push_back(std::make_unique<greenlet::Greenlet>(
        [main, &done] {
          // A few frame lines touched per visit, as a real wake-up would.
          volatile char frame[512];
          while (!done) {
            for (std::size_t line = 0; line < sizeof frame; line += 64) frame[line] = 1;
            main->Switch();
          }
        },
        nullptr, greenlet::StackOptions{64 * 1024, greenlet::StackKind::kUnguarded}));
  }
  std::size_t next = 0;
  while (state.KeepRunningBatch(2)) {
    others[next]->Switch();
    if (++next == n) next = 0;
  }
  done = true;
  for (auto& g : others) g->Switch();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GreenletSwitchRoundRobin)->Arg(16)->Arg(1000)->Arg(10000);

// The same with a small value carried each way.
void BM_GreenletSwitchWithValue(benchmark::State& state) {
  greenlet::Greenlet* main = greenlet::Greenlet::Current();
  greenlet::Greenlet other([main](std::any v) {
    while (std::any_cast<int>(v) >= 0) v = main->Switch(std::any_cast<int>(v) + 1);
  });
  int n = 0;
  while (state.KeepRunningBatch(2)) {
    n = std::any_cast<int>(other.Switch(n));
  }
  other.Switch(-1);
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GreenletSwitchWithValue);

// Create a greenlet, run it to the end, destroy it; stacks come from the thread's pool.
void BM_GreenletCreateRunFinish(benchmark::State& state) {
  const greenlet::StackKind kind =
      state.range(0) == 0 ? greenlet::StackKind::kGuarded : greenlet::StackKind::kUnguarded;
  int counter = 0;
  for (auto _ : state) {
    greenlet::Greenlet g([&counter] { ++counter; }, nullptr, {greenlet::kDefaultStackSize, kind});
    g.Switch();
  }
  benchmark::DoNotOptimize(counter);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GreenletCreateRunFinish)->ArgName("unguarded")->Arg(0)->Arg(1);

// Baseline for the above without the pool: a fresh guarded mmap stack each time.
void BM_RawBoostContextCreateRunFinish(benchmark::State& state) {
  int counter = 0;
  for (auto _ : state) {
    bctx::fiber f(std::allocator_arg, bctx::protected_fixedsize_stack(greenlet::kDefaultStackSize),
                  [&counter](bctx::fiber&& main) {
                    ++counter;
                    return std::move(main);
                  });
    f = std::move(f).resume();
  }
  benchmark::DoNotOptimize(counter);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawBoostContextCreateRunFinish);

}  // namespace
