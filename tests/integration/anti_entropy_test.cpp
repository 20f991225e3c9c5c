// Merkle anti-entropy end to end, with real monjud processes: a node that
// missed writes (its hints expired) catches up after one `monju repair`; a
// node whose data directory was wiped is rebuilt by background exchanges; a
// delete that a node missed is never undone by an exchange with it, before
// or after the tombstones are reaped; and the repair CLI checks its input and
// pauses background work.
//
// What a replica holds is read from that replica alone (MonjuReplica.read
// and scan through ReplicaClient), never through a coordinator, whose read
// repair would hide a failure of anti-entropy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using ::testing::HasSubstr;

constexpr int kRequestTimeoutMs = 2000;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Keys of these tests: `pks` pks with `sks` sks each, spread over the ring.
std::string Pk(const std::string& prefix, int k, int sks) { return prefix + "-" + std::to_string(k / sks); }
std::string Sk(int k, int sks) { return "s" + std::to_string(k % sks); }
std::string Value(const std::string& prefix, int k) { return prefix + "-value-" + std::to_string(k); }

class AntiEntropyTest : public ::testing::Test {
 protected:
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get()); }

  LocalCluster& StartCluster(std::vector<std::string> flags) {
    ClusterOptions options;
    options.request_timeout_ms = kRequestTimeoutMs;
    options.extra_flags = {"--probe-interval-ms", "100", "--probe-timeout-ms", "300"};
    for (auto& f : flags) options.extra_flags.push_back(std::move(f));
    cluster_ = std::make_unique<LocalCluster>(std::move(options));
    auto started = cluster_->Start();
    EXPECT_TRUE(started);
    if (!started) throw std::runtime_error("cluster did not start");
    return *cluster_;
  }

  int64_t Stat(int i, const std::string& name) {
    std::map<std::string, int64_t> stats;
    std::string err;
    EXPECT_TRUE(TryStats(*cluster_, i, &stats, &err)) << cluster_->id(i) << ": " << err;
    return StatOf(stats, name);
  }

  // Writes keys 0..count-1 (blind puts, W = w) through nodes `via`, from
  // several client threads at once.
  void WriteKeys(const std::string& prefix, int count, int sks, int32_t w, std::vector<int> via) {
    constexpr int kThreads = 8;
    std::atomic<int> next{0};
    std::atomic<int> failures{0};
    std::string first_failure;
    std::mutex mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        const int node = via[t % via.size()];
        std::unique_ptr<MonjuKVClient> client;
        for (int k; (k = next++) < count;) {
          CallResult r = Call([&] {
            if (!client) client = cluster_->Client(node);
            api::WriteResult wr;
            client->put(wr, Pk(prefix, k, sks), Sk(k, sks), Value(prefix, k), "", w);
          });
          if (r.outcome == Outcome::kTransport) client.reset();
          if (!r.ok() && failures++ == 0) {
            std::lock_guard<std::mutex> lock(mu);
            first_failure = "key " + std::to_string(k) + " via " + cluster_->id(node) + ": " + r.message;
          }
        }
      });
    for (auto& t : threads) t.join();
    ASSERT_EQ(failures.load(), 0) << failures.load() << " puts failed; first: " << first_failure;
  }

  // Every pk of the keys, as node i holds it.
  std::map<std::string, std::map<std::string, SiblingSet>> Holdings(int i, const std::string& prefix, int count,
                                                                    int sks) {
    std::map<std::string, std::map<std::string, SiblingSet>> out;
    ReplicaClient replica(*cluster_, i);
    for (int p = 0; p * sks < count; ++p) {
      const std::string pk = Pk(prefix, p * sks, sks);
      out[pk] = replica.ScanPk(pk);
    }
    return out;
  }

  // Keys of 0..count-1 that node i holds with exactly the live value written.
  int CountHeld(const std::map<std::string, std::map<std::string, SiblingSet>>& holdings, const std::string& prefix,
                int count, int sks) {
    int n = 0;
    for (int k = 0; k < count; ++k) {
      auto pk = holdings.find(Pk(prefix, k, sks));
      if (pk == holdings.end()) continue;
      auto item = pk->second.find(Sk(k, sks));
      if (item != pk->second.end() && item->second.LiveValues() == std::vector<std::string>{Value(prefix, k)}) ++n;
    }
    return n;
  }

  // Runs `monju --addr <node> --json repair args...` and returns its JSON.
  nlohmann::json Repair(int node, std::vector<std::string> args = {}, int expect_exit = 0) {
    std::vector<std::string> full = {"--addr", cluster_->addr(node), "--json", "repair"};
    for (auto& a : args) full.push_back(std::move(a));
    auto t0 = Clock::now();
    ProcessResult r = RunCli(full, std::chrono::minutes(5));
    EXPECT_TRUE(r.exited && r.exit_code == expect_exit) << r.Describe();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "repair output is not JSON: " << e.what() << "\n" << r.Describe();
    }
    std::cout << "[measure] repair on " << cluster_->id(node) << ": " << j.value("keys_received", -1)
              << " keys received, " << j.value("keys_sent", -1) << " sent, " << j.value("bytes_received", -1)
              << " bytes in, " << j.value("bytes_sent", -1) << " out, " << j.value("repaired", -1) << " of "
              << (j.contains("exchanges") ? j["exchanges"].size() : 0) << " exchanges repaired, "
              << Seconds(Clock::now() - t0) << " s\n";
    return j;
  }

  std::unique_ptr<LocalCluster> cluster_;
};

// The scenario: n3 is down while 10,000 keys are written, and its
// hints expire; after n3 is back, one repair pass (on n3, background
// exchanges off) leaves every key on all three replicas with identical
// clocks.
TEST_F(AntiEntropyTest, StoppedNodeHoldsEveryKeyAfterOneRepairPass) {
  constexpr int kKeys = 10000, kSks = 10;
  LocalCluster& c = StartCluster({"--hint-ttl-s", "1", "--tombstone-grace-s", "2", "--ae-interval-s", "0"});
  c.Kill(2);
  auto down = WaitAllSee(c, 2, "down");
  ASSERT_TRUE(down) << down.message();
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(WriteKeys("miss", kKeys, kSks, 2, {0, 1}));
  std::cout << "[measure] " << kKeys << " puts (W=2, 8 clients) in " << Seconds(Clock::now() - t0) << " s\n";
  // Hints for n3 expire (TTL 1 s): nothing but anti-entropy can bring the keys.
  auto drained = WaitHintsDrained(c, 60s);
  ASSERT_TRUE(drained) << drained.message();
  EXPECT_GE(Stat(0, "hints.expired") + Stat(1, "hints.expired"), kKeys);
  EXPECT_EQ(Stat(0, "hints.delivered") + Stat(1, "hints.delivered"), 0);

  ASSERT_TRUE(c.StartNode(2));
  ASSERT_EQ(CountHeld(Holdings(2, "miss", kKeys, kSks), "miss", kKeys, kSks), 0)
      << "n3 holds keys before any repair: the test cannot show one";

  nlohmann::json report = Repair(2);
  EXPECT_EQ(report.value("failed", -1), 0);
  EXPECT_EQ(report.value("keys_received", -1), kKeys) << "n3 should receive each missed key exactly once";
  EXPECT_EQ(report.value("keys_sent", -1), 0);
  EXPECT_EQ(report["exchanges"].size(), 2u * 256u) << "every partition with both co-owners";

  auto on_n1 = Holdings(0, "miss", kKeys, kSks), on_n2 = Holdings(1, "miss", kKeys, kSks),
       on_n3 = Holdings(2, "miss", kKeys, kSks);
  EXPECT_EQ(CountHeld(on_n1, "miss", kKeys, kSks), kKeys);
  EXPECT_EQ(CountHeld(on_n3, "miss", kKeys, kSks), kKeys);
  int differing = 0;
  for (const auto& [pk, items] : on_n1) {
    if (items != on_n2[pk] || items != on_n3[pk]) {
      if (differing++ < 3) ADD_FAILURE() << pk << " differs between the replicas";
    }
  }
  EXPECT_EQ(differing, 0) << "pks whose clocks differ somewhere";
  EXPECT_EQ(Stat(2, "ae.keys_received"), kKeys);
  EXPECT_EQ(Stat(2, "ae.exchanges"), 512);
  EXPECT_EQ(Stat(2, "ae.partitions_never_exchanged"), 0);

  // A second pass finds nothing to do.
  nlohmann::json again = Repair(2);
  EXPECT_EQ(again.value("repaired", -1), 0);
  EXPECT_EQ(again.value("keys_different", -1), 0);
}

// n3's data directory is wiped; restarted empty, background anti-entropy
// (every second here) rebuilds it from its co-owners without any read.
TEST_F(AntiEntropyTest, WipedNodeIsRebuiltByBackgroundExchanges) {
  constexpr int kKeys = 2000, kSks = 10;
  LocalCluster& c = StartCluster({"--ae-interval-s", "1"});
  ASSERT_NO_FATAL_FAILURE(WriteKeys("wipe", kKeys, kSks, 3, {0, 1, 2}));
  const auto before = Holdings(0, "wipe", kKeys, kSks);
  ASSERT_EQ(CountHeld(before, "wipe", kKeys, kSks), kKeys);

  ASSERT_TRUE(c.Stop(2));
  std::error_code ec;
  std::filesystem::remove_all(c.data_dir(2), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(std::filesystem::exists(c.data_dir(2)));
  auto t0 = Clock::now();
  ASSERT_TRUE(c.StartNode(2));

  int held = 0;
  bool rebuilt = PollUntil(
      [&] {
        held = CountHeld(Holdings(2, "wipe", kKeys, kSks), "wipe", kKeys, kSks);
        return held == kKeys;
      },
      60s, 200ms);
  ASSERT_TRUE(rebuilt) << "n3 holds " << held << " of " << kKeys << " keys 60 s after restarting empty";
  std::cout << "[measure] wiped n3 rebuilt (" << kKeys << " keys) " << Seconds(Clock::now() - t0)
            << " s after its restart\n";
  EXPECT_EQ(Holdings(2, "wipe", kKeys, kSks), before) << "n3's rebuilt copies differ from n1's";
  EXPECT_EQ(Stat(0, "read_repairs") + Stat(1, "read_repairs") + Stat(2, "read_repairs"), 0)
      << "read repair, not anti-entropy, moved something";
  EXPECT_GE(Stat(2, "ae.keys_received") + Stat(0, "ae.keys_sent") + Stat(1, "ae.keys_sent"), kKeys);
  EXPECT_GT(Stat(2, "ae.exchanges"), 0);
}

// n3 misses the deletes of keys it holds, and its hints expire. Exchanges
// with it (from n1, then from n3 itself) bring it the tombstones and never
// bring a value back anywhere; once every owner holds the tombstones they
// are reaped, and further exchanges do not bring them back either.
TEST_F(AntiEntropyTest, ExchangeNeverResurrectsADeleteTheReplicaMissed) {
  constexpr int kKeys = 20, kSks = 5;
  LocalCluster& c = StartCluster(
      {"--hint-ttl-s", "1", "--tombstone-grace-s", "3", "--reap-interval-ms", "200", "--ae-interval-s", "0"});
  ASSERT_NO_FATAL_FAILURE(WriteKeys("del", kKeys, kSks, 3, {0}));
  c.Kill(2);
  auto down = WaitAllSee(c, 2, "down");
  ASSERT_TRUE(down) << down.message();
  auto client = c.Client(0);
  for (int k = 0; k < kKeys; ++k) {
    CallResult r = Call([&] {
      api::GetResult g;
      client->get(g, Pk("del", k, kSks), Sk(k, kSks), 2);
      ASSERT_TRUE(g.found);
      api::WriteResult wr;
      client->remove(wr, Pk("del", k, kSks), Sk(k, kSks), g.context, 2);
    });
    ASSERT_TRUE(r.ok()) << r.message;
  }
  auto drained = WaitHintsDrained(c, 30s);
  ASSERT_TRUE(drained) << drained.message();
  ASSERT_TRUE(c.StartNode(2));
  ASSERT_EQ(CountHeld(Holdings(2, "del", kKeys, kSks), "del", kKeys, kSks), kKeys)
      << "n3 should still hold every deleted key's old value";

  // Nothing live anywhere, and every copy a tombstone or (reaped) absent.
  auto no_live_value = [&](const char* when) {
    for (int i = 0; i < 3; ++i) {
      for (const auto& [pk, items] : Holdings(i, "del", kKeys, kSks))
        for (const auto& [sk, set] : items)
          EXPECT_FALSE(set.HasLive()) << when << ": " << c.id(i) << " holds " << DescribeSiblings(set) << " for "
                                      << pk << "/" << sk;
    }
  };

  nlohmann::json from_n1 = Repair(0, {"--node", "n3"});
  EXPECT_EQ(from_n1.value("keys_sent", -1), kKeys) << "n1 should push each tombstone to n3";
  EXPECT_EQ(from_n1.value("keys_received", -1), 0) << "n3's superseded values were offered to n1";
  no_live_value("after n1 exchanged with n3");
  nlohmann::json from_n3 = Repair(2);
  EXPECT_EQ(from_n3.value("failed", -1), 0);
  EXPECT_EQ(from_n3.value("keys_sent", -1), 0);
  no_live_value("after n3 exchanged with n1 and n2");
  // r=3 below needs every node to see the restarted n3 alive again.
  ASSERT_TRUE(c.WaitAllConnected());
  for (int node = 0; node < 3; ++node) {
    for (int k = 0; k < kKeys; k += 7) {
      api::GetResult g;
      CallResult r = TryGet(c, node, Pk("del", k, kSks), Sk(k, kSks), 3, &g);
      EXPECT_TRUE(r.ok()) << r.message;
      EXPECT_FALSE(g.found) << "a deleted key reads as live via " << c.id(node);
    }
  }

  // Every owner holds the tombstones now: the reapers remove them (a get
  // above may have repaired a tombstone back onto a node that had reaped
  // it; it is reaped again).
  std::string left;
  bool reaped = PollUntil(
      [&] {
        left.clear();
        for (int i = 0; i < 3; ++i)
          for (const auto& [pk, items] : Holdings(i, "del", kKeys, kSks))
            if (!items.empty()) left += c.id(i) + ":" + pk + " ";
        return left.empty();
      },
      30s, 100ms);
  ASSERT_TRUE(reaped) << "still holding tombstones 30 s after every owner had them: " << left;
  for (int i = 0; i < 3; ++i) EXPECT_GE(Stat(i, "tombstones.reaped"), kKeys) << c.id(i);
  for (int node : {0, 1, 2}) {
    nlohmann::json after = Repair(node);
    EXPECT_EQ(after.value("keys_different", -1), 0) << "replicas differ after every one reaped";
    EXPECT_EQ(after.value("keys_sent", -1) + after.value("keys_received", -1), 0)
        << "an exchange after reaping moved something";
  }
  for (int i = 0; i < 3; ++i)
    for (const auto& [pk, items] : Holdings(i, "del", kKeys, kSks))
      EXPECT_TRUE(items.empty()) << c.id(i) << " holds " << items.size() << " items of " << pk << " after reaping";
}

// The repair CLI: bad partitions and nodes are refused (exit 2), a single
// partition with a single co-owner is one exchange, and pause/resume show
// in stats and status.
TEST_F(AntiEntropyTest, RepairCommandChecksInputAndPauses) {
  LocalCluster& c = StartCluster({});
  ProcessResult bad = RunCli({"--addr", c.addr(0), "repair", "--partition", "4096"});
  EXPECT_TRUE(bad.exited && bad.exit_code == 2) << bad.Describe();
  EXPECT_THAT(bad.err, HasSubstr("not replicated by this node")) << bad.Describe();
  bad = RunCli({"--addr", c.addr(0), "repair", "--node", "n9"});
  EXPECT_TRUE(bad.exited && bad.exit_code == 2) << bad.Describe();
  EXPECT_THAT(bad.err, HasSubstr("n9 is not a co-owner")) << bad.Describe();
  bad = RunCli({"--addr", c.addr(0), "repair", "--pause", "--resume"});
  EXPECT_TRUE(bad.exited && bad.exit_code == 2) << bad.Describe();
  bad = RunCli({"--addr", c.addr(0), "stats", "--partition", "1"});
  EXPECT_TRUE(bad.exited && bad.exit_code == 2) << bad.Describe();

  nlohmann::json one = Repair(0, {"--partition", "7", "--node", "n2"});
  ASSERT_EQ(one["exchanges"].size(), 1u);
  EXPECT_EQ(one["exchanges"][0].value("partition", -1), 7);
  EXPECT_EQ(one["exchanges"][0].value("peer", ""), "n2");
  EXPECT_TRUE(one["exchanges"][0].value("ok", false));

  ProcessResult human = RunCli({"--addr", c.addr(1), "repair"}, std::chrono::minutes(2));
  EXPECT_TRUE(human.exited && human.exit_code == 0) << human.Describe();
  EXPECT_THAT(human.out, HasSubstr("repair: 512 exchanges (512 in sync, 0 repaired, 0 failed)")) << human.Describe();

  ProcessResult pause = RunCli({"--addr", c.addr(0), "repair", "--pause"});
  EXPECT_TRUE(pause.exited && pause.exit_code == 0) << pause.Describe();
  EXPECT_THAT(pause.out, HasSubstr("background anti-entropy paused (was running)"));
  EXPECT_EQ(Stat(0, "ae.paused"), 1);
  ProcessResult status = RunCli({"--addr", c.addr(0), "status"});
  EXPECT_THAT(status.out, HasSubstr("anti-entropy: paused")) << status.Describe();
  // Paused, a manual repair still runs.
  nlohmann::json while_paused = Repair(0, {"--partition", "3"});
  EXPECT_EQ(while_paused["exchanges"].size(), 2u);
  ProcessResult resume = RunCli({"--addr", c.addr(0), "repair", "--resume"});
  EXPECT_THAT(resume.out, HasSubstr("running (was paused)")) << resume.Describe();
  EXPECT_EQ(Stat(0, "ae.paused"), 0);
  EXPECT_GE(Stat(1, "ae.exchanges"), 512);
  EXPECT_EQ(Stat(0, "ae.tree_items"), 0);
}

}  // namespace
}  // namespace monju::itest
