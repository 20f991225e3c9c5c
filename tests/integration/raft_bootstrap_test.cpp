// Raft-managed membership with real processes: a cluster bootstraps epoch 1
// from --peers, serves data, names its voters and standbys, and keeps its
// metadata and epoch across a restart of every node.
#include <gtest/gtest.h>

#include "raft_cluster.h"

namespace monju::itest {
namespace {

class RaftBootstrapTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (cluster_) MONJU_DUMP_LOGS_ON_FAILURE(&cluster_->local());
  }
  std::unique_ptr<RaftCluster> cluster_;
};

TEST_F(RaftBootstrapTest, BootstrapsEpochOneWithThreeVotersAndServesData) {
  RaftClusterOptions o;
  o.max_nodes = 5;
  o.initial = 5;
  cluster_ = std::make_unique<RaftCluster>(o);
  ASSERT_TRUE(cluster_->Start());
  // Every node installs the same epoch-1 metadata; the first three by id vote.
  std::string cluster_id;
  ASSERT_TRUE(PollUntil(
      [&] {
        for (int i = 0; i < 5; ++i) {
          membership::MembersReply r;
          if (!cluster_->TryMembers(i, &r) || r.epoch != 1 || r.leader.empty()) return false;
          int voters = 0, standbys = 0;
          for (const auto& m : r.members) {
            voters += m.raft_role == "voter";
            standbys += m.raft_role == "standby";
          }
          if (voters != 3 || standbys != 2) return false;
        }
        return true;
      },
      20s));
  membership::MembersReply r;
  ASSERT_TRUE(cluster_->TryMembers(3, &r));
  ASSERT_EQ(r.members.size(), 5u);
  for (const auto& m : r.members) {
    EXPECT_EQ(m.state, "normal");
    EXPECT_EQ(m.raft_role, m.id <= "n3" ? "voter" : "standby") << m.id;
    EXPECT_EQ(m.partitions_read, m.partitions_written);
  }
  EXPECT_EQ(r.partitions, 64);
  EXPECT_EQ(r.replicas, 3);
  EXPECT_TRUE(r.change.empty());

  // Data works as in a static cluster, through any node.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(TryPut(cluster_->local(), i % 5, "boot", "k" + std::to_string(i), "v" + std::to_string(i)).ok());
  }
  for (int i = 0; i < 20; ++i) {
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster_->local(), (i + 2) % 5, "boot", "k" + std::to_string(i), 2, &got).ok());
    ASSERT_TRUE(got.found);
    EXPECT_EQ(got.values, std::vector<std::string>{"v" + std::to_string(i)});
  }

  // The CLI shows the same.
  ProcessResult members = cluster_->Admin(0, {"members"});
  ASSERT_EQ(members.exit_code, 0) << members.Describe();
  EXPECT_NE(members.out.find("epoch 1"), std::string::npos) << members.out;
  EXPECT_NE(members.out.find("standby"), std::string::npos) << members.out;
  ProcessResult ring = cluster_->Admin(4, {"ring"});
  ASSERT_EQ(ring.exit_code, 0) << ring.Describe();
  EXPECT_NE(ring.out.find("64 partitions, N=3"), std::string::npos) << ring.out;
  ProcessResult bad = cluster_->Admin(0, {"leave"});
  EXPECT_EQ(bad.exit_code, 2) << bad.Describe();
}

TEST_F(RaftBootstrapTest, RestartingEveryNodeKeepsTheMetadataAndEpoch) {
  cluster_ = std::make_unique<RaftCluster>();
  ASSERT_TRUE(cluster_->Start());
  ASSERT_TRUE(cluster_->WaitSettled(1));
  membership::MembersReply before;
  ASSERT_TRUE(cluster_->TryMembers(0, &before));
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(TryPut(cluster_->local(), i % 3, "restart", "k" + std::to_string(i), "v").ok());

  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster_->local().Stop(i));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster_->local().StartNode(i));
  // Served at once with the cached epoch, before Raft has a leader again...
  for (int i = 0; i < 3; ++i) EXPECT_EQ(cluster_->Epoch(i), before.epoch) << cluster_->id(i);
  // ...and the Raft log replays to the same metadata.
  ASSERT_TRUE(PollUntil(
      [&] {
        for (int i = 0; i < 3; ++i) {
          membership::MembersReply r;
          if (!cluster_->TryMembers(i, &r) || r.applied_epoch != before.epoch || r.leader.empty()) return false;
        }
        return true;
      },
      20s));
  membership::MembersReply after;
  ASSERT_TRUE(cluster_->TryMembers(1, &after));
  EXPECT_EQ(after.epoch, before.epoch);
  EXPECT_EQ(after.cluster_id, before.cluster_id);
  ASSERT_EQ(after.members.size(), before.members.size());
  for (size_t i = 0; i < after.members.size(); ++i) {
    EXPECT_EQ(after.members[i].id, before.members[i].id);
    EXPECT_EQ(after.members[i].state, before.members[i].state);
  }
  for (int i = 0; i < 10; ++i) {
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster_->local(), 2, "restart", "k" + std::to_string(i), 2, &got).ok());
    EXPECT_TRUE(got.found);
  }
}

TEST_F(RaftBootstrapTest, BadRaftFlagsAreRefusedAtStart) {
  TempDir dir;
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"--id", "a", "--listen", "127.0.0.1:7901", "--data", dir.path() + "/a"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunProcess(MonjudPath(), args, 10s);
  };
  auto expect = [&](const ProcessResult& r, const std::string& text) {
    EXPECT_TRUE(r.exited && r.exit_code == 2) << r.Describe();
    EXPECT_NE(r.err.find(text), std::string::npos) << r.Describe();
  };
  expect(run({"--join", "127.0.0.1:7902"}), "--join: needs --raft-listen");
  expect(run({"--raft-listen", "127.0.0.1:8901"}), "--peers or --join");
  expect(run({"--raft-listen", "127.0.0.1:8901", "--peers", "a=127.0.0.1:7901", "-N", "1", "-R", "1", "-W", "1"}),
         "--raft-peers");
  expect(run({"--raft-listen", "127.0.0.1:8901", "--peers", "a=127.0.0.1:7901", "--raft-peers", "a=127.0.0.1:8901",
              "--raft-voters", "2", "-N", "1", "-R", "1", "-W", "1"}),
         "--raft-voters");
  expect(run({"--raft-listen", "127.0.0.1:8901", "--peers", "a=127.0.0.1:7901", "--raft-peers", "a=127.0.0.1:8999",
              "-N", "1", "-R", "1", "-W", "1"}),
         "does not match --raft-listen");
  expect(run({"--raft-listen", "0.0.0.0:8901", "--join", "127.0.0.1:7902"}), "wildcard");
}

}  // namespace
}  // namespace monju::itest
