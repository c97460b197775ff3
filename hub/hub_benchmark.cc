// Costs of hub scheduling and the synchronisation primitives beside the raw Boost.Context switch.
//
//   bazel run //hub:hub_benchmark -- --benchmark_repetitions=3 --benchmark_report_aggregates_only
//
// Every figure is per unit of hand-off: one switch (raw), one yield (Sleep(0)), one Event
// hand-off, one item through a queue.
#include <benchmark/benchmark.h>

#include <alloca.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>
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

// The process's page tables (VmPTE in /proc/self/status), in bytes.
double PageTableBytes() {
  double kib = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "VmPTE: %lf kB", &kib) == 1) break;
    }
    std::fclose(f);
  }
  return kib * 1024;
}

// Resident pages in the stack slots [top - slot, top) for each top in `tops` (contiguous slots
// are asked about in one mincore call).
std::size_t ResidentStackPages(std::vector<std::uintptr_t>& tops, std::size_t slot) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::sort(tops.begin(), tops.end());
  std::vector<unsigned char> vec;
  std::size_t resident = 0;
  for (std::size_t i = 0; i < tops.size();) {
    const std::uintptr_t low = tops[i] - slot;
    std::uintptr_t high = tops[i];
    for (++i; i < tops.size() && tops[i] - slot == high; ++i) high = tops[i];
    vec.resize((high - low) / page);
    if (mincore(reinterpret_cast<void*>(low), high - low, vec.data()) != 0) return 0;
    for (unsigned char v : vec) resident += v & 1;
  }
  return resident;
}

// What a handler's deeper frames leave behind: `bytes` of stack touched, then returned from.
__attribute__((noinline)) void TouchStack(std::size_t bytes) {
  auto* frame = static_cast<volatile char*>(alloca(bytes));
  for (std::size_t i = 0; i < bytes; i += 64) frame[i] = 1;
  benchmark::ClobberMemory();
}

// N spawned greenlets parked at once on one Event, on unguarded pooled stacks (guarded stacks
// cost two mappings each, and vm.max_map_count is 65530): 16 KiB stacks for greenlets that touch
// nothing more, stacks twice the touched size for Arg(touch_kib) > 0, where each greenlet first
// runs TouchStack(touch_kib KiB) as a stand-in for a real handler's deeper frames.
// Each repetition runs on a thread of its own, so that its hub and stack pool start empty and
// are unmapped at its end: otherwise a repetition reuses the pages an earlier one made resident
// and process-wide deltas read 0. Reported per greenlet:
// - stack_resident_bytes: the resident pages of each greenlet's own stack slot (mincore), which
//   holds its frames and, in the top bytes, the greenlet object and its reference counts;
// - page_table_bytes: the growth of the process's page tables (VmPTE);
// - rss_per_greenlet_bytes: the growth of the process's resident set (what the two above leave
//   out: the hub's own allocations, which should be none per greenlet).
// The time is for spawning, parking, waking and finishing all of them (and the counting).
void BM_ParkedGreenlets(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto touch = static_cast<std::size_t>(state.range(1)) * 1024;
  const std::size_t slot = touch == 0 ? 16 * 1024 : 2 * touch;
  gevent::SpawnOptions options;
  options.stack = {slot, greenlet::StackKind::kUnguarded};
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  double stack_bytes = 0;
  double pte_bytes = 0;
  double rss_bytes = 0;
  for (auto _ : state) {
    std::thread run([&] {
      gevent::Event release;
      std::vector<std::uintptr_t> tops;
      tops.reserve(n);
      std::size_t parked = 0;
      gevent::GetHub();
      const double rss_before = ResidentBytes();
      const double pte_before = PageTableBytes();
      // Fire and forget: the handles are not kept, so the figure is the greenlets' own cost.
      for (std::size_t i = 0; i < n; ++i) {
        gevent::GreenletRef g = gevent::Spawn(options, [&] {
          if (touch > 0) TouchStack(touch);
          ++parked;
          release.Wait();
        });
        // The greenlet object sits in the top bytes of its stack slot (hub/spawn.cc).
        tops.push_back((reinterpret_cast<std::uintptr_t>(g.get()) + page - 1) & ~(page - 1));
      }
      gevent::Sleep(absl::ZeroDuration());  // Every greenlet started before this yield returns.
      if (parked != n) state.SkipWithError("not every greenlet parked");
      rss_bytes = (ResidentBytes() - rss_before) / static_cast<double>(n);
      pte_bytes = (PageTableBytes() - pte_before) / static_cast<double>(n);
      stack_bytes = static_cast<double>(ResidentStackPages(tops, slot) * page) /
                    static_cast<double>(n);
      release.Set();
      gevent::Wait();
      gevent::DestroyHub();
    });
    run.join();
  }
  state.counters["stack_resident_bytes"] = stack_bytes;
  state.counters["page_table_bytes"] = pte_bytes;
  state.counters["rss_per_greenlet_bytes"] = rss_bytes;
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ParkedGreenlets)
    ->ArgNames({"n", "touch_kib"})
    ->Args({1000000, 0})
    ->Args({100000, 16})
    ->Iterations(1)
    ->UseRealTime()  // The work is on the repetition's own thread.
    ->Unit(benchmark::kMillisecond);

}  // namespace
