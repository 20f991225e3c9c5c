#include "common/recent_histogram.h"

#include <utility>

namespace monju {

int64_t RecentHistogram::SlotsPassed(TimePoint now) const {
  if (!started_ || now <= slot_start_) return 0;
  return (now - slot_start_) / kSlot;
}

void RecentHistogram::Record(uint64_t value, TimePoint now) {
  if (!started_) {
    started_ = true;
    slot_start_ = now;
  }
  const int64_t passed = SlotsPassed(now);
  if (passed == 1) {
    std::swap(previous_, current_);
    current_.Clear();
  } else if (passed > 1) {
    previous_.Clear();
    current_.Clear();
  }
  slot_start_ += passed * std::chrono::duration_cast<TimePoint::duration>(kSlot);
  current_.Record(value);
}

LatencyHistogram RecentHistogram::Window(TimePoint now) const {
  const int64_t passed = SlotsPassed(now);
  if (passed == 0) {
    LatencyHistogram window = previous_;
    window.Merge(current_);
    return window;
  }
  if (passed == 1) return current_;  // it is the previous slot now
  return LatencyHistogram();
}

}  // namespace monju
