// Workload: the chaos run's clients. Each client thread talks to one node
// (clients are spread over every node), carries contexts from its reads into
// its writes, and records every operation in the History:
// - register: read-modify-write of a few keys (each write names a new value);
// - set-add: read every sibling of a few keys, write back their union plus one
//   new element with the merged context (the workload Jepsen used on Riak);
// - deletes: create a fresh key, later delete it with the context of a read,
//   and sometimes write it again after the delete.
// Operations are paced to a total rate. Keys are "reg/<i>", "set/<minute>/<j>"
// (a new generation each minute keeps values small) and "del/<client>/<n>";
// every item uses the sort key kItemSk.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "history.h"
#include "node_process.h"

namespace monju::chaos {

inline constexpr const char* kItemSk = "v";

struct WorkloadOptions {
  uint64_t seed = 1;
  int clients = 6;
  double ops_per_second = 150;  // cycles (a read and its write), all clients together
  int register_keys = 8;
  int set_keys = 4;
  // Relative weights of the three workloads (0 turns one off).
  int register_weight = 2, set_weight = 2, delete_weight = 1;
  int request_timeout_ms = 2000;  // the nodes'; clients wait a little longer
};

class Workload {
 public:
  // `nodes` gives each node's address; `history` must outlive the workload.
  Workload(WorkloadOptions options, std::vector<NodeSpec> nodes, History* history);
  ~Workload();
  // Starts the client threads; the run's clock starts at `epoch`.
  void Start(std::chrono::steady_clock::time_point epoch);
  // Asks every client to stop after its current operation, then joins them.
  void Stop();

 private:
  class Client;
  const WorkloadOptions options_;
  const std::vector<NodeSpec> nodes_;
  History* history_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<std::thread> threads_;
};

}  // namespace monju::chaos
