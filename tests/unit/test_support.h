// Helpers shared by the unit tests: temp directories and printed seeds.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>

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

// Clocks that move only when a test advances them. Thread-safe.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(std::chrono::nanoseconds(now_ns_.load())); }
  void Advance(std::chrono::nanoseconds d) { now_ns_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> now_ns_{int64_t(1) << 40};  // well past zero
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
