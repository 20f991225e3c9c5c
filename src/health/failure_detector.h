// PeerDetector: this node's local belief about whether one peer is reachable.
//
// Phi accrual (Hayashibara et al.) with an exponential model of heartbeat
// inter-arrival times:
//
//   phi = log10(e) * (now - last_heard) / mean_interval
//
// i.e. phi = -log10(P(a heartbeat is still this late)). phi grows smoothly with
// silence instead of flipping at one timeout, so a single slow reply does not
// flap a peer to down:
// - kDown    when phi >= phi_down;
// - kSuspect when phi >= phi_suspect, or a failure was recorded since the last
//            success (one failed probe or request makes a peer suspect, never
//            down: only silence does);
// - kAlive   otherwise.
// With the defaults (250 ms probes, thresholds 1 and 3) a peer that stops
// answering turns suspect about 0.58 s and down about 1.73 s after it was last
// heard.
//
// mean_interval is the mean of the last `window` gaps between successes,
// floored at probe_interval (requests that succeed between probes must not make
// the detector hair-triggered) and with each gap capped at 4 * probe_interval.
// A gap that ends an outage (failures were recorded during it) is not a sample
// at all: it measures the outage, not the peer's rhythm, and would slow down
// detection of the next one.
//
// Recovery is immediate: one success makes any peer alive again (phi 0,
// failure streak reset), because hint delivery waits for it.
//
// Heartbeats come from a separate prober (periodic pings) and from real
// requests, which call RecordSuccess/RecordFailure with what they observed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "common/clock.h"

namespace monju {

enum class PeerState { kAlive, kSuspect, kDown };

// "alive", "suspect", "down".
const char* PeerStateName(PeerState state);

struct DetectorOptions {
  // Expected gap between heartbeats; floor for the mean. Values below 1 ms
  // are treated as 1 ms.
  std::chrono::milliseconds probe_interval{250};
  double phi_suspect = 1.0;  // accrual threshold for suspect
  double phi_down = 3.0;     // accrual threshold for down
  size_t window = 64;        // inter-arrival samples kept (at least 1)
};

struct PeerHealthSnapshot {
  PeerState state = PeerState::kAlive;
  double phi = 0;
  int64_t ms_since_heard = 0;          // since the last success (or construction)
  uint32_t consecutive_failures = 0;   // failures since the last success
  uint64_t successes = 0, failures = 0;  // totals since construction
};

// One peer. Thread-safe: every method may be called concurrently.
class PeerDetector {
 public:
  // Starts as if the peer was heard at construction: alive. `clock` is not
  // owned and must outlive the detector.
  PeerDetector(const Clock* clock, DetectorOptions options);
  PeerDetector(const PeerDetector&) = delete;
  PeerDetector& operator=(const PeerDetector&) = delete;

  // A probe reply or a successful request: a heartbeat. Makes the peer alive.
  void RecordSuccess();
  // A probe or request that failed or timed out. Makes an alive peer suspect;
  // never down by itself.
  void RecordFailure();

  // The state now (phi is evaluated against the clock at each call).
  PeerState State() const;
  // The coordinator sends to alive and suspect peers.
  bool LikelyAlive() const { return State() != PeerState::kDown; }
  // State, phi and counters, all taken at one instant.
  PeerHealthSnapshot Snapshot() const;

 private:
  using Duration = Clock::TimePoint::duration;

  double PhiLocked(Clock::TimePoint now) const;
  PeerState StateLocked(double phi) const;

  const Clock* const clock_;
  const DetectorOptions options_;
  const Duration floor_;          // probe_interval, at least 1 ms
  const Duration sample_cap_;     // 4 * floor_

  mutable std::mutex mu_;
  Clock::TimePoint last_heard_;
  std::vector<Duration> samples_;  // ring buffer of at most options_.window gaps
  size_t next_sample_ = 0;         // where the next sample goes once samples_ is full
  Duration sample_sum_{0};
  uint32_t consecutive_failures_ = 0;
  uint64_t successes_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace monju
