// Helpers shared by the unit tests: temp directories and printed seeds.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>

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

}  // namespace monju::test_support
