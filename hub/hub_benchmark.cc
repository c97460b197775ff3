// Costs of hub scheduling and the synchronisation primitives beside the raw Boost.Context switch.
//
//   bazel run //hub:hub_benchmark -- --benchmark_repetitions=3 --benchmark_report_aggregates_only
//
// Every figure is per unit of hand-off: one switch (raw), one yield (Sleep(0)), one Event
// hand-off, one item through a queue.
#include <benchmark/benchmark.h>

#include <functional>
#include <memory>
#include <vector>

#include "hub/event.h"
#include "hub/hub.h"
#include "hub/queue.h"

namespace {

using greenlet::Greenlet;

// Runs `fns` as greenlets parented to the hub until the hub has no work left, then cleans up.
// Reports the hub's greenlet switches per benchmark item.
void RunOnHub(benchmark::State& state, std::vector<std::function<void()>> fns) {
  gevent::Hub& hub = gevent::GetHub();
  std::vector<std::unique_ptr<Greenlet>> gs;
  for (auto& fn : fns) {
    gs.push_back(std::make_unique<Greenlet>(std::move(fn), hub.greenlet()));
    Greenlet* g = gs.back().get();
    hub.Schedule([g] { g->Switch(); });
  }
  gevent::Wait();
  state.counters["switches_per_item"] = benchmark::Counter(
      static_cast<double>(hub.stats().switches()) / static_cast<double>(state.iterations()));
  gs.clear();
  gevent::DestroyHub();
}

// Two greenlets yielding to each other through the hub's ready queue; per yield.
void BM_SleepZero(benchmark::State& state) {
  bool done = false;
  RunOnHub(state, {[&] {
              while (state.KeepRunningBatch(2)) gevent::Sleep(absl::ZeroDuration());
              done = true;
            },
            [&] {
              while (!done) gevent::Sleep(absl::ZeroDuration());
            }});
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SleepZero);

// Two greenlets handing control back and forth through two Events; per hand-off.
void BM_EventPingPong(benchmark::State& state) {
  gevent::Event ping;
  gevent::Event pong;
  bool done = false;
  RunOnHub(state, {[&] {
              while (state.KeepRunningBatch(2)) {
                ping.Set();
                pong.Wait();
                pong.Clear();
              }
              done = true;
              ping.Set();
            },
            [&] {
              for (;;) {
                ping.Wait();
                ping.Clear();
                if (done) break;
                pong.Set();
              }
            }});
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EventPingPong);

// A producer and a consumer greenlet through a Queue of maxsize 1; per item.
void BM_QueuePutGet(benchmark::State& state) {
  gevent::Queue<int> q(1);
  RunOnHub(state, {[&] {
              int i = 0;
              for (auto _ : state) {
                if (!q.Put(i++).ok()) state.SkipWithError("put failed");
              }
              (void)q.Put(-1);
            },
            [&] {
              for (;;) {
                absl::StatusOr<int> v = q.Get();
                if (!v.ok() || *v < 0) break;
                benchmark::DoNotOptimize(*v);
              }
            }});
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueuePutGet);

// Put then Get on one greenlet, never parking: the data-structure cost alone.
void BM_QueuePutGetNoSwitch(benchmark::State& state) {
  gevent::Queue<int> q;
  int i = 0;
  for (auto _ : state) {
    (void)q.PutNowait(i++);
    benchmark::DoNotOptimize(*q.GetNowait());
  }
  gevent::DestroyHub();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueuePutGetNoSwitch);

}  // namespace
