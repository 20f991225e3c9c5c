// DataPathFence: what the data path (coordinator, replica handler, replica
// endpoints) needs from Raft-managed membership; null in a static cluster.
// Implemented by MembershipService over its EpochGate. Never waits on Raft:
// catching up is a bounded fetch from a peer.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "epoch_gate.h"

namespace monju {

class DataPathFence {
 public:
  virtual ~DataPathFence() = default;
  // The installed epoch.
  virtual uint64_t epoch() const = 0;
  // A request or refusal named `epoch` (from `sender`, a member id or ""):
  // when newer than ours, fetch the metadata first, waiting at most about
  // `timeout`.
  virtual void Observe(uint64_t epoch, const std::string& sender, std::chrono::milliseconds timeout) = 0;
  // Admission of one operation on `partition`, planned under epoch `planned`
  // (a peer's stamp) or under `planned_view` (this node's coordinator). The
  // ticket is held until the operation ended (see EpochGate). StaleEpoch when
  // the placement changed since.
  virtual Status Admit(uint64_t planned, uint32_t partition, EpochGate::Ticket* ticket) = 0;
  virtual Status Admit(const ClusterView& planned_view, uint32_t partition, EpochGate::Ticket* ticket) = 0;
};

}  // namespace monju
