// Coordinator under failure (coordinator/coordinator.h): which replicas a
// write goes to, when a fallback holds a hint, when W is met, delete times on
// tombstones, and read repair. A 5-node view with N = 3 (so every key has two
// fallbacks); this node (n1) is a real Replica in a temp dir, the others are
// fakes. Fan-out runs inline unless a test needs calls to overlap.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "clock/codec.h"
#include "coordinator.h"
#include "coordinator_fakes.h"
#include "membership.h"
#include "replica.h"
#include "test_support.h"

namespace monju {
namespace {

using namespace monju::test_support;
using namespace std::chrono_literals;

class SloppyQuorumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StorageOptions so;
    so.path = dir_.path() + "/data";
    so.map_size_bytes = 64ull << 20;
    auto store = DataStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto r = Replica::Open("n1", std::move(store.value()), /*seed=*/7);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    replica_ = std::move(r.value());
    local_ = std::make_unique<LocalEndpoint>(replica_.get());

    std::vector<PeerAddress> peers;
    for (int i = 1; i <= 5; ++i) peers.push_back({"n" + std::to_string(i), "127.0.0.1", uint16_t(7000 + i)});
    auto view = ClusterView::Create(peers, 8, 16, 3);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    membership_ = std::make_unique<Membership>(view.value());
    directory_.by_id["n1"] = local_.get();
    for (int i = 2; i <= 5; ++i) {
      fakes_.push_back(std::make_unique<FakeEndpoint>());
      directory_.by_id["n" + std::to_string(i)] = fakes_.back().get();
    }
    // A pk that n1 replicates, with its other owners and fallbacks.
    const Ring& ring = membership_->Current()->ring();
    for (int k = 0; pk_.empty(); ++k) {
      std::string pk = "pk-" + std::to_string(k);
      const auto& owners = ring.PreferenceList(ring.PartitionOf(pk));
      if (std::find(owners.begin(), owners.end(), 0u) == owners.end()) continue;
      pk_ = pk;
      for (uint32_t m : owners)
        if (m != 0) others_.push_back(Id(m));
      for (uint32_t m : ring.Fallbacks(ring.PartitionOf(pk))) fallbacks_.push_back(Id(m));
    }
    ASSERT_EQ(others_.size(), 2u);
    ASSERT_EQ(fallbacks_.size(), 2u);
    Make();
  }
  void TearDown() override {
    for (auto& f : fakes_) f->gate.Release();
    threads_.JoinAll();
  }

  std::string Id(uint32_t member) const { return membership_->Current()->members()[member].id; }
  FakeEndpoint& Fake(const std::string& id) { return static_cast<FakeEndpoint&>(*directory_.by_id.at(id)); }
  ItemKey Key(const std::string& sk) const {
    return {membership_->Current()->ring().PartitionOf(pk_), pk_, sk};
  }
  // Version "one" of i1, applied here and stored on `peers`.
  Version StoreOne(const std::vector<std::string>& peers) {
    Version v;
    v.dot = {"nx/1", 1};
    v.value = "one";
    EXPECT_TRUE(replica_->Apply(Key("i1"), v).ok());
    for (const auto& id : peers) Fake(id).Store(Key("i1"), v);
    return v;
  }
  // A query of the whole pk with read quorum r.
  QueryOutcome QueryPk(int r) {
    QueryRequest q;
    q.pk = pk_;
    q.r = r;
    return coord_->Query(q);
  }

  void Make(bool sloppy = true, Executor* executor = nullptr, std::chrono::milliseconds handoff = 300ms,
            std::chrono::milliseconds timeout = 10s) {
    CoordinatorOptions o;
    o.self_id = "n1";
    o.default_r = 2;
    o.default_w = 2;
    o.request_timeout = timeout;
    o.sloppy_quorum = sloppy;
    o.handoff_after = handoff;
    o.read_fanout = read_fanout_;
    o.read_speculate_after = 10ms;
    coord_ = std::make_unique<Coordinator>(o, membership_.get(), replica_.get(), &directory_,
                                           executor ? executor : &inline_, &clock_, &wall_);
  }

  TempDir dir_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<LocalEndpoint> local_;
  std::unique_ptr<Membership> membership_;
  std::vector<std::unique_ptr<FakeEndpoint>> fakes_;
  FakeDirectory directory_;
  InlineExecutor inline_;
  ThreadExecutor threads_;
  FakeWallClock wall_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> coord_;
  ReadFanout read_fanout_ = ReadFanout::kAll;  // used by Make()
  std::string pk_;
  std::vector<std::string> others_;     // the two owners besides n1
  std::vector<std::string> fallbacks_;  // in ring order
};

TEST_F(SloppyQuorumTest, AllOwnersUpNoFallbackIsCalled) {
  WriteOutcome w = coord_->Put(pk_, "a", "v", "", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(Fake(others_[0]).applies, 1);
  EXPECT_EQ(Fake(others_[1]).applies, 1);
  for (const auto& f : fallbacks_) EXPECT_EQ(Fake(f).applies + Fake(f).hinted, 0) << f;
  EXPECT_FALSE(w.used_fallback);
  EXPECT_TRUE(w.hinted_for.empty());
  std::vector<std::string> acked = w.acked_by;
  std::sort(acked.begin(), acked.end());
  std::vector<std::string> owners = {"n1", others_[0], others_[1]};
  std::sort(owners.begin(), owners.end());
  EXPECT_EQ(acked, owners);
}

TEST_F(SloppyQuorumTest, DownOwnerIsReplacedByTheFirstFallbackHoldingAHint) {
  Fake(others_[1]).alive = false;
  WriteOutcome w = coord_->Put(pk_, "a", "v", "", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(Fake(others_[1]).applies, 0) << "a down owner is not called";
  FakeEndpoint& fallback = Fake(fallbacks_[0]);
  auto hints = fallback.Hints();
  ASSERT_EQ(hints.size(), 1u);
  EXPECT_EQ(hints[0].owner, others_[1]);
  EXPECT_EQ(hints[0].pk, pk_);
  EXPECT_EQ(hints[0].sk, "a");
  EXPECT_EQ(hints[0].version.value, "v");
  EXPECT_EQ(fallback.applies, 0) << "a fallback holds a hint, not a replica";
  EXPECT_EQ(Fake(fallbacks_[1]).hinted, 0);
  EXPECT_TRUE(w.used_fallback);
  EXPECT_EQ(w.hinted_for, std::vector<std::string>{others_[1]});
  EXPECT_NE(std::find(w.acked_by.begin(), w.acked_by.end(), fallbacks_[0]), w.acked_by.end());
  EXPECT_EQ(w.quorum.got, 3);
}

TEST_F(SloppyQuorumTest, DownFallbackIsSkipped) {
  Fake(others_[1]).alive = false;
  Fake(fallbacks_[0]).alive = false;
  WriteOutcome w = coord_->Put(pk_, "a", "v", "", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(Fake(fallbacks_[0]).hinted, 0);
  EXPECT_EQ(Fake(fallbacks_[1]).Hints().size(), 1u);
}

TEST_F(SloppyQuorumTest, StrictModeCountsOnlyOwners) {
  Make(/*sloppy=*/false);
  Fake(others_[1]).alive = false;
  WriteOutcome w3 = coord_->Put(pk_, "a", "v", "", 3);
  EXPECT_EQ(w3.status.code(), Status::Code::kUnavailable) << w3.status.ToString();
  EXPECT_EQ(Fake(others_[0]).applies, 0) << "nothing is sent when W cannot be met";
  // W=2 works; the down owner's hint stays on this node and fallbacks see nothing.
  WriteOutcome w2 = coord_->Put(pk_, "a", "v", "", 2);
  ASSERT_TRUE(w2.status.ok()) << w2.status.ToString();
  EXPECT_FALSE(w2.used_fallback);
  EXPECT_EQ(local_->HintedFor(), std::vector<std::string>{others_[1]});
  for (const auto& f : fallbacks_) EXPECT_EQ(Fake(f).hinted, 0) << f;
}

TEST_F(SloppyQuorumTest, FailingOwnerGetsAHintOnAFallback) {
  Fake(others_[0]).apply_error = Status::IOError("disk on fire");
  WriteOutcome w = coord_->Put(pk_, "a", "v", "", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(Fake(others_[0]).applies, 1);
  ASSERT_EQ(Fake(fallbacks_[0]).Hints().size(), 1u);
  EXPECT_EQ(Fake(fallbacks_[0]).Hints()[0].owner, others_[0]);
  EXPECT_EQ(w.hinted_for, std::vector<std::string>{others_[0]});
}

TEST_F(SloppyQuorumTest, SilentOwnerGetsAHintAfterTheHandoffDeadline) {
  Make(/*sloppy=*/true, &threads_, /*handoff=*/300ms, /*timeout=*/20s);
  Fake(others_[0]).gate.Hold();  // answers only when released
  WriteOutcome w;
  std::thread writer([&] { w = coord_->Put(pk_, "a", "v", "", 3); });
  // Until the handoff deadline the write waits for the silent owner, with no
  // fallback called.
  ASSERT_TRUE(clock_.AwaitWaits(1));
  clock_.Advance(299ms);
  const uint64_t waits = clock_.waits();
  ASSERT_TRUE(clock_.AwaitWaits(waits + 1)) << "the write ended before the handoff deadline";
  for (const auto& f : fallbacks_) EXPECT_EQ(Fake(f).Hints().size(), 0u) << f << " got a hint before the deadline";
  // The other owner's answer is in before the deadline passes (on a busy
  // machine its thread may not have run yet, and it would be silent too).
  ASSERT_TRUE(threads_.AwaitFinished(1)) << "the other owner's apply never ended";
  clock_.Advance(1ms);
  writer.join();
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_TRUE(w.used_fallback);
  EXPECT_EQ(w.hinted_for, std::vector<std::string>{others_[0]});
  EXPECT_EQ(Fake(fallbacks_[0]).Hints().size(), 1u);
  EXPECT_FALSE(Fake(others_[0]).gate.gave_up()) << "the write waited for the silent owner";
}

TEST_F(SloppyQuorumTest, RefusedHintsCountOnlyTrueOwners) {
  Fake(others_[1]).alive = false;
  for (const auto& f : fallbacks_) Fake(f).hint_error = Status::NoSpace("hint cap reached");
  WriteOutcome w3 = coord_->Put(pk_, "a", "v", "", 3);
  EXPECT_EQ(w3.status.code(), Status::Code::kQuorumFailed) << w3.status.ToString();
  EXPECT_NE(w3.status.message().find("hint cap"), std::string::npos) << w3.status.ToString();
  EXPECT_EQ(w3.quorum.got, 2);
  // The two live owners still make a W=2 write; the hint then stays here.
  WriteOutcome w2 = coord_->Put(pk_, "b", "v", "", 2);
  ASSERT_TRUE(w2.status.ok()) << w2.status.ToString();
  EXPECT_FALSE(w2.used_fallback);
}

TEST_F(SloppyQuorumTest, UnavailableWhenOwnersAndFallbacksCannotReachW) {
  Fake(others_[0]).alive = false;
  Fake(others_[1]).alive = false;
  Fake(fallbacks_[0]).alive = false;
  WriteOutcome w = coord_->Put(pk_, "a", "v", "", 3);
  EXPECT_EQ(w.status.code(), Status::Code::kUnavailable) << w.status.ToString();
  EXPECT_EQ(w.quorum.got, 2);
  EXPECT_EQ(Fake(fallbacks_[1]).hinted, 0);
  // W=2 rests on this node plus one fallback.
  WriteOutcome w2 = coord_->Put(pk_, "a", "v", "", 2);
  ASSERT_TRUE(w2.status.ok()) << w2.status.ToString();
  EXPECT_TRUE(w2.used_fallback);
}

TEST_F(SloppyQuorumTest, TombstonesCarryTheirDeleteTime) {
  ASSERT_TRUE(coord_->Put(pk_, "a", "v", "", 0).status.ok());
  ReadOutcome r = coord_->Get(pk_, "a", 0);
  WriteOutcome rm = coord_->Remove(pk_, "a", r.context, 0);
  ASSERT_TRUE(rm.status.ok()) << rm.status.ToString();
  SiblingSet stored;
  ASSERT_TRUE(replica_->Read(Key("a"), &stored).ok());
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_TRUE(stored.versions()[0].tombstone);
  EXPECT_EQ(stored.versions()[0].deleted_unix_ms, wall_.UnixMillis());
}

TEST_F(SloppyQuorumTest, ReadRepairSendsMissingVersionsToStaleReplicasOnly) {
  Version v;
  v.dot = {"nx/1", 1};
  v.value = "old";
  ASSERT_TRUE(replica_->Apply(Key("a"), v).ok());
  Fake(others_[0]).Store(Key("a"), v);  // up to date; others_[1] missed it
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  // Inline fan-out: the repair ran before Get returned.
  EXPECT_EQ(Fake(others_[1]).applies, 1);
  EXPECT_EQ(Fake(others_[1]).Stored(Key("a")).versions(), std::vector<Version>{v});
  EXPECT_EQ(Fake(others_[0]).applies, 0) << "an up-to-date replica is left alone";
  EXPECT_EQ(coord_->stats().read_repairs, 1u);
  // A second read finds nothing stale.
  ASSERT_TRUE(coord_->Get(pk_, "a", 2).status.ok());
  EXPECT_EQ(coord_->stats().read_repairs, 1u);
}

// A repair an asynchronous replica refuses (full: the local store's queue,
// a peer's coalesced writes) is dropped and counted, not retried on a
// thread that would wait.
TEST_F(SloppyQuorumTest, ARepairRefusedAtOnceIsDroppedAndCounted) {
  Version v;
  v.dot = {"nx/1", 1};
  v.value = "old";
  ASSERT_TRUE(replica_->Apply(Key("a"), v).ok());
  Fake(others_[0]).Store(Key("a"), v);
  FakeEndpoint& stale = Fake(others_[1]);
  stale.async = true;
  stale.async_refuse = true;
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  stale.JoinAsync();
  EXPECT_EQ(stale.applies, 0) << "a refused repair went on to Apply()";
  EXPECT_TRUE(stale.Stored(Key("a")).empty());
  EXPECT_EQ(coord_->stats().read_repairs, 0u);
  EXPECT_EQ(coord_->stats().read_repairs_dropped, 1u);
}

TEST_F(SloppyQuorumTest, ReadRepairSpreadsTombstonesButNotSupersededValues) {
  Version live;
  live.dot = {"nx/1", 1};
  live.value = "old";
  Version tomb;
  tomb.dot = {"nx/1", 2};
  tomb.past.Add(live.dot);
  tomb.tombstone = true;
  tomb.deleted_unix_ms = 5;
  ASSERT_TRUE(replica_->Apply(Key("a"), tomb).ok());
  Fake(others_[0]).Store(Key("a"), live);  // missed the delete
  ReadOutcome r = coord_->Get(pk_, "a", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_FALSE(r.found);
  EXPECT_EQ(Fake(others_[0]).Stored(Key("a")).versions(), std::vector<Version>{tomb});
  SiblingSet local;
  ASSERT_TRUE(replica_->Read(Key("a"), &local).ok());
  EXPECT_EQ(local.versions(), std::vector<Version>{tomb}) << "the live value must not come back here";
}

TEST_F(SloppyQuorumTest, QueryRepairsItemsAStaleReplicaLacks) {
  Version v1, v2;
  v1.dot = {"nx/1", 1};
  v1.value = "one";
  v2.dot = {"nx/1", 2};
  v2.value = "two";
  ASSERT_TRUE(replica_->Apply(Key("i1"), v1).ok());
  ASSERT_TRUE(replica_->Apply(Key("i2"), v2).ok());
  Fake(others_[0]).Store(Key("i1"), v1);
  Fake(others_[0]).Store(Key("i2"), v2);
  Fake(others_[1]).Store(Key("i1"), v1);  // lacks i2
  QueryRequest q;
  q.pk = pk_;
  q.r = 3;
  QueryOutcome out = coord_->Query(q);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_EQ(out.items.size(), 2u);
  EXPECT_EQ(Fake(others_[1]).Stored(Key("i2")).versions(), std::vector<Version>{v2});
  EXPECT_EQ(Fake(others_[1]).applies, 1);
  EXPECT_EQ(Fake(others_[0]).applies, 0);
}

// Remote scans go out without a fan-out thread when the endpoint takes them
// (ScanAsync, as a peer's idle scan link does); the local one runs here.
TEST_F(SloppyQuorumTest, QueryScansTakenAsynchronouslyAnswerLikeBlockingOnes) {
  StoreOne(others_);
  for (const auto& id : others_) Fake(id).async = true;
  QueryOutcome out = QueryPk(3);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_EQ(out.items.size(), 1u);
  EXPECT_EQ(out.items[0].values, std::vector<std::string>{"one"});
  for (const auto& id : others_) {
    EXPECT_EQ(Fake(id).async_scans, 1) << id;
    EXPECT_EQ(Fake(id).scans, 1) << id << ": scanned once, through ScanAsync";
    Fake(id).JoinAsync();
  }
}

TEST_F(SloppyQuorumTest, QueryScansDeclinedAsynchronouslyGoThroughTheExecutor) {
  StoreOne(others_);
  for (const auto& id : others_) {
    Fake(id).async = true;
    Fake(id).async_refuse = true;  // every scan link busy
  }
  QueryOutcome out = QueryPk(3);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.items.size(), 1u);
  for (const auto& id : others_) {
    EXPECT_EQ(Fake(id).async_scans, 0) << id;
    EXPECT_EQ(Fake(id).scans, 1) << id << ": the blocking scan";
  }
}

TEST_F(SloppyQuorumTest, AQueryOfAReplicaThatFailsItsAsyncScanStillReachesQuorum) {
  StoreOne({others_[0]});
  Fake(others_[0]).async = true;
  Fake(others_[1]).async = true;
  Fake(others_[1]).read_error = Status::Unavailable("link closed");
  QueryOutcome out = QueryPk(2);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.items.size(), 1u);
  out = QueryPk(3);
  EXPECT_TRUE(out.status.Is(Status::Code::kQuorumFailed)) << out.status.ToString();
  EXPECT_NE(out.status.message().find("link closed"), std::string::npos) << out.status.ToString();
  for (const auto& id : others_) Fake(id).JoinAsync();
}

class LateReplyTest : public SloppyQuorumTest {
 protected:
  // others_[1] lacks i1 and answers only after the client got its answer:
  // held at its gate, or with `async_scan` held as an async answer (its
  // scan through ScanAsync, released by ReleaseAsync()).
  FakeEndpoint& SetUpStale(bool async_scan = false) {
    Make(/*sloppy=*/true, &threads_);
    v_ = StoreOne({others_[0]});
    FakeEndpoint& stale = Fake(others_[1]);
    if (async_scan) {
      stale.async = true;
      stale.async_held = true;
    } else {
      stale.gate.Hold();
    }
    return stale;
  }
  void ExpectRepairedAfterRelease(FakeEndpoint& stale) {
    EXPECT_EQ(stale.applies, 0) << "nothing to repair before the late reply arrives";
    stale.gate.Release();
    threads_.JoinAll();  // every call, then the repair it triggers
    EXPECT_EQ(stale.Stored(Key("i1")).versions(), std::vector<Version>{v_});
    EXPECT_EQ(stale.applies, 1);
    EXPECT_EQ(Fake(others_[0]).applies, 0);
  }
  Version v_;
};

TEST_F(LateReplyTest, GetRepairsAReplicaThatAnsweredAfterTheClient) {
  FakeEndpoint& stale = SetUpStale();
  ReadOutcome r = coord_->Get(pk_, "i1", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ExpectRepairedAfterRelease(stale);
}

TEST_F(LateReplyTest, QueryRepairsAReplicaThatAnsweredAfterTheClient) {
  FakeEndpoint& stale = SetUpStale();
  QueryOutcome out = QueryPk(2);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.items.size(), 1u);
  ExpectRepairedAfterRelease(stale);
}

TEST_F(LateReplyTest, QueryRepairsAReplicaWhoseAsyncScanAnsweredAfterTheClient) {
  FakeEndpoint& stale = SetUpStale(/*async_scan=*/true);
  QueryOutcome out = QueryPk(2);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.items.size(), 1u);
  EXPECT_EQ(stale.async_scans, 1);
  EXPECT_EQ(stale.applies, 0) << "nothing to repair before the late reply arrives";
  stale.async_held = false;  // the repair's apply, when it comes, goes at once
  stale.ReleaseAsync();
  stale.JoinAsync();  // the scan's answer, the round's repair and its apply
  threads_.JoinAll();
  EXPECT_EQ(stale.Stored(Key("i1")).versions(), std::vector<Version>{v_});
  EXPECT_EQ(stale.applies, 1);
  EXPECT_EQ(Fake(others_[0]).applies, 0);
}

// A descending page of several items, each replica lacking different ones,
// and a late reply that knows a sibling the others do not: every replica
// gets exactly what it lacks, the late reply's sibling included.
TEST_F(LateReplyTest, DescendingQueryRepairsEachReplicaOfWhatItLacks) {
  Make(/*sloppy=*/true, &threads_);
  std::map<std::string, Version> v;
  for (int i = 1; i <= 5; ++i) {
    const std::string sk = "i" + std::to_string(i);
    v[sk].dot = {"nx/1", uint64_t(i)};
    v[sk].value = "value " + sk;
    ASSERT_TRUE(replica_->Apply(Key(sk), v[sk]).ok());
    if (sk != "i2" && sk != "i4") Fake(others_[0]).Store(Key(sk), v[sk]);
    if (sk != "i1") Fake(others_[1]).Store(Key(sk), v[sk]);
  }
  Version unseen;  // only the late replica has it
  unseen.dot = {"ny/1", 1};
  unseen.value = "unseen";
  FakeEndpoint& late = Fake(others_[1]);
  late.Store(Key("i3"), unseen);
  late.gate.Hold();

  QueryRequest q;
  q.pk = pk_;
  q.r = 2;
  q.ascending = false;
  QueryOutcome out = coord_->Query(q);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  std::vector<std::string> sks;
  for (const auto& item : out.items) sks.push_back(item.sk);
  EXPECT_EQ(sks, (std::vector<std::string>{"i5", "i4", "i3", "i2", "i1"}));
  EXPECT_EQ(Fake(others_[0]).applies, 0) << "a round is repaired once every replica answered";

  late.gate.Release();
  threads_.JoinAll();
  auto values = [](SiblingSet set) {
    std::vector<std::string> out = set.LiveValues();
    std::sort(out.begin(), out.end());
    return out;
  };
  for (int i = 1; i <= 5; ++i) {
    const std::string sk = "i" + std::to_string(i);
    std::vector<std::string> want{v[sk].value};
    if (sk == "i3") want = {"unseen", v[sk].value};
    SiblingSet local;
    ASSERT_TRUE(replica_->Read(Key(sk), &local).ok());
    EXPECT_EQ(values(local), want) << sk << " here";
    EXPECT_EQ(values(Fake(others_[0]).Stored(Key(sk))), want) << sk << " on " << others_[0];
    EXPECT_EQ(values(late.Stored(Key(sk))), want) << sk << " on " << others_[1];
  }
  EXPECT_EQ(Fake(others_[0]).applies, 3) << "i4, i2, then i3's unseen sibling";
  EXPECT_EQ(late.applies, 1) << "only i1";
}

// Overwrite replaces what this node's replica holds, on every owner; what
// only another owner holds stays as a sibling.
TEST_F(SloppyQuorumTest, OverwriteReplacesWhatTheLocalReplicaHolds) {
  ASSERT_TRUE(coord_->Put(pk_, "a", "one", "", 3).status.ok());
  ASSERT_TRUE(coord_->Put(pk_, "a", "two", "", 3).status.ok());  // no context: siblings
  ReadOutcome before = coord_->Get(pk_, "a", 3);
  ASSERT_TRUE(before.status.ok()) << before.status.ToString();
  ASSERT_EQ(before.values.size(), 2u);

  WriteOutcome w = coord_->Overwrite(pk_, "a", "three", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(coord_->stats().puts, 3u);
  ReadOutcome after = coord_->Get(pk_, "a", 3);
  ASSERT_TRUE(after.status.ok());
  EXPECT_EQ(after.values, std::vector<std::string>{"three"});
  for (const auto& id : others_) EXPECT_EQ(Fake(id).Stored(Key("a")).LiveValues(), std::vector<std::string>{"three"});

  Version elsewhere;
  elsewhere.dot = {"n2/9", 1};
  elsewhere.value = "unseen here";
  Fake(others_[0]).Store(Key("a"), elsewhere);
  ASSERT_TRUE(coord_->Overwrite(pk_, "a", "four", 3).status.ok());
  ReadOutcome last = coord_->Get(pk_, "a", 3);
  std::vector<std::string> values = last.values;
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<std::string>{"four", "unseen here"}));

  // The same checks as a put: value size and quorum.
  Make();
  EXPECT_TRUE(coord_->Overwrite(pk_, "a", "v", 4).status.Is(Status::Code::kInvalidArgument));
  EXPECT_TRUE(coord_->Overwrite("", "a", "v", 0).status.Is(Status::Code::kInvalidArgument));
}

// A replica far behind on this node's reads is not asked when the others
// suffice, and still is when it is needed for R.
TEST_F(SloppyQuorumTest, AReplicaFarBehindOnReadsIsAskedOnlyWhenNeeded) {
  Version v;
  v.dot = {"nx/1", 1};
  v.value = "one";
  ASSERT_TRUE(replica_->Apply(Key("a"), v).ok());
  for (const auto& id : others_) Fake(id).Store(Key("a"), v);
  FakeEndpoint& behind = Fake(others_[1]);
  behind.reads_in_flight = 32;  // the default max_spare_reads_in_flight

  ReadOutcome r2 = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r2.status.ok()) << r2.status.ToString();
  EXPECT_EQ(r2.values, std::vector<std::string>{"one"});
  EXPECT_EQ(behind.reads, 0) << "asked although R = 2 was met without it";
  EXPECT_EQ(Fake(others_[0]).reads, 1);
  EXPECT_EQ(coord_->stats().spare_reads_skipped, 1u);

  ReadOutcome r3 = coord_->Get(pk_, "a", 3);
  ASSERT_TRUE(r3.status.ok()) << r3.status.ToString();
  EXPECT_EQ(behind.reads, 1) << "R = 3 needs it";
  EXPECT_EQ(r3.quorum.got, 3);

  behind.reads_in_flight = 31;  // below the limit: asked again
  ASSERT_TRUE(coord_->Get(pk_, "a", 2).status.ok());
  EXPECT_EQ(behind.reads, 2);
  EXPECT_EQ(coord_->stats().spare_reads_skipped, 1u);
}

TEST_F(SloppyQuorumTest, CountersFollowOutcomes) {
  ASSERT_TRUE(coord_->Put(pk_, "a", "v", "", 0).status.ok());
  ASSERT_TRUE(coord_->Get(pk_, "a", 0).status.ok());
  Fake(others_[0]).alive = false;
  Fake(others_[1]).alive = false;
  for (const auto& f : fallbacks_) Fake(f).alive = false;
  EXPECT_EQ(coord_->Put(pk_, "a", "v", "", 0).status.code(), Status::Code::kUnavailable);
  EXPECT_EQ(coord_->Put("", "a", "v", "", 0).status.code(), Status::Code::kInvalidArgument);
  CoordinatorStats s = coord_->stats();
  EXPECT_EQ(s.puts, 3u);
  EXPECT_EQ(s.gets, 1u);
  EXPECT_EQ(s.unavailable, 1u);
  EXPECT_EQ(s.invalid, 1u);
}


// --read-fanout quorum: a get asks R replicas, this node's own first, and
// the others only when one asked fails or is slow.
class QuorumReadTest : public SloppyQuorumTest {
 protected:
  void SetUp() override {
    SloppyQuorumTest::SetUp();
    read_fanout_ = ReadFanout::kQuorum;
    Make();
    v_.dot = {"nx/1", 1};
    v_.value = "one";
    EXPECT_TRUE(replica_->Apply(Key("a"), v_).ok());
    for (const auto& id : others_) Fake(id).Store(Key("a"), v_);
  }
  Version v_;
};

TEST_F(QuorumReadTest, AsksOnlyRReplicasWithItsOwnFirst) {
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"one"});
  EXPECT_EQ(Fake(others_[0]).reads, 1);
  EXPECT_EQ(Fake(others_[1]).reads, 0) << "R = 2 were asked: this node and the first other owner";
  EXPECT_EQ(coord_->stats().speculative_reads, 0u);
  // R = 3 asks every owner at once.
  ASSERT_TRUE(coord_->Get(pk_, "a", 3).status.ok());
  EXPECT_EQ(Fake(others_[1]).reads, 1);
  EXPECT_EQ(coord_->stats().speculative_reads, 0u);
}

TEST_F(QuorumReadTest, AFailedReplicaMakesItAskTheOthers) {
  Fake(others_[0]).read_error = Status::IOError("disk on fire");
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"one"});
  EXPECT_EQ(Fake(others_[1]).reads, 1);
  EXPECT_EQ(coord_->stats().speculative_reads, 1u);
}

TEST_F(QuorumReadTest, ASlowReplicaMakesItAskTheOthersAfterTheSpeculationDelay) {
  Make(/*sloppy=*/true, &threads_, /*handoff=*/300ms, /*timeout=*/20s);
  Fake(others_[0]).gate.Hold();  // answers only when released
  ReadOutcome r;
  std::thread reader([&] { r = coord_->Get(pk_, "a", 2); });
  ASSERT_TRUE(clock_.AwaitWaits(1));
  clock_.Advance(9ms);
  const uint64_t waits = clock_.waits();
  ASSERT_TRUE(clock_.AwaitWaits(waits + 1)) << "the read ended before the speculation delay";
  EXPECT_EQ(Fake(others_[1]).reads, 0) << "asked before the speculation delay";
  clock_.Advance(1ms);
  reader.join();
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"one"});
  EXPECT_EQ(Fake(others_[1]).reads, 1);
  EXPECT_EQ(coord_->stats().speculative_reads, 1u);
  EXPECT_FALSE(Fake(others_[0]).gate.gave_up()) << "the read waited for the slow replica";
}

TEST_F(QuorumReadTest, TooFewAnswersStillFailTheRead) {
  Fake(others_[0]).read_error = Status::IOError("disk on fire");
  Fake(others_[1]).read_error = Status::IOError("disk on fire too");
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  EXPECT_TRUE(r.status.Is(Status::Code::kQuorumFailed)) << r.status.ToString();
  EXPECT_EQ(r.quorum.got, 1);
}

TEST_F(QuorumReadTest, RepairsTheReplicasItAsked) {
  Version newer;
  newer.dot = {"nx/1", 2};
  newer.past.Add(v_.dot);
  newer.value = "two";
  ASSERT_TRUE(replica_->Apply(Key("a"), newer).ok());  // others_ hold only v_
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"two"});
  EXPECT_EQ(Fake(others_[0]).Stored(Key("a")).versions(), std::vector<Version>{newer});
  EXPECT_EQ(Fake(others_[1]).applies, 0) << "a replica not asked is left to anti-entropy";
}

// Endpoints that take calls without holding a thread (ApplyAsync,
// ReadAsync: a peer's coalesced calls) serve puts and gets; no executor
// task is needed for them.
class AsyncPeerTest : public SloppyQuorumTest {
 protected:
  void SetUp() override {
    SloppyQuorumTest::SetUp();
    for (auto& f : fakes_) f->async = true;
    v_.dot = {"nx/1", 1};
    v_.value = "one";
    EXPECT_TRUE(replica_->Apply(Key("a"), v_).ok());
  }
  void TearDown() override {
    for (auto& f : fakes_) {
      f->ReleaseAsync();
      f->JoinAsync();
    }
    SloppyQuorumTest::TearDown();
  }
  Version v_;
};

TEST_F(AsyncPeerTest, PutsAndGetsGoThroughCallsThatReportBack) {
  inline_.reject = true;  // a task on the executor would fail the request
  WriteOutcome w = coord_->Put(pk_, "b", "two", "", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.acked_by.size(), 3u);
  for (const auto& id : others_) {
    EXPECT_EQ(Fake(id).async_applies, 1) << id;
    EXPECT_EQ(Fake(id).Stored(Key("b")).LiveValues(), std::vector<std::string>{"two"}) << id;
  }
  ReadOutcome r = coord_->Get(pk_, "b", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"two"});
  EXPECT_EQ(r.quorum.got, 3);
  for (const auto& id : others_) EXPECT_EQ(Fake(id).async_reads, 1) << id;
}

TEST_F(AsyncPeerTest, FailuresReportedBackCountAgainstTheQuorum) {
  inline_.reject = true;
  Fake(others_[0]).Store(Key("a"), v_);
  Fake(others_[0]).async_held = true;  // answers only after the failure decided the read
  Fake(others_[1]).read_error = Status::IOError("disk on fire");
  ReadOutcome r = coord_->Get(pk_, "a", 3);
  EXPECT_TRUE(r.status.Is(Status::Code::kQuorumFailed)) << r.status.ToString();
  EXPECT_THAT(r.status.message(), ::testing::HasSubstr("disk on fire"));
  EXPECT_EQ(r.quorum.got, 1) << "decided once R=3 could no longer be met";
  Fake(others_[0]).async_held = false;
  Fake(others_[0]).ReleaseAsync();
  Fake(others_[1]).apply_error = Status::NoSpace("disk full");
  Fake(others_[0]).apply_error = Status::NoSpace("disk full");
  WriteOutcome w = coord_->Put(pk_, "c", "x", "", 2);
  EXPECT_FALSE(w.status.ok()) << "only the local replica could apply";
}

TEST_F(AsyncPeerTest, ALateReplyStillFeedsReadRepair) {
  Make(/*sloppy=*/true, &threads_);
  Fake(others_[0]).Store(Key("a"), v_);
  FakeEndpoint& stale = Fake(others_[1]);  // lacks v_, and answers late
  stale.async_held = true;
  ReadOutcome r = coord_->Get(pk_, "a", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"one"});
  EXPECT_EQ(stale.applies, 0) << "nothing to repair before the late reply arrives";
  stale.async_held = false;  // the repair itself is answered at once
  stale.ReleaseAsync();
  stale.JoinAsync();  // the late reply, and the repair it triggered
  threads_.JoinAll();
  EXPECT_EQ(stale.Stored(Key("a")).versions(), std::vector<Version>{v_});
  EXPECT_EQ(stale.applies, 1);
  EXPECT_EQ(stale.async_applies, 1) << "the repair rode the peer's coalesced writes";
}

// A repair to a peer goes with its coalesced writes (ApplyAsync), not as a
// call of its own holding a fan-out thread until the peer commits.
TEST_F(AsyncPeerTest, ReadRepairRidesThePeersCoalescedWrites) {
  inline_.reject = true;  // a repair handed to the executor would be dropped
  Fake(others_[0]).Store(Key("a"), v_);
  FakeEndpoint& stale = Fake(others_[1]);  // lacks v_
  ReadOutcome r = coord_->Get(pk_, "a", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  // The last reply triggers the repair on its own thread: join the replies,
  // then the repair.
  for (auto& f : fakes_) f->JoinAsync();
  stale.JoinAsync();
  EXPECT_EQ(stale.async_applies, 1);
  EXPECT_EQ(stale.Stored(Key("a")).versions(), std::vector<Version>{v_});
  EXPECT_EQ(Fake(others_[0]).async_applies, 0) << "an up-to-date replica is left alone";
  EXPECT_EQ(coord_->stats().read_repairs, 1u);
}

TEST_F(AsyncPeerTest, AnEndpointThatCannotTakeMoreFallsBackToTheExecutor) {
  for (auto& f : fakes_) f->async_refuse = true;
  for (const auto& id : others_) Fake(id).Store(Key("a"), v_);
  ReadOutcome r = coord_->Get(pk_, "a", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.quorum.got, 3);
  WriteOutcome w = coord_->Put(pk_, "d", "y", "", 3);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  for (const auto& id : others_) {
    EXPECT_EQ(Fake(id).async_reads, 0) << id;
    EXPECT_EQ(Fake(id).reads, 1) << id;
    EXPECT_EQ(Fake(id).applies, 1) << id;
  }
  // Refused by the executor too: the request fails instead of hanging.
  inline_.reject = true;
  EXPECT_FALSE(coord_->Get(pk_, "a", 3).status.ok());
}

}  // namespace
}  // namespace monju
