// Wrapper vs raw libev: each BM_X has a BM_RawLibevX beside it doing the same work through the C
// API, so the ratio shows the wrapper's overhead.
#include <ev.h>
#include <unistd.h>

#include <cstdlib>

#include "benchmark/benchmark.h"
#include "core/loop.h"
#include "core/testing/pipe.h"
#include "core/watchers.h"

namespace gevent {
namespace {

using Pipe = gevent::testutil::TestPipe;

void BM_TimerStartStop(benchmark::State& state) {
  auto loop = *Loop::Create();
  TimerWatcher timer(*loop, absl::Seconds(10), [] {});
  for (auto _ : state) {
    timer.Start();
    timer.Stop();
  }
}
BENCHMARK(BM_TimerStartStop);

void RawTimerCb(struct ev_loop*, ev_timer*, int) {}

void BM_RawLibevTimerStartStop(benchmark::State& state) {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  ev_timer timer;
  ev_timer_init(&timer, RawTimerCb, 10., 0.);
  for (auto _ : state) {
    ev_timer_start(loop, &timer);
    ev_timer_stop(loop, &timer);
  }
  ev_loop_destroy(loop);
}
BENCHMARK(BM_RawLibevTimerStartStop);

void BM_IoWakeup(benchmark::State& state) {
  auto loop = *Loop::Create();
  Pipe p;
  int reads = 0;
  IoWatcher io(*loop, p.read_fd, EV_READ, [&](int) {
    char byte;
    if (read(p.read_fd, &byte, 1) == 1) ++reads;
  });
  io.Start();
  for (auto _ : state) {
    if (write(p.write_fd, "x", 1) != 1) std::abort();
    const int before = reads;
    while (reads == before) loop->Run(RunMode::kOnce);
  }
}
BENCHMARK(BM_IoWakeup);

struct RawIo {
  ev_io io;
  int reads = 0;
};

void RawIoCb(struct ev_loop*, ev_io* w, int) {
  char byte;
  if (read(w->fd, &byte, 1) == 1) ++reinterpret_cast<RawIo*>(w)->reads;
}

void BM_RawLibevIoWakeup(benchmark::State& state) {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  Pipe p;
  RawIo raw;
  ev_io_init(&raw.io, RawIoCb, p.read_fd, EV_READ);
  ev_io_start(loop, &raw.io);
  for (auto _ : state) {
    if (write(p.write_fd, "x", 1) != 1) std::abort();
    const int before = raw.reads;
    while (raw.reads == before) ev_run(loop, EVRUN_ONCE);
  }
  ev_io_stop(loop, &raw.io);
  ev_loop_destroy(loop);
}
BENCHMARK(BM_RawLibevIoWakeup);

void BM_RunCallback(benchmark::State& state) {
  auto loop = *Loop::Create();
  int ran = 0;
  for (auto _ : state) {
    const int before = ran;
    loop->RunCallback([&ran] { ++ran; });
    while (ran == before) loop->Run(RunMode::kOnce);
  }
}
BENCHMARK(BM_RunCallback);

}  // namespace
}  // namespace gevent
