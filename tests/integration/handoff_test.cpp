// Hinted handoff end to end: writes made while an owner is down leave durable
// hints that reach the owner once it is back, survive a crash of the node
// holding them, keep arbitrary key bytes intact, and stay within their caps.
//
// Each test runs its own cluster. Whether an owner really received a write is
// checked on that owner alone (MonjuReplica.read through ReplicaClient), never
// through a coordinator, whose read repair would hide a lost hint.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kRequestTimeoutMs = 2000;
constexpr auto kLivenessSlack = 2000ms;

// Fast failure detection, and no background anti-entropy: these tests show
// what hints deliver on their own. Everything else at its default.
std::vector<std::string> FastFlags() {
  return {"--probe-interval-ms", "100", "--probe-timeout-ms", "300", "--ae-interval-s", "0"};
}

bool Has(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::string Join(const std::vector<std::string>& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : ",") + id;
  return "[" + s + "]";
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class HandoffTest : public ::testing::Test {
 protected:
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get()); }

  LocalCluster& StartCluster(ClusterOptions options) {
    options.request_timeout_ms = kRequestTimeoutMs;
    cluster_ = std::make_unique<LocalCluster>(std::move(options));
    auto started = cluster_->Start();
    EXPECT_TRUE(started);
    if (!started) throw std::runtime_error("cluster did not start");
    return *cluster_;
  }

  // Kills node i and waits until every other node sees it down; prints how long that took.
  void KillAndWaitDown(int i) {
    LocalCluster& c = *cluster_;
    auto t0 = Clock::now();
    c.Kill(i);
    auto seen = WaitAllSee(c, i, "down", 15s);
    ASSERT_TRUE(seen) << seen.message();
    std::cout << "[measure] " << c.id(i) << " seen down by every other node " << Seconds(Clock::now() - t0)
              << " s after SIGKILL\n";
  }

  std::unique_ptr<LocalCluster> cluster_;
};

// Persistent client connections to each node, reconnected after a transport error.
class Clients {
 public:
  explicit Clients(const LocalCluster& c) : c_(c), clients_(c.size()) {}
  CallResult Put(int node, const std::string& pk, const std::string& sk, const std::string& value, int32_t w,
                 api::WriteResult* out, const std::string& context = "") {
    CallResult r = Call([&] {
      if (!clients_[node]) clients_[node] = c_.Client(node);
      clients_[node]->put(*out, pk, sk, value, context, w);
    });
    if (r.outcome == Outcome::kTransport) clients_[node].reset();
    return r;
  }

 private:
  const LocalCluster& c_;
  std::vector<std::unique_ptr<MonjuKVClient>> clients_;
};

// 1. Every write made while n3 is down leaves a hint; once n3 is back all of
// them reach it, with nothing read through a coordinator.
TEST_F(HandoffTest, HintsDeliverAllWritesToARestoredNode) {
  ClusterOptions o;
  o.extra_flags = FastFlags();
  LocalCluster& c = StartCluster(o);
  constexpr int kKeys = 1000;
  auto value = [](const std::string& phase, int k) { return phase + "-value-" + std::to_string(k); };
  Clients clients(c);

  // Baseline latency: all three up.
  std::vector<std::chrono::microseconds> up_latency;
  for (int k = 0; k < kKeys; ++k) {
    api::WriteResult wr;
    auto t0 = Clock::now();
    CallResult r = clients.Put(k % 2, "h1-up-" + std::to_string(k), "s", value("up", k), 2, &wr);
    up_latency.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0));
    ASSERT_TRUE(r.ok()) << "put " << k << " with all up: " << r.message;
  }
  int64_t stored_before = SumStat(c, "hints.stored");
  int64_t hinted_before = SumStat(c, "writes.hinted");

  ASSERT_NO_FATAL_FAILURE(KillAndWaitDown(2));

  std::vector<std::chrono::microseconds> down_latency;
  int not_hinted = 0;
  for (int k = 0; k < kKeys; ++k) {
    api::WriteResult wr;
    auto t0 = Clock::now();
    CallResult r = clients.Put(k % 2, "h1-" + std::to_string(k), "s", value("down", k), 2, &wr);
    down_latency.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0));
    ASSERT_TRUE(r.ok()) << "put " << k << " via " << c.id(k % 2) << " with n3 down: " << OutcomeName(r.outcome) << " "
                        << r.message;
    EXPECT_FALSE(Has(wr.acked_by, "n3")) << "key " << k << ": acked_by " << Join(wr.acked_by) << " names the dead n3";
    // Three nodes, N=3: no fallback exists, the coordinator keeps the hint and it does not count.
    EXPECT_FALSE(wr.used_fallback) << "key " << k;
    if (!Has(wr.hinted_for, "n3") && ++not_hinted <= 5)
      ADD_FAILURE() << "key " << k << " via " << c.id(k % 2) << ": hinted_for " << Join(wr.hinted_for)
                    << " lacks n3 although n3 was seen down";
  }
  EXPECT_EQ(not_hinted, 0) << "writes without hinted_for n3";

  // One hint per write, held by the coordinators, all for n3.
  int64_t stored = SumStat(c, "hints.stored") - stored_before;
  EXPECT_EQ(stored, kKeys) << "hints.stored (n1 + n2) grew by " << stored;
  EXPECT_EQ(SumStat(c, "hints.pending.n3"), kKeys);
  EXPECT_EQ(SumStat(c, "hints.pending"), kKeys);
  EXPECT_EQ(SumStat(c, "writes.hinted") - hinted_before, kKeys);

  auto restart = Clock::now();
  ASSERT_TRUE(c.StartNode(2));
  auto ready = Clock::now();
  auto drained = WaitHintsDrained(c, 60s);
  auto drain_end = Clock::now();
  ASSERT_TRUE(drained) << drained.message();
  double drain_s = Seconds(drain_end - restart);
  std::cout << "[measure] n3 ready " << Seconds(ready - restart) << " s after restart; " << kKeys
            << " hints drained " << drain_s << " s after restart (" << Seconds(drain_end - ready)
            << " s after ready): " << static_cast<int>(kKeys / std::max(drain_s, 1e-3)) << " hints/s\n";
  EXPECT_GE(SumStat(c, "hints.delivered"), kKeys);
  EXPECT_EQ(SumStat(c, "hints.expired"), 0);

  // n3's own copy, key by key.
  ReplicaClient n3(c, 2);
  int missing = 0;
  for (int k = 0; k < kKeys; ++k) {
    SiblingSet s;
    CallResult r = Call([&] { s = n3.Read("h1-" + std::to_string(k), "s"); });
    ASSERT_TRUE(r.ok()) << r.message;
    if (s.LiveValues() != std::vector<std::string>{value("down", k)} && ++missing <= 10)
      ADD_FAILURE() << "n3 holds " << DescribeSiblings(s) << " for h1-" << k << " after the hints drained";
  }
  EXPECT_EQ(missing, 0) << "of " << kKeys << " hinted writes are missing on n3";

  LatencySummary up = Summarize(up_latency), down = Summarize(down_latency);
  std::cout << "[measure] put W=2 latency, all up:  " << up.ToString() << "\n"
            << "[measure] put W=2 latency, n3 down: " << down.ToString() << "\n";
}

// 2. The node holding hints is SIGKILLed before the owner returns: the hints
// were durable and are delivered after it restarts.
TEST_F(HandoffTest, HintsSurviveACrashOfTheNodeHoldingThem) {
  ClusterOptions o;
  o.extra_flags = FastFlags();
  LocalCluster& c = StartCluster(o);
  constexpr int kKeys = 200;
  auto key = [](int k) { return "h2-" + std::to_string(k); };

  ASSERT_NO_FATAL_FAILURE(KillAndWaitDown(2));
  Clients clients(c);
  for (int k = 0; k < kKeys; ++k) {
    api::WriteResult wr;
    CallResult r = clients.Put(0, key(k), "s", "v" + std::to_string(k), 2, &wr);
    ASSERT_TRUE(r.ok()) << "put " << k << ": " << r.message;
    EXPECT_TRUE(Has(wr.hinted_for, "n3")) << "key " << k << ": hinted_for " << Join(wr.hinted_for);
  }

  admin::NodeStatus st;
  std::string err;
  ASSERT_TRUE(TryStatus(c, 0, &st, &err)) << err;
  int64_t n1_for_n3 = -1;
  for (const auto& p : st.peers)
    if (p.id == "n3") n1_for_n3 = p.pending_hints;
  EXPECT_EQ(n1_for_n3, kKeys) << "n1's status: pending hints for n3";
  EXPECT_EQ(st.pending_hints_total, kKeys);
  std::map<std::string, int64_t> n2_stats;
  ASSERT_TRUE(TryStats(c, 1, &n2_stats, &err)) << err;
  EXPECT_EQ(StatOf(n2_stats, "hints.pending"), 0) << "n2 coordinated nothing and should hold no hints";

  c.Kill(0);  // SIGKILL right after the last acknowledged write
  ASSERT_TRUE(c.StartNode(2));
  // n3 is back but n1 (the only holder) is dead: n3 must lack the writes.
  {
    SiblingSet s;
    ASSERT_TRUE(TryReplicaRead(c, 2, key(0), "s", &s));
    EXPECT_TRUE(s.empty()) << "n3 already holds " << DescribeSiblings(s) << " before n1 returned";
  }
  auto t0 = Clock::now();
  ASSERT_TRUE(c.StartNode(0));
  auto drained = WaitHintsDrained(c, 60s);
  ASSERT_TRUE(drained) << drained.message();
  std::cout << "[measure] " << kKeys << " hints delivered by the restarted n1 within " << Seconds(Clock::now() - t0)
            << " s of its restart\n";
  std::map<std::string, int64_t> n1_stats;
  ASSERT_TRUE(TryStats(c, 0, &n1_stats, &err)) << err;
  EXPECT_GE(StatOf(n1_stats, "hints.delivered"), kKeys) << "the restarted n1 delivered fewer hints than it held";

  ReplicaClient n3(c, 2);
  int missing = 0;
  for (int k = 0; k < kKeys; ++k) {
    SiblingSet s = n3.Read(key(k), "s");
    if (s.LiveValues() != std::vector<std::string>{"v" + std::to_string(k)} && ++missing <= 10)
      ADD_FAILURE() << "n3 holds " << DescribeSiblings(s) << " for " << key(k);
  }
  EXPECT_EQ(missing, 0);
}

// 3. Keys of arbitrary bytes travel through the hint store unchanged; keys
// that would collide under a naive pk/sk concatenation stay apart.
TEST_F(HandoffTest, AwkwardKeysSurviveTheHintPath) {
  ClusterOptions o;
  o.extra_flags = FastFlags();
  LocalCluster& c = StartCluster(o);

  struct Item {
    std::string pk, sk, value;
  };
  using namespace std::string_literals;
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  std::string long_sk;
  for (int b = 0; b < 1024; ++b) long_sk += static_cast<char>((b * 7 + 3) & 0xff);
  std::string long_pk;
  for (int b = 0; b < 1024; ++b) long_pk += static_cast<char>((b * 13 + 1) & 0xff);
  std::vector<Item> items = {
      {"awk:colon/slash space", "a:b/c d", "v-punct"},
      {"awk-nul", "x\0y"s, "v-nul-sk\0tail"s},
      {"\0lead"s, "plain", "v-nul-pk"},
      {"\xff\xfe\x80 binary", "\xff", "\xff\x00\x01"s},
      {"awk-all-bytes", all_bytes, "v-all-bytes"},
      {"awk-long-sk", long_sk, "v-long-sk"},
      {long_pk, "", "v-long-pk-empty-sk"},
      {"awk-empty-sk", "", "v-empty-sk"},
      {"awk-utf8 ключ", "値/キー", "v-utf8"},
      // Would collide if the hint key were pk + '\0' + sk.
      {"col\0a"s, "b", "v-collide-1"},
      {"col", "a\0b"s, "v-collide-2"},
      // Differ only by a trailing NUL.
      {"awk-trail", "k", "v-trail-1"},
      {"awk-trail", "k\0"s, "v-trail-2"},
      {"awk-trail\0"s, "k", "v-trail-3"},
  };

  ASSERT_NO_FATAL_FAILURE(KillAndWaitDown(2));
  for (size_t k = 0; k < items.size(); ++k) {
    api::WriteResult wr;
    CallResult r = TryPut(c, static_cast<int>(k % 2), items[k].pk, items[k].sk, items[k].value, "", 2, &wr);
    ASSERT_TRUE(r.ok()) << Printable(items[k].pk) << "/" << Printable(items[k].sk) << ": " << r.message;
    EXPECT_TRUE(Has(wr.hinted_for, "n3")) << Printable(items[k].pk) << ": hinted_for " << Join(wr.hinted_for);
  }
  EXPECT_EQ(SumStat(c, "hints.pending.n3"), static_cast<int64_t>(items.size()));

  ASSERT_TRUE(c.StartNode(2));
  auto drained = WaitHintsDrained(c, 60s);
  ASSERT_TRUE(drained) << drained.message();

  // n3's own copy: byte-identical values under byte-identical keys.
  ReplicaClient n3(c, 2);
  for (const auto& item : items) {
    SiblingSet s = n3.Read(item.pk, item.sk);
    EXPECT_THAT(s.LiveValues(), ElementsAre(item.value))
        << "on n3 for pk " << Printable(item.pk) << " sk " << Printable(item.sk) << ": " << DescribeSiblings(s);
  }
  // And through every coordinator, from all three replicas.
  for (int node = 0; node < 3; ++node) {
    for (const auto& item : items) {
      api::GetResult g;
      CallResult r = TryGet(c, node, item.pk, item.sk, 3, &g);
      ASSERT_TRUE(r.ok()) << "get r=3 via " << c.id(node) << " " << Printable(item.pk) << ": " << r.message;
      EXPECT_THAT(g.values, ElementsAre(item.value))
          << "via " << c.id(node) << " pk " << Printable(item.pk) << " sk " << Printable(item.sk);
    }
  }
}

// 4. Hint caps: beyond --hint-max-per-owner a node refuses hints; a W=3 write
// that then cannot fill n5's slot fails with QuorumFailed (fast), never
// succeeds on too few copies; W=2 keeps working; hint storage and memory stay
// bounded; the hints that were accepted still reach n5 once it is back.
TEST_F(HandoffTest, HintCapsRefuseAndStayBounded) {
  constexpr int kCap = 20;
  constexpr int kKeys = 300;
  ClusterOptions o;
  o.nodes = 5;
  o.extra_flags = FastFlags();
  for (const char* f : {"--hint-max-per-owner", "20"}) o.extra_flags.push_back(f);
  LocalCluster& c = StartCluster(o);
  auto pk = [](int k) { return "cap-" + std::to_string(k); };

  // Learn each key's owners: with all up, a W=3 write is acknowledged by exactly its three owners.
  std::vector<std::set<std::string>> owners(kKeys);
  std::vector<std::string> contexts(kKeys);  // so that "after" replaces "before"
  Clients clients(c);
  for (int k = 0; k < kKeys; ++k) {
    api::WriteResult wr;
    CallResult r = clients.Put(k % 5, pk(k), "w3", "before", 3, &wr);
    ASSERT_TRUE(r.ok()) << "put w=3 with all up: " << r.message;
    if (!wr.used_fallback && wr.hinted_for.empty() && wr.acked_by.size() == 3)
      owners[k] = std::set<std::string>(wr.acked_by.begin(), wr.acked_by.end());
    contexts[k] = wr.context;
  }

  ASSERT_NO_FATAL_FAILURE(KillAndWaitDown(4));

  int fallback_ok = 0, refused = 0, plain_ok = 0, n5_keys = 0;
  std::vector<int> fallback_keys;
  std::string sample_refusal;
  int64_t max_rss_kib = 0;
  uint64_t max_hints_allocated = 0, max_hints_apparent = 0;
  auto sample_resources = [&] {
    for (int i = 0; i < 4; ++i) {
      max_rss_kib = std::max(max_rss_kib, VmRssKiB(c.pid(i)));
      DirUsage u = DirectoryUsage(c.data_dir(i) + "/hints");
      max_hints_allocated = std::max(max_hints_allocated, u.allocated);
      max_hints_apparent = std::max(max_hints_apparent, u.apparent);
    }
  };
  for (int k = 0; k < kKeys; ++k) {
    if (owners[k].empty()) continue;  // owners unknown (a slow owner used a fallback)
    const bool n5_owns = owners[k].count("n5") > 0;
    const int via = k % 4;
    api::WriteResult wr;
    CallResult r = clients.Put(via, pk(k), "w3", "after", 3, &wr, contexts[k]);
    if (!n5_owns) {
      EXPECT_TRUE(r.ok()) << pk(k) << " (owners without n5) w=3 via " << c.id(via) << ": " << r.message;
      EXPECT_FALSE(wr.used_fallback) << pk(k);
      ++plain_ok;
    } else {
      ++n5_keys;
      if (r.ok()) {
        ++fallback_ok;
        fallback_keys.push_back(k);
        EXPECT_TRUE(wr.used_fallback) << pk(k) << ": W=3 met with n5 down but used_fallback is false; acked_by "
                                      << Join(wr.acked_by);
        EXPECT_TRUE(Has(wr.hinted_for, "n5")) << pk(k) << ": hinted_for " << Join(wr.hinted_for);
        EXPECT_FALSE(Has(wr.acked_by, "n5")) << pk(k);
        int outsiders = 0;
        for (const auto& id : wr.acked_by) outsiders += owners[k].count(id) ? 0 : 1;
        EXPECT_EQ(outsiders, 1) << pk(k) << ": acked_by " << Join(wr.acked_by) << " should hold the two live owners "
                                << "and one fallback";
      } else {
        ++refused;
        if (sample_refusal.empty()) sample_refusal = r.message;
        EXPECT_EQ(r.outcome, Outcome::kQuorumFailed) << pk(k) << ": " << r.message;
        // Says why: the hint caps (the count acked may be lower than 2: the
        // write fails as soon as W is out of reach, owners' applies in flight).
        EXPECT_THAT(r.message, HasSubstr("needed 3")) << pk(k);
        EXPECT_THAT(r.message, HasSubstr("cap")) << pk(k);
        EXPECT_LT(r.elapsed, std::chrono::milliseconds(kRequestTimeoutMs) + kLivenessSlack) << pk(k);
      }
    }
    // W=2 works throughout: two true owners are alive.
    api::WriteResult wr2;
    CallResult r2 = clients.Put(via, pk(k), "w2", "w2-" + std::to_string(k), 2, &wr2);
    EXPECT_TRUE(r2.ok()) << pk(k) << " w=2 via " << c.id(via) << ": " << OutcomeName(r2.outcome) << " " << r2.message;
    if (k % 25 == 0) sample_resources();
  }
  sample_resources();
  std::cout << "[measure] n5 down, cap " << kCap << "/owner: " << n5_keys << " W=3 writes to keys n5 owns: "
            << fallback_ok << " met through a fallback, " << refused << " refused; " << plain_ok
            << " writes to other keys\n"
            << "[measure] first refusal: " << sample_refusal << "\n";
  ASSERT_GT(n5_keys, 100) << "too few keys owned by n5 to fill the caps";
  EXPECT_GT(fallback_ok, 0) << "no W=3 write was met through a fallback holding a hint";
  EXPECT_GT(refused, 0) << "no W=3 write was refused although every node's hint cap for n5 is " << kCap;
  // Each counted hint sits on a fallback within its cap: four live nodes x 20.
  EXPECT_LE(fallback_ok, 4 * kCap);
  EXPECT_GT(SumStat(c, "hints.refused"), 0);
  std::map<std::string, int64_t> pending_n5;
  for (int i = 0; i < 4; ++i) {
    std::map<std::string, int64_t> stats;
    std::string err;
    ASSERT_TRUE(TryStats(c, i, &stats, &err)) << err;
    pending_n5[c.id(i)] = StatOf(stats, "hints.pending.n5");
    std::cout << "[measure] " << c.id(i) << ": hints.pending.n5=" << StatOf(stats, "hints.pending.n5")
              << " hints.refused=" << StatOf(stats, "hints.refused") << " hints.stored="
              << StatOf(stats, "hints.stored") << "\n";
    EXPECT_LE(StatOf(stats, "hints.pending.n5"), kCap) << c.id(i);
    EXPECT_LE(StatOf(stats, "hints.pending"), kCap) << c.id(i);
  }
  // A key n5 owns has the two other live nodes as its fallbacks: once both
  // hold kCap hints for n5, a W=3 write to it cannot be met.
  int late = 0;
  for (int k = 0; k < kKeys && late < 10; ++k) {
    if (!owners[k].count("n5")) continue;
    bool both_full = true;
    for (int i = 0; i < 4; ++i)
      if (!owners[k].count(c.id(i)) && pending_n5[c.id(i)] < kCap) both_full = false;
    if (!both_full) continue;
    ++late;
    CallResult r = TryPut(c, k % 4, pk(k), "w3-late", "late", "", 3);
    EXPECT_EQ(r.outcome, Outcome::kQuorumFailed)
        << pk(k) << ": with its fallbacks' hint caps for n5 full, a W=3 write ended " << OutcomeName(r.outcome)
        << " " << r.message;
  }
  EXPECT_GT(late, 0) << "no key had both fallbacks at the cap";
  std::cout << "[measure] hint dirs: max " << max_hints_allocated / 1024 << " KiB on disk (" << max_hints_apparent / 1024
            << " KiB apparent); max VmRSS " << max_rss_kib / 1024 << " MiB\n";
  EXPECT_LT(max_hints_allocated, 64ull << 20) << "a DATA/hints directory grew past 64 MiB on disk";
  EXPECT_GT(max_rss_kib, 0) << "could not read VmRSS";
  EXPECT_LT(max_rss_kib, 1024 * 1024) << "a node's RSS grew past 1 GiB";
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(c.IsRunning(i)) << c.id(i) << " " << c.ExitDescription(i);

  // n5 returns: the hints that were accepted (those that made W=3 writes succeed) reach it.
  ASSERT_TRUE(c.StartNode(4));
  auto drained = WaitHintsDrained(c, 60s);
  ASSERT_TRUE(drained) << drained.message();
  ReplicaClient n5(c, 4);
  for (int k : fallback_keys) {
    SiblingSet s = n5.Read(pk(k), "w3");
    EXPECT_THAT(s.LiveValues(), ElementsAre("after"))
        << pk(k) << ": a W=3 write acknowledged through a fallback's hint is not on n5: " << DescribeSiblings(s);
  }
}

}  // namespace
}  // namespace monju::itest
