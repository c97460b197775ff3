#include "loadgen/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"

namespace loadgen {
namespace {

// NearestRank is the reference: the ceil(p% * n)-th smallest of `sorted` (at least the first).
std::uint64_t NearestRank(const std::vector<std::uint64_t>& sorted, double p) {
  const double r = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  std::size_t rank = r < 1.0 ? 1 : static_cast<std::size_t>(r);
  rank = std::min(rank, sorted.size());
  return sorted[rank - 1];
}

void ExpectWithinOnePercent(std::uint64_t got, std::uint64_t want, double p) {
  const double error = std::abs(static_cast<double>(got) - static_cast<double>(want));
  EXPECT_LE(error, 0.01 * static_cast<double>(want))
      << "p" << p << ": got " << got << ", exact " << want;
  // The layout promises better than 1%: half a bucket.
  EXPECT_LE(error, Histogram::kMaxRelativeError * static_cast<double>(want) + 0.5)
      << "p" << p << ": got " << got << ", exact " << want;
}

void CheckAgainstExact(std::vector<std::uint64_t> values) {
  Histogram h;
  for (std::uint64_t v : values) h.Record(v);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  for (double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    ExpectWithinOnePercent(h.Percentile(p), NearestRank(values, p), p);
  }
}

TEST(HistogramTest, PercentilesOfUniformDataAreWithinTheErrorBound) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint64_t> dist(0, 10'000'000);
  std::vector<std::uint64_t> values(200'000);
  for (auto& v : values) v = dist(rng);
  CheckAgainstExact(values);
}

TEST(HistogramTest, PercentilesOfHeavyTailedDataAreWithinTheErrorBound) {
  // Log-normal latencies around 50 us with a long tail, as a loaded server produces.
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> dist(std::log(50'000.0), 1.5);
  std::vector<std::uint64_t> values(200'000);
  for (auto& v : values) v = static_cast<std::uint64_t>(dist(rng));
  CheckAgainstExact(values);
}

TEST(HistogramTest, PercentilesAcrossTheWholeRangeAreWithinTheErrorBound) {
  // Random exponents: every octave from 1 to 2^63 gets samples.
  std::mt19937_64 rng(3);
  std::vector<std::uint64_t> values(100'000);
  for (auto& v : values) v = rng() >> (rng() % 64);
  CheckAgainstExact(values);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 128; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 63u);
  EXPECT_EQ(h.Percentile(100), 127u);
  EXPECT_EQ(h.Percentile(0), 0u);
}

TEST(HistogramTest, EveryBucketIsNarrowerThanOnePercentOfItsLowerBound) {
  for (std::size_t i = 1; i < Histogram::kBucketCount; ++i) {
    const std::uint64_t low = Histogram::BucketLow(i);
    const std::uint64_t high = Histogram::BucketHigh(i);
    ASSERT_LE(low, high);
    ASSERT_EQ(Histogram::BucketIndex(low), i);
    ASSERT_EQ(Histogram::BucketIndex(high), i);
    ASSERT_EQ(Histogram::BucketHigh(i - 1) + 1, low) << "gap before bucket " << i;
    ASSERT_LE(static_cast<double>(high - low), static_cast<double>(low) / 128.0);
  }
  EXPECT_EQ(Histogram::BucketHigh(Histogram::kBucketCount - 1), UINT64_MAX);
}

TEST(HistogramTest, ZeroAndHugeValuesAreRecorded) {
  Histogram h;
  h.Record(0);
  h.Record(UINT64_MAX);
  h.Record(std::uint64_t{1} << 63);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.Percentile(0), 0u);
  EXPECT_EQ(h.Percentile(100), UINT64_MAX);
  const double mid = static_cast<double>(h.Percentile(50));
  EXPECT_NEAR(mid, std::ldexp(1.0, 63), std::ldexp(1.0, 63) * 0.01);
  EXPECT_GT(h.mean(), 0.0);
}

TEST(HistogramTest, EmptyHistogramReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.Percentile(99), 0u);
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(4);
  std::lognormal_distribution<double> dist(10.0, 2.0);
  Histogram a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  Histogram merged;
  merged.Merge(a);
  merged.Merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_NEAR(merged.mean(), all.mean(), all.mean() * 1e-9);
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(merged.Percentile(p), all.Percentile(p));
}

TEST(HistogramTest, MergingAnEmptyHistogramKeepsTheExtremes) {
  Histogram h, empty;
  h.Record(500);
  h.Merge(empty);
  EXPECT_EQ(h.min(), 500u);
  EXPECT_EQ(h.max(), 500u);
  empty.Merge(h);
  EXPECT_EQ(empty.min(), 500u);
}

TEST(HistogramTest, MergeIntoItselfDoubles) {
  Histogram h;
  h.Record(10);
  h.Record(1000);
  h.Merge(h);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.max(), 1000u);
}

TEST(HistogramTest, ResetForgetsEverything) {
  Histogram h;
  h.Record(77, 5);
  h.RecordDuration(absl::Nanoseconds(-1));
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.rejected(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
}

TEST(HistogramTest, CopyIsIndependent) {
  Histogram h;
  h.Record(5);
  Histogram copy = h;
  copy.Record(6);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(copy.count(), 2u);
  h = copy;
  EXPECT_EQ(h.count(), 2u);
}

TEST(HistogramTest, RecordDurationRejectsNegativeAndInfinite) {
  Histogram h;
  EXPECT_TRUE(h.RecordDuration(absl::Microseconds(3)));
  EXPECT_FALSE(h.RecordDuration(absl::Nanoseconds(-5)));
  EXPECT_FALSE(h.RecordDuration(absl::InfiniteDuration()));
  EXPECT_FALSE(h.RecordDuration(-absl::InfiniteDuration()));
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.rejected(), 3u);
  EXPECT_EQ(h.max(), 3000u);
}

TEST(HistogramTest, PercentileOutsideZeroToHundredIsRejected) {
  Histogram h;
  h.Record(1);
  EXPECT_THROW(h.Percentile(-0.1), std::invalid_argument);
  EXPECT_THROW(h.Percentile(100.5), std::invalid_argument);
  EXPECT_THROW(h.Percentile(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
}

TEST(HistogramTest, CountArgumentRecordsManySamples) {
  Histogram h;
  h.Record(100, 99);
  h.Record(100'000, 1);
  h.Record(5, 0);  // No sample.
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min(), 100u);
  EXPECT_EQ(h.Percentile(99), 100u);
  EXPECT_EQ(h.Percentile(99.5), 100'000u);
}

}  // namespace
}  // namespace loadgen
