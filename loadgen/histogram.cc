#include "loadgen/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace loadgen {

Histogram::Histogram() : counts_(new std::uint64_t[kBucketCount]()) {}

Histogram::Histogram(const Histogram& other) : Histogram() { *this = other; }

Histogram& Histogram::operator=(const Histogram& other) {
  if (this == &other) return *this;
  if (!counts_) counts_.reset(new std::uint64_t[kBucketCount]());
  std::memcpy(counts_.get(), other.counts_.get(), kBucketCount * sizeof(std::uint64_t));
  total_ = other.total_;
  min_ = other.min_;
  max_ = other.max_;
  sum_ = other.sum_;
  rejected_ = other.rejected_;
  return *this;
}

bool Histogram::RecordDuration(absl::Duration d) {
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    ++rejected_;
    return false;
  }
  // ToInt64Nanoseconds saturates at INT64_MAX for durations beyond ~292 years.
  Record(static_cast<std::uint64_t>(absl::ToInt64Nanoseconds(d)));
  return true;
}

void Histogram::Merge(const Histogram& other) {
  // Read other's totals first: other may be *this.
  const std::uint64_t other_total = other.total_;
  for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  total_ += other_total;
  sum_ += other.sum_;
  rejected_ += other.rejected_;
  if (other_total != 0) {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
}

void Histogram::Reset() {
  std::memset(counts_.get(), 0, kBucketCount * sizeof(std::uint64_t));
  total_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
  rejected_ = 0;
}

std::uint64_t Histogram::BucketLow(std::size_t index) {
  if (index < kSubBuckets) return index;
  const std::size_t shift = (index - kSubBuckets) / kSubBuckets;
  const std::uint64_t sub = (index - kSubBuckets) % kSubBuckets;
  return (kSubBuckets + sub) << shift;
}

std::uint64_t Histogram::BucketHigh(std::size_t index) {
  if (index < kSubBuckets) return index;
  const std::size_t shift = (index - kSubBuckets) / kSubBuckets;
  // Width 2^shift; the top bucket ends exactly at UINT64_MAX without overflow.
  return BucketLow(index) + ((std::uint64_t{1} << shift) - 1);
}

std::uint64_t Histogram::Percentile(double p) const {
  if (!(p >= 0.0 && p <= 100.0)) {  // Also rejects NaN.
    throw std::invalid_argument("loadgen::Histogram::Percentile: p must be in [0, 100], got " +
                                std::to_string(p));
  }
  if (total_ == 0) return 0;
  // Nearest rank: the ceil(p% * count)-th smallest sample, at least the first.
  const double exact_rank = std::ceil(p / 100.0 * static_cast<double>(total_));
  std::uint64_t rank = exact_rank < 1.0 ? 1 : static_cast<std::uint64_t>(exact_rank);
  if (rank > total_) rank = total_;
  if (rank == total_) return max_;
  if (rank == 1) return min();
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const std::uint64_t low = BucketLow(i);
      const std::uint64_t mid = low + (BucketHigh(i) - low) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;  // Unreachable: the counts add up to total_.
}

}  // namespace loadgen
