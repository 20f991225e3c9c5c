// The anti-entropy scheduler (antientropy/scheduler.h) and its byte throttle
// (antientropy/throttle.h), with a fake clock and a fake directory over real
// replicas. Tests drive background work with RunNextDue(); nothing sleeps.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "ae_support.h"
#include "scheduler.h"
#include "throttle.h"

namespace monju {
namespace {

using ae_test::AeReplica;
using ae_test::FakeTransport;
using ae_test::Live;
using test_support::FakeClock;
using test_support::FakeWallClock;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ByteThrottleTest, SpendsAtTheRateWithAOneSecondBurst) {
  FakeClock clock;
  ByteThrottle t(&clock, 1000);
  EXPECT_EQ(t.Take(600), ByteThrottle::Duration::zero());
  EXPECT_EQ(t.Take(400), ByteThrottle::Duration::zero());
  // Empty: 500 more bytes are half a second of debt.
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(t.Take(500)), milliseconds(500));
  clock.Advance(milliseconds(500));
  EXPECT_EQ(t.Take(0), ByteThrottle::Duration::zero());
  // A long idle spell refills one second's worth, not more.
  clock.Advance(seconds(60));
  EXPECT_EQ(t.Take(1000), ByteThrottle::Duration::zero());
  EXPECT_GT(t.Take(1), ByteThrottle::Duration::zero());
  ByteThrottle unlimited(&clock, 0);
  EXPECT_EQ(unlimited.Take(1ull << 40), ByteThrottle::Duration::zero());
}

constexpr uint32_t kPartitions = 4;

// This node ("a") owns partitions 0..3; b co-owns all, c co-owns 0 and 1
// (until a test changes the layout, and its id).
class FakeDirectory final : public ExchangeDirectory {
 public:
  std::vector<uint32_t> OwnedPartitions() override {
    std::vector<uint32_t> out;
    for (const auto& [p, peers] : layout) out.push_back(p);
    return out;
  }
  std::vector<std::string> CoOwners(uint32_t partition) override {
    ++co_owner_calls;
    auto it = layout.find(partition);
    return it == layout.end() ? std::vector<std::string>{} : it->second;
  }
  bool PeerAlive(const std::string& peer) override { return !down.count(peer); }
  uint64_t LayoutId() override { return layout_id; }
  ExchangePeer* Peer(const std::string& peer) override {
    auto it = peers.find(peer);
    return it == peers.end() ? nullptr : it->second;
  }
  std::map<uint32_t, std::vector<std::string>> layout = {{0, {"b", "c"}}, {1, {"b", "c"}}, {2, {"b"}}, {3, {"b"}}};
  uint64_t layout_id = 1;
  int co_owner_calls = 0;
  std::set<std::string> down;
  std::map<std::string, ExchangePeer*> peers;
};

// An exchange peer that notes which partition each exchange was of (its
// first call asks for the root's children).
class Noting final : public ExchangePeer {
 public:
  Noting(std::string name, ExchangePeer* target, std::vector<std::string>* log)
      : name_(std::move(name)), target_(target), log_(log) {}
  Status ChildHashes(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& parents,
                     std::vector<uint64_t>* out, int64_t* items) override {
    if (level == 0) log_->push_back(std::to_string(partition) + name_);
    return target_->ChildHashes(partition, format, level, parents, out, items);
  }
  Status ListKeys(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& nodes,
                  const KeyDigest* after, size_t limit, std::vector<KeyDigest>* out, bool* more) override {
    return target_->ListKeys(partition, format, level, nodes, after, limit, out, more);
  }
  Status Fetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out) override {
    return target_->Fetch(partition, keys, out);
  }
  Status Push(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) override {
    return target_->Push(partition, versions);
  }

 private:
  const std::string name_;
  ExchangePeer* const target_;
  std::vector<std::string>* const log_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest()
      : a_("a", kPartitions, &wall_), b_("b", kPartitions, &wall_), c_("c", kPartitions, &wall_),
        to_b_(&b_.peer()), to_c_(&c_.peer()) {
    dir_.peers = {{"b", &to_b_}, {"c", &to_c_}};
  }

  std::unique_ptr<AntiEntropyScheduler> Make(SchedulerOptions o = Defaults()) {
    return std::make_unique<AntiEntropyScheduler>(&a_.peer(), a_.format(), &a_.trees(), &dir_, &clock_, o);
  }
  static SchedulerOptions Defaults() {
    SchedulerOptions o;
    o.interval = seconds(60);
    o.retry_after = seconds(5);
    o.bytes_per_second = 0;
    return o;
  }
  // Runs every due exchange; how many ran.
  int Drain(AntiEntropyScheduler& s) {
    int n = 0;
    while (s.RunNextDue()) ++n;
    return n;
  }

  FakeClock clock_;
  FakeWallClock wall_;
  AeReplica a_, b_, c_;
  FakeTransport to_b_, to_c_;
  FakeDirectory dir_;
};

// Every (partition, co-owner) pair once, then nothing until the interval
// has passed; then every pair again.
TEST_F(SchedulerTest, EveryPairOncePerInterval) {
  auto s = Make();
  EXPECT_EQ(Drain(*s), 6);  // partitions 0,1 with b and c; 2,3 with b
  EXPECT_EQ(Drain(*s), 0);
  clock_.Advance(seconds(59));
  EXPECT_EQ(Drain(*s), 0);
  clock_.Advance(seconds(1));
  EXPECT_EQ(Drain(*s), 6);
  SchedulerStats st = s->stats();
  EXPECT_EQ(st.exchanges, 12u);
  EXPECT_EQ(st.exchanges_failed, 0u);
  EXPECT_EQ(st.partitions_never_exchanged, 0u);
}

// A write on a only reaches b and c through the background exchanges, and
// the counters say so.
TEST_F(SchedulerTest, BackgroundExchangesRepairAndCount) {
  a_.Apply(0, "pk", "k", Live("w/1", 1, {}, "x"));
  b_.Apply(2, "pk2", "k", Live("w/1", 2, {}, "y"));
  auto s = Make();
  Drain(*s);
  EXPECT_FALSE(b_.Read(0, "pk", "k").empty());
  EXPECT_FALSE(c_.Read(0, "pk", "k").empty());
  EXPECT_FALSE(a_.Read(2, "pk2", "k").empty());
  SchedulerStats st = s->stats();
  EXPECT_EQ(st.partitions_different, 3u);
  EXPECT_EQ(st.keys_sent, 2u);
  EXPECT_EQ(st.keys_received, 1u);
  EXPECT_GT(st.bytes_sent, 0u);
  EXPECT_GT(st.bytes_received, 0u);
}

// Down peers are skipped, not failed; once alive their pairs run.
TEST_F(SchedulerTest, DownPeersWaitUntilAlive) {
  dir_.down.insert("c");
  auto s = Make();
  EXPECT_EQ(Drain(*s), 4);
  EXPECT_EQ(to_c_.calls(), 0);
  SchedulerStats st = s->stats();
  EXPECT_EQ(st.partitions_never_exchanged, 2u);  // 0 and 1 still lack c
  clock_.Advance(seconds(10));
  EXPECT_EQ(s->stats().oldest_partition_age_ms, 10000);
  dir_.down.clear();
  EXPECT_EQ(Drain(*s), 2);
  st = s->stats();
  EXPECT_EQ(st.partitions_never_exchanged, 0u);
  EXPECT_EQ(st.oldest_partition_age_ms, 10000) << "partitions 2 and 3 were last exchanged 10 s ago";
}

// Never-exchanged pairs go first by partition, then co-owner; later, the
// pair exchanged least recently goes first.
TEST_F(SchedulerTest, LeastRecentlyExchangedFirst) {
  std::vector<std::string> order;
  Noting note_b("b", &to_b_, &order), note_c("c", &to_c_, &order);
  dir_.peers = {{"b", &note_b}, {"c", &note_c}};
  auto s = Make();
  EXPECT_EQ(Drain(*s), 6);
  EXPECT_EQ(order, (std::vector<std::string>{"0b", "0c", "1b", "1c", "2b", "3b"}));
  // Pairs 3b and 1c exchanged again by hand, 10 and 20 s later: they are
  // due later, and then 3b first.
  clock_.Advance(seconds(10));
  ASSERT_TRUE(s->RunNow(3, "b").ok());
  clock_.Advance(seconds(10));
  ASSERT_TRUE(s->RunNow(1, "c").ok());
  order.clear();
  clock_.Advance(seconds(40));  // 60 s since the first round
  EXPECT_EQ(Drain(*s), 4);
  clock_.Advance(seconds(20));
  EXPECT_EQ(Drain(*s), 2);
  // 3b (exchanged at 10 s) before 1c (at 20 s), although its partition is higher.
  EXPECT_EQ(order, (std::vector<std::string>{"0b", "0c", "1b", "2b", "3b", "1c"}));
}

// Ties go by the directory's co-owner order, not by peer name; a pair
// repaired by hand while due (its peer down) leaves the due queue.
TEST_F(SchedulerTest, CoOwnerOrderAndRepairsOfDuePairs) {
  std::vector<std::string> order;
  Noting note_b("b", &to_b_, &order), note_c("c", &to_c_, &order);
  dir_.peers = {{"b", &note_b}, {"c", &note_c}};
  dir_.layout = {{0, {"c", "b"}}, {1, {"b", "c"}}};
  dir_.down.insert("c");
  auto s = Make();
  EXPECT_EQ(Drain(*s), 2);  // 0b and 1b; 0c and 1c wait for c
  ASSERT_TRUE(s->RunNow(0, "c").ok());  // by hand, c being reachable for it
  dir_.down.clear();
  order.clear();
  EXPECT_EQ(Drain(*s), 1);
  EXPECT_EQ(order, std::vector<std::string>{"1c"});
  clock_.Advance(seconds(60));
  order.clear();
  EXPECT_EQ(Drain(*s), 4);
  EXPECT_EQ(order, (std::vector<std::string>{"0c", "0b", "1b", "1c"}));
}

// The pairs are listed again when the layout id changes, and only then:
// pairs that joined run at once, pairs that left no longer run, and the
// others keep their schedule.
TEST_F(SchedulerTest, FollowsLayoutChangesListingPairsOnlyThen) {
  auto s = Make();
  EXPECT_EQ(Drain(*s), 6);
  EXPECT_EQ(dir_.co_owner_calls, 4) << "one listing for 6 exchanges and a final pick";
  clock_.Advance(seconds(30));
  EXPECT_EQ(Drain(*s), 0);
  EXPECT_EQ(dir_.co_owner_calls, 4);

  // Partition 2 moves from b to c; 3 is no longer replicated here.
  dir_.layout = {{0, {"b", "c"}}, {1, {"b", "c"}}, {2, {"c"}}};
  dir_.layout_id = 2;
  const int b_calls = to_b_.calls(), c_calls = to_c_.calls();
  EXPECT_EQ(Drain(*s), 1);  // 2 with c, new
  EXPECT_EQ(to_b_.calls(), b_calls);
  EXPECT_GT(to_c_.calls(), c_calls);
  EXPECT_EQ(dir_.co_owner_calls, 7);
  clock_.Advance(seconds(30));  // 60 s since the first round
  EXPECT_EQ(Drain(*s), 4);      // 0 and 1 with b and c; not 2 with c (30 s ago), nor 2 or 3 with b
  clock_.Advance(seconds(30));
  EXPECT_EQ(Drain(*s), 1);
  EXPECT_EQ(s->stats().partitions_never_exchanged, 0u);
}

// A failed exchange is retried after retry_after, not a whole interval.
TEST_F(SchedulerTest, FailedExchangeIsRetriedSooner) {
  auto s = Make();
  to_b_.fail_at_call = 1;
  EXPECT_EQ(Drain(*s), 6);
  EXPECT_EQ(s->stats().exchanges_failed, 1u);
  clock_.Advance(seconds(5));
  EXPECT_EQ(Drain(*s), 1);
  EXPECT_EQ(s->stats().exchanges_failed, 1u);
}

TEST_F(SchedulerTest, PauseStopsBackgroundButNotManualRepair) {
  a_.Apply(3, "pk", "k", Live("w/1", 1, {}, "x"));
  auto s = Make();
  s->SetPaused(true);
  EXPECT_TRUE(s->stats().paused);
  EXPECT_FALSE(s->RunNextDue());
  auto report = s->RunNow(3, "");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->exchanges.size(), 1u);
  EXPECT_EQ(report->exchanges[0].peer, "b");
  EXPECT_EQ(report->exchanges[0].stats.keys_sent, 1u);
  EXPECT_FALSE(b_.Read(3, "pk", "k").empty());
  s->SetPaused(false);
  EXPECT_TRUE(s->RunNextDue());
}

TEST_F(SchedulerTest, RunNowChecksItsArguments) {
  auto s = Make();
  auto r = s->RunNow(9, "");
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  r = s->RunNow(2, "c");
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << "c does not co-own partition 2";
  r = s->RunNow(std::nullopt, "zz");
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  r = s->RunNow(std::nullopt, "c");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exchanges.size(), 2u);
  r = s->RunNow(std::nullopt, "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exchanges.size(), 6u);
  for (const auto& e : r->exchanges) EXPECT_TRUE(e.stats.status.ok()) << e.stats.status.ToString();
  s->Stop();
  EXPECT_EQ(s->RunNow(std::nullopt, "").status().code(), Status::Code::kShuttingDown);
  EXPECT_FALSE(s->RunNextDue());
}

// A repair first checks the trees of the partitions it covers against the
// index, and replaces (and counts) one that went stale.
TEST_F(SchedulerTest, RepairChecksTreesFirst) {
  a_.trees().Uninstall();  // the trees miss the next write
  a_.Apply(1, "pk", "k", Live("w/1", 1, {}, "x"));
  auto s = Make();
  auto r = s->RunNow(1, "b");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->trees_rebuilt, 1u);
  EXPECT_EQ(s->stats().trees_rebuilt, 1u);
  EXPECT_FALSE(b_.Read(1, "pk", "k").empty()) << "with the stale tree the write would never have been found";
}

// Background exchanges check a partition's tree once verify_interval passed.
TEST_F(SchedulerTest, BackgroundVerifiesTreesPeriodically) {
  SchedulerOptions o = Defaults();
  o.verify_interval = seconds(100);
  auto s = Make(o);
  a_.trees().Uninstall();
  a_.Apply(2, "pk", "k", Live("w/1", 1, {}, "x"));
  Drain(*s);
  EXPECT_TRUE(b_.Read(2, "pk", "k").empty()) << "the stale tree was not yet due for a check";
  clock_.Advance(seconds(100));
  Drain(*s);
  EXPECT_EQ(s->stats().trees_rebuilt, 1u);
  EXPECT_FALSE(b_.Read(2, "pk", "k").empty());
}

// Start/Stop with real threads: Stop interrupts the workers (idle or in an
// exchange) and returns; afterwards nothing runs. (Background exchanges on
// real threads are covered by the integration tests.)
TEST_F(SchedulerTest, StopJoinsRunningWorkers) {
  SteadyClock real;
  SchedulerOptions o = Defaults();
  o.max_concurrent = 2;
  AntiEntropyScheduler s(&a_.peer(), a_.format(), &a_.trees(), &dir_, &real, o);
  s.Start();
  s.Stop();
  const uint64_t ran = s.stats().exchanges;
  EXPECT_LE(ran, 6u);
  EXPECT_FALSE(s.RunNextDue());
  EXPECT_EQ(s.stats().exchanges, ran);
  EXPECT_EQ(s.stats().running, 0u);
}

}  // namespace
}  // namespace monju
