// Measurements the report needs besides the load itself: the cost of one greenlet switch and of
// one hub yield (measured once at start-up), and the CPU time of a thread or of the process.
//
// Thread-safety: the Measure* functions run their ping-pong on a fresh thread of their own (so the
// caller's hub, if any, is not touched) and may be called from any thread. ThreadCpuSeconds reads
// another thread's CPU clock; the thread must still be running (not joined).
#ifndef LOADGEN_CALIBRATE_H_
#define LOADGEN_CALIBRATE_H_

#include <pthread.h>

namespace loadgen {

// MeasureSwitchNs: ns per switch of two raw greenlet::Greenlet switching back and forth
// (`switches` switches in total, best of `rounds` rounds, so that a preempted round does not
// count). The primitive every hub park and wake-up is made of.
double MeasureSwitchNs(int switches = 200'000, int rounds = 5);

// MeasureYieldNs: ns per gevent::Sleep(0) with two spawned greenlets yielding to each other on a
// hub (each yield is two switches plus the hub's ready-queue work). Best of `rounds`.
double MeasureYieldNs(int yields = 100'000, int rounds = 5);

// ThreadCpuSeconds: CPU time consumed so far by `thread` (pthread_getcpuclockid), by the calling
// thread with ThisThreadCpuSeconds, by the whole process with ProcessCpuSeconds. Negative if the
// clock cannot be read.
double ThreadCpuSeconds(pthread_t thread);
double ThisThreadCpuSeconds();
double ProcessCpuSeconds();

}  // namespace loadgen

#endif  // LOADGEN_CALIBRATE_H_
