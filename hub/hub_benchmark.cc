// Costs of hub scheduling and the synchronisation primitives beside the raw Boost.Context switch.
//
//   bazel run //hub:hub_benchmark -- --benchmark_repetitions=3 --benchmark_report_aggregates_only
//
// Every figure is per unit of hand-off: one switch (raw), one yield (Sleep(0)), one Event
// hand-off, one item through a queue.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "hub/event.h"
#include "hub/hub.h"
#include "hub/queue.h"
#include "hub/spawn.h"

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

// Spawn a greenlet that returns at once, then join it (gevent.spawn(f).join()); per pair.
void BM_SpawnJoin(benchmark::State& state) {
  for (auto _ : state) {
    gevent::GreenletRef g = gevent::Spawn([] {});
    g->Join();
  }
  const std::uint64_t switches = gevent::GetHub().stats().switches();
  state.counters["switches_per_item"] =
      benchmark::Counter(static_cast<double>(switches) / static_cast<double>(state.iterations()));
  gevent::DestroyHub();
}
BENCHMARK(BM_SpawnJoin);

// Resident set size of the process, from /proc/self/statm.
double ResidentBytes() {
  long pages = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    long size = 0;
    if (std::fscanf(f, "%ld %ld", &size, &pages) != 2) pages = 0;
    std::fclose(f);
  }
  return static_cast<double>(pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// N spawned greenlets parked at once on one Event, on 16 KiB unguarded pooled stacks (guarded
// stacks cost two mappings each, and vm.max_map_count is 65530). Reports the resident memory each
// adds; the time is for spawning, parking, waking and finishing all of them.
void BM_ParkedGreenlets(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  gevent::SpawnOptions options;
  options.stack = {16 * 1024, greenlet::StackKind::kUnguarded};
  double rss_per_greenlet = 0;
  for (auto _ : state) {
    gevent::Event release;
    std::size_t parked = 0;
    const double before = ResidentBytes();
    // Fire and forget: the handles are not kept, so the figure is the greenlets' own cost.
    for (std::size_t i = 0; i < n; ++i) {
      gevent::Spawn(options, [&] {
        ++parked;
        release.Wait();
      });
    }
    gevent::Sleep(absl::ZeroDuration());  // Every greenlet started before this yield returns.
    if (parked != n) state.SkipWithError("not every greenlet parked");
    rss_per_greenlet = (ResidentBytes() - before) / static_cast<double>(n);
    release.Set();
    gevent::Wait();
  }
  state.counters["rss_per_greenlet_bytes"] = rss_per_greenlet;
  state.SetItemsProcessed(state.iterations() * state.range(0));
  gevent::DestroyHub();
}
BENCHMARK(BM_ParkedGreenlets)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
