// Coordinator (coordinator/coordinator.h): input validation, and the quorum
// logic against fake replica endpoints plus a real local Replica in a temp dir.
//
// Most tests run the fan-out on an inline executor (calls run one after the
// other inside Submit) so counts are deterministic; the tests about
// parallelism, early answers and deadlines use a thread-per-task executor.
#include "test_support.h"
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <absl/synchronization/notification.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "clock/codec.h"
#include "common/recent_histogram.h"
#include "coordinator_fakes.h"
#include "coordinator.h"
#include "membership.h"
#include "replica.h"

namespace monju {
namespace {

using namespace monju::test_support;

using namespace std::chrono_literals;


// ---------------------------------------------------------------------------
// Static validation

TEST(ValidateKeyTest, Limits) {
  EXPECT_TRUE(Coordinator::ValidateKey("p", "").ok());
  EXPECT_TRUE(Coordinator::ValidateKey(std::string(1024, 'p'), "").ok());
  EXPECT_TRUE(Coordinator::ValidateKey("p", std::string(1024, 's')).ok());
  EXPECT_TRUE(Coordinator::ValidateKey(std::string(1024, '\0'), std::string(1024, '\xff')).ok());

  Status empty = Coordinator::ValidateKey("", "sk");
  EXPECT_EQ(empty.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(empty.message().find("pk"), std::string::npos) << empty.message();
  Status long_pk = Coordinator::ValidateKey(std::string(1025, 'p'), "");
  EXPECT_EQ(long_pk.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(long_pk.message().find("pk"), std::string::npos) << long_pk.message();
  Status long_sk = Coordinator::ValidateKey("p", std::string(1025, 's'));
  EXPECT_EQ(long_sk.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(long_sk.message().find("sk"), std::string::npos) << long_sk.message();
}

// ---------------------------------------------------------------------------
// Quorum logic: a 3-node cluster (n1 = this node, n2, n3 fakes) with N = 3,
// so every key lives on all three and n1 always coordinates.

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StorageOptions so;
    so.path = dir_.path() + "/data";
    so.map_size_bytes = 64ull << 20;
    auto store = DataStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto r = Replica::Open("n1", std::move(store.value()), /*seed=*/0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    replica_ = std::move(r.value());
    local_ep_ = std::make_unique<LocalEndpoint>(replica_.get());

    std::vector<PeerAddress> peers = {{"n1", "127.0.0.1", 7001}, {"n2", "127.0.0.1", 7002}, {"n3", "127.0.0.1", 7003}};
    auto view = ClusterView::Create(peers, 8, 16, 3);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    membership_ = std::make_unique<Membership>(view.value());
    dir_map_.by_id = {{"n1", local_ep_.get()}, {"n2", &n2_}, {"n3", &n3_}};
    Make();
  }
  void TearDown() override {
    n2_.gate.Release();
    n3_.gate.Release();
    threads_.JoinAll();
  }

  void Make(Executor* executor = nullptr, std::chrono::milliseconds timeout = 10s) {
    CoordinatorOptions o;
    o.self_id = "n1";
    o.default_r = 2;
    o.default_w = 2;
    o.request_timeout = timeout;
    o.max_value_bytes = 100;
    coord_ = std::make_unique<Coordinator>(o, membership_.get(), replica_.get(), &dir_map_,
                                           executor ? executor : &inline_, &steady_, &clock_);
  }

  ItemKey Key(const std::string& pk, const std::string& sk) {
    return {membership_->Current()->ring().PartitionOf(pk), pk, sk};
  }
  SiblingSet Local(const ItemKey& key) {
    SiblingSet s;
    EXPECT_TRUE(replica_->Read(key, &s).ok());
    return s;
  }
  static CausalContext Decode(const std::string& bytes) {
    auto c = DecodeContext(bytes);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c.value() : CausalContext();
  }
  static Version V(const std::string& actor, uint64_t counter, CausalContext past, std::string value,
                   bool tombstone = false) {
    Version v;
    v.dot = {actor, counter};
    v.past = std::move(past);
    v.tombstone = tombstone;
    if (!tombstone) v.value = std::move(value);
    return v;
  }
  int RemoteCalls() { return n2_.applies + n2_.reads + n2_.scans + n3_.applies + n3_.reads + n3_.scans; }

  TempDir dir_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<LocalEndpoint> local_ep_;
  FakeEndpoint n2_, n3_;
  FakeDirectory dir_map_;
  std::unique_ptr<Membership> membership_;
  test_support::FakeWallClock clock_;
  test_support::FakeClock steady_;
  InlineExecutor inline_;
  ThreadExecutor threads_;
  std::unique_ptr<Coordinator> coord_;
};

TEST_F(CoordinatorTest, ValidateQuorumRange) {
  EXPECT_TRUE(coord_->ValidateQuorum(0, "w", 3).ok());
  EXPECT_TRUE(coord_->ValidateQuorum(3, "w", 3).ok());
  Status over = coord_->ValidateQuorum(4, "w", 3);
  EXPECT_EQ(over.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(over.message().find("w"), std::string::npos);
  EXPECT_EQ(coord_->ValidateQuorum(-1, "r", 3).code(), Status::Code::kInvalidArgument);
}

TEST_F(CoordinatorTest, BadInputIsRejectedBeforeAnyCall) {
  EXPECT_EQ(coord_->Put("", "sk", "v", "", 0).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Put(std::string(1025, 'p'), "sk", "v", "", 0).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Put("pk", std::string(1025, 's'), "v", "", 0).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Put("pk", "sk", "v", "", 4).status.code(), Status::Code::kInvalidArgument);  // w > N
  EXPECT_EQ(coord_->Put("pk", "sk", "v", "", -1).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Put("pk", "sk", "v", "\x09garbage", 0).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Put("pk", "sk", "v", std::string(kMaxContextBytes + 1, '\x01'), 0).status.code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Remove("", "sk", "", 0).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Get("", "sk", 0).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(coord_->Get("pk", "sk", 4).status.code(), Status::Code::kInvalidArgument);
  QueryRequest q;
  q.pk = "pk";
  q.limit = kMaxQueryLimit + 1;
  EXPECT_EQ(coord_->Query(q).status.code(), Status::Code::kInvalidArgument);
  q.limit = -1;
  EXPECT_EQ(coord_->Query(q).status.code(), Status::Code::kInvalidArgument);
  q.limit = 0;
  q.pk = "";
  EXPECT_EQ(coord_->Query(q).status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RemoteCalls(), 0);
  EXPECT_TRUE(Local(Key("pk", "sk")).empty());
}

TEST_F(CoordinatorTest, ValueOverLimitIsInvalidArgument) {
  WriteOutcome big = coord_->Put("pk", "sk", std::string(101, 'v'), "", 0);
  EXPECT_EQ(big.status.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(big.status.message().find("101"), std::string::npos) << big.status.message();
  EXPECT_EQ(RemoteCalls(), 0);
  EXPECT_TRUE(Local(Key("pk", "sk")).empty());
  EXPECT_TRUE(coord_->Put("pk", "sk", std::string(100, 'v'), "", 0).status.ok());  // exactly the limit
}

TEST_F(CoordinatorTest, WriteReachesAllReplicasAndReturnsItsContext) {
  WriteOutcome w = coord_->Put("pk", "sk", "hello", "", 0);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.quorum.needed, 2);
  EXPECT_GE(w.quorum.got, 2);
  const ItemKey key = Key("pk", "sk");
  ASSERT_EQ(Local(key).size(), 1u);
  const Version written = Local(key).versions()[0];
  EXPECT_EQ(written.dot.actor, replica_->actor());
  EXPECT_EQ(written.value, "hello");
  EXPECT_EQ(n2_.Stored(key), Local(key));
  EXPECT_EQ(n3_.Stored(key), Local(key));
  EXPECT_EQ(Decode(w.context), written.FullContext());  // covers exactly the version written

  ReadOutcome r = coord_->Get("pk", "sk", 0);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.found);
  EXPECT_EQ(r.values, (std::vector<std::string>{"hello"}));
  EXPECT_EQ(r.quorum.needed, 2);
  EXPECT_EQ(Decode(r.context), written.FullContext());
}

TEST_F(CoordinatorTest, WriteWithContextReplacesBlindWritesMakeSiblings) {
  WriteOutcome first = coord_->Put("pk", "sk", "v1", "", 0);
  ASSERT_TRUE(first.status.ok());
  WriteOutcome second = coord_->Put("pk", "sk", "v2", first.context, 0);
  ASSERT_TRUE(second.status.ok());
  ReadOutcome r = coord_->Get("pk", "sk", 3);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.values, (std::vector<std::string>{"v2"}));

  ASSERT_TRUE(coord_->Put("pk", "sk", "blind", "", 0).status.ok());  // no context: concurrent
  r = coord_->Get("pk", "sk", 3);
  ASSERT_TRUE(r.status.ok());
  std::vector<std::string> values = r.values;
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<std::string>{"blind", "v2"}));

  // Writing with the read's context resolves the siblings.
  ASSERT_TRUE(coord_->Put("pk", "sk", "merged", r.context, 0).status.ok());
  r = coord_->Get("pk", "sk", 3);
  EXPECT_EQ(r.values, (std::vector<std::string>{"merged"}));
}

TEST_F(CoordinatorTest, TwoFailingReplicasGiveQuorumFailed) {
  n2_.apply_error = Status::IOError("disk on fire");
  n3_.apply_error = Status::NoSpace("full");
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 0);
  EXPECT_EQ(w.status.code(), Status::Code::kQuorumFailed) << w.status.ToString();
  EXPECT_EQ(w.quorum.needed, 2);
  EXPECT_EQ(w.quorum.got, 1);  // the local replica only
  EXPECT_TRUE(w.context.empty());
  EXPECT_TRUE(w.status.message().find("disk on fire") != std::string::npos ||
              w.status.message().find("full") != std::string::npos)
      << w.status.message();
  EXPECT_EQ(n2_.applies, 1);
  EXPECT_EQ(n3_.applies, 1);

  // One failure is fine with W = 2, not with W = 3.
  n3_.apply_error = Status::OK();
  EXPECT_TRUE(coord_->Put("pk", "sk2", "v", "", 2).status.ok());
  WriteOutcome all = coord_->Put("pk", "sk3", "v", "", 3);
  EXPECT_EQ(all.status.code(), Status::Code::kQuorumFailed);
  EXPECT_EQ(all.quorum.needed, 3);
  EXPECT_EQ(all.quorum.got, 2);
}

TEST_F(CoordinatorTest, DeadReplicasGiveUnavailableWithoutCalls) {
  n2_.alive = false;
  n3_.alive = false;
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 0);
  EXPECT_EQ(w.status.code(), Status::Code::kUnavailable) << w.status.ToString();
  EXPECT_EQ(w.quorum.needed, 2);
  EXPECT_EQ(w.quorum.got, 1);
  EXPECT_EQ(RemoteCalls(), 0);
  EXPECT_TRUE(Local(Key("pk", "sk")).empty());  // nothing written anywhere

  ReadOutcome r = coord_->Get("pk", "sk", 0);
  EXPECT_EQ(r.status.code(), Status::Code::kUnavailable);
  EXPECT_EQ(r.quorum.needed, 2);
  EXPECT_EQ(r.quorum.got, 1);
  QueryRequest q;
  q.pk = "pk";
  EXPECT_EQ(coord_->Query(q).status.code(), Status::Code::kUnavailable);
  EXPECT_EQ(RemoteCalls(), 0);

  // W = 1 and R = 1 need only this node.
  EXPECT_TRUE(coord_->Put("pk", "sk", "solo", "", 1).status.ok());
  ReadOutcome solo = coord_->Get("pk", "sk", 1);
  ASSERT_TRUE(solo.status.ok());
  EXPECT_EQ(solo.values, (std::vector<std::string>{"solo"}));
  EXPECT_EQ(RemoteCalls(), 0);
}

TEST_F(CoordinatorTest, OneDeadReplicaIsSkippedNotCalled) {
  n3_.alive = false;
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 0);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.quorum.got, 2);
  EXPECT_EQ(n2_.applies, 1);
  EXPECT_EQ(n3_.applies, 0);
  WriteOutcome all = coord_->Put("pk", "sk", "v", "", 3);
  EXPECT_EQ(all.status.code(), Status::Code::kUnavailable);
  EXPECT_EQ(all.quorum.got, 2);
  EXPECT_EQ(all.quorum.needed, 3);
}

TEST_F(CoordinatorTest, RejectedFanOutCountsAsFailure) {
  inline_.reject = true;
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 0);
  EXPECT_EQ(w.status.code(), Status::Code::kQuorumFailed) << w.status.ToString();
  EXPECT_EQ(w.quorum.got, 0);
  ReadOutcome r = coord_->Get("pk", "sk", 0);
  EXPECT_EQ(r.status.code(), Status::Code::kQuorumFailed) << r.status.ToString();
}

// The error says why the fan-out was refused: a stopping node is not an
// overloaded one.
TEST_F(CoordinatorTest, RejectedFanOutSaysWhy) {
  inline_.reject = true;
  WriteOutcome busy = coord_->Put("pk", "sk", "v", "", 0);
  EXPECT_THAT(busy.status.message(), ::testing::HasSubstr("overloaded")) << busy.status.ToString();
  inline_.reason = "node stopping";
  WriteOutcome stopping = coord_->Put("pk", "sk", "v", "", 0);
  EXPECT_THAT(stopping.status.message(), ::testing::HasSubstr("node stopping")) << stopping.status.ToString();
  EXPECT_THAT(stopping.status.message(), ::testing::Not(::testing::HasSubstr("overloaded")));
  ReadOutcome r = coord_->Get("pk", "sk", 0);
  EXPECT_THAT(r.status.message(), ::testing::HasSubstr("node stopping")) << r.status.ToString();
}

TEST_F(CoordinatorTest, GetMergesSiblingsFromReplies) {
  const ItemKey key = Key("user:7", "profile");
  Version a = V("n2", 1, {}, "from-n2");
  Version b = V("n3", 1, {}, "from-n3");
  n2_.Store(key, a);
  n3_.Store(key, b);
  ReadOutcome r = coord_->Get("user:7", "profile", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.found);
  EXPECT_EQ(r.values, (std::vector<std::string>{"from-n2", "from-n3"}));
  CausalContext ctx = Decode(r.context);
  EXPECT_TRUE(ctx.Contains(a.dot));
  EXPECT_TRUE(ctx.Contains(b.dot));
  EXPECT_EQ(r.quorum.got, 3);

  // A newer version on one replica hides an older one elsewhere.
  Version newer = V("n3", 2, a.FullContext(), "newer");
  n3_.Store(key, newer);
  r = coord_->Get("user:7", "profile", 3);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.values, (std::vector<std::string>{"from-n3", "newer"}));
}

TEST_F(CoordinatorTest, TombstoneOnlyReadsAsNotFoundWithContext) {
  const ItemKey key = Key("pk", "gone");
  Version v = V("n2", 1, {}, "old");
  Version del = V("n3", 1, v.FullContext(), "", /*tombstone=*/true);
  ASSERT_TRUE(replica_->Apply(key, v).ok());
  n2_.Store(key, v);
  n3_.Store(key, del);
  ReadOutcome r = coord_->Get("pk", "gone", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_FALSE(r.found);
  EXPECT_TRUE(r.values.empty());
  ASSERT_FALSE(r.context.empty());
  CausalContext ctx = Decode(r.context);
  EXPECT_TRUE(ctx.Contains(del.dot));
  EXPECT_TRUE(ctx.Contains(v.dot));

  // Absent everywhere: not found, empty context.
  ReadOutcome none = coord_->Get("pk", "never", 3);
  ASSERT_TRUE(none.status.ok());
  EXPECT_FALSE(none.found);
  EXPECT_TRUE(none.context.empty());
}

TEST_F(CoordinatorTest, RemoveWritesATombstone) {
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 3);
  ASSERT_TRUE(w.status.ok());
  WriteOutcome del = coord_->Remove("pk", "sk", w.context, 3);
  ASSERT_TRUE(del.status.ok()) << del.status.ToString();
  const ItemKey key = Key("pk", "sk");
  SiblingSet local = Local(key);
  ASSERT_EQ(local.size(), 1u);
  EXPECT_TRUE(local.versions()[0].tombstone);
  EXPECT_EQ(n2_.Stored(key), local);
  ReadOutcome r = coord_->Get("pk", "sk", 3);
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.found);
  EXPECT_FALSE(r.context.empty());
}

TEST_F(CoordinatorTest, ReadQuorumFailure) {
  n2_.read_error = Status::IOError("bad disk");
  ReadOutcome r = coord_->Get("pk", "sk", 3);
  EXPECT_EQ(r.status.code(), Status::Code::kQuorumFailed) << r.status.ToString();
  EXPECT_EQ(r.quorum.needed, 3);
  EXPECT_EQ(r.quorum.got, 2);
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(coord_->Get("pk", "sk", 2).status.ok());
}

TEST_F(CoordinatorTest, NonOwnerRefusesWrites) {
  // A 4-node view with N = 1: most partitions are not on n1.
  std::vector<PeerAddress> peers = {
      {"n1", "127.0.0.1", 7001}, {"n2", "127.0.0.1", 7002}, {"n3", "127.0.0.1", 7003}, {"n4", "127.0.0.1", 7004}};
  auto view = ClusterView::Create(peers, 8, 16, 1);
  ASSERT_TRUE(view.ok());
  membership_->Replace(view.value());
  FakeEndpoint n4;
  dir_map_.by_id["n4"] = &n4;
  std::string owned, foreign;
  for (int i = 0; i < 1000 && (owned.empty() || foreign.empty()); ++i) {
    std::string pk = "k" + std::to_string(i);
    (coord_->IsOwner(pk) ? owned : foreign) = pk;
  }
  ASSERT_FALSE(owned.empty());
  ASSERT_FALSE(foreign.empty());
  const auto& ring = view.value()->ring();
  EXPECT_EQ(ring.nodes()[ring.PreferenceList(ring.PartitionOf(owned))[0]], "n1");
  EXPECT_NE(ring.nodes()[ring.PreferenceList(ring.PartitionOf(foreign))[0]], "n1");
  EXPECT_EQ(coord_->Put(foreign, "sk", "v", "", 0).status.code(), Status::Code::kNotOwner);
  EXPECT_EQ(coord_->Remove(foreign, "sk", "", 0).status.code(), Status::Code::kNotOwner);
  EXPECT_EQ(RemoteCalls() + n4.applies, 0);
  WriteOutcome ok = coord_->Put(owned, "sk", "v", "", 0);  // default W 2 is cut to N = 1
  EXPECT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.quorum.needed, 1);
  dir_map_.by_id.erase("n4");
}

TEST_F(CoordinatorTest, QueryMergesHidesTombstonesAndPages) {
  const std::string pk = "q";
  auto put_all = [&](const std::string& sk, const Version& v) {
    ASSERT_TRUE(replica_->Apply(Key(pk, sk), v).ok());
    n2_.Store(Key(pk, sk), v);
    n3_.Store(Key(pk, sk), v);
  };
  put_all("a", V("x", 1, {}, "va"));
  put_all("c", V("x", 3, {}, "vc"));
  Version b = V("x", 2, {}, "vb");
  put_all("b", b);
  n3_.Store(Key(pk, "b"), V("y", 1, b.FullContext(), "", true));  // deleted on n3 only
  n2_.Store(Key(pk, "d"), V("x", 4, {}, "vd"));                   // only n2 has d so far

  QueryRequest q;
  q.pk = pk;
  q.r = 3;
  QueryOutcome all = coord_->Query(q);
  ASSERT_TRUE(all.status.ok()) << all.status.ToString();
  std::vector<std::string> sks;
  for (const auto& it : all.items) sks.push_back(it.sk);
  EXPECT_EQ(sks, (std::vector<std::string>{"a", "c", "d"}));
  EXPECT_TRUE(all.next_start_sk.empty());
  ASSERT_EQ(all.items.size(), 3u);
  EXPECT_EQ(all.items[1].values, (std::vector<std::string>{"vc"}));
  EXPECT_TRUE(Decode(all.items[1].context).Contains({"x", 3}));

  q.limit = 2;
  QueryOutcome page1 = coord_->Query(q);
  ASSERT_TRUE(page1.status.ok());
  ASSERT_EQ(page1.items.size(), 2u);
  EXPECT_EQ(page1.items[0].sk, "a");
  EXPECT_EQ(page1.items[1].sk, "c");
  ASSERT_EQ(page1.next_start_sk, "d");
  q.start_sk = page1.next_start_sk;
  QueryOutcome page2 = coord_->Query(q);
  ASSERT_TRUE(page2.status.ok());
  ASSERT_EQ(page2.items.size(), 1u);
  EXPECT_EQ(page2.items[0].sk, "d");
  EXPECT_TRUE(page2.next_start_sk.empty());

  QueryRequest desc;
  desc.pk = pk;
  desc.r = 3;
  desc.ascending = false;
  QueryOutcome down = coord_->Query(desc);
  ASSERT_TRUE(down.status.ok());
  sks.clear();
  for (const auto& it : down.items) sks.push_back(it.sk);
  EXPECT_EQ(sks, (std::vector<std::string>{"d", "c", "a"}));
}

// ---------------------------------------------------------------------------
// Concurrency: real threads; time is the fake clock's.

TEST_F(CoordinatorTest, FanOutIsParallel) {
  Make(&threads_);
  Rendezvous both(2);  // n2's and n3's Apply must be in flight together
  n2_.rendezvous = &both;
  n3_.rendezvous = &both;
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 3);
  EXPECT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.quorum.got, 3);
  threads_.JoinAll();
}

TEST_F(CoordinatorTest, AnswersAsSoonAsWAcknowledge) {
  Make(&threads_);
  n3_.gate.Hold();  // n3 answers only after the test lets it
  WriteOutcome w = coord_->Put("pk", "sk", "v", "", 2);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.quorum.got, 2);
  EXPECT_TRUE(n3_.Stored(Key("pk", "sk")).empty());  // still held
  n3_.gate.Release();
  threads_.JoinAll();
  EXPECT_FALSE(n3_.gate.gave_up()) << "the coordinator waited for the held call";
  EXPECT_EQ(n3_.Stored(Key("pk", "sk")), Local(Key("pk", "sk")));  // it still lands

  n3_.gate.Hold();
  ReadOutcome r = coord_->Get("pk", "sk", 2);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.values, (std::vector<std::string>{"v"}));
  n3_.gate.Release();
  threads_.JoinAll();
  EXPECT_FALSE(n3_.gate.gave_up());
}

// Each request's time, from arrival to outcome, goes to its histogram on the
// coordinator's (injected) clock: a write held 250 ms of fake time by a slow
// replica records exactly that; a read with no time passing records 0.
TEST_F(CoordinatorTest, RequestLatencyIsMeasuredOnTheInjectedClock) {
  Make(&threads_, 1000ms);
  n3_.gate.Hold();
  WriteOutcome w;
  std::thread writer([&] { w = coord_->Put("pk", "sk", "v", "", 3); });
  ASSERT_TRUE(steady_.AwaitWaits(1));
  steady_.Advance(250ms);
  n3_.gate.Release();
  writer.join();
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  ReadOutcome r = coord_->Get("pk", "sk", 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  const CoordinatorStats s = coord_->stats();
  EXPECT_EQ(s.put_us.count(), 1u);
  EXPECT_EQ(s.put_us.max(), 250000u);
  EXPECT_EQ(s.get_us.count(), 1u);
  EXPECT_EQ(s.get_us.max(), 0u);
  EXPECT_EQ(s.remove_us.count(), 0u);
  EXPECT_EQ(s.recent_put_us.count(), 1u);
  EXPECT_EQ(s.recent_put_us.max(), 250000u);
  EXPECT_EQ(s.recent_get_us.count(), 1u);
  // Minutes later the recent window is empty; the totals stay.
  steady_.Advance(3 * RecentHistogram::kSlot);
  const CoordinatorStats later = coord_->stats();
  EXPECT_EQ(later.recent_put_us.count(), 0u);
  EXPECT_EQ(later.recent_get_us.count(), 0u);
  EXPECT_EQ(later.put_us.count(), 1u);
  threads_.JoinAll();
}

TEST_F(CoordinatorTest, DeadlineGivesTimedOut) {
  Make(&threads_, 1000ms);
  n3_.gate.Hold();
  WriteOutcome w;
  std::thread writer([&] { w = coord_->Put("pk", "sk", "v", "", 3); });
  // Time moves only here: the write is still waiting just before the
  // deadline and gives up exactly at it.
  ASSERT_TRUE(steady_.AwaitWaits(1));
  steady_.Advance(999ms);
  const uint64_t waits = steady_.waits();
  ASSERT_TRUE(steady_.AwaitWaits(waits + 1)) << "the write ended before its deadline";
  steady_.Advance(1ms);
  writer.join();
  EXPECT_EQ(w.status.code(), Status::Code::kTimedOut) << w.status.ToString();
  EXPECT_EQ(w.quorum.needed, 3);
  // n2 acknowledges at once and the local replica after one fsync; a very
  // slow disk could still be syncing at the deadline, hence the range.
  EXPECT_GE(w.quorum.got, 1);
  EXPECT_LE(w.quorum.got, 2);
  EXPECT_EQ(n2_.Stored(Key("pk", "sk")).size(), 1u);
  n3_.gate.Release();
  threads_.JoinAll();
}

// A request whose replica call is stuck past the deadline still calls back
// into the coordinator when that call ends: destruction waits for it, even
// past the deadline and 5 s more, rather than free what the call will use.
TEST_F(CoordinatorTest, DestructionWaitsForARequestStuckPastItsDeadline) {
  Make(&threads_, 1000ms);
  n3_.gate.Hold();
  absl::Notification answered;
  WriteOutcome w;
  coord_->PutAsync("pk", "sk", "v", "", 3, [&](WriteOutcome out) {
    w = std::move(out);
    answered.Notify();
  });
  ASSERT_TRUE(steady_.AwaitWaits(1));
  steady_.Advance(1000ms);
  answered.WaitForNotification();
  EXPECT_EQ(w.status.code(), Status::Code::kTimedOut) << w.status.ToString();

  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    coord_.reset();
    destroyed = true;
  });
  // Well past the deadline and its 5 s of grace, twice over.
  for (int i = 0; i < 3; ++i) {
    const uint64_t waits = steady_.waits();
    ASSERT_TRUE(steady_.AwaitWaits(waits + 1));
    steady_.Advance(6s);
  }
  ASSERT_TRUE(steady_.AwaitWaits(steady_.waits() + 1));
  EXPECT_FALSE(destroyed) << "the coordinator went while n3's call could still answer into it";
  n3_.gate.Release();
  destroyer.join();
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(n3_.gate.gave_up());
  threads_.JoinAll();
}

// The asynchronous API holds no thread: PutAsync() and GetAsync() return
// while a replica they need is still silent, and the outcome comes later,
// on the thread that completes the request (here the replica's).
TEST_F(CoordinatorTest, AsyncRequestsReturnBeforeTheReplicasAnswer) {
  Make(&threads_, 10s);
  n3_.gate.Hold();
  absl::Notification written;
  WriteOutcome w;
  std::thread::id answered_on;
  coord_->PutAsync("pk", "sk", "v", "", 3, [&](WriteOutcome out) {
    w = std::move(out);
    answered_on = std::this_thread::get_id();
    written.Notify();
  });
  EXPECT_FALSE(written.HasBeenNotified()) << "W=3 was met while n3 was silent";
  n3_.gate.Release();
  written.WaitForNotification();
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_NE(answered_on, std::this_thread::get_id());

  n2_.gate.Hold();
  n3_.gate.Hold();
  absl::Notification read;
  ReadOutcome r;
  coord_->GetAsync("pk", "sk", 3, [&](ReadOutcome out) {
    r = std::move(out);
    read.Notify();
  });
  EXPECT_FALSE(read.HasBeenNotified()) << "R=3 was met while n2 and n3 were silent";
  n2_.gate.Release();
  n3_.gate.Release();
  read.WaitForNotification();
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"v"});
  threads_.JoinAll();
}

}  // namespace
}  // namespace monju
