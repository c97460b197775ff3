// The wall-time bound of monkey's overlap tests: N blocking calls of duration D made in N
// greenlets must finish in about D, not N x D. The bound is 0.9 s for calls of 0.2-0.3 s (the
// rest is slack for the connects on a loaded 2-vCPU machine). Under ThreadSanitizer, which
// instruments every memory access and every greenlet switch (its fiber API), 100 connects and
// switches alone take one to two and a half seconds on that machine (measured: BLPOP 1.1-1.2 s,
// pg_sleep 0.6 s, curl 1.3-2.4 s): the bound is 5 s there — still 2x to 6x below the serial time
// (10 s and 30 s), so it still fails if the calls do not overlap.
#ifndef GEVENT_MONKEY_TESTING_TIMING_H_
#define GEVENT_MONKEY_TESTING_TIMING_H_

#include "absl/time/time.h"

namespace gevent {
namespace testing {

inline absl::Duration OverlapBound() {
#if defined(__SANITIZE_THREAD__)
  return absl::Seconds(5);
#else
  return absl::Milliseconds(900);
#endif
}

}  // namespace testing
}  // namespace gevent

#endif  // GEVENT_MONKEY_TESTING_TIMING_H_
