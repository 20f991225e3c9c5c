// The membership state machine without any network: metadata encoding,
// commands and their epoch rules, snapshots, and the placement derived from
// the metadata (membership/cluster_metadata.h, metadata_commands.h,
// metadata_state_machine.h, placement.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "cluster_metadata.h"
#include "metadata_commands.h"
#include "metadata_state_machine.h"
#include "placement.h"
#include "metadata_fakes.h"
#include "test_support.h"

namespace monju {
namespace {

using Type = MetadataCommand::Type;

using test_support::MakeMember;

ClusterMetadata Initial(int members, uint32_t q = 256, uint32_t n = 3) {
  ClusterMetadata md;
  md.cluster_id = "test-cluster";
  md.partitions = q;
  md.replicas = n;
  md.voters = 3;
  for (int i = members; i >= 1; --i) md.members.push_back(MakeMember(i));  // unsorted on purpose
  return md;
}

MetadataCommand Bootstrap(int members, uint32_t q = 256) {
  MetadataCommand c;
  c.type = Type::kBootstrap;
  c.bootstrap = Initial(members, q);
  return c;
}

MetadataCommand Step(Type type, uint64_t epoch) {
  MetadataCommand c;
  c.type = type;
  c.expected_epoch = epoch;
  return c;
}

MetadataCommand Join(int i, uint64_t epoch) {
  MetadataCommand c = Step(Type::kBeginJoin, epoch);
  c.member = MakeMember(i, MemberState::kJoining);
  return c;
}

MetadataCommand Leave(const std::string& id, uint64_t epoch) {
  MetadataCommand c = Step(Type::kBeginLeave, epoch);
  c.target = id;
  return c;
}

MetadataCommand Replace(const std::string& dead, int fresh, uint64_t epoch) {
  MetadataCommand c = Step(Type::kBeginReplace, epoch);
  c.target = dead;
  c.member = MakeMember(fresh, MemberState::kJoining);
  c.member.token_owner = dead;
  return c;
}

// Applies and expects success; returns the new metadata.
ClusterMetadata MustApply(const ClusterMetadata& md, const MetadataCommand& c) {
  ClusterMetadata next;
  Status s = ApplyCommand(md, c, &next);
  EXPECT_TRUE(s.ok()) << DescribeCommand(c) << ": " << s.ToString();
  return next;
}

Status Refusal(const ClusterMetadata& md, const MetadataCommand& c) {
  ClusterMetadata next;
  next.epoch = 12345;
  Status s = ApplyCommand(md, c, &next);
  EXPECT_EQ(next.epoch, 12345u) << "a refused command must leave *next untouched";
  return s;
}

std::shared_ptr<const ClusterView> MustView(const ClusterMetadata& md) {
  auto v = BuildView(md);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? v.value() : nullptr;
}

std::set<std::string> Ids(const ClusterView& v, const std::vector<uint32_t>& members) {
  std::set<std::string> ids;
  for (uint32_t m : members) ids.insert(v.members()[m].id);
  return ids;
}

// ---------------------------------------------------------------------------
// Commands and epochs

TEST(MetadataCommandTest, BootstrapGivesEpochOneOnce) {
  ClusterMetadata empty;
  ClusterMetadata md = MustApply(empty, Bootstrap(3));
  EXPECT_EQ(md.epoch, 1u);
  ASSERT_EQ(md.members.size(), 3u);
  EXPECT_EQ(md.members[0].id, "n1");  // sorted by id
  EXPECT_EQ(md.members[2].id, "n3");
  EXPECT_FALSE(md.change.has_value());
  EXPECT_EQ(Refusal(md, Bootstrap(3)).code(), Status::Code::kMismatch);
}

TEST(MetadataCommandTest, BootstrapValidatesItsMetadata) {
  ClusterMetadata empty;
  auto bad = [&](auto mutate) {
    MetadataCommand c = Bootstrap(3);
    mutate(c.bootstrap);
    return Refusal(empty, c).code();
  };
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.replicas = 4; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.voters = 2; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.partitions = 0; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.members[1].id = m.members[0].id; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.members[1].port = m.members[0].port; }),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.members[1].raft_address = m.members[0].raft_address; }),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.members[0].id = "bad id"; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.cluster_id.clear(); }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](ClusterMetadata& m) { m.members.clear(); }), Status::Code::kInvalidArgument);
}

TEST(MetadataCommandTest, NothingButBootstrapAppliesBeforeIt) {
  ClusterMetadata empty;
  EXPECT_EQ(Refusal(empty, Join(4, 0)).code(), Status::Code::kMismatch);
  EXPECT_EQ(Refusal(empty, Step(Type::kComplete, 0)).code(), Status::Code::kMismatch);
}

TEST(MetadataCommandTest, JoinGoesThroughThreeEpochs) {
  ClusterMetadata md = MustApply({}, Bootstrap(3));
  md = MustApply(md, Join(4, 1));
  EXPECT_EQ(md.epoch, 2u);
  ASSERT_TRUE(md.change.has_value());
  EXPECT_EQ(md.change->kind, ChangeKind::kJoin);
  EXPECT_EQ(md.change->node, "n4");
  EXPECT_EQ(md.change->phase, ChangePhase::kStreaming);
  EXPECT_EQ(md.change->begin_epoch, 2u);
  EXPECT_EQ(md.Find("n4")->state, MemberState::kJoining);

  md = MustApply(md, Step(Type::kFinishStreaming, 2));
  EXPECT_EQ(md.epoch, 3u);
  EXPECT_EQ(md.change->phase, ChangePhase::kReadsMoved);

  md = MustApply(md, Step(Type::kComplete, 3));
  EXPECT_EQ(md.epoch, 4u);
  EXPECT_FALSE(md.change.has_value());
  EXPECT_EQ(md.Find("n4")->state, MemberState::kNormal);
  EXPECT_EQ(md.LiveCount(), 4u);
}

TEST(MetadataCommandTest, ChangesAreOneAtATime) {
  ClusterMetadata md = MustApply(MustApply({}, Bootstrap(4)), Join(5, 1));
  Status s = Refusal(md, Join(6, 2));
  EXPECT_EQ(s.code(), Status::Code::kMismatch);
  EXPECT_NE(s.message().find("one at a time"), std::string::npos) << s.ToString();
  EXPECT_EQ(Refusal(md, Leave("n1", 2)).code(), Status::Code::kMismatch);
  EXPECT_EQ(Refusal(md, Replace("n1", 7, 2)).code(), Status::Code::kMismatch);
  // Complete before the reads moved is out of order.
  EXPECT_EQ(Refusal(md, Step(Type::kComplete, 2)).code(), Status::Code::kMismatch);
}

TEST(MetadataCommandTest, ACommandDecidedAtAnotherEpochIsRefused) {
  ClusterMetadata md = MustApply({}, Bootstrap(3));
  md = MustApply(md, Join(4, 1));
  // A retried finish, or one decided on stale metadata, cannot apply twice.
  md = MustApply(md, Step(Type::kFinishStreaming, 2));
  Status again = Refusal(md, Step(Type::kFinishStreaming, 2));
  EXPECT_EQ(again.code(), Status::Code::kMismatch);
  EXPECT_EQ(Refusal(md, Step(Type::kComplete, 2)).code(), Status::Code::kMismatch);
  EXPECT_EQ(Refusal(md, Step(Type::kComplete, 4)).code(), Status::Code::kMismatch);
  md = MustApply(md, Step(Type::kComplete, 3));
  EXPECT_EQ(Refusal(md, Join(5, 3)).code(), Status::Code::kMismatch);
  EXPECT_TRUE(MustApply(md, Join(5, 4)).change.has_value());
}

TEST(MetadataCommandTest, LeaveKeepsAtLeastNMembers) {
  ClusterMetadata three = MustApply({}, Bootstrap(3));
  Status s = Refusal(three, Leave("n2", 1));
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("N=3"), std::string::npos) << s.ToString();
  EXPECT_EQ(Refusal(three, Leave("n9", 1)).code(), Status::Code::kInvalidArgument);

  ClusterMetadata md = MustApply(MustApply({}, Bootstrap(4)), Leave("n2", 1));
  EXPECT_EQ(md.Find("n2")->state, MemberState::kLeaving);
  md = MustApply(MustApply(md, Step(Type::kFinishStreaming, 2)), Step(Type::kComplete, 3));
  EXPECT_EQ(md.Find("n2")->state, MemberState::kRemoved);
  EXPECT_EQ(md.LiveCount(), 3u);
  // A removed member's id is never reused.
  MetadataCommand again = Join(2, md.epoch);
  Status reuse = Refusal(md, again);
  EXPECT_EQ(reuse.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(reuse.message().find("never reused"), std::string::npos) << reuse.ToString();
  // Its address is free again, under a new id.
  MetadataCommand other = Join(7, md.epoch);
  other.member.port = 7002;
  EXPECT_TRUE(MustApply(md, other).change.has_value());
}

TEST(MetadataCommandTest, JoinValidatesTheNewMember) {
  ClusterMetadata md = MustApply({}, Bootstrap(3));
  auto bad = [&](auto mutate) {
    MetadataCommand c = Join(4, 1);
    mutate(c.member);
    return Refusal(md, c).code();
  };
  EXPECT_EQ(bad([](Member& m) { m.id = "n1"; m.raft_id = RaftIdOf("n1"); }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.port = 7001; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.peer_port = 9001; }), Status::Code::kInvalidArgument);  // n1's peer port
  EXPECT_EQ(bad([](Member& m) { m.peer_port = 7001; }), Status::Code::kInvalidArgument);  // n1's client port
  EXPECT_EQ(bad([](Member& m) { m.peer_port = 0; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.raft_address = "127.0.0.1:8001"; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.vnodes = 0; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.raft_id = 7; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.state = MemberState::kNormal; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.token_owner = "n1"; }), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad([](Member& m) { m.host.clear(); }), Status::Code::kInvalidArgument);
}

TEST(MetadataCommandTest, ReplaceTakesOverTheTokens) {
  ClusterMetadata md = MustApply({}, Bootstrap(3));
  MetadataCommand wrong = Replace("n2", 4, 1);
  wrong.member.token_owner = "n4";
  EXPECT_EQ(Refusal(md, wrong).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Refusal(md, Replace("n9", 4, 1)).code(), Status::Code::kInvalidArgument);

  md = MustApply(md, Replace("n2", 4, 1));
  EXPECT_EQ(md.Find("n2")->state, MemberState::kLeaving);
  EXPECT_EQ(md.Find("n4")->state, MemberState::kJoining);
  EXPECT_EQ(md.change->kind, ChangeKind::kReplace);
  EXPECT_EQ(md.change->replaced, "n2");
  md = MustApply(MustApply(md, Step(Type::kFinishStreaming, 2)), Step(Type::kComplete, 3));
  EXPECT_EQ(md.Find("n2")->state, MemberState::kRemoved);
  EXPECT_EQ(md.Find("n4")->state, MemberState::kNormal);
}

TEST(MetadataCommandTest, AbortUndoesAStreamingChangeOnly) {
  ClusterMetadata base = MustApply({}, Bootstrap(4));
  ClusterMetadata md = MustApply(base, Join(5, 1));
  ClusterMetadata aborted = MustApply(md, Step(Type::kAbort, 2));
  EXPECT_EQ(aborted.epoch, 3u);
  EXPECT_FALSE(aborted.change.has_value());
  EXPECT_EQ(aborted.Find("n5"), nullptr);  // forgotten: it may try again
  EXPECT_TRUE(MustApply(aborted, Join(5, 3)).change.has_value());

  ClusterMetadata leaving = MustApply(MustApply(base, Leave("n1", 1)), Step(Type::kAbort, 2));
  EXPECT_EQ(leaving.Find("n1")->state, MemberState::kNormal);

  ClusterMetadata moved = MustApply(md, Step(Type::kFinishStreaming, 2));
  EXPECT_EQ(Refusal(moved, Step(Type::kAbort, 3)).code(), Status::Code::kMismatch);
  EXPECT_EQ(Refusal(base, Step(Type::kAbort, 1)).code(), Status::Code::kMismatch);
}

// ---------------------------------------------------------------------------
// Encoding

TEST(MetadataCodecTest, RoundTripsEveryField) {
  ClusterMetadata md = MustApply(MustApply(MustApply({}, Bootstrap(4)), Leave("n3", 1)), Step(Type::kFinishStreaming, 2));
  md.members[0].vnodes = 17;
  auto back = DecodeMetadata(EncodeMetadata(md));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), md);

  for (const MetadataCommand& c : {Bootstrap(3), Join(4, 9), Leave("n2", 3), Replace("n1", 5, 7),
                                    Step(Type::kComplete, 11), Step(Type::kAbort, 2)}) {
    auto d = DecodeCommand(EncodeCommand(c));
    ASSERT_TRUE(d.ok()) << DescribeCommand(c) << ": " << d.status().ToString();
    EXPECT_EQ(EncodeCommand(d.value()), EncodeCommand(c));
    EXPECT_EQ(DescribeCommand(d.value()), DescribeCommand(c));
  }
}

TEST(MetadataCodecTest, TruncatedOrGarbageInputIsCorruptionNotACrash) {
  const uint64_t seed = test_support::TestSeed(5150);
  std::mt19937_64 rng(seed);
  ClusterMetadata md = MustApply(MustApply({}, Bootstrap(5)), Join(6, 1));
  const std::string good = EncodeMetadata(md);
  const std::string command = EncodeCommand(Replace("n1", 7, 3));
  for (size_t cut = 0; cut < good.size(); ++cut)
    EXPECT_EQ(DecodeMetadata(good.substr(0, cut)).status().code(), Status::Code::kCorruption) << cut;
  for (size_t cut = 0; cut < command.size(); ++cut)
    EXPECT_EQ(DecodeCommand(command.substr(0, cut)).status().code(), Status::Code::kCorruption) << cut;
  EXPECT_EQ(DecodeMetadata(good + "x").status().code(), Status::Code::kCorruption);
  for (int round = 0; round < 2000; ++round) {
    std::string mutated = round % 2 ? good : command;
    const int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    // Either decodes to something valid or says Corruption; never crashes.
    if (round % 2) {
      auto d = DecodeMetadata(mutated);
      EXPECT_TRUE(d.ok() || d.status().code() == Status::Code::kCorruption) << d.status().ToString();
    } else {
      auto d = DecodeCommand(mutated);
      EXPECT_TRUE(d.ok() || d.status().code() == Status::Code::kCorruption) << d.status().ToString();
    }
  }
}

// ---------------------------------------------------------------------------
// State machine

TEST(MetadataStateMachineTest, AppliesSnapshotsAndRestores) {
  MetadataStateMachine sm;
  std::vector<uint64_t> seen;
  sm.SetListener([&](const ClusterMetadata& md) { seen.push_back(md.epoch); });
  EXPECT_TRUE(sm.Apply(EncodeCommand(Bootstrap(3))).status.ok());
  EXPECT_TRUE(sm.Apply(EncodeCommand(Join(4, 1))).status.ok());
  ApplyOutcome refused = sm.Apply(EncodeCommand(Join(5, 2)));
  EXPECT_EQ(refused.status.code(), Status::Code::kMismatch);
  EXPECT_EQ(refused.epoch, 2u);
  ApplyOutcome garbage = sm.Apply("not a command");
  EXPECT_EQ(garbage.status.code(), Status::Code::kCorruption);
  EXPECT_EQ(sm.epoch(), 2u);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));  // only real changes notify

  const std::string snap = sm.Snapshot();
  MetadataStateMachine other;
  uint64_t restored_epoch = 0;
  other.SetListener([&](const ClusterMetadata& md) { restored_epoch = md.epoch; });
  ASSERT_TRUE(other.Restore(snap).ok());
  EXPECT_EQ(other.Current(), sm.Current());
  EXPECT_EQ(restored_epoch, 2u);
  // Both continue identically from the snapshot.
  EXPECT_TRUE(sm.Apply(EncodeCommand(Step(Type::kFinishStreaming, 2))).status.ok());
  EXPECT_TRUE(other.Apply(EncodeCommand(Step(Type::kFinishStreaming, 2))).status.ok());
  EXPECT_EQ(other.Current(), sm.Current());

  EXPECT_EQ(other.Restore("junk").code(), Status::Code::kCorruption);
  EXPECT_EQ(other.Current(), sm.Current());  // unchanged by a bad snapshot
}

TEST(MetadataStateMachineTest, ReplicasOfOneLogAgreeWhateverItHolds) {
  const uint64_t seed = test_support::TestSeed(77);
  std::mt19937_64 rng(seed);
  // A log of commands, many of them stale or out of order.
  std::vector<std::string> log = {EncodeCommand(Bootstrap(3))};
  for (int i = 0; i < 300; ++i) {
    const uint64_t epoch = 1 + rng() % 12;
    switch (rng() % 6) {
      case 0: log.push_back(EncodeCommand(Join(4 + int(rng() % 30), epoch))); break;
      case 1: log.push_back(EncodeCommand(Leave("n" + std::to_string(1 + rng() % 8), epoch))); break;
      case 2: log.push_back(EncodeCommand(Step(Type::kFinishStreaming, epoch))); break;
      case 3: log.push_back(EncodeCommand(Step(Type::kComplete, epoch))); break;
      case 4: log.push_back(EncodeCommand(Step(Type::kAbort, epoch))); break;
      default: log.push_back(EncodeCommand(Replace("n" + std::to_string(1 + rng() % 8), 40 + int(rng() % 30), epoch)));
    }
  }
  MetadataStateMachine a, b;
  uint64_t last = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    ApplyOutcome oa = a.Apply(log[i]);
    ApplyOutcome ob = b.Apply(log[i]);
    ASSERT_EQ(oa.status.code(), ob.status.code()) << i;
    ASSERT_EQ(oa.epoch, ob.epoch);
    // The epoch grows by one exactly when a command applies.
    ASSERT_EQ(oa.epoch, last + (oa.status.ok() ? 1 : 0)) << i;
    last = oa.epoch;
    ClusterMetadata md = a.Current();
    ASSERT_GE(md.LiveCount(), md.replicas);
    // At most one change, and its members' states match it.
    size_t joining = 0, leaving = 0;
    for (const auto& m : md.members) {
      joining += m.state == MemberState::kJoining;
      leaving += m.state == MemberState::kLeaving;
    }
    if (!md.change) {
      ASSERT_EQ(joining + leaving, 0u) << i;
    } else {
      ASSERT_LE(joining, 1u);
      ASSERT_LE(leaving, 1u);
      ASSERT_TRUE(MustView(md) != nullptr);
    }
  }
  EXPECT_EQ(a.Current(), b.Current());
  EXPECT_GT(last, 5u) << "the random log should contain some successful changes";
}

// ---------------------------------------------------------------------------
// Placement

TEST(PlacementTest, SameMetadataSameViewWhateverTheMemberOrder) {
  ClusterMetadata a = MustApply({}, Bootstrap(5));
  ClusterMetadata b = a;
  std::reverse(b.members.begin(), b.members.end());
  auto va = MustView(a), vb = MustView(b);
  ASSERT_TRUE(va && vb);
  EXPECT_EQ(va->epoch(), 1u);
  EXPECT_EQ(va->fingerprint(), vb->fingerprint());
  EXPECT_EQ(va->members(), vb->members());
  for (uint32_t p = 0; p < 256; ++p) {
    ASSERT_EQ(va->ReadOwners(p), vb->ReadOwners(p)) << p;
    ASSERT_EQ(va->WriteOwners(p), va->ReadOwners(p)) << p;
    ASSERT_EQ(va->ReadOwners(p).size(), 3u);
    ASSERT_EQ(va->PendingOwners(p), 0u);
  }
}

TEST(PlacementTest, AStaticClusterOfTheSameMembersPlacesKeysTheSameWay) {
  // Bootstrap from --peers keeps the placement a static cluster had.
  ClusterMetadata md = MustApply({}, Bootstrap(4));
  std::vector<PeerAddress> peers;
  for (const auto& m : md.members) peers.push_back(AddressOf(m));
  auto fixed = ClusterView::Create(peers, 64, 256, 3);
  ASSERT_TRUE(fixed.ok());
  auto raft = MustView(md);
  for (uint32_t p = 0; p < 256; ++p) ASSERT_EQ(raft->ReadOwners(p), fixed.value()->ring().PreferenceList(p));
}

TEST(PlacementTest, FingerprintStaysAcrossEpochsButNotAcrossClusters) {
  ClusterMetadata md = MustApply({}, Bootstrap(3));
  auto before = MustView(md);
  auto after = MustView(MustApply(md, Join(4, 1)));
  EXPECT_EQ(before->fingerprint(), after->fingerprint());
  EXPECT_NE(before->epoch(), after->epoch());
  ClusterMetadata other = md;
  other.cluster_id = "another";
  EXPECT_NE(MustView(other)->fingerprint(), before->fingerprint());
}

TEST(PlacementTest, JoinWritesToBothReadsMoveThenOldOwnersDrop) {
  ClusterMetadata base = MustApply({}, Bootstrap(4));
  ClusterMetadata streaming = MustApply(base, Join(5, 1));
  ClusterMetadata moved = MustApply(streaming, Step(Type::kFinishStreaming, 2));
  ClusterMetadata done = MustApply(moved, Step(Type::kComplete, 3));
  auto v0 = MustView(base), v1 = MustView(streaming), v2 = MustView(moved), v3 = MustView(done);
  uint32_t changed = 0;
  for (uint32_t p = 0; p < 256; ++p) {
    const auto old_owners = Ids(*v0, v0->ReadOwners(p));
    const auto new_owners = Ids(*v3, v3->ReadOwners(p));
    // Streaming: reads from the old owners, writes to old and new.
    ASSERT_EQ(Ids(*v1, v1->ReadOwners(p)), old_owners) << p;
    std::set<std::string> both = old_owners;
    both.insert(new_owners.begin(), new_owners.end());
    ASSERT_EQ(Ids(*v1, v1->WriteOwners(p)), both) << p;
    ASSERT_EQ(v1->PendingOwners(p), both.size() - 3) << p;
    // Reads moved: reads from the new owners, writes still to both.
    ASSERT_EQ(Ids(*v2, v2->ReadOwners(p)), new_owners) << p;
    ASSERT_EQ(Ids(*v2, v2->WriteOwners(p)), both) << p;
    // Only partitions whose owners change have anything pending, and only
    // the joining member gains partitions.
    if (old_owners == new_owners) {
      ASSERT_TRUE(v1->SamePlacement(*v0, p)) << p;
    } else {
      ++changed;
      ASSERT_FALSE(v1->SamePlacement(*v0, p)) << p;
      ASSERT_TRUE(new_owners.count("n5")) << p;
      ASSERT_EQ(v1->PendingOwners(p), 1u) << p;
    }
    // Fallbacks never repeat a write owner.
    for (uint32_t f : v1->WriteFallbacks(p)) ASSERT_FALSE(both.count(v1->members()[f].id)) << p;
  }
  MoveCount moves = CountMoves(*v0, *v3);
  const double ideal = 1.0 / 5;
  std::cout << "[measure] join 4 -> 5: " << moves.slots_moved << " of " << moves.slots_total
            << " partition replicas moved (fraction " << moves.fraction() << ", ideal " << ideal << "), "
            << moves.partitions_changed << " partitions changed\n";
  EXPECT_EQ(moves.partitions_changed, changed);
  EXPECT_GT(moves.fraction(), ideal * 0.6);
  EXPECT_LT(moves.fraction(), ideal * 1.5);
}

TEST(PlacementTest, ReplaceMovesExactlyTheReplacedMembersPartitions) {
  ClusterMetadata base = MustApply({}, Bootstrap(5));
  ClusterMetadata done = MustApply(
      MustApply(MustApply(base, Replace("n3", 9, 1)), Step(Type::kFinishStreaming, 2)), Step(Type::kComplete, 3));
  auto v0 = MustView(base), v3 = MustView(done);
  uint64_t n3_slots = 0;
  for (uint32_t p = 0; p < 256; ++p) {
    auto before = Ids(*v0, v0->ReadOwners(p));
    auto after = Ids(*v3, v3->ReadOwners(p));
    if (before.erase("n3")) {
      ++n3_slots;
      ASSERT_TRUE(after.erase("n9")) << p;
    }
    ASSERT_EQ(before, after) << p;
  }
  MoveCount moves = CountMoves(*v0, *v3);
  EXPECT_EQ(moves.slots_moved, n3_slots);
}

TEST(PlacementTest, StreamTasksNameTheOldOwnersAsSources) {
  ClusterMetadata base = MustApply({}, Bootstrap(4));
  ClusterMetadata streaming = MustApply(base, Join(5, 1));
  auto v0 = MustView(base), v1 = MustView(streaming);
  auto tasks = StreamTasksFor(streaming, "n5", 2);
  std::set<uint32_t> gained;
  for (const auto& t : tasks) {
    gained.insert(t.partition);
    EXPECT_EQ(std::set<std::string>(t.sources.begin(), t.sources.end()), Ids(*v0, v0->ReadOwners(t.partition)));
    EXPECT_EQ(t.required, 2u);  // N - W + 1
  }
  for (uint32_t p = 0; p < 256; ++p) EXPECT_EQ(gained.count(p) == 1, v1->PendingOwners(p) == 1) << p;
  EXPECT_TRUE(StreamTasksFor(streaming, "n1", 2).empty());  // n1 gains nothing from a join
  EXPECT_EQ(StreamTasksFor(streaming, "n5", 1).front().required, 3u);
  EXPECT_TRUE(StreamTasksFor(base, "n5", 2).empty());
  EXPECT_TRUE(StreamTasksFor(MustApply(streaming, Step(Type::kFinishStreaming, 2)), "n5", 2).empty());

  // A replacement never streams from the member it replaces.
  ClusterMetadata replacing = MustApply(base, Replace("n2", 6, 1));
  for (const auto& t : StreamTasksFor(replacing, "n6", 2)) {
    EXPECT_EQ(std::count(t.sources.begin(), t.sources.end(), "n2"), 0);
    EXPECT_EQ(t.sources.size(), 2u);
    EXPECT_EQ(t.required, 2u);
  }
  // A leave makes the remaining members gain the leaver's partitions.
  ClusterMetadata leaving = MustApply(base, Leave("n4", 1));
  size_t tasks_total = 0;
  for (const char* id : {"n1", "n2", "n3"}) tasks_total += StreamTasksFor(leaving, id, 2).size();
  EXPECT_GT(tasks_total, 0u);
  EXPECT_TRUE(StreamTasksFor(leaving, "n4", 2).empty());
}

TEST(PlacementTest, HintsOfAnOwnerThatLostThePartitionGoToTheCurrentOwners) {
  ClusterMetadata base = MustApply({}, Bootstrap(4));
  ClusterMetadata done = MustApply(MustApply(MustApply(base, Join(5, 1)), Step(Type::kFinishStreaming, 2)),
                                   Step(Type::kComplete, 3));
  auto v0 = MustView(base), v3 = MustView(done);
  int kept = 0, moved = 0;
  for (uint32_t p = 0; p < 256; ++p) {
    for (uint32_t m : v0->ReadOwners(p)) {
      const std::string& owner = v0->members()[m].id;
      auto targets = Ids(*v3, HintTargets(*v3, owner, p));
      if (v3->IsWriteOwner(owner, p)) {
        ASSERT_EQ(targets, std::set<std::string>{owner}) << p;
        ++kept;
      } else {
        ASSERT_EQ(targets, Ids(*v3, v3->WriteOwners(p))) << p;  // re-targeted
        ASSERT_TRUE(targets.count("n5")) << p;
        ++moved;
      }
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(moved, 0);
  // A member that left: every hint goes to the current owners.
  ClusterMetadata left = MustApply(MustApply(MustApply(done, Leave("n2", 4)), Step(Type::kFinishStreaming, 5)),
                                   Step(Type::kComplete, 6));
  auto v6 = MustView(left);
  for (uint32_t p = 0; p < 256; ++p) ASSERT_EQ(Ids(*v6, HintTargets(*v6, "n2", p)), Ids(*v6, v6->WriteOwners(p)));
  EXPECT_TRUE(HintTargets(*v6, "n1", 9999).empty());
}

}  // namespace
}  // namespace monju
