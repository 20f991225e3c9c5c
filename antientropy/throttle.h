// ByteThrottle: a token bucket of bytes per second, shared by every exchange
// of a node, so anti-entropy never takes more than its share of the network
// and disk however many exchanges run.
//
// Take(bytes) spends the bytes at once (the bucket may go into debt, so a
// message larger than the bucket still goes) and says how long the caller
// must wait before its next message; the bucket refills at the rate and
// holds at most one second's worth, so an idle spell allows a one-second
// burst and no more. A rate of 0 means unlimited. Time comes from the
// injected Clock; the waiting is the caller's (the scheduler waits on a
// condition variable that Stop() interrupts). Thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "common/clock.h"

namespace monju {

class ByteThrottle {
 public:
  using Duration = Clock::TimePoint::duration;

  ByteThrottle(const Clock* clock, uint64_t bytes_per_second)
      : clock_(clock), rate_(double(bytes_per_second)), tokens_(rate_), at_(clock->Now()) {}

  Duration Take(uint64_t bytes) {
    if (rate_ <= 0) return Duration::zero();
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = clock_->Now();
    if (now > at_) {
      tokens_ = std::min(rate_, tokens_ + std::chrono::duration<double>(now - at_).count() * rate_);
      at_ = now;
    }
    tokens_ -= double(bytes);
    if (tokens_ >= 0) return Duration::zero();
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(-tokens_ / rate_));
  }

  uint64_t bytes_per_second() const { return uint64_t(rate_); }

 private:
  const Clock* const clock_;
  const double rate_;
  std::mutex mu_;
  double tokens_;
  Clock::TimePoint at_;
};

}  // namespace monju
