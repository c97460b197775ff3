#include "loadgen/fd_limit.h"

#include <sys/resource.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace loadgen {
namespace {

TEST(FdLimitTest, EmbeddedServerNeedsTwoPerClient) {
  EXPECT_EQ(FdsNeeded(1000, /*embedded_server=*/true), 2000 + kFdMargin);
  EXPECT_EQ(FdsNeeded(1000, /*embedded_server=*/false), 1000 + kFdMargin);
}

TEST(FdLimitTest, SoftLimitIsKeptWhenItSuffices) {
  const FdPlan plan = PlanFds(100, true, 1024, 20000);
  EXPECT_TRUE(plan.fits);
  EXPECT_EQ(plan.new_soft, 1024u);
}

TEST(FdLimitTest, SoftLimitIsRaisedToTheHardLimitWhenNeeded) {
  const FdPlan plan = PlanFds(5000, true, 1024, 20000);
  EXPECT_TRUE(plan.fits);
  EXPECT_EQ(plan.new_soft, 20000u);
}

TEST(FdLimitTest, TooManyClientsDoNotFitAndTheLargestThatFitsIsGiven) {
  const FdPlan plan = PlanFds(10000, true, 1024, 20000);
  EXPECT_FALSE(plan.fits);
  EXPECT_EQ(plan.max_clients, (20000 - kFdMargin) / 2);
  EXPECT_TRUE(PlanFds(plan.max_clients, true, 1024, 20000).fits);
  EXPECT_FALSE(PlanFds(plan.max_clients + 1, true, 1024, 20000).fits);
  // With an external server the same limit holds twice as many clients.
  EXPECT_TRUE(PlanFds(10000, false, 1024, 20000).fits);
}

TEST(FdLimitTest, InfiniteLimitsAreCappedAtNrOpen) {
  const FdPlan plan = PlanFds(5000, false, 1024, RLIM_INFINITY, 1 << 20);
  EXPECT_TRUE(plan.fits);
  EXPECT_EQ(plan.new_soft, 1u << 20);
  EXPECT_FALSE(PlanFds(1 << 20, false, RLIM_INFINITY, RLIM_INFINITY, 1 << 20).fits);
}

TEST(FdLimitTest, TinyHardLimitFitsNoClient) {
  const FdPlan plan = PlanFds(1, true, 10, 10);
  EXPECT_FALSE(plan.fits);
  EXPECT_EQ(plan.max_clients, 0u);
}

TEST(FdLimitTest, EnsureFdLimitRaisesTheSoftLimit) {
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 2 * kFdMargin) {
    GTEST_SKIP() << "hard RLIMIT_NOFILE too small to test with";
  }
  struct rlimit lowered = saved;
  lowered.rlim_cur = kFdMargin + 8;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  const absl::Status s = EnsureFdLimit(20, /*embedded_server=*/true);
  struct rlimit now;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_GE(now.rlim_cur, FdsNeeded(20, true));
}

TEST(FdLimitTest, EnsureFdLimitNamesTheLimitAndTheLargestClientCount) {
  struct rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max == RLIM_INFINITY) GTEST_SKIP() << "no hard RLIMIT_NOFILE";
  const absl::Status s = EnsureFdLimit(limit.rlim_max, /*embedded_server=*/true);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "RLIMIT_NOFILE")) << s.message();
  EXPECT_TRUE(absl::StrContains(
      s.message(), "at most --clients=" + std::to_string((limit.rlim_max - kFdMargin) / 2)))
      << s.message();
  EXPECT_TRUE(absl::StrContains(s.message(), "use --target")) << s.message();
  // With --target given, the hint does not say "use --target".
  const absl::Status external = EnsureFdLimit(limit.rlim_max, /*embedded_server=*/false);
  EXPECT_TRUE(absl::IsResourceExhausted(external)) << external;
  EXPECT_FALSE(absl::StrContains(external.message(), "--target")) << external.message();
  EXPECT_TRUE(absl::StrContains(external.message(), "raise the hard limit")) << external.message();
}

}  // namespace
}  // namespace loadgen
