#include "loadgen/calibrate.h"

#include <pthread.h>

#include <cmath>

#include "gtest/gtest.h"

namespace loadgen {
namespace {

// Only sanity: positive and finite. The figures themselves depend on the machine.
TEST(CalibrateTest, SwitchAndYieldCostsArePositiveAndFinite) {
  const double switch_ns = MeasureSwitchNs(2'000, 2);
  EXPECT_GT(switch_ns, 0);
  EXPECT_TRUE(std::isfinite(switch_ns));
  const double yield_ns = MeasureYieldNs(2'000, 2);
  EXPECT_GT(yield_ns, 0);
  EXPECT_TRUE(std::isfinite(yield_ns));
}

TEST(CalibrateTest, ThreadCpuClockAdvancesWithWork) {
  const double before = ThreadCpuSeconds(pthread_self());
  ASSERT_GE(before, 0);
  volatile double x = 0;
  for (int i = 0; i < 2'000'000; ++i) x = x + std::sqrt(static_cast<double>(i));
  EXPECT_GT(ThisThreadCpuSeconds(), before);
}

}  // namespace
}  // namespace loadgen
