// Time sources, injected wherever time matters so that tests control them.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include <absl/synchronization/mutex.h>

namespace monju {

// Monotonic time: timeouts, intervals, rates.
class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  // Thread-safe.
  virtual TimePoint Now() const = 0;
  // Blocks on `cv` (whose mutex `lock` holds) until notified or until Now()
  // reaches `deadline`; may also return spuriously, so callers re-check their
  // condition and the time in a loop. Waiting goes through the clock so that a
  // fake clock can wake waiters when a test moves time.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) const = 0;
  // The same on an absl::CondVar, whose mutex `mu` the caller holds. The
  // request paths wait this way: a glibc condition variable takes its mutex
  // back marked contended, so the unlock after every wait costs a futex wake.
  virtual void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint deadline) const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    cv.wait_until(lock, deadline);
  }
  // Abseil 20220623 times a wait on the wall clock (an absolute
  // FUTEX_CLOCK_REALTIME deadline), so one wait is at most kMaxWaitSlice:
  // a wall-clock step back then delays a timeout by at most that. Callers
  // loop on Now(), as they must for spurious wake-ups anyway.
  static constexpr std::chrono::milliseconds kMaxWaitSlice{50};
  void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint deadline) const override {
    const auto left = deadline - std::chrono::steady_clock::now();
    cv.WaitWithTimeout(&mu, absl::FromChrono(std::min<std::chrono::steady_clock::duration>(left, kMaxWaitSlice)));
  }
};

// Wall-clock time: ages that must survive a restart (hint creation, delete
// time of tombstones). Comparable across nodes only up to their clock skew.
class WallClock {
 public:
  virtual ~WallClock() = default;
  // Milliseconds since the Unix epoch; thread-safe.
  virtual int64_t UnixMillis() const = 0;
};

class SystemWallClock final : public WallClock {
 public:
  int64_t UnixMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace monju
