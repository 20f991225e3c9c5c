#include "health/failure_detector.h"

#include <algorithm>

namespace monju {
namespace {

constexpr double kLog10E = 0.43429448190325182765;

}  // namespace

const char* PeerStateName(PeerState state) {
  switch (state) {
    case PeerState::kAlive:
      return "alive";
    case PeerState::kSuspect:
      return "suspect";
    case PeerState::kDown:
      return "down";
  }
  return "unknown";
}

PeerDetector::PeerDetector(const Clock* clock, DetectorOptions options)
    : clock_(clock),
      options_([&] {
        options.window = std::max<size_t>(options.window, 1);
        options.probe_interval = std::max(options.probe_interval, std::chrono::milliseconds(1));
        return options;
      }()),
      floor_(options_.probe_interval),
      sample_cap_(4 * floor_),
      last_heard_(clock->Now()) {
  samples_.reserve(options_.window);
}

void PeerDetector::RecordSuccess() {
  const Clock::TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  ++successes_;
  // A gap that ended an outage measures the outage, not the peer's rhythm.
  if (consecutive_failures_ == 0) {
    Duration gap = std::clamp(now - last_heard_, Duration(0), sample_cap_);
    if (samples_.size() < options_.window) {
      samples_.push_back(gap);
    } else {
      sample_sum_ -= samples_[next_sample_];
      samples_[next_sample_] = gap;
      next_sample_ = (next_sample_ + 1) % samples_.size();
    }
    sample_sum_ += gap;
  }
  consecutive_failures_ = 0;
  // Concurrent callers may read the clock out of order; never move backwards.
  last_heard_ = std::max(last_heard_, now);
}

void PeerDetector::RecordFailure() {
  std::lock_guard<std::mutex> lock(mu_);
  ++failures_;
  ++consecutive_failures_;
}

double PeerDetector::PhiLocked(Clock::TimePoint now) const {
  if (now <= last_heard_) return 0;
  Duration mean = samples_.empty() ? floor_ : sample_sum_ / static_cast<Duration::rep>(samples_.size());
  mean = std::max(mean, floor_);
  return kLog10E * std::chrono::duration<double>(now - last_heard_).count() /
         std::chrono::duration<double>(mean).count();
}

PeerState PeerDetector::StateLocked(double phi) const {
  if (phi >= options_.phi_down) return PeerState::kDown;
  if (phi >= options_.phi_suspect || consecutive_failures_ > 0) return PeerState::kSuspect;
  return PeerState::kAlive;
}

PeerState PeerDetector::State() const {
  const Clock::TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  return StateLocked(PhiLocked(now));
}

PeerHealthSnapshot PeerDetector::Snapshot() const {
  const Clock::TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  PeerHealthSnapshot s;
  s.phi = PhiLocked(now);
  s.state = StateLocked(s.phi);
  s.ms_since_heard =
      now <= last_heard_ ? 0 : std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard_).count();
  s.consecutive_failures = consecutive_failures_;
  s.successes = successes_;
  s.failures = failures_;
  return s;
}

}  // namespace monju
