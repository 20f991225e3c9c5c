// RecentHistogram: a LatencyHistogram of the last one to two minutes, for
// `monju stats` to show what a node does now, not the average of its life.
//
// Samples go into the current slot (kSlot long, slots aligned to the first
// sample); when a slot ends it becomes the previous one and the one before is
// dropped. Window() merges the previous and the current slot, so it covers
// between kSlot and 2 * kSlot back from `now`. Time is given by the caller
// (an injected clock), so tests step it.
//
// Not thread-safe: the owner locks (SharedHistogram, DataStore's stats).
// TotalAndRecentHistogram pairs one with a histogram of every sample.
#pragma once

#include <chrono>

#include "common/latency_histogram.h"

namespace monju {

class RecentHistogram {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::seconds kSlot{60};

  void Record(uint64_t value, TimePoint now);
  // The samples of the current and the previous slot as of `now`; slots that
  // ended before that are left out, even when no sample has come since.
  LatencyHistogram Window(TimePoint now) const;

 private:
  // Slots that ended between the current slot's start and `now`.
  int64_t SlotsPassed(TimePoint now) const;

  bool started_ = false;
  TimePoint slot_start_{};
  LatencyHistogram current_, previous_;
};

// Every sample since construction, and the recent ones. Not thread-safe.
class TotalAndRecentHistogram {
 public:
  using TimePoint = RecentHistogram::TimePoint;
  void Record(uint64_t value, TimePoint now) {
    total_.Record(value);
    recent_.Record(value, now);
  }
  const LatencyHistogram& total() const { return total_; }
  LatencyHistogram Recent(TimePoint now) const { return recent_.Window(now); }

 private:
  LatencyHistogram total_;
  RecentHistogram recent_;
};

}  // namespace monju
