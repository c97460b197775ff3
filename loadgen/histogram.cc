#include "loadgen/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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

namespace {

// ExactNumber: the shortest of %.15g..%.17g that reads back as the same double.
std::string ExactNumber(double v) {
  for (int precision = 15; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(text.c_str(), nullptr) == v) return text;
  }
  return absl::StrFormat("%.17g", v);
}

}  // namespace

Histogram::Serialized Histogram::Export() const {
  Serialized s;
  s.count = total_;
  s.min = min();
  s.max = max_;
  s.sum = sum_;
  s.rejected = rejected_;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    if (counts_[i] != 0) s.buckets.emplace_back(i, counts_[i]);
  }
  return s;
}

std::string Histogram::ToJson() const {
  const Serialized s = Export();
  std::string out = absl::StrCat("{\"version\": ", s.version, ", \"precision_bits\": ",
                                 s.precision_bits, ", \"bucket_count\": ", s.bucket_count,
                                 ", \"count\": ", s.count, ", \"min\": ", s.min,
                                 ", \"max\": ", s.max, ", \"sum\": ",
                                 ExactNumber(s.sum), ", \"rejected\": ", s.rejected,
                                 ", \"buckets\": [");
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", "[", s.buckets[i].first, ", ", s.buckets[i].second,
                    "]");
  }
  out += "]}";
  return out;
}

absl::StatusOr<Histogram> Histogram::Import(const Serialized& s) {
  if (s.version != kSerialVersion) {
    return absl::InvalidArgumentError(absl::StrCat("histogram version ", s.version,
                                                   ", this loadgen reads ", kSerialVersion));
  }
  if (s.precision_bits != kPrecisionBits || s.bucket_count != kBucketCount) {
    return absl::InvalidArgumentError(absl::StrCat(
        "histogram bucket layout precision_bits ", s.precision_bits, " / bucket_count ",
        s.bucket_count, ", this loadgen's is ", kPrecisionBits, " / ", kBucketCount));
  }
  if (!std::isfinite(s.sum) || s.sum < 0) {
    return absl::InvalidArgumentError(absl::StrCat("histogram sum ", s.sum, " is not a sum"));
  }
  Histogram h;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    const auto [index, count] = s.buckets[i];
    if (index >= kBucketCount) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram bucket index ", index, " out of range (", kBucketCount, ")"));
    }
    if (i > 0 && index <= s.buckets[i - 1].first) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram bucket index ", index, " not after ", s.buckets[i - 1].first));
    }
    if (count == 0 || total + count < total) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram bucket ", index, " has a bad count ", count));
    }
    h.counts_[index] = count;
    total += count;
  }
  if (total != s.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram bucket counts add up to ", total, ", not count ", s.count));
  }
  if (total > 0) {
    const std::size_t first = static_cast<std::size_t>(s.buckets.front().first);
    const std::size_t last = static_cast<std::size_t>(s.buckets.back().first);
    if (s.min > s.max || BucketIndex(s.min) != first || BucketIndex(s.max) != last) {
      return absl::InvalidArgumentError(absl::StrCat("histogram min ", s.min, " / max ", s.max,
                                                     " disagree with its buckets"));
    }
    h.min_ = s.min;
    h.max_ = s.max;
  } else if (s.min != 0 || s.max != 0 || s.sum != 0) {
    return absl::InvalidArgumentError("empty histogram with a non-zero min, max or sum");
  }
  h.total_ = total;
  h.sum_ = s.sum;
  h.rejected_ = s.rejected;
  return h;
}

}  // namespace loadgen
