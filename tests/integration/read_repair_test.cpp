// Read repair and deletes under failure: a replica that missed writes (its
// hints expired) is repaired by a quorum read or query, and a deleted key
// never comes back, before or after its tombstone is reaped.
//
// A replica's own copy is inspected with ReplicaClient (MonjuReplica.read on
// that node alone), which never triggers read repair.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

using ::testing::ElementsAre;

constexpr int kRequestTimeoutMs = 2000;

// Fast failure detection, and no background anti-entropy: these tests show
// what read repair does on its own (anti_entropy_test covers exchanges).
std::vector<std::string> FastFlags() {
  return {"--probe-interval-ms", "100", "--probe-timeout-ms", "300", "--ae-interval-s", "0"};
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class RepairTest : public ::testing::Test {
 protected:
  void TearDown() override { MONJU_DUMP_LOGS_ON_FAILURE(cluster_.get()); }

  LocalCluster& StartCluster(std::vector<std::string> flags) {
    ClusterOptions options;
    options.request_timeout_ms = kRequestTimeoutMs;
    options.extra_flags = FastFlags();
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

  // Polls until node i's counter reaches at least `value`.
  ::testing::AssertionResult WaitStat(int i, const std::string& name, int64_t value,
                                      std::chrono::milliseconds timeout = 20s) {
    int64_t last = 0;
    if (PollUntil(
            [&] {
              std::map<std::string, int64_t> stats;
              if (!TryStats(*cluster_, i, &stats)) return false;
              last = StatOf(stats, name);
              return last >= value;
            },
            timeout, 50ms))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << cluster_->id(i) << " " << name << " = " << last << ", waited for >= "
                                         << value << " for " << timeout.count() << " ms";
  }

  // Kills n3, writes through n1 (W=2, so n1 keeps a hint for n3), lets the
  // hints expire, and brings n3 back without them. Calls `write` for the writes.
  void MissWritesOnN3(const std::function<void()>& write, int64_t hints) {
    LocalCluster& c = *cluster_;
    c.Kill(2);
    auto down = WaitPeerState(c, 0, "n3", "down");
    ASSERT_TRUE(down) << down.message();
    write();
    if (HasFatalFailure()) return;
    auto t0 = Clock::now();
    auto expired = WaitStat(0, "hints.expired", hints);
    ASSERT_TRUE(expired) << expired.message();
    std::cout << "[measure] " << hints << " hint(s) expired on n1 " << Seconds(Clock::now() - t0)
              << " s after the writes (--hint-ttl-s 1)\n";
    EXPECT_EQ(Stat(0, "hints.pending"), 0) << "expired hints still pending on n1";
    ASSERT_TRUE(c.StartNode(2));
    // Reads only reach (and repair) replicas the coordinator believes alive.
    auto alive = WaitPeerState(c, 0, "n3", "alive");
    ASSERT_TRUE(alive) << alive.message();
  }

  std::unique_ptr<LocalCluster> cluster_;
};

// 5a. One get (R=2) through n1 repairs n3, which missed the write; a key that
// was not read stays missing (so it was the read that repaired).
TEST_F(RepairTest, QuorumReadRepairsAStaleReplica) {
  LocalCluster& c = StartCluster({"--hint-ttl-s", "1", "--tombstone-grace-s", "2"});
  const std::string pk = "rr-get";

  ASSERT_NO_FATAL_FAILURE(MissWritesOnN3(
      [&] {
        for (const char* sk : {"read-me", "not-read"}) {
          api::WriteResult wr;
          CallResult r = TryPut(c, 0, pk, sk, std::string("value-") + sk, "", 2, &wr);
          ASSERT_TRUE(r.ok()) << r.message;
        }
      },
      2));

  for (const char* sk : {"read-me", "not-read"}) {
    SiblingSet s;
    ASSERT_TRUE(TryReplicaRead(c, 2, pk, sk, &s));
    ASSERT_TRUE(s.empty()) << "n3 holds " << DescribeSiblings(s) << " for " << sk
                           << " although its hint expired: the test cannot show a repair";
  }
  int64_t repairs_before = Stat(0, "read_repairs");

  api::GetResult g;
  CallResult get = TryGet(c, 0, pk, "read-me", 2, &g);
  ASSERT_TRUE(get.ok()) << get.message;
  EXPECT_THAT(g.values, ElementsAre("value-read-me"));

  auto t0 = Clock::now();
  SiblingSet on_n3;
  bool repaired = PollUntil(
      [&] { return TryReplicaRead(c, 2, pk, "read-me", &on_n3) && !on_n3.empty(); }, 10s, 20ms);
  ASSERT_TRUE(repaired) << "n3 still lacks the key 10 s after a quorum read through n1: "
                        << DescribeSiblings(on_n3);
  std::cout << "[measure] read repair reached n3 " << Seconds(Clock::now() - t0) * 1000 << " ms after the get\n";
  EXPECT_THAT(on_n3.LiveValues(), ElementsAre("value-read-me"));
  EXPECT_GT(Stat(0, "read_repairs"), repairs_before) << "n1's read_repairs did not grow";

  SiblingSet other;
  ASSERT_TRUE(TryReplicaRead(c, 2, pk, "not-read", &other));
  EXPECT_TRUE(other.empty()) << "a key nobody read reached n3 (" << DescribeSiblings(other)
                             << "): something other than read repair delivered it";
}

// 5a'. A get through n3 itself repairs n3's own copy: the coordinator's
// local replica is repaired through its store's queue (no thread waits for
// that commit).
TEST_F(RepairTest, QuorumReadThroughTheStaleNodeRepairsItsOwnCopy) {
  LocalCluster& c = StartCluster({"--hint-ttl-s", "1", "--tombstone-grace-s", "2"});
  const std::string pk = "rr-own";

  ASSERT_NO_FATAL_FAILURE(MissWritesOnN3(
      [&] {
        api::WriteResult wr;
        CallResult r = TryPut(c, 0, pk, "sk", "value-own", "", 2, &wr);
        ASSERT_TRUE(r.ok()) << r.message;
      },
      1));
  SiblingSet before;
  ASSERT_TRUE(TryReplicaRead(c, 2, pk, "sk", &before));
  ASSERT_TRUE(before.empty()) << "n3 holds " << DescribeSiblings(before) << ": the test cannot show a repair";
  auto n1_alive = WaitPeerState(c, 2, "n1", "alive");
  ASSERT_TRUE(n1_alive) << n1_alive.message();
  const int64_t repairs_before = Stat(2, "read_repairs");

  api::GetResult g;
  CallResult get = TryGet(c, 2, pk, "sk", 2, &g);
  ASSERT_TRUE(get.ok()) << get.message;
  EXPECT_THAT(g.values, ElementsAre("value-own"));

  SiblingSet own;
  bool repaired = PollUntil([&] { return TryReplicaRead(c, 2, pk, "sk", &own) && !own.empty(); }, 10s, 20ms);
  ASSERT_TRUE(repaired) << "n3 still lacks the key 10 s after a quorum read through n3";
  EXPECT_THAT(own.LiveValues(), ElementsAre("value-own"));
  auto counted = WaitStat(2, "read_repairs", repairs_before + 1);
  EXPECT_TRUE(counted) << counted.message();
}

// 5b. One query through n1 repairs every item of the page that n3 missed.
// Several pks, one query each: which replicas make up a query's quorum is a
// race, and every query must repair n3, not only those where n3 answered
// among the first R.
TEST_F(RepairTest, QueryRepairsItemsMissingOnAStaleReplica) {
  LocalCluster& c = StartCluster({"--hint-ttl-s", "1", "--tombstone-grace-s", "2"});
  constexpr int kPks = 6;
  constexpr int kItems = 8;
  auto pk = [](int p) { return "rr-query-" + std::to_string(p); };
  auto sk = [](int k) {
    char buf[16];
    snprintf(buf, sizeof buf, "item-%02d", k);
    return std::string(buf);
  };
  auto value = [](int p, int k) { return "q-" + std::to_string(p) + "-" + std::to_string(k); };
  // Present everywhere before n3 fails: must not be disturbed.
  ASSERT_TRUE(TryPut(c, 0, pk(0), "aaa-before", "old", "", 3).ok());

  ASSERT_NO_FATAL_FAILURE(MissWritesOnN3(
      [&] {
        for (int p = 0; p < kPks; ++p)
          for (int k = 0; k < kItems; ++k) {
            CallResult r = TryPut(c, 0, pk(p), sk(k), value(p, k), "", 2);
            ASSERT_TRUE(r.ok()) << r.message;
          }
      },
      kPks * kItems));

  ReplicaClient n3(c, 2);
  for (int p = 0; p < kPks; ++p)
    for (int k = 0; k < kItems; ++k) ASSERT_TRUE(n3.Read(pk(p), sk(k)).empty()) << sk(k) << " already on n3";
  int64_t repairs_before = Stat(0, "read_repairs");

  for (int p = 0; p < kPks; ++p) {
    api::QueryResult q;
    CallResult qr = Call([&] { c.Client(0)->query(q, pk(p), "", "", 100, true, 2); });
    ASSERT_TRUE(qr.ok()) << qr.message;
    ASSERT_EQ(q.items.size(), static_cast<size_t>(kItems + (p == 0 ? 1 : 0))) << pk(p);
  }

  auto t0 = Clock::now();
  std::vector<int> missing(kPks, kItems);
  auto total_missing = [&] {
    int n = 0;
    for (int m : missing) n += m;
    return n;
  };
  bool repaired = PollUntil(
      [&] {
        for (int p = 0; p < kPks; ++p) {
          missing[p] = 0;
          for (int k = 0; k < kItems; ++k)
            if (n3.Read(pk(p), sk(k)).LiveValues() != std::vector<std::string>{value(p, k)}) ++missing[p];
        }
        return total_missing() == 0;
      },
      10s, 50ms);
  std::string detail;
  for (int p = 0; p < kPks; ++p) detail += pk(p) + ": " + std::to_string(missing[p]) + " missing; ";
  EXPECT_TRUE(repaired) << total_missing() << " of " << kPks * kItems
                        << " items still missing on n3 10 s after one query per pk (" << detail << ")";
  std::cout << "[measure] query read repair: " << kPks * kItems - total_missing() << " of " << kPks * kItems
            << " items on n3 within " << Seconds(Clock::now() - t0) * 1000 << " ms (" << detail << ")\n";
  EXPECT_GE(Stat(0, "read_repairs") - repairs_before, kPks * kItems);
  EXPECT_THAT(n3.Read(pk(0), "aaa-before").LiveValues(), ElementsAre("old"));
}

// 6. A delete that n3 missed never lets the key come back, whether n3 gets
// the tombstone by hint (a) or by read repair after the hint expired (b), and
// tombstones are reaped only once every owner has one.
class DeleteTest : public RepairTest {
 protected:
  static constexpr int kGraceS = 4;
  static constexpr int kReapIntervalMs = 200;
  const std::string pk_ = "del";
  const std::string sk_ = "k";

  std::vector<std::string> Flags(int ttl_s) {
    return {"--hint-ttl-s", std::to_string(ttl_s), "--tombstone-grace-s", std::to_string(kGraceS),
            "--reap-interval-ms", std::to_string(kReapIntervalMs)};
  }

  // Puts k on all three, kills n3, removes k through n1 with W=2.
  void PutThenRemoveWithN3Down() {
    LocalCluster& c = *cluster_;
    ASSERT_TRUE(TryPut(c, 0, pk_, sk_, "alive", "", 3).ok());
    c.Kill(2);
    auto down = WaitPeerState(c, 0, "n3", "down");
    ASSERT_TRUE(down) << down.message();
    api::GetResult g;
    ASSERT_TRUE(TryGet(c, 0, pk_, sk_, 2, &g).ok());
    ASSERT_TRUE(g.found);
    CallResult rm = Call([&] {
      api::WriteResult wr;
      c.Client(0)->remove(wr, pk_, sk_, g.context, 2);
      EXPECT_NE(std::find(wr.hinted_for.begin(), wr.hinted_for.end(), "n3"), wr.hinted_for.end())
          << "the remove does not report a hint for n3";
    });
    ASSERT_TRUE(rm.ok()) << rm.message;
    removed_at_ = Clock::now();
  }

  // No replica holds a live value, and no coordinator reads one, for `span`.
  void NeverLive(std::chrono::milliseconds span) {
    LocalCluster& c = *cluster_;
    auto until = Clock::now() + span;
    int rounds = 0, failures = 0;
    while (Clock::now() < until && failures < 5) {
      ++rounds;
      for (int node = 0; node < 3; ++node) {
        for (int r : {1, 2}) {
          api::GetResult g;
          CallResult res = TryGet(c, node, pk_, sk_, r, &g);
          EXPECT_TRUE(res.ok()) << "get r=" << r << " via " << c.id(node) << ": " << res.message;
          if (res.ok() && g.found) {
            ++failures;
            ADD_FAILURE() << "round " << rounds << ": the deleted key reads as live via " << c.id(node) << " r=" << r
                          << ": " << (g.values.empty() ? "" : Printable(g.values[0]));
          }
        }
        SiblingSet s;
        EXPECT_TRUE(TryReplicaRead(c, node, pk_, sk_, &s));
        if (s.HasLive()) {
          ++failures;
          ADD_FAILURE() << "round " << rounds << ": " << c.id(node) << " holds " << DescribeSiblings(s);
        }
      }
      std::this_thread::sleep_for(50ms);
    }
    std::cout << "[measure] " << rounds << " rounds of reads (r=1, r=2 via every node, every replica) over "
              << span.count() << " ms: no live value\n";
  }

  // Every node reaps, and afterwards the key is absent everywhere.
  void ReapedEverywhere() {
    LocalCluster& c = *cluster_;
    auto t0 = Clock::now();
    for (int i = 0; i < 3; ++i) {
      auto reaped = WaitStat(i, "tombstones.reaped", 1, 30s);
      EXPECT_TRUE(reaped) << reaped.message();
    }
    std::cout << "[measure] every node reaped within " << Seconds(Clock::now() - removed_at_)
              << " s of the delete (grace " << kGraceS << " s)\n";
    // Reads made before every node reaped may have repaired a tombstone back
    // onto a node that had reaped it; it is reaped again.
    std::string last;
    bool absent = PollUntil(
        [&] {
          last.clear();
          bool all = true;
          for (int i = 0; i < 3; ++i) {
            SiblingSet s;
            if (!TryReplicaRead(c, i, pk_, sk_, &s)) return false;
            last += c.id(i) + ": " + DescribeSiblings(s) + "; ";
            if (!s.empty()) all = false;
          }
          return all;
        },
        20s, 50ms);
    EXPECT_TRUE(absent) << "not absent on every replica 20 s after reaping started: " << last;
    (void)t0;
    for (int node = 0; node < 3; ++node) {
      for (int r : {1, 2, 3}) {
        api::GetResult g;
        CallResult res = TryGet(c, node, pk_, sk_, r, &g);
        EXPECT_TRUE(res.ok()) << res.message;
        EXPECT_FALSE(g.found) << "after reaping, the key reads as live via " << c.id(node) << " r=" << r;
      }
    }
    for (int i = 0; i < 3; ++i) {
      SiblingSet s;
      EXPECT_TRUE(TryReplicaRead(c, i, pk_, sk_, &s));
      EXPECT_TRUE(s.empty()) << c.id(i) << " holds " << DescribeSiblings(s) << " after reading the reaped key";
    }
  }

  Clock::time_point removed_at_;
};

// (a) n3 comes back while the hint is still valid: the tombstone reaches it by
// handoff. (TTL 3 s here, so that the restart surely beats it.)
TEST_F(DeleteTest, DeletedKeyNeverComesBackWhenTheHintIsDelivered) {
  LocalCluster& c = StartCluster(Flags(3));
  ASSERT_NO_FATAL_FAILURE(PutThenRemoveWithN3Down());
  ASSERT_TRUE(c.StartNode(2));
  auto drained = WaitHintsDrained(c, 30s);
  ASSERT_TRUE(drained) << drained.message();
  EXPECT_GE(Stat(0, "hints.delivered"), 1);
  EXPECT_EQ(Stat(0, "hints.expired"), 0) << "the hint expired before n3 returned; this variant needs it delivered";
  // Without any coordinator read, n3 holds the tombstone.
  SiblingSet s;
  ASSERT_TRUE(TryReplicaRead(c, 2, pk_, sk_, &s));
  // (Or nothing, when the grace period already passed and every node reaped it.)
  EXPECT_TRUE(s.empty() || s.AllTombstones()) << "n3 holds " << DescribeSiblings(s) << " after the hint drained";

  auto grace_end = removed_at_ + std::chrono::seconds(kGraceS);
  auto span = std::chrono::duration_cast<std::chrono::milliseconds>(grace_end - Clock::now()) + 2s;
  NeverLive(std::max<std::chrono::milliseconds>(span, 2s));
  ReapedEverywhere();
}

// (b) The hint expires first, so n3 comes back with the old live value. While
// n3 lacks the tombstone nobody may reap it (else n3's value would come back
// by read repair); a quorum read repairs n3, and then it is reaped everywhere.
TEST_F(DeleteTest, DeletedKeyNeverComesBackAfterTheHintExpired) {
  LocalCluster& c = StartCluster(Flags(1));
  ASSERT_NO_FATAL_FAILURE(PutThenRemoveWithN3Down());
  auto expired = WaitStat(0, "hints.expired", 1);
  ASSERT_TRUE(expired) << expired.message();

  // Let the grace period pass with n3 down, and the reapers of n1 and n2 look
  // at the tombstone after it: they must not reap it.
  auto after_grace = removed_at_ + std::chrono::seconds(kGraceS) + 500ms;
  ASSERT_TRUE(PollUntil([&] { return Clock::now() >= after_grace; }, 10s, 50ms));
  int64_t looked[2] = {Stat(0, "tombstones.checked") + Stat(0, "tombstones.blocked"),
                       Stat(1, "tombstones.checked") + Stat(1, "tombstones.blocked")};
  for (int i = 0; i < 2; ++i) {
    bool passed = PollUntil(
        [&] { return Stat(i, "tombstones.checked") + Stat(i, "tombstones.blocked") >= looked[i] + 2; }, 10s, 50ms);
    EXPECT_TRUE(passed) << c.id(i) << "'s reaper did not check the tombstone after the grace period";
    EXPECT_EQ(Stat(i, "tombstones.reaped"), 0) << c.id(i) << " reaped although n3 is down without the tombstone";
    EXPECT_GT(Stat(i, "tombstones.blocked"), 0) << c.id(i) << ": tombstones.blocked did not count the held-back reap";
    SiblingSet s;
    ASSERT_TRUE(TryReplicaRead(c, i, pk_, sk_, &s));
    EXPECT_TRUE(!s.empty() && s.AllTombstones()) << c.id(i) << " holds " << DescribeSiblings(s);
  }

  // n3 returns with the value it had before the delete.
  ASSERT_TRUE(c.StartNode(2));
  {
    SiblingSet s;
    ASSERT_TRUE(TryReplicaRead(c, 2, pk_, sk_, &s));
    ASSERT_TRUE(s.HasLive()) << "n3 holds " << DescribeSiblings(s)
                             << " although its hint expired; the test needs n3 stale";
  }
  auto alive = WaitPeerState(c, 0, "n3", "alive");
  ASSERT_TRUE(alive) << alive.message();
  // The reapers look again with n3 up but stale: still nothing reaped.
  for (int i = 0; i < 2; ++i) {
    int64_t before = Stat(i, "tombstones.checked") + Stat(i, "tombstones.blocked");
    EXPECT_TRUE(PollUntil(
        [&] { return Stat(i, "tombstones.checked") + Stat(i, "tombstones.blocked") >= before + 2; }, 10s, 50ms));
    EXPECT_EQ(Stat(i, "tombstones.reaped"), 0) << c.id(i) << " reaped while n3 still holds the live value";
    SiblingSet s;
    ASSERT_TRUE(TryReplicaRead(c, i, pk_, sk_, &s));
    EXPECT_TRUE(!s.empty() && s.AllTombstones()) << c.id(i) << " holds " << DescribeSiblings(s);
  }

  // A quorum read through n1: not found (the tombstone supersedes n3's
  // value), and it repairs n3.
  api::GetResult g;
  CallResult get = TryGet(c, 0, pk_, sk_, 2, &g);
  ASSERT_TRUE(get.ok()) << get.message;
  EXPECT_FALSE(g.found) << "the deleted key reads as live through n1 with n3 stale";
  SiblingSet on_n3;
  // The repaired tombstone may be reaped at once (grace is long past), so
  // "absent" also counts: what matters is that the live value is gone.
  bool repaired = PollUntil(
      [&] { return TryReplicaRead(c, 2, pk_, sk_, &on_n3) && !on_n3.HasLive(); }, 10s, 20ms);
  ASSERT_TRUE(repaired) << "n3 still holds " << DescribeSiblings(on_n3) << " 10 s after a quorum read";

  NeverLive(std::chrono::seconds(kGraceS) + 2s);
  ReapedEverywhere();
}

}  // namespace
}  // namespace monju::itest
