#include "loadgen/calibrate.h"

#include <time.h>

#include <algorithm>
#include <limits>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "greenlet/greenlet.h"
#include "hub/hub.h"
#include "hub/spawn.h"

namespace loadgen {
namespace {

// OnFreshThread runs `fn` on a new thread and returns its result (its hub dies with the thread).
template <typename F>
double OnFreshThread(F fn) {
  double result = 0;
  std::thread t([&] { result = fn(); });
  t.join();
  return result;
}

double SecondsOf(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

double MeasureSwitchNs(int switches, int rounds) {
  return OnFreshThread([switches, rounds] {
    greenlet::Greenlet* main = greenlet::Greenlet::Current();
    bool done = false;
    greenlet::Greenlet other([main, &done] {
      while (!done) main->Switch();
    });
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < rounds; ++r) {
      const absl::Time start = absl::Now();
      for (int i = 0; i < switches / 2; ++i) other.Switch();  // Two switches per round trip.
      const double ns = absl::ToDoubleNanoseconds(absl::Now() - start) / (switches / 2 * 2);
      best = std::min(best, ns);
    }
    done = true;
    other.Switch();
    return best;
  });
}

double MeasureYieldNs(int yields, int rounds) {
  return OnFreshThread([yields, rounds] {
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < rounds; ++r) {
      const int each = yields / 2;
      const auto body = [each] {
        for (int i = 0; i < each; ++i) gevent::Sleep(absl::ZeroDuration());
      };
      const absl::Time start = absl::Now();
      gevent::GreenletRef a = gevent::Spawn(body);
      gevent::GreenletRef b = gevent::Spawn(body);
      gevent::GetHub().Join();
      const double ns = absl::ToDoubleNanoseconds(absl::Now() - start) / (each * 2);
      best = std::min(best, ns);
    }
    // The hub's own greenlet holds a pooled stack: destroy the hub before the thread's stack pool.
    gevent::DestroyHub();
    return best;
  });
}

double ThreadCpuSeconds(pthread_t thread) {
  clockid_t clock;
  if (pthread_getcpuclockid(thread, &clock) != 0) return -1;
  return SecondsOf(clock);
}

double ThisThreadCpuSeconds() { return SecondsOf(CLOCK_THREAD_CPUTIME_ID); }

double ProcessCpuSeconds() { return SecondsOf(CLOCK_PROCESS_CPUTIME_ID); }

}  // namespace loadgen
