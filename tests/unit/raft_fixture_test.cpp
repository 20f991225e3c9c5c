// The membership state machine replicated by libraft, on libraft's
// deterministic in-memory fixture (raft/fixture.h: simulated time, network
// and disk; no sockets, no sleeps), through the same glue RaftGroup uses
// (membership/raft_glue.h): leader loss, partitions, snapshots and a member
// added later.
#include <gtest/gtest.h>
extern "C" {
#include <raft.h>
#include <raft/fixture.h>
}

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "metadata_commands.h"
#include "metadata_fakes.h"
#include "metadata_state_machine.h"
#include "raft_glue.h"

namespace monju {
namespace {

using Type = MetadataCommand::Type;

Member MakeMember(int i, MemberState state) { return test_support::MakeMember(i, state, 16); }

std::string BootstrapEntry() {
  MetadataCommand c;
  c.type = Type::kBootstrap;
  c.bootstrap.cluster_id = "fixture";
  c.bootstrap.partitions = 32;
  c.bootstrap.replicas = 3;
  c.bootstrap.voters = 3;
  for (int i = 1; i <= 3; ++i) c.bootstrap.members.push_back(MakeMember(i, MemberState::kNormal));
  return EncodeCommand(c);
}

std::string JoinEntry(int i, uint64_t epoch) {
  MetadataCommand c;
  c.type = Type::kBeginJoin;
  c.expected_epoch = epoch;
  c.member = MakeMember(i, MemberState::kJoining);
  return EncodeCommand(c);
}

std::string StepEntry(Type type, uint64_t epoch) {
  MetadataCommand c;
  c.type = type;
  c.expected_epoch = epoch;
  return EncodeCommand(c);
}

// Counts restores, to prove a member caught up from a snapshot.
class CountingFsm final : public RaftFsm {
 public:
  Result Apply(std::string_view e) override { return inner_.Apply(e); }
  std::string Snapshot() override {
    ++snapshots;
    return inner_.Snapshot();
  }
  Status Restore(std::string_view s) override {
    ++restores;
    return inner_.Restore(s);
  }
  MetadataStateMachine machine;
  int snapshots = 0, restores = 0;

 private:
  MetadataRaftFsm inner_{&machine};
};

class RaftFixtureTest : public ::testing::Test {
 protected:
  static constexpr unsigned kMaxMs = 20000;

  void SetUp() override {
    std::memset(&f_, 0, sizeof(f_));  // raft_fixture_initialize leaves parts of it as found
    ASSERT_EQ(raft_fixture_initialize(&f_), 0);
    for (int i = 0; i < 3; ++i) Grow();
    struct raft_configuration conf;
    ASSERT_EQ(raft_fixture_configuration(&f_, 3, &conf), 0);
    ASSERT_EQ(raft_fixture_bootstrap(&f_, &conf), 0);
    raft_configuration_close(&conf);
    ASSERT_EQ(raft_fixture_start(&f_), 0);
    ASSERT_TRUE(raft_fixture_step_until_has_leader(&f_, kMaxMs));
  }
  void TearDown() override { raft_fixture_close(&f_); }

  unsigned Grow() {
    auto fsm = std::make_unique<CountingFsm>();
    auto glue = std::make_unique<raft_glue::FsmGlue>();
    raft_glue::InitFsm(glue.get(), fsm.get());
    EXPECT_EQ(raft_fixture_grow(&f_, &glue->fsm), 0);
    fsms_.push_back(std::move(fsm));
    glues_.push_back(std::move(glue));
    return static_cast<unsigned>(fsms_.size() - 1);
  }

  unsigned Leader() { return raft_fixture_leader_index(&f_); }
  struct raft* Raft(unsigned i) { return raft_fixture_get(&f_, i); }
  MetadataStateMachine& Machine(unsigned i) { return fsms_[i]->machine; }

  // Proposes on server i; the outcome lands in *out once the entry applied
  // there (or failed).
  struct Pending {
    bool done = false;
    Status status;
    RaftFsm::Result result;
  };
  std::shared_ptr<Pending> Propose(unsigned i, const std::string& entry, Status* immediate = nullptr,
                                   int* rv = nullptr) {
    auto p = std::make_shared<Pending>();
    Status s = raft_glue::SubmitApply(
        Raft(i), entry,
        [p](Status status, const RaftFsm::Result& r) {
          p->done = true;
          p->status = status;
          p->result = r;
        },
        rv);
    if (immediate) *immediate = s;
    return s.ok() ? p : nullptr;
  }

  // Proposes on the leader and steps until every live server applied it.
  RaftFsm::Result Commit(const std::string& entry) {
    unsigned leader = Leader();
    EXPECT_LT(leader, raft_fixture_n(&f_));
    auto p = Propose(leader, entry);
    EXPECT_TRUE(p);
    if (!p) return {};
    EXPECT_TRUE(StepUntil([&] { return p->done; }));
    EXPECT_TRUE(p->status.ok()) << p->status.ToString();
    const raft_index index = raft_last_applied(Raft(leader));
    EXPECT_TRUE(StepUntil([&] {
      for (unsigned i = 0; i < raft_fixture_n(&f_); ++i)
        if (raft_fixture_alive(&f_, i) && raft_last_applied(Raft(i)) < index) return false;
      return true;
    }));
    return p->result;
  }

  template <typename Fn>
  bool StepUntil(Fn fn, unsigned max_ms = kMaxMs) {
    const raft_time end = raft_fixture_time(&f_) + max_ms;
    while (!fn()) {
      if (raft_fixture_time(&f_) > end) return false;
      raft_fixture_step(&f_);
    }
    return true;
  }

  void ExpectAllAgree(const std::vector<unsigned>& servers) {
    for (unsigned i : servers) EXPECT_EQ(Machine(i).Current(), Machine(servers[0]).Current()) << "server " << i;
  }

  struct raft_fixture f_;
  std::vector<std::unique_ptr<CountingFsm>> fsms_;
  std::vector<std::unique_ptr<raft_glue::FsmGlue>> glues_;
};

TEST(RaftGlueTest, EntriesAreFramedToMultiplesOfEightBytes) {
  // libraft's batch encoding pads entries to 8 bytes and hands followers the
  // padded length: an unframed 78-byte entry reached a follower shifted.
  for (size_t n : {0, 1, 3, 4, 7, 8, 77, 78, 4096}) {
    std::string payload(n, 'x');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 7);
    struct raft_buffer buf;
    ASSERT_TRUE(raft_glue::Frame(payload, &buf));
    EXPECT_EQ(buf.len % 8, 0u) << n;
    std::string_view back;
    ASSERT_TRUE(raft_glue::Unframe(buf, &back));
    EXPECT_EQ(back, payload);
    buf.len = 3;
    EXPECT_FALSE(raft_glue::Unframe(buf, &back));
    raft_free(buf.base);
  }
  char bogus[8] = {0, 0, 0, 9, 0, 0, 0, 0};  // claims 9 bytes in a buffer of 8
  struct raft_buffer b{bogus, sizeof(bogus)};
  std::string_view out;
  EXPECT_FALSE(raft_glue::Unframe(b, &out));
}

TEST_F(RaftFixtureTest, CommittedChangesReachEveryMemberInOrder) {
  EXPECT_EQ(Commit(BootstrapEntry()).value, 1u);
  EXPECT_EQ(Commit(JoinEntry(4, 1)).value, 2u);
  RaftFsm::Result stale = Commit(JoinEntry(5, 1));  // decided at a stale epoch
  EXPECT_EQ(stale.status.code(), Status::Code::kMismatch);
  EXPECT_EQ(stale.value, 2u);
  EXPECT_EQ(Commit(StepEntry(Type::kFinishStreaming, 2)).value, 3u);
  EXPECT_EQ(Commit(StepEntry(Type::kComplete, 3)).value, 4u);
  ExpectAllAgree({0, 1, 2});
  EXPECT_EQ(Machine(1).Current().Find("n4")->state, MemberState::kNormal);
}

TEST_F(RaftFixtureTest, AFollowerCannotProposeAndNamesTheLeader) {
  const unsigned leader = Leader();
  const unsigned follower = (leader + 1) % 3;
  Status s;
  int rv = 0;
  EXPECT_FALSE(Propose(follower, BootstrapEntry(), &s, &rv));
  EXPECT_TRUE(raft_glue::IsNotLeader(rv)) << s.ToString();
  EXPECT_EQ(s.code(), Status::Code::kUnavailable);
  RaftInfo info = raft_glue::InfoOf(Raft(follower));
  EXPECT_EQ(info.leader_id, Raft(leader)->id);
  EXPECT_EQ(info.configuration.size(), 3u);
  EXPECT_TRUE(raft_glue::InfoOf(Raft(leader)).IsLeader());
}

TEST_F(RaftFixtureTest, LeaderLossElectsANewLeaderThatKeepsTheLog) {
  Commit(BootstrapEntry());
  Commit(JoinEntry(4, 1));
  const unsigned old_leader = Leader();
  raft_fixture_kill(&f_, old_leader);
  ASSERT_TRUE(StepUntil([&] { return Leader() < 3 && Leader() != old_leader; }));
  // The new leader has every committed change and takes new ones.
  EXPECT_EQ(Machine(Leader()).epoch(), 2u);
  EXPECT_EQ(Commit(StepEntry(Type::kFinishStreaming, 2)).value, 3u);
  raft_fixture_revive(&f_, old_leader);
  ASSERT_TRUE(raft_fixture_step_until_applied(&f_, 3, raft_last_applied(Raft(Leader())), kMaxMs));
  ExpectAllAgree({0, 1, 2});
  EXPECT_EQ(Machine(old_leader).epoch(), 3u);
}

TEST_F(RaftFixtureTest, APartitionedLeaderCommitsNothingAndItsEntryIsDropped) {
  Commit(BootstrapEntry());
  const unsigned old_leader = Leader();
  const unsigned a = (old_leader + 1) % 3, b = (old_leader + 2) % 3;
  for (unsigned other : {a, b}) {
    raft_fixture_disconnect(&f_, old_leader, other);
    raft_fixture_disconnect(&f_, other, old_leader);
  }
  // The cut-off leader accepts the entry but cannot commit it.
  auto lost = Propose(old_leader, JoinEntry(4, 1));
  ASSERT_TRUE(lost);
  // The majority elects a leader of its own and commits another change.
  ASSERT_TRUE(StepUntil([&] {
    return raft_state(Raft(a)) == RAFT_LEADER || raft_state(Raft(b)) == RAFT_LEADER;
  }));
  const unsigned new_leader = raft_state(Raft(a)) == RAFT_LEADER ? a : b;
  auto won = Propose(new_leader, JoinEntry(5, 1));
  ASSERT_TRUE(won);
  ASSERT_TRUE(StepUntil([&] { return won->done; }));
  EXPECT_TRUE(won->status.ok()) << won->status.ToString();
  EXPECT_EQ(won->result.value, 2u);
  // The old leader steps down; its entry fails rather than applies.
  ASSERT_TRUE(StepUntil([&] { return raft_state(Raft(old_leader)) != RAFT_LEADER; }));
  EXPECT_EQ(Machine(old_leader).epoch(), 1u);
  // Healed, it follows the majority's log: n5 joined, n4 never did.
  for (unsigned other : {a, b}) {
    raft_fixture_reconnect(&f_, old_leader, other);
    raft_fixture_reconnect(&f_, other, old_leader);
  }
  ASSERT_TRUE(StepUntil([&] { return Machine(old_leader).epoch() == 2; }));
  ASSERT_TRUE(StepUntil([&] { return lost->done; }));
  EXPECT_FALSE(lost->status.ok());
  ExpectAllAgree({0, 1, 2});
  EXPECT_NE(Machine(old_leader).Current().Find("n5"), nullptr);
  EXPECT_EQ(Machine(old_leader).Current().Find("n4"), nullptr);
}

TEST_F(RaftFixtureTest, WithoutAMajorityNothingCommits) {
  Commit(BootstrapEntry());
  const unsigned leader = Leader();
  raft_fixture_kill(&f_, (leader + 1) % 3);
  raft_fixture_kill(&f_, (leader + 2) % 3);
  // The leader loses its majority and steps down; then nobody can propose.
  ASSERT_TRUE(StepUntil([&] { return raft_state(Raft(leader)) != RAFT_LEADER; }));
  Status s;
  int rv = 0;
  EXPECT_FALSE(Propose(leader, JoinEntry(4, 1), &s, &rv));
  EXPECT_TRUE(raft_glue::IsNotLeader(rv)) << s.ToString();
  raft_fixture_step_until_elapsed(&f_, 5000);
  EXPECT_NE(raft_state(Raft(leader)), RAFT_LEADER);
  EXPECT_EQ(Machine(leader).epoch(), 1u);
}

TEST_F(RaftFixtureTest, ANewMemberCatchesUpFromASnapshot) {
  for (unsigned i = 0; i < 3; ++i) {
    raft_set_snapshot_threshold(Raft(i), 4);
    raft_set_snapshot_trailing(Raft(i), 1);
  }
  Commit(BootstrapEntry());
  uint64_t epoch = 1;
  // Joins and aborts: many entries, so the log is compacted into snapshots.
  for (int round = 0; round < 5; ++round) {
    epoch = Commit(JoinEntry(10 + round, epoch)).value;
    epoch = Commit(StepEntry(Type::kAbort, epoch)).value;
  }
  EXPECT_EQ(epoch, 11u);
  int snapshots = 0;
  for (unsigned i = 0; i < 3; ++i) snapshots += fsms_[i]->snapshots;
  EXPECT_GT(snapshots, 0);

  // A fourth server, added by the leader as a spare and then a standby.
  const unsigned fresh = Grow();
  ASSERT_EQ(raft_start(Raft(fresh)), 0);
  struct raft* leader = Raft(Leader());
  bool added = false, assigned = false;
  ASSERT_TRUE(raft_glue::SubmitAdd(leader, Raft(fresh)->id, Raft(fresh)->address, [&](Status s) {
                EXPECT_TRUE(s.ok()) << s.ToString();
                added = true;
              }).ok());
  ASSERT_TRUE(StepUntil([&] { return added; }));
  ASSERT_TRUE(raft_glue::SubmitAssign(leader, Raft(fresh)->id, RaftRole::kStandby, [&](Status s) {
                EXPECT_TRUE(s.ok()) << s.ToString();
                assigned = true;
              }).ok());
  ASSERT_TRUE(StepUntil([&] { return assigned; }));
  ASSERT_TRUE(StepUntil([&] { return Machine(fresh).epoch() == epoch; }));
  EXPECT_GE(fsms_[fresh]->restores, 1);
  ExpectAllAgree({0, 1, 2, fresh});
  // It keeps following.
  EXPECT_EQ(Commit(JoinEntry(30, epoch)).value, epoch + 1);
  ASSERT_TRUE(StepUntil([&] { return Machine(fresh).epoch() == epoch + 1; }));
  RaftInfo info = raft_glue::InfoOf(leader);
  ASSERT_EQ(info.configuration.size(), 4u);
  EXPECT_EQ(info.configuration[3].role, RaftRole::kStandby);
}

}  // namespace
}  // namespace monju
