// Chaos runs: start a local Monju cluster, run a concurrent client workload
// against every node while faults are injected from a seed, heal, wait for
// the replicas to converge, and check the history against the final state.
//
// Contract
// - Bounded: the run takes at most duration + converge_timeout + start-up,
//   and a watchdog ends the process (and so every node, which dies with it)
//   if anything overruns that by two minutes. Every process started is
//   killed before RunChaos returns.
// - Reproducible: the same seed gives the same fault schedule and the same
//   client choices (timing, and so the exact history, still varies).
// - Traffic stays on loopback: 127.0.0.1 without a private network, or the
//   run's own network namespace (EnterPrivateNetwork, before any thread).
// - The report says what was injected and what the checker found; RunChaos
//   fails (non-OK) only when the run itself could not be carried out (a node
//   would not start, the output directory is not writable).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "checker.h"
#include "common/status.h"
#include "schedule.h"
#include "workload.h"

namespace monju::chaos {

struct RunOptions {
  std::string monjud_path;
  std::string out_dir;  // created; gets node data and logs, history.jsonl, summary.json
  bool keep_data = false;  // keep the nodes' data directories afterwards
  std::vector<std::string> node_flags;  // more monjud flags, after the run's own
  bool private_network = false;  // EnterPrivateNetwork() succeeded
  int nodes = 3;
  int n = 3, r = 2, w = 2;
  uint64_t seed = 1;
  std::chrono::seconds duration{60};  // of the workload and its faults
  std::vector<FaultKind> faults;
  WorkloadOptions workload;
  std::chrono::seconds converge_timeout{180};
  // How replicas are brought together after the heal, and after a wipe:
  // anti-entropy (`monju repair` on the nodes), or a quorum read of every key
  // (read repair).
  enum class ConvergeBy { kAntiEntropy, kReadRepair } converge_by = ConvergeBy::kAntiEntropy;
  bool verbose = true;  // progress lines on stdout
};

struct InjectedFault {
  Fault fault;
  std::string error;  // empty when applied and healed as planned
};

struct RunReport {
  RunOptions options;
  std::string partitions_by;  // "iptables" or "injected"
  std::vector<InjectedFault> faults;
  CheckResult check;
  bool converged = false;
  double convergence_s = 0;  // from the end of the heal to identical replicas
  int64_t repaired_keys = 0;  // keys anti-entropy repairs brought to some node
  double run_s = 0;
  std::string Table() const;
  std::string Json() const;
};

StatusOr<RunReport> RunChaos(const RunOptions& options);

}  // namespace monju::chaos
