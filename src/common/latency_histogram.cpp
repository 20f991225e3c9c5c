#include "common/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace monju {
namespace {
constexpr uint64_t kSub = uint64_t(1) << LatencyHistogram::kSubBits;
// Values up to 2^64 - 1: one linear range plus (64 - kSubBits) halved ranges.
constexpr size_t kBuckets = kSub + (64 - LatencyHistogram::kSubBits) * (kSub / 2);
}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(kBuckets, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t value) {
  if (value < kSub) return static_cast<size_t>(value);
  // Values in [2^e, 2^(e+1)), e >= kSubBits, share kSub/2 buckets of width 2^(e-kSubBits+1).
  const int e = 63 - std::countl_zero(value);
  const int shift = e - kSubBits + 1;
  const uint64_t offset = (value >> shift) - kSub / 2;  // 0 .. kSub/2 - 1
  return static_cast<size_t>(kSub + size_t(e - kSubBits) * (kSub / 2) + offset);
}

uint64_t LatencyHistogram::UpperBound(size_t index) {
  if (index < kSub) return index;
  const size_t rel = index - kSub;
  const int e = static_cast<int>(rel / (kSub / 2)) + kSubBits;
  const uint64_t offset = rel % (kSub / 2);
  const int shift = e - kSubBits + 1;
  const uint64_t low = (kSub / 2 + offset) << shift;
  return low + ((uint64_t(1) << shift) - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  ++buckets_[BucketOf(value)];
  if (count_ == 0 || value < min_) min_ = value;
  max_ = std::max(max_, value);
  ++count_;
  sum_ += value;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void LatencyHistogram::Clear() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = min_ = max_ = sum_ = 0;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) return min_;
  // The rank of the sample asked for, 1-based: ceil(q * count).
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(std::min(q, 1.0) * double(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(UpperBound(i), max_);
  }
  return max_;
}

}  // namespace monju
