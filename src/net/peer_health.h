// PeerHealth: this node's local belief about whether a peer is reachable.
//
// A peer that failed at the transport level is treated as down for a short
// quarantine, so requests do not pay a connect attempt each; after it, one
// request probes again. (The failure detector of the failure-handling work
// replaces this with accrual suspicion and periodic probes.) Thread-safe.
#pragma once

#include <atomic>
#include <chrono>

#include "common/clock.h"

namespace monju {

class PeerHealth {
 public:
  PeerHealth(const Clock* clock, std::chrono::milliseconds quarantine) : clock_(clock), quarantine_(quarantine) {}

  bool LikelyAlive() const { return clock_->Now().time_since_epoch().count() >= down_until_.load(); }
  void RecordSuccess() { down_until_.store(0); }
  void RecordFailure() { down_until_.store((clock_->Now() + quarantine_).time_since_epoch().count()); }

 private:
  const Clock* clock_;
  const std::chrono::milliseconds quarantine_;
  std::atomic<Clock::TimePoint::rep> down_until_{0};
};

}  // namespace monju
