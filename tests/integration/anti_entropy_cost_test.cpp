// Anti-entropy cost with real processes (suite slow; a measurement, not a
// timed test): three nodes hold 100,000 keys each, except that n3 missed 1%
// of them (1,000 keys written while it was down; its hints expired). One
// `monju repair` on n3 must bring exactly those 1,000 keys, moving bytes in
// proportion to them, not to the 100,000. It prints keys and payload bytes
// against the data size, the repair's time, the tree build time at n3's
// restart, and the p99 of reads through n1 while the repair runs against
// the same reads idle.
//
//   meson test -C build --suite slow --print-errorlogs --verbose ae_cost
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

constexpr int kKeys = 100000;
constexpr int kMissed = kKeys / 100;
constexpr int kSks = 4;
const std::string kValue(100, 'v');

std::string Pk(int k) { return "cost-" + std::to_string(k / kSks); }
std::string Sk(int k) { return "item-" + std::to_string(k % kSks); }

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class AntiEntropyCostTest : public ::testing::Test {
 protected:
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get()); }

  void Write(int from, int to, int32_t w, std::vector<int> via) {
    constexpr int kThreads = 16;
    std::atomic<int> next{from};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        std::unique_ptr<MonjuKVClient> client;
        for (int k; (k = next++) < to;) {
          CallResult r = Call([&] {
            if (!client) client = cluster_->Client(via[t % via.size()]);
            api::WriteResult wr;
            client->put(wr, Pk(k), Sk(k), kValue, "", w);
          });
          if (!r.ok()) {
            client.reset();
            ++failures;
          }
        }
      });
    for (auto& t : threads) t.join();
    ASSERT_EQ(failures.load(), 0);
  }

  // Gets through n1, one after another, until `stop`, of keys every replica
  // holds (a read of a key n3 missed would repair it, not anti-entropy).
  std::vector<std::chrono::microseconds> ReadLoop(const std::atomic<bool>& stop, size_t at_most) {
    std::vector<std::chrono::microseconds> samples;
    auto client = cluster_->Client(0);
    for (int k = 0; !stop.load() && samples.size() < at_most; k = (k + 7919) % (kKeys - kMissed)) {
      auto t0 = Clock::now();
      CallResult r = Call([&] {
        api::GetResult g;
        client->get(g, Pk(k), Sk(k), 2);
      });
      if (!r.ok()) client = cluster_->Client(0);
      samples.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0));
    }
    return samples;
  }

  std::unique_ptr<LocalCluster> cluster_;
};

TEST_F(AntiEntropyCostTest, OnePercentDifferentMovesOnePercent) {
  ClusterOptions options;
  options.map_size_mb = 4096;
  options.extra_flags = {"--probe-interval-ms", "100", "--probe-timeout-ms", "300", "--hint-ttl-s", "1",
                         "--tombstone-grace-s", "2", "--ae-interval-s", "0", "--ae-rate-bytes", "0"};
  cluster_ = std::make_unique<LocalCluster>(options);
  ASSERT_TRUE(cluster_->Start());
  LocalCluster& c = *cluster_;

  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(Write(0, kKeys - kMissed, 3, {0, 1, 2}));
  std::cout << "[measure] " << kKeys - kMissed << " puts (W=3) in " << Seconds(Clock::now() - t0) << " s\n";
  c.Kill(2);
  ASSERT_TRUE(WaitAllSee(c, 2, "down"));
  ASSERT_NO_FATAL_FAILURE(Write(kKeys - kMissed, kKeys, 2, {0, 1}));
  ASSERT_TRUE(WaitHintsDrained(c, 60s));
  ASSERT_TRUE(c.StartNode(2));
  ASSERT_TRUE(WaitAllSee(c, 2, "alive"));

  std::map<std::string, int64_t> stats;
  ASSERT_TRUE(TryStats(c, 2, &stats));
  std::cout << "[measure] n3 restart: anti-entropy trees for " << StatOf(stats, "ae.tree_items") << " keys built in "
            << StatOf(stats, "ae.tree_build_ms") << " ms\n";
  EXPECT_EQ(StatOf(stats, "ae.tree_items"), kKeys - kMissed);
  const uint64_t logical = uint64_t(kKeys) * (Pk(kKeys - 1).size() + Sk(0).size() + kValue.size());
  const DirUsage disk = DirectoryUsage(c.data_dir(0) + "/data");

  // Idle reads first, then the same reads while n3 repairs.
  std::atomic<bool> stop{false};
  LatencySummary idle = Summarize(ReadLoop(stop, 3000));
  std::vector<std::chrono::microseconds> during;
  std::thread reader([&] { during = ReadLoop(stop, 1000000); });
  auto r0 = Clock::now();
  ProcessResult repair = RunCli({"--addr", c.addr(2), "--json", "repair"}, std::chrono::minutes(10));
  const double repair_s = Seconds(Clock::now() - r0);
  stop.store(true);
  reader.join();
  ASSERT_TRUE(repair.exited && repair.exit_code == 0) << repair.Describe();
  nlohmann::json j = nlohmann::json::parse(repair.out);
  const int64_t in = j.value("bytes_received", -1), out = j.value("bytes_sent", -1);
  EXPECT_EQ(j.value("keys_received", -1), kMissed);
  EXPECT_EQ(j.value("keys_sent", -1), 0);
  EXPECT_EQ(j.value("failed", -1), 0);
  std::cout << "[measure] cost: " << kKeys << " keys per node (" << logical << " bytes of keys and values; "
            << disk.apparent << " bytes of LMDB files on n1), " << kMissed << " missing on n3\n"
            << "[measure] cost: repair on n3 (" << j["exchanges"].size() << " exchanges, " << j.value("repaired", -1)
            << " found a difference): " << j.value("keys_different", -1) << " keys differed, "
            << j.value("keys_received", -1) << " received, " << j.value("keys_sent", -1) << " sent; " << in
            << " bytes in + " << out << " out = " << in + out << " payload bytes ("
            << 100.0 * double(in + out) / double(logical) << "% of the keys and values, "
            << double(in + out) / double(kMissed) << " per missing key); " << j.value("elapsed_ms", -1)
            << " ms in the node, " << repair_s << " s for the CLI\n";
  LatencySummary busy = Summarize(during);
  std::cout << "[measure] reads through n1: idle " << idle.ToString() << "; during the repair " << busy.ToString()
            << "\n";
  EXPECT_LT(in + out, int64_t(logical / 10)) << "moved more than 10% of the data for a 1% difference";
  ASSERT_TRUE(TryStats(c, 0, &stats));
  EXPECT_EQ(StatOf(stats, "read_repairs"), 0) << "reads through n1 repaired something: the count would be off";

  // Every replica now holds every key: a pass from each node finds nothing.
  for (int node = 0; node < 3; ++node) {
    ProcessResult again = RunCli({"--addr", c.addr(node), "--json", "repair"}, std::chrono::minutes(10));
    ASSERT_TRUE(again.exited && again.exit_code == 0) << again.Describe();
    nlohmann::json a = nlohmann::json::parse(again.out);
    EXPECT_EQ(a.value("keys_different", -1), 0) << c.id(node);
    std::cout << "[measure] cost: in-sync pass from " << c.id(node) << ": " << a["exchanges"].size()
              << " exchanges, " << a.value("bytes_received", -1) + a.value("bytes_sent", -1) << " payload bytes, "
              << a.value("elapsed_ms", -1) << " ms\n";
  }
}

}  // namespace
}  // namespace monju::itest
