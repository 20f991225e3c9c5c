// Helpers shared by the unit tests: temp directories and printed seeds.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <cstdio>

#include "common/clock.h"

namespace monju::test_support {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "monju-unit") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The seed of a randomized test: MONJU_TEST_SEED if set, else `fallback`.
// Printed so that a failure can be replayed.
inline uint64_t TestSeed(uint64_t fallback) {
  const char* env = std::getenv("MONJU_TEST_SEED");
  uint64_t seed = env ? std::strtoull(env, nullptr, 10) : fallback;
  std::cout << "[ seed     ] " << ::testing::UnitTest::GetInstance()->current_test_info()->name() << " seed=" << seed
            << " (MONJU_TEST_SEED to override)\n";
  return seed;
}

// Bytes for a failure message: printable ASCII as is, the rest as \xNN.
inline std::string Printable(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

// Clocks that move only when a test advances them. Thread-safe.
//
// WaitUntil() returns when notified, when a test has moved the clock to the
// deadline, or spuriously after a millisecond of real time (allowed by the
// contract: callers re-check their condition and Now()). So the code under
// test decides only on fake time. A test that must move time only once that
// code waits uses AwaitWaits(), a wait on a condition, not a sleep.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard<std::mutex> g(mu_);
    return now_;
  }

  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (now_ >= deadline) return;
      ++waits_;
    }
    waits_cv_.notify_all();
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint deadline) const override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (now_ >= deadline) return;
      ++waits_;
    }
    waits_cv_.notify_all();
    cv.WaitWithTimeout(&mu, absl::Milliseconds(1));
  }

  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> g(mu_);
    now_ += d;
  }

  // Waits (on a condition, up to 10 s of real time) until WaitUntil() has
  // blocked at least `n` times since construction; false on give-up.
  bool AwaitWaits(uint64_t n) const {
    std::unique_lock<std::mutex> g(mu_);
    return waits_cv_.wait_for(g, std::chrono::seconds(10), [&] { return waits_ >= n; });
  }
  uint64_t waits() const {
    std::lock_guard<std::mutex> g(mu_);
    return waits_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable waits_cv_;
  TimePoint now_{std::chrono::nanoseconds(int64_t(1) << 40)};  // well past zero
  mutable uint64_t waits_ = 0;
};

class FakeWallClock final : public WallClock {
 public:
  explicit FakeWallClock(int64_t unix_ms = 1'800'000'000'000) : now_ms_(unix_ms) {}
  int64_t UnixMillis() const override { return now_ms_.load(); }
  void Advance(std::chrono::milliseconds d) { now_ms_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace monju::test_support
