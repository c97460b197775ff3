// BM_RawBoostContextSwitch: the floor every switch figure is read against — a bare
// boost::context::fiber ping-pong, one switch per iteration (a round trip counts two).
// Linked (alwayslink) into each benchmark binary that needs the baseline in the same run.
#include <benchmark/benchmark.h>

#include <boost/context/fiber.hpp>

#include <utility>

namespace {

namespace bctx = boost::context;

void BM_RawBoostContextSwitch(benchmark::State& state) {
  bool done = false;
  bctx::fiber other([&done](bctx::fiber&& main) {
    while (!done) main = std::move(main).resume();
    return std::move(main);
  });
  while (state.KeepRunningBatch(2)) {
    other = std::move(other).resume();
  }
  done = true;
  other = std::move(other).resume();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawBoostContextSwitch);

}  // namespace
