// SharedHistogram: a TotalAndRecentHistogram (every sample, and the last
// minutes') behind one lock, for a server's counters (about 180 KB each).
#pragma once

#include <absl/synchronization/mutex.h>

#include <chrono>
#include <cstdint>

#include "common/recent_histogram.h"

namespace monju {

// Thread-safe: Record() from any thread (one uncontended lock), Snapshot()
// for a consistent copy of every sample, Recent() for those of the last one
// to two minutes (RecentHistogram).
class SharedHistogram {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  void Record(uint64_t value, TimePoint now) {
    absl::MutexLock lock(&mu_);
    histogram_.Record(value, now);
  }
  LatencyHistogram Snapshot() const {
    absl::MutexLock lock(&mu_);
    return histogram_.total();
  }
  LatencyHistogram Recent(TimePoint now) const {
    absl::MutexLock lock(&mu_);
    return histogram_.Recent(now);
  }

 private:
  mutable absl::Mutex mu_;
  TotalAndRecentHistogram histogram_;
};

}  // namespace monju
