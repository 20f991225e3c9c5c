// LatencyHistogram: counts of non-negative integer values (latencies in
// microseconds) in log-spaced buckets, for percentiles over millions of
// samples in constant memory.
//
// Debian ships HdrHistogram only for Java and Go, so this is a small
// log-linear histogram of the same idea: values below 2^kSubBits are exact,
// above that each power of two is cut into 2^(kSubBits-1) equal buckets, so a
// reported percentile is at most 1/2^(kSubBits-1) (about 0.8%) above the true
// sample. Count, min, max and sum are exact.
//
// LatencyHistogram is not thread-safe: keep one per thread and Merge() them
// at the end, or use SharedHistogram (shared_histogram.h). About 59 KB each.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace monju {

// A duration as whole microseconds for Record(); negative counts as 0.
inline uint64_t MicrosOf(std::chrono::nanoseconds d) {
  return static_cast<uint64_t>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 8;  // values below 256 exact; 128 buckets per power of two above

  LatencyHistogram();

  void Record(uint64_t value);
  void Merge(const LatencyHistogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }

  // The smallest bucket bound b such that at least q (0..1] of the samples
  // are <= b, capped at max(); 0 when empty. q <= 0 gives min().
  uint64_t Percentile(double q) const;

 private:
  static size_t BucketOf(uint64_t value);
  // The largest value that falls in bucket `index`.
  static uint64_t UpperBound(size_t index);

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0, min_ = 0, max_ = 0, sum_ = 0;
};

}  // namespace monju
