// A short chaos run in the default suite: monju-chaos starts its own 3-node
// cluster, runs the register, set-add and delete workloads while it kills,
// pauses, partitions, slows and wipes nodes, heals, waits for convergence
// and checks the history. This test asserts what the checker found.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

std::string ChaosPath() {
  const char* p = getenv("MONJU_CHAOS");
  return p ? p : "";
}

uint64_t Seed() {
  const char* env = getenv("MONJU_TEST_SEED");
  uint64_t seed = env ? std::strtoull(env, nullptr, 10) : 20261201;
  std::cout << "[ seed     ] chaos seed=" << seed << " (MONJU_TEST_SEED to override)\n";
  return seed;
}

TEST(ChaosTest, ShortRunLosesNothingResurrectsNothingAndConverges) {
  ASSERT_FALSE(ChaosPath().empty()) << "MONJU_CHAOS is not set";
  TempDir dir("monju-chaos-test");
  const std::string json_path = dir.path() + "/summary.json";
  const uint64_t seed = Seed();
  ProcessResult run = RunProcess(ChaosPath(), {"--seconds", "60", "--seed", std::to_string(seed), "--faults", "all",
                                               "--monjud", MonjudPath(), "--out", dir.path() + "/run", "--json",
                                               json_path, "--converge-timeout-s", "120"},
                                 std::chrono::minutes(5));
  std::cout << run.out;
  ASSERT_TRUE(run.started);
  ASSERT_FALSE(run.timed_out) << run.Describe();
  ASSERT_TRUE(run.exited && (run.exit_code == 0 || run.exit_code == 1)) << run.Describe();

  std::ifstream in(json_path);
  ASSERT_TRUE(in) << "no summary at " << json_path << "\n" << run.Describe();
  nlohmann::json s = nlohmann::json::parse(in);
  EXPECT_EQ(s["lost"], 0) << s["lost_examples"].dump(2);
  EXPECT_EQ(s["resurrected"], 0) << s["resurrected_examples"].dump(2);
  EXPECT_EQ(s["divergent"], 0) << s["divergent_examples"].dump(2);
  EXPECT_TRUE(s["converged"].get<bool>());
  EXPECT_TRUE(s["pass"].get<bool>());
  EXPECT_EQ(run.exit_code, 0);

  // The run did real work under real faults.
  EXPECT_GT(s["acknowledged"].get<int>(), 1000);
  EXPECT_GT(s["keys"].get<int>(), 50);
  std::set<std::string> kinds;
  for (const auto& f : s["faults"]) {
    kinds.insert(f["kind"].get<std::string>());
    EXPECT_EQ(f["error"], "") << f.dump();
  }
  EXPECT_GE(kinds.size(), 2u) << s["faults"].dump(2);
}

}  // namespace
}  // namespace monju::itest
