// Membership changes with real processes under a concurrent write load:
// grow 3 -> 5, shrink 5 -> 4, replace a killed node, then restart every
// node. After each change every acknowledged key reads back with R = 2,
// every partition sits on exactly its N owners, and only the partitions
// whose owners changed moved (the fraction is printed against the ideal).
// Also: changes with one of three voters down work; with two down they are
// refused with a clear error while data keeps working.
#include <gtest/gtest.h>

#include <iostream>

#include "membership_checks.h"

namespace monju::itest {
namespace {

class MembershipChangeTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (load_) load_->Stop();
    if (cluster_) MONJU_DUMP_LOGS_ON_FAILURE(&cluster_->local());
  }

  membership::RingReply Ring(int node) {
    membership::RingReply r;
    std::string why;
    EXPECT_TRUE(cluster_->TryRing(node, &r, &why)) << why;
    return r;
  }

  // Partitions each node streamed during the change now being followed.
  void ExpectOnlyChangedPartitionsStreamed(const membership::RingReply& before, const membership::RingReply& after,
                                           const std::map<std::string, int>& streamed) {
    auto was = OwnersByPartition(before);
    std::map<std::string, int> gained;
    for (const auto& [p, owners] : OwnersByPartition(after))
      for (const auto& id : owners)
        if (!was[p].count(id)) ++gained[id];
    EXPECT_EQ(streamed, gained) << "partitions streamed by each node must be exactly those it gained";
  }

  // Runs `monju admin ARGS` on node i and follows the change; returns the
  // partitions each node streamed for it (from every node's own report).
  std::map<std::string, int> Change(int node, const std::vector<std::string>& args) {
    const int64_t begin_epoch = cluster_->Epoch(node) + 1;
    ProcessResult out = cluster_->Admin(node, args);
    EXPECT_EQ(out.exit_code, 0) << out.Describe();
    EXPECT_NE(out.out.find("done: epoch"), std::string::npos) << out.out;
    EXPECT_NE(out.out.find("(streaming)"), std::string::npos) << "the CLI shows progress: " << out.out;
    std::map<std::string, int> streamed;
    for (int i = 0; i < cluster_->max_nodes(); ++i) {
      membership::NodeProgress p;
      if (!cluster_->local().IsRunning(i) || !cluster_->TryProgress(i, begin_epoch, &p)) continue;
      if (p.stream.change_epoch != begin_epoch || p.stream.partitions_total == 0) continue;
      EXPECT_TRUE(p.stream.done) << cluster_->id(i);
      EXPECT_EQ(p.stream.partitions_done, p.stream.partitions_total) << cluster_->id(i);
      streamed[cluster_->id(i)] = p.stream.partitions_total;
    }
    std::cout << "[change] monju admin";
    for (const auto& a : args) std::cout << " " << a;
    std::cout << ": " << out.elapsed.count() << " ms\n";
    return streamed;
  }

  void Report(const char* what, const membership::RingReply& before, const membership::RingReply& after,
              double ideal) {
    MoveReport m = CompareRings(before, after);
    std::cout << "[measure] " << what << ": " << m.slots_moved << " of " << m.slots_total
              << " partition replicas moved (fraction " << m.fraction() << ", ideal " << ideal << "), "
              << m.partitions_changed << " of " << after.partitions.size() << " partitions changed\n";
    EXPECT_GT(m.fraction(), ideal * 0.5) << what;
    EXPECT_LT(m.fraction(), ideal * 1.6) << what;
  }

  std::unique_ptr<RaftCluster> cluster_;
  std::unique_ptr<WriteLoad> load_;
};

TEST_F(MembershipChangeTest, GrowShrinkReplaceAndRestartUnderLoadLoseNothing) {
  RaftClusterOptions o;
  o.max_nodes = 6;
  o.initial = 3;
  o.partitions = 64;
  cluster_ = std::make_unique<RaftCluster>(o);
  ASSERT_TRUE(cluster_->Start());
  ASSERT_TRUE(cluster_->WaitSettled(1));
  load_ = std::make_unique<WriteLoad>(cluster_.get(), 2, 60, "mc");
  load_->Start();
  PollUntil([&] { return load_->Acked().size() >= 100; }, 20s);

  // Grow 3 -> 4 -> 5.
  for (int joiner : {3, 4}) {
    ASSERT_TRUE(cluster_->StartJoiner(joiner));
    membership::RingReply before = Ring(0);
    load_->SetPhase("move");
    auto streamed = Change(joiner, {"join"});
    load_->SetPhase("steady");
    ASSERT_TRUE(cluster_->WaitSettled(before.epoch + 3));
    membership::RingReply after = Ring(0);
    ExpectOnlyChangedPartitionsStreamed(before, after, streamed);
    Report(joiner == 3 ? "grow 3 -> 4" : "grow 4 -> 5", before, after, 1.0 / (joiner + 1));
    std::vector<int> nodes;
    for (int i = 0; i <= joiner; ++i) nodes.push_back(i);
    load_->SetNodes(nodes);
    auto acked = load_->Acked();
    ASSERT_TRUE(AllReadBack(*cluster_, acked));
    ASSERT_TRUE(KeysOnExactlyTheirOwners(*cluster_, acked));
  }

  // Shrink 5 -> 4: n2 leaves; its data moves first.
  {
    load_->SetNodes({0, 2, 3, 4});
    membership::RingReply before = Ring(0);
    load_->SetPhase("move");
    auto streamed = Change(0, {"leave", "n2"});
    load_->SetPhase("steady");
    ASSERT_TRUE(cluster_->WaitSettled(before.epoch + 3));
    membership::RingReply after = Ring(0);
    ExpectOnlyChangedPartitionsStreamed(before, after, streamed);
    Report("shrink 5 -> 4", before, after, 1.0 / 5);
    membership::MembersReply m;
    ASSERT_TRUE(cluster_->TryMembers(1, &m));
    for (const auto& member : m.members) {
      if (member.id == "n2") {
        EXPECT_EQ(member.state, "removed");
      }
    }
    auto acked = load_->Acked();
    ASSERT_TRUE(AllReadBack(*cluster_, acked));
    ASSERT_TRUE(KeysOnExactlyTheirOwners(*cluster_, acked));  // n2 ends up holding nothing
    ASSERT_TRUE(cluster_->local().Stop(1));
  }

  // Replace a killed node: n3 dies, n6 takes its place (and its tokens).
  {
    load_->SetNodes({0, 3, 4});
    cluster_->local().Kill(2);
    ASSERT_TRUE(WaitAllSee(cluster_->local(), 2, "down", 20s));
    ASSERT_TRUE(cluster_->StartJoiner(5));
    membership::RingReply before = Ring(0);
    load_->SetPhase("move");
    auto streamed = Change(5, {"replace", "n3", "n6"});
    load_->SetPhase("steady");
    ASSERT_TRUE(cluster_->WaitSettled(before.epoch + 3));
    membership::RingReply after = Ring(0);
    ExpectOnlyChangedPartitionsStreamed(before, after, streamed);
    MoveReport m = CompareRings(before, after);
    std::cout << "[measure] replace n3 by n6: " << m.slots_moved << " of " << m.slots_total
              << " partition replicas moved (ideal: exactly n3's)\n";
    int n3_slots = 0;
    for (const auto& [p, owners] : OwnersByPartition(before)) n3_slots += owners.count("n3");
    EXPECT_EQ(m.slots_moved, n3_slots);
    load_->SetNodes({0, 3, 4, 5});
    auto acked = load_->Acked();
    ASSERT_TRUE(AllReadBack(*cluster_, acked));
    ASSERT_TRUE(KeysOnExactlyTheirOwners(*cluster_, acked));
  }

  load_->Stop();
  const auto acked = load_->Acked();
  std::cout << "[load] " << acked.size() << " writes acknowledged, " << load_->failures() << " failed\n";
  LatencySummary steady = Summarize(load_->Latencies("steady"));
  LatencySummary move = Summarize(load_->Latencies("move"));
  std::cout << "[measure] put latency, no change in progress: " << steady.ToString() << "\n"
            << "[measure] put latency, during changes:        " << move.ToString() << "\n";

  // Restart every node: the metadata and epoch survive, and so does the data.
  membership::MembersReply before;
  ASSERT_TRUE(cluster_->TryMembers(0, &before));
  for (int i : {0, 3, 4, 5}) ASSERT_TRUE(cluster_->local().Stop(i));
  for (int i : {0, 3, 4, 5}) ASSERT_TRUE(cluster_->local().StartNode(i));
  for (int i : {0, 3, 4, 5}) EXPECT_EQ(cluster_->Epoch(i), before.epoch) << cluster_->id(i);
  ASSERT_TRUE(PollUntil(
      [&] {
        for (int i : {0, 3, 4, 5}) {
          membership::MembersReply r;
          if (!cluster_->TryMembers(i, &r) || r.applied_epoch != before.epoch || r.leader.empty()) return false;
        }
        return true;
      },
      30s));
  membership::MembersReply after;
  ASSERT_TRUE(cluster_->TryMembers(4, &after));
  EXPECT_EQ(after.epoch, before.epoch);
  // Anti-entropy between the owners of this epoch finds every replica in
  // step (its calls carry the epoch like every node-to-node call).
  ProcessResult repair = RunCli({"--addr", cluster_->addr(5), "repair"}, 120s);
  EXPECT_EQ(repair.exit_code, 0) << repair.Describe();
  EXPECT_NE(repair.out.find("0 failed"), std::string::npos) << repair.out;
  ASSERT_EQ(after.members.size(), before.members.size());
  for (size_t i = 0; i < after.members.size(); ++i) {
    EXPECT_EQ(after.members[i].id, before.members[i].id);
    EXPECT_EQ(after.members[i].state, before.members[i].state);
  }
  ASSERT_TRUE(AllReadBack(*cluster_, acked));
}

TEST_F(MembershipChangeTest, ChangesNeedAMajorityOfVotersButDataDoesNot) {
  RaftClusterOptions o;
  o.max_nodes = 6;
  o.initial = 5;
  cluster_ = std::make_unique<RaftCluster>(o);
  ASSERT_TRUE(cluster_->Start());
  ASSERT_TRUE(cluster_->WaitSettled(1));
  // Voters are n1, n2, n3. One down: a change still goes through (a join:
  // only the joiner gains partitions, so nothing waits for the dead node).
  cluster_->local().Kill(0);
  ASSERT_TRUE(WaitAllSee(cluster_->local(), 0, "down", 20s));
  ASSERT_TRUE(cluster_->StartJoiner(5));
  ProcessResult join = cluster_->Admin(5, {"join"});
  ASSERT_EQ(join.exit_code, 0) << join.Describe();
  ASSERT_TRUE(cluster_->WaitSettled(4));

  // Two of three voters down: refused with a clear error...
  cluster_->local().Kill(1);
  ASSERT_TRUE(WaitAllSee(cluster_->local(), 1, "down", 20s));
  ProcessResult refused;
  ASSERT_TRUE(PollUntil(
      [&] {
        refused = cluster_->Admin(3, {"leave", "n4"}, 60s);
        return refused.exit_code == 3;
      },
      30s, 500ms))
      << refused.Describe();
  EXPECT_NE(refused.err.find("majority"), std::string::npos) << refused.Describe();
  membership::MembersReply m;
  ASSERT_TRUE(cluster_->TryMembers(2, &m));
  EXPECT_TRUE(m.change.empty()) << m.change;
  EXPECT_EQ(m.epoch, 4);
  // ...while data keeps working without Raft (sloppy quorum for keys whose
  // owners are down).
  int written = 0;
  for (int i = 0; i < 30; ++i) {
    const std::string pk = "nomajority-" + std::to_string(i);
    if (TryPut(cluster_->local(), 2 + i % 3, pk, "s", pk).ok()) ++written;
  }
  EXPECT_EQ(written, 30);
  int read = 0;
  for (int i = 0; i < 30; ++i) {
    api::GetResult got;
    const std::string pk = "nomajority-" + std::to_string(i);
    if (TryGet(cluster_->local(), 2 + (i + 1) % 3, pk, "s", 1, &got).ok() && got.found) ++read;
  }
  EXPECT_EQ(read, 30);
}

}  // namespace
}  // namespace monju::itest
