// ChangeDriver: when a pending membership change may take its next step.
// Pure: the Raft leader gathers each member's report and proposes what this
// returns.
//
// Steps (see ChangePhase)
// - Streaming -> FinishStreaming once every live member reports the current
//   epoch (so nobody still plans under the placement before the change) and
//   every member that gains partitions reports its streaming of this change
//   done. A member that gains partitions but is down holds the change up
//   (`waiting_for` says so; the operator may abort).
// - ReadsMoved -> Complete once every live member reports the current epoch
//   (so nobody still reads from the old owners).
// "Live" is the leader's failure-detector view; a member that is down is not
// waited for (when it returns, replicas fence its stale requests).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "cluster_metadata.h"
#include "metadata_commands.h"

namespace monju {

struct StreamReport {
  uint64_t change_epoch = 0;
  uint32_t partitions_total = 0;
  uint32_t partitions_done = 0;
  uint64_t items = 0;
  uint64_t bytes = 0;
  bool done = false;
  std::string waiting_for;
  uint64_t elapsed_ms = 0;
};

struct NodeReport {
  uint64_t epoch = 0;  // installed on that node
  StreamReport stream;
};

struct DriverDecision {
  std::optional<MetadataCommand> propose;
  std::string waiting_for;  // why nothing is proposed yet ("" when idle or proposing)
};

// reports: by member id, from the members that answered. alive: the
// leader's view. write_quorum: the cluster's W (which partitions need streaming).
DriverDecision NextChangeStep(const ClusterMetadata& metadata, const std::map<std::string, NodeReport>& reports,
                              const std::function<bool(const std::string& member_id)>& alive,
                              uint32_t write_quorum);

}  // namespace monju
