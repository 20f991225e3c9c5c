// Schedule: which faults a chaos run injects, when, and on which nodes, drawn
// from a seed so that `--seed` replays the same run. Pure.
//
// Faults come one at a time: a quiet gap, the fault, then its heal. Kinds are
// taken in a shuffled round-robin, so a run long enough for k faults sees
// min(k, kinds) different kinds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace monju::chaos {

enum class FaultKind {
  kKill,       // SIGKILL a node; restart it on its data at the heal
  kPause,      // SIGSTOP a node; SIGCONT at the heal
  kPartition,  // cut nodes apart, both ways or one way; rejoin at the heal
  kWipe,       // SIGKILL a node, delete its data directory, restart it empty
  kSlow,       // delay every call to and from a node
};

const char* FaultKindName(FaultKind k);
// Parses "kill,pause,partition,wipe,slow" (or "all"); InvalidArgument names
// the bad entry.
StatusOr<std::vector<FaultKind>> ParseFaultKinds(const std::string& text);

struct Fault {
  FaultKind kind = FaultKind::kKill;
  std::chrono::milliseconds start{0};     // since the workload started
  std::chrono::milliseconds duration{0};  // until the heal
  // kKill/kPause/kWipe/kSlow: one node. kPartition: `nodes` is one side and
  // every other node the other side.
  std::vector<int> nodes;
  bool one_way = false;  // kPartition: only traffic from `nodes` to the rest is dropped
  std::chrono::milliseconds delay{0};  // kSlow
  std::string Describe() const;        // "partition {n1} -/-> {n2,n3} at 12.0 s for 6.5 s"
};

struct ScheduleOptions {
  uint64_t seed = 1;
  int nodes = 3;
  std::chrono::milliseconds run{60000};         // faults start and end within it
  std::vector<FaultKind> kinds;
  std::chrono::milliseconds min_gap{3000}, max_gap{6000};
  std::chrono::milliseconds min_fault{4000}, max_fault{10000};
};

std::vector<Fault> MakeSchedule(const ScheduleOptions& options);

}  // namespace monju::chaos
