// Checks for membership-change tests on real processes: a concurrent write
// load that records what was acknowledged, "every acknowledged key reads
// back", "every partition sits on exactly its owners", and the partitions a
// change moved compared with the ideal.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "raft_cluster.h"

namespace monju::itest {

// Writers putting unique keys (value = key) through the running nodes, each
// at about `per_second` writes; acknowledged keys and write latencies are
// recorded. Latencies are tagged with the current phase (SetPhase), so a
// test can compare writes during a move with writes without one.
class WriteLoad {
 public:
  WriteLoad(RaftCluster* cluster, int threads, int per_second, std::string prefix);
  ~WriteLoad();  // Stop()
  void Start();
  void Stop();
  void SetPhase(const std::string& phase);
  // Nodes the writers may use (default: the bootstrap ones).
  void SetNodes(std::vector<int> nodes);

  std::vector<std::string> Acked() const;
  uint64_t failures() const { return failures_.load(); }
  std::vector<std::chrono::microseconds> Latencies(const std::string& phase) const;

 private:
  void Run(int thread);

  RaftCluster* cluster_;
  const int threads_, per_second_;
  const std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> failures_{0};
  std::vector<std::thread> workers_;
  mutable std::mutex mu_;
  std::vector<int> nodes_;
  std::string phase_ = "steady";
  std::vector<std::string> acked_;
  std::map<std::string, std::vector<std::chrono::microseconds>> latencies_;
};

// Partition -> owner ids (the readers; equal to the writers when settled).
std::map<int, std::set<std::string>> OwnersByPartition(const membership::RingReply& ring);

uint32_t PartitionOfPk(const std::string& pk, int partitions);

// Every key reads back (R = 2) with value == key through a running node.
::testing::AssertionResult AllReadBack(RaftCluster& c, const std::vector<std::string>& keys);

// Every running node holds a key exactly when it owns the key's partition
// (checked on about 400 keys spread over `keys`); polls until true (cleanup
// runs after a change) or the timeout.
::testing::AssertionResult KeysOnExactlyTheirOwners(RaftCluster& c, const std::vector<std::string>& keys,
                                                    std::chrono::milliseconds timeout = 60s);

// Partition replicas whose owner changed between two rings, and the ideal
// fraction for a change of one member among `members_after` (or before).
struct MoveReport {
  int slots_moved = 0;
  int slots_total = 0;
  int partitions_changed = 0;
  double fraction() const { return slots_total ? double(slots_moved) / slots_total : 0; }
};
MoveReport CompareRings(const membership::RingReply& before, const membership::RingReply& after);

}  // namespace monju::itest
