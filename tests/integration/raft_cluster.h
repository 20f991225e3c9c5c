// Raft-managed clusters of real monjud processes (on LocalCluster): the
// first `initial` nodes bootstrap the cluster from --peers/--raft-peers; any
// other node is started with --join and joins by `monju admin join`. Every
// node has a client port and a Raft port on 127.0.0.1.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "MonjuMembership.h"
#include "cluster_harness.h"

namespace monju::itest {

struct RaftClusterOptions {
  int max_nodes = 5;
  int initial = 3;
  int n = 3;
  int r = 2;
  int w = 2;
  int partitions = 64;
  int vnodes = 16;
  int voters = 3;
  int request_timeout_ms = 2000;
  std::vector<std::string> extra_flags;  // every node
  std::chrono::milliseconds ready_timeout = 20s;
};

class RaftCluster {
 public:
  explicit RaftCluster(RaftClusterOptions options = {});
  RaftCluster(const RaftCluster&) = delete;
  RaftCluster& operator=(const RaftCluster&) = delete;

  // Starts the bootstrap nodes and waits until each has installed epoch 1.
  ::testing::AssertionResult Start();
  // Starts node i with --join (the first running node's address) and waits until it serves.
  ::testing::AssertionResult StartJoiner(int i);

  LocalCluster& local() { return local_; }
  const LocalCluster& local() const { return local_; }
  int max_nodes() const { return options_.max_nodes; }
  const RaftClusterOptions& options() const { return options_; }
  uint16_t raft_port(int i) const { return raft_ports_.at(i); }
  std::string id(int i) const { return local_.id(i); }
  std::string addr(int i) const { return local_.addr(i); }

  // The membership service of node i; false (with *error) when the call failed.
  bool TryMembers(int i, membership::MembersReply* out, std::string* error = nullptr) const;
  bool TryRing(int i, membership::RingReply* out, std::string* error = nullptr) const;
  // Node i's report of its streaming for the change that began at `change_epoch`.
  bool TryProgress(int i, int64_t change_epoch, membership::NodeProgress* out, std::string* error = nullptr) const;
  // Installed epoch of node i, -1 when it does not answer.
  int64_t Epoch(int i) const;
  ::testing::AssertionResult WaitEpochAtLeast(int i, int64_t epoch, std::chrono::milliseconds timeout = 30s) const;
  // Every running node has installed the same epoch, at least `epoch`, with no change pending.
  ::testing::AssertionResult WaitSettled(int64_t epoch, std::chrono::milliseconds timeout = 60s);
  // `monju --addr <node i> admin ARGS...`
  ProcessResult Admin(int i, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = 120s) const;

 private:
  std::vector<std::string> BaseArgs(int i) const;

  RaftClusterOptions options_;
  std::vector<uint16_t> raft_ports_;
  std::map<int, int> joiners_;  // node -> the node its --join names
  LocalCluster local_;
};

}  // namespace monju::itest
