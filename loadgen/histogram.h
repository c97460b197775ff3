// loadgen::Histogram — a log-linear latency histogram with bounded relative error (HDR style).
//
//   loadgen::Histogram h;
//   h.Record(1234);                       // any uint64 value, e.g. nanoseconds; O(1), no allocation
//   h.RecordDuration(absl::Microseconds(5));
//   total.Merge(h);                       // histograms of several threads add up exactly
//   std::uint64_t p99 = total.Percentile(99.0);
//
// Layout. Values below 2^kPrecisionBits get a bucket each (exact). Above that, every power-of-two
// range [2^e, 2^(e+1)) is split into 2^kPrecisionBits equal buckets, so a bucket is never wider
// than 1/128 of its lower bound. A percentile is reported as the midpoint of its bucket (clamped to
// the exact min and max), which puts it within 1/256 (< 0.4%) of the true sample value. The whole
// uint64 range is covered by a fixed array of kBucketCount counters (~58 KiB), allocated once.
//
// Percentile(p) uses the nearest-rank definition: the smallest recorded value v such that at least
// p% of the samples are <= v (p = 0 gives the minimum, p = 100 the maximum).
//
// Thread-safety: thread-compatible (like std::vector). Each thread records into its own histogram;
// merging is done by one thread with the others' histograms quiescent (or copied under a lock).
#ifndef LOADGEN_HISTOGRAM_H_
#define LOADGEN_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace loadgen {

class Histogram {
 public:
  // Buckets per power of two is 2^kPrecisionBits.
  static constexpr int kPrecisionBits = 7;
  static constexpr std::size_t kSubBuckets = std::size_t{1} << kPrecisionBits;
  // Exact buckets [0, kSubBuckets) plus kSubBuckets per exponent from kPrecisionBits to 63.
  static constexpr std::size_t kBucketCount = kSubBuckets + (64 - kPrecisionBits) * kSubBuckets;
  // Largest relative distance between a reported percentile and the true sample value.
  static constexpr double kMaxRelativeError = 1.0 / (2 * kSubBuckets);

  Histogram();
  Histogram(const Histogram& other);
  Histogram& operator=(const Histogram& other);
  // A moved-from histogram may only be destroyed or assigned to.
  Histogram(Histogram&&) noexcept = default;
  Histogram& operator=(Histogram&&) noexcept = default;

  // Record adds `count` samples of `value`. O(1).
  void Record(std::uint64_t value, std::uint64_t count = 1) {
    if (count == 0) return;
    counts_[BucketIndex(value)] += count;
    total_ += count;
    sum_ += static_cast<double>(value) * static_cast<double>(count);
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  // RecordDuration records `d` in whole nanoseconds. A negative or infinite duration is not
  // recorded (it can only come from a broken clock or a bug); it is counted in rejected() and
  // RecordDuration returns false.
  bool RecordDuration(absl::Duration d);

  // Merge adds every sample of `other` (exact: same bucket layout). Merging a histogram into
  // itself doubles it.
  void Merge(const Histogram& other);

  // Reset forgets every sample (and the rejected count).
  void Reset();

  // Percentile returns the nearest-rank percentile `p` in [0, 100]; 0 when empty. Throws
  // std::invalid_argument for p outside [0, 100] or NaN.
  std::uint64_t Percentile(double p) const;

  std::uint64_t count() const { return total_; }
  // min / max: exact extremes; 0 when empty.
  std::uint64_t min() const { return total_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  // mean: arithmetic mean of the samples (exact bucket-free sum, as a double); 0 when empty.
  double mean() const { return total_ == 0 ? 0.0 : sum_ / static_cast<double>(total_); }
  // rejected: RecordDuration calls that were refused.
  std::uint64_t rejected() const { return rejected_; }

  // BucketIndex / BucketLow / BucketHigh: the layout, exposed for tests. Bucket i holds the values
  // [BucketLow(i), BucketHigh(i)] (inclusive).
  static std::size_t BucketIndex(std::uint64_t value) {
    if (value < kSubBuckets) return static_cast<std::size_t>(value);
    const int exponent = 63 - __builtin_clzll(value);  // >= kPrecisionBits
    const int shift = exponent - kPrecisionBits;
    const std::size_t sub = static_cast<std::size_t>(value >> shift) - kSubBuckets;
    return kSubBuckets + static_cast<std::size_t>(shift) * kSubBuckets + sub;
  }
  static std::uint64_t BucketLow(std::size_t index);
  static std::uint64_t BucketHigh(std::size_t index);

  // Serialisation (loadgen's --json, `loadgen merge`): the whole histogram, exact. Only the
  // non-empty buckets are kept, as (index, count) pairs in increasing index order; with the
  // layout (precision_bits, bucket_count) and the exact totals, Import(Export()) gives back a
  // histogram whose every count, percentile, min, max and mean equal the original's.
  //
  // ToJson writes it as one JSON object on one line:
  //   {"version": 1, "precision_bits": 7, "bucket_count": 7424, "count": 3, "min": 5,
  //    "max": 900, "sum": 1005, "rejected": 0, "buckets": [[5, 2], [517, 1]]}
  // "sum" is written with as many digits (15 to 17) as it takes to read back bit for bit.
  static constexpr int kSerialVersion = 1;
  struct Serialized {
    int version = kSerialVersion;
    int precision_bits = kPrecisionBits;
    std::uint64_t bucket_count = kBucketCount;
    std::uint64_t count = 0;
    std::uint64_t min = 0;  // 0 when empty, as min().
    std::uint64_t max = 0;
    double sum = 0;
    std::uint64_t rejected = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> buckets;  // (index, count), count > 0.
  };
  Serialized Export() const;
  std::string ToJson() const;
  // Import checks the version and the layout (InvalidArgument naming the field: "version 2, this
  // loadgen reads 1", "bucket layout precision_bits 5 / bucket_count 3712, this loadgen's is
  // 7 / 7424"), the bucket indexes (in range, strictly increasing), and that the counts add up to
  // `count` and agree with min and max (min and max fall in the first and last non-empty buckets).
  static absl::StatusOr<Histogram> Import(const Serialized& s);

 private:
  std::unique_ptr<std::uint64_t[]> counts_;  // kBucketCount entries.
  std::uint64_t total_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  double sum_ = 0;
  std::uint64_t rejected_ = 0;
};

}  // namespace loadgen

#endif  // LOADGEN_HISTOGRAM_H_
