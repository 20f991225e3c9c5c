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

// This node ("a") owns partitions 0..3; b co-owns all, c co-owns 0 and 1.
class FakeDirectory final : public ExchangeDirectory {
 public:
  std::vector<uint32_t> OwnedPartitions() override { return {0, 1, 2, 3}; }
  std::vector<std::string> CoOwners(uint32_t partition) override {
    if (partition < 2) return {"b", "c"};
    return {"b"};
  }
  bool PeerAlive(const std::string& peer) override { return !down.count(peer); }
  ExchangePeer* Peer(const std::string& peer) override {
    auto it = peers.find(peer);
    return it == peers.end() ? nullptr : it->second;
  }
  std::set<std::string> down;
  std::map<std::string, ExchangePeer*> peers;
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
