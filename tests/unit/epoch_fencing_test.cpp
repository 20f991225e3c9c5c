// Epoch fencing without a network: the EpochGate's admission and drain rules
// (membership/epoch_gate.h), and the coordinator's behaviour under a pending
// membership change and stale epochs (coordinator/coordinator.h): writes to
// old and new owners with W + pending acknowledgements, reads from the read
// owners only, and re-planning under the newer view after a refusal. n1 is a
// real Replica; the other members are fakes; the clock is fake.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "cluster_metadata.h"
#include "coordinator.h"
#include "coordinator_fakes.h"
#include "epoch_gate.h"
#include "metadata_commands.h"
#include "placement.h"
#include "replica.h"
#include "metadata_fakes.h"
#include "test_support.h"

namespace monju {
namespace {

using namespace monju::test_support;
using namespace std::chrono_literals;
using Type = MetadataCommand::Type;

Member MakeMember(int i, MemberState state) { return test_support::MakeMember(i, state, 8); }

ClusterMetadata Apply(const ClusterMetadata& md, const MetadataCommand& c) { return test_support::ApplyOrFail(md, c); }

// Epochs 1 (n1..n4), 2 (join n5: streaming), 3 (reads moved), 4 (complete).
std::vector<ClusterMetadata> Epochs() {
  MetadataCommand boot;
  boot.type = Type::kBootstrap;
  boot.bootstrap.cluster_id = "fencing";
  boot.bootstrap.partitions = 16;
  boot.bootstrap.replicas = 3;
  boot.bootstrap.voters = 3;
  for (int i = 1; i <= 4; ++i) boot.bootstrap.members.push_back(MakeMember(i, MemberState::kNormal));
  std::vector<ClusterMetadata> out = {Apply({}, boot)};
  MetadataCommand join;
  join.type = Type::kBeginJoin;
  join.expected_epoch = 1;
  join.member = MakeMember(5, MemberState::kJoining);
  out.push_back(Apply(out.back(), join));
  MetadataCommand step;
  step.type = Type::kFinishStreaming;
  step.expected_epoch = 2;
  out.push_back(Apply(out.back(), step));
  step.type = Type::kComplete;
  step.expected_epoch = 3;
  out.push_back(Apply(out.back(), step));
  return out;
}

std::shared_ptr<const ClusterView> View(const ClusterMetadata& md) {
  auto v = BuildView(md);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.value();
}

std::vector<std::string> Ids(const ClusterView& v, const std::vector<uint32_t>& members) {
  std::vector<std::string> out;
  for (uint32_t m : members) out.push_back(v.members()[m].id);
  return out;
}

// ---------------------------------------------------------------------------
// EpochGate

class EpochGateTest : public ::testing::Test {
 protected:
  EpochGateTest() : epochs_(Epochs()), membership_(View(epochs_[0])), gate_(&membership_) {}
  // A partition whose owners change with the join, and one whose do not.
  uint32_t Partition(bool changes) {
    auto before = View(epochs_[0]), during = View(epochs_[1]);
    for (uint32_t p = 0; p < 16; ++p)
      if (before->SamePlacement(*during, p) != changes) return p;
    ADD_FAILURE() << "no such partition";
    return 0;
  }
  std::vector<ClusterMetadata> epochs_;
  Membership membership_;
  EpochGate gate_;
};

TEST_F(EpochGateTest, InstallsOnlyNewerViewsAndRemembersThem) {
  EXPECT_EQ(gate_.epoch(), 1u);
  EXPECT_TRUE(gate_.Install(View(epochs_[2])));
  EXPECT_FALSE(gate_.Install(View(epochs_[1])));  // older: ignored
  EXPECT_FALSE(gate_.Install(View(epochs_[2])));  // same
  EXPECT_EQ(gate_.epoch(), 3u);
  EXPECT_EQ(membership_.Current()->epoch(), 3u);  // published to the data path
  EXPECT_NE(gate_.ViewAt(1), nullptr);
  EXPECT_EQ(gate_.ViewAt(2), nullptr);  // never installed here
}

TEST_F(EpochGateTest, AdmitsWhatThePlannedPlacementStillAllows) {
  const uint32_t changed = Partition(true), same = Partition(false);
  ASSERT_TRUE(gate_.Install(View(epochs_[1])));
  EpochGate::Ticket t;
  EXPECT_TRUE(gate_.Admit(2, changed, &t).ok());  // current epoch
  EXPECT_TRUE(gate_.Admit(0, changed, &t).ok());  // unstamped: never fenced
  EXPECT_TRUE(gate_.Admit(1, same, &t).ok());     // older, same owners
  Status stale = gate_.Admit(1, changed, &t);
  EXPECT_EQ(stale.code(), Status::Code::kStaleEpoch);
  EXPECT_NE(stale.message().find("epoch 1"), std::string::npos) << stale.ToString();
  EXPECT_TRUE(gate_.Admit(9, changed, &t).ok());  // newer: the caller knows better
  // A planned view is compared directly, remembered or not.
  auto planned = View(epochs_[0]);
  EXPECT_EQ(gate_.Admit(*planned, changed, &t).code(), Status::Code::kStaleEpoch);
  EXPECT_TRUE(gate_.Admit(*planned, same, &t).ok());
}

TEST_F(EpochGateTest, AnEpochTooOldToRememberIsRefused) {
  Membership m(View(epochs_[0]));
  EpochGate small(&m, 2);
  ASSERT_TRUE(small.Install(View(epochs_[1])));
  ASSERT_TRUE(small.Install(View(epochs_[2])));
  EpochGate::Ticket t;
  EXPECT_EQ(small.Admit(1, Partition(false), &t).code(), Status::Code::kStaleEpoch);
}

TEST_F(EpochGateTest, DrainWaitsForOperationsAdmittedUnderOlderEpochs) {
  EpochGate::Ticket old_op, new_op;
  ASSERT_TRUE(gate_.Admit(1, 0, &old_op).ok());
  ASSERT_TRUE(gate_.Install(View(epochs_[1])));
  ASSERT_TRUE(gate_.Admit(2, 0, &new_op).ok());
  EXPECT_FALSE(gate_.WaitDrained(2, 0ms));  // the epoch-1 write may still be landing
  EXPECT_TRUE(gate_.WaitDrained(1, 0ms));
  EpochGate::Ticket moved = std::move(old_op);
  EXPECT_FALSE(gate_.WaitDrained(2, 0ms));  // moving a ticket keeps it held
  moved.Release();
  EXPECT_TRUE(gate_.WaitDrained(2, 0ms));   // ops admitted at epoch 2 do not hold it
  EXPECT_FALSE(gate_.WaitDrained(3, 0ms));
  new_op.Release();
  EXPECT_TRUE(gate_.WaitDrained(3, 0ms));
}

// ---------------------------------------------------------------------------
// Coordinator

// A fence over a real gate; Observe() installs the view the test prepared
// (as a catch-up fetch from a peer would). Refuses the local replica once
// when asked to.
class TestFence final : public DataPathFence {
 public:
  explicit TestFence(Membership* m) : gate(m) {}
  uint64_t epoch() const override { return gate.epoch(); }
  void Observe(uint64_t, const std::string&, std::chrono::milliseconds) override {
    if (next) gate.Install(next);
  }
  Status Admit(uint64_t planned, uint32_t partition, EpochGate::Ticket* t) override {
    return gate.Admit(planned, partition, t);
  }
  Status Admit(const ClusterView& planned, uint32_t partition, EpochGate::Ticket* t) override {
    ++local_admits;
    if (refuse_local_once.exchange(false)) {
      Observe(0, "", 0ms);
      return Status::StaleEpoch("test: planned under an old epoch");
    }
    return gate.Admit(planned, partition, t);
  }
  EpochGate gate;
  std::shared_ptr<const ClusterView> next;
  std::atomic<bool> refuse_local_once{false};
  std::atomic<int> local_admits{0};
};

// Refuses its first apply/read as stale after the coordinator's node
// "learned" the newer epoch (what RemoteReplicaEndpoint does).
class StaleOnceEndpoint : public FakeEndpoint {
 public:
  Status Apply(const ItemKey& key, const Version& version) override {
    if (fence && stale_applies > 0) {
      --stale_applies;
      fence->Observe(0, "", 0ms);
      ++applies;
      return Status::StaleEpoch("test: stale");
    }
    return FakeEndpoint::Apply(key, version);
  }
  Status Read(const ItemKey& key, SiblingSet* out) override {
    if (fence && stale_reads > 0) {
      --stale_reads;
      fence->Observe(0, "", 0ms);
      ++reads;
      return Status::StaleEpoch("test: stale");
    }
    return FakeEndpoint::Read(key, out);
  }
  TestFence* fence = nullptr;
  int stale_applies = 0, stale_reads = 0;
};

class FencedCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    epochs_ = Epochs();
    StorageOptions so;
    so.path = dir_.path() + "/data";
    so.map_size_bytes = 64ull << 20;
    auto store = DataStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto r = Replica::Open("n1", std::move(store.value()), 11);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    replica_ = std::move(r.value());
    local_ = std::make_unique<LocalEndpoint>(replica_.get());
    directory_.by_id["n1"] = local_.get();
    for (int i = 2; i <= 5; ++i) {
      fakes_.push_back(std::make_unique<StaleOnceEndpoint>());
      directory_.by_id["n" + std::to_string(i)] = fakes_.back().get();
    }
  }
  void TearDown() override {
    for (auto& f : fakes_) {
      f->gate.Release();
      f->ReleaseAsync();
      f->JoinAsync();  // answers still out would use the fence
    }
  }

  // Serve `epoch` (1-based index into Epochs()).
  void Serve(int epoch, bool sloppy = true) {
    membership_ = std::make_unique<Membership>(View(epochs_[epoch - 1]));
    fence_ = std::make_unique<TestFence>(membership_.get());
    for (auto& f : fakes_) f->fence = fence_.get();
    CoordinatorOptions o;
    o.self_id = "n1";
    o.default_r = 2;
    o.default_w = 2;
    o.request_timeout = 10s;
    o.sloppy_quorum = sloppy;
    coord_ = std::make_unique<Coordinator>(o, membership_.get(), replica_.get(), &directory_, &inline_, &clock_,
                                           &wall_);
    coord_->set_fence(fence_.get());
  }
  StaleOnceEndpoint& Fake(const std::string& id) { return static_cast<StaleOnceEndpoint&>(*directory_.by_id.at(id)); }

  // A pk n1 owns at epoch 1 whose partition n5 gains in the join.
  std::string GainedPk(std::vector<std::string>* old_owners, std::vector<std::string>* during_writes) {
    auto before = View(epochs_[0]), during = View(epochs_[1]);
    for (int k = 0; k < 10000; ++k) {
      std::string pk = "pk-" + std::to_string(k);
      const uint32_t p = before->ring().PartitionOf(pk);
      auto owners = Ids(*before, before->ReadOwners(p));
      auto writes = Ids(*during, during->WriteOwners(p));
      if (std::count(owners.begin(), owners.end(), "n1") && std::count(writes.begin(), writes.end(), "n5")) {
        *old_owners = owners;
        *during_writes = writes;
        return pk;
      }
    }
    ADD_FAILURE() << "no suitable pk";
    return "";
  }

  std::vector<ClusterMetadata> epochs_;
  TempDir dir_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<LocalEndpoint> local_;
  std::vector<std::unique_ptr<StaleOnceEndpoint>> fakes_;
  FakeDirectory directory_;
  InlineExecutor inline_;
  FakeClock clock_;
  FakeWallClock wall_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<TestFence> fence_;
  std::unique_ptr<Coordinator> coord_;
};

TEST_F(FencedCoordinatorTest, DuringAJoinWritesReachOldAndNewOwnersAndReadsStayWithTheOld) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  ASSERT_EQ(writes.size(), 4u);
  Serve(2);
  WriteOutcome w = coord_->Put(pk, "a", "v1", "", 0);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.quorum.needed, 3);  // W = 2, plus one pending owner
  for (const auto& id : writes) {
    if (id == "n1") continue;
    EXPECT_EQ(Fake(id).applies, 1) << id;
  }
  EXPECT_EQ(Fake("n5").applies, 1);
  ReadOutcome r = coord_->Get(pk, "a", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"v1"});
  EXPECT_EQ(Fake("n5").reads, 0);  // still streaming: not a read owner yet
  EXPECT_TRUE(coord_->IsOwner(pk));
}

TEST_F(FencedCoordinatorTest, APendingOwnerCountsOnlyOnTopOfW) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  Serve(2, /*sloppy=*/false);
  std::vector<std::string> others;
  for (const auto& id : old_owners)
    if (id != "n1") others.push_back(id);
  // One old owner failing: n1, the other old owner and n5 make W + 1 = 3.
  Fake(others[0]).apply_error = Status::Unavailable("down");
  ASSERT_TRUE(coord_->Put(pk, "b", "v", "", 0).status.ok());
  // Both other old owners failing: n1 and n5 are only 2 of the 3 needed,
  // although a static cluster would have accepted W = 2 from them.
  Fake(others[1]).apply_error = Status::Unavailable("down");
  WriteOutcome w = coord_->Put(pk, "c", "v", "", 0);
  EXPECT_EQ(w.status.code(), Status::Code::kQuorumFailed) << w.status.ToString();
  EXPECT_EQ(w.quorum.needed, 3);
  EXPECT_EQ(w.quorum.got, 2);
}

TEST_F(FencedCoordinatorTest, AStaleRefusalReplansTheWriteUnderTheNewerEpoch) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  Serve(1, /*sloppy=*/false);
  fence_->next = View(epochs_[1]);
  std::string refusing;
  for (const auto& id : old_owners)
    if (id != "n1") refusing = id;
  Fake(refusing).stale_applies = 1;
  // Planned at epoch 1 (W = 2 of n1 and two others); one replica is already
  // at epoch 2 and refuses: under epoch 2 the write also goes to n5.
  Fake(old_owners[0] == "n1" ? old_owners[1] : old_owners[0]).apply_error = Status::Unavailable("down");
  WriteOutcome w = coord_->Put(pk, "d", "v", "", 0);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(membership_->Current()->epoch(), 2u);
  EXPECT_EQ(Fake("n5").applies, 1) << "the retry must reach the pending owner";
  EXPECT_EQ(Fake(refusing).applies, 2);
  EXPECT_EQ(w.quorum.needed, 3);
}

// The same through calls that report back (a peer's coalesced calls).
TEST_F(FencedCoordinatorTest, AStaleRefusalReportedBackReplansTheWrite) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  Serve(1, /*sloppy=*/false);
  for (auto& f : fakes_) f->async = true;
  fence_->next = View(epochs_[1]);
  std::string refusing;
  for (const auto& id : old_owners)
    if (id != "n1") refusing = id;
  Fake(refusing).stale_applies = 1;
  Fake(old_owners[0] == "n1" ? old_owners[1] : old_owners[0]).apply_error = Status::Unavailable("down");
  WriteOutcome w = coord_->Put(pk, "d", "v", "", 0);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(membership_->Current()->epoch(), 2u);
  EXPECT_EQ(Fake("n5").async_applies, 1) << "the retry must reach the pending owner";
  EXPECT_EQ(Fake(refusing).async_applies, 2);
  // The retry itself starts on the executor; the replicas' calls never do
  // (each apply came through ApplyAsync). Answers the write did not wait for
  // may still be running: wait for them before counting.
  for (auto& f : fakes_) f->JoinAsync();
  for (size_t i = 0; i < fakes_.size(); ++i)
    EXPECT_EQ(fakes_[i]->applies.load(), fakes_[i]->async_applies.load()) << "n" << i + 2;
}

TEST_F(FencedCoordinatorTest, AStaleReadReportedBackIsAskedAgainFromTheNewReadOwners) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  auto moved = View(epochs_[2]);
  const uint32_t p = moved->ring().PartitionOf(pk);
  auto readers = Ids(*moved, moved->ReadOwners(p));
  Version v;
  v.dot = Dot{"n5/x", 1};
  v.value = "moved";
  for (const auto& id : readers)
    if (id != "n1") Fake(id).Store(ItemKey{p, pk, "f"}, v);
  Serve(2);
  for (auto& f : fakes_) f->async = true;
  fence_->next = moved;
  std::string refusing;
  for (const auto& id : old_owners)
    if (id != "n1") refusing = id;
  Fake(refusing).stale_reads = 1;
  ReadOutcome r = coord_->Get(pk, "f", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"moved"});
  EXPECT_GE(Fake("n5").async_reads, 1);
}

TEST_F(FencedCoordinatorTest, TheLocalReplicaIsFencedToo) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  Serve(1, /*sloppy=*/false);
  fence_->next = View(epochs_[1]);
  fence_->refuse_local_once = true;
  // With one other owner down, the epoch-1 attempt cannot meet W without n1.
  Fake(old_owners[0] == "n1" ? old_owners[1] : old_owners[0]).apply_error = Status::Unavailable("down");
  WriteOutcome w = coord_->Put(pk, "e", "v", "", 0);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_GE(fence_->local_admits, 2);  // refused under epoch 1, admitted under 2
  EXPECT_EQ(Fake("n5").applies, 1);
  SiblingSet local;
  ASSERT_TRUE(replica_->Read(ItemKey{View(epochs_[1])->ring().PartitionOf(pk), pk, "e"}, &local).ok());
  EXPECT_TRUE(local.HasLive());
}

TEST_F(FencedCoordinatorTest, AStaleReadIsAskedAgainFromTheNewReadOwners) {
  std::vector<std::string> old_owners, writes;
  const std::string pk = GainedPk(&old_owners, &writes);
  auto moved = View(epochs_[2]);  // reads moved to the new owners
  const uint32_t p = moved->ring().PartitionOf(pk);
  auto readers = Ids(*moved, moved->ReadOwners(p));
  ASSERT_TRUE(std::count(readers.begin(), readers.end(), "n5"));
  // Only the new owners hold the latest version.
  Version v;
  v.dot = Dot{"n5/x", 1};
  v.value = "moved";
  for (const auto& id : readers)
    if (id != "n1") Fake(id).Store(ItemKey{p, pk, "f"}, v);
  Serve(2);
  fence_->next = moved;
  std::string refusing;
  for (const auto& id : old_owners)
    if (id != "n1") refusing = id;
  Fake(refusing).stale_reads = 1;
  ReadOutcome r = coord_->Get(pk, "f", 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<std::string>{"moved"});
  EXPECT_GE(Fake("n5").reads, 1);
}

TEST_F(FencedCoordinatorTest, StaticViewsAreNeverFenced) {
  std::vector<PeerAddress> peers;
  for (int i = 1; i <= 4; ++i) peers.push_back({"n" + std::to_string(i), "127.0.0.1", uint16_t(7000 + i)});
  membership_ = std::make_unique<Membership>(ClusterView::Create(peers, 8, 16, 3).value());
  TestFence fence(membership_.get());
  EpochGate::Ticket t;
  EXPECT_TRUE(fence.Admit(0, 3, &t).ok());
  EXPECT_EQ(membership_->Current()->epoch(), 0u);
}

}  // namespace
}  // namespace monju
