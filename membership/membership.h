// Membership: who is in the cluster and how keys are placed.
//
// A ClusterView is an immutable snapshot (members, Q, N, vnodes, the ring and
// a fingerprint of all of it). Readers hold shared_ptr<const ClusterView> for
// the length of one request; a change publishes a new snapshot and never
// edits one in place. A static cluster's view comes from --peers at start
// (epoch 0); a Raft-managed cluster (membership/cluster_metadata.h) publishes
// one view per committed metadata epoch through the same interface.
//
// Placement. ReadOwners(p) are the replicas reads go to: ring().
// PreferenceList(p). WriteOwners(p) are where writes go: the read owners,
// then, while a membership change is pending, the partition's other owners
// (those gaining it, or, once reads moved, those losing it). A write then needs
// W + PendingOwners(p) acknowledgements, so that W of the owners before and W
// of the owners after the change hold it. Without a change both lists are
// the same.
//
// The fingerprint travels on every node-to-node request: a node refuses a
// peer whose Q, N, vnodes or peer list differ instead of misplacing data. A
// Raft-managed view's fingerprint covers the cluster's identity, Q and N but
// not the members, which change; its epoch travels with each request instead.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/node_config.h"
#include "ring/ring.h"

namespace monju {

// What a Raft-managed view is built from (membership/placement.h fills it).
struct ViewLayout {
  uint64_t epoch = 0;
  uint32_t partitions = 0;
  uint32_t replicas = 0;
  std::vector<PeerAddress> members;  // every member that is not removed
  // One node per member (same ids); vnodes 0 for a member without tokens.
  std::vector<RingNode> read_ring;
  // The ring on the other side of a pending change; empty when none.
  std::vector<RingNode> other_ring;
  std::string identity;     // what the fingerprint covers besides Q and N
  std::string description;  // for log lines and `monju status`
};

class ClusterView {
 public:
  // InvalidArgument when the members cannot form a ring.
  static StatusOr<std::shared_ptr<const ClusterView>> Create(std::vector<PeerAddress> members, uint32_t vnodes,
                                                             uint32_t partitions, uint32_t replicas);
  // A Raft-managed view. InvalidArgument when the rings cannot be built.
  static StatusOr<std::shared_ptr<const ClusterView>> Create(ViewLayout layout);

  const Ring& ring() const { return *ring_; }
  // Members in ring order (ring().nodes()[i] is members()[i].id).
  const std::vector<PeerAddress>& members() const { return members_; }
  // Index of the member with this id, or -1.
  int IndexOf(std::string_view id) const { return ring_->IndexOf(id); }
  uint64_t fingerprint() const { return fingerprint_; }
  // "Q=256 N=3 vnodes=64 peers=a=127.0.0.1:7001,..." for log lines.
  const std::string& description() const { return description_; }

  // 0 for a static view; the metadata epoch of a Raft-managed one.
  uint64_t epoch() const { return epoch_; }
  // Member indices, primary first (see the placement notes above).
  const std::vector<uint32_t>& ReadOwners(uint32_t partition) const { return ring_->PreferenceList(partition); }
  const std::vector<uint32_t>& WriteOwners(uint32_t partition) const {
    return write_owners_.empty() ? ring_->PreferenceList(partition) : write_owners_[partition];
  }
  // Nodes beyond the write owners, in ring order, for sloppy quorums.
  const std::vector<uint32_t>& WriteFallbacks(uint32_t partition) const {
    return write_owners_.empty() ? ring_->Fallbacks(partition) : write_fallbacks_[partition];
  }
  // Extra acknowledgements a write of the partition needs during a change.
  uint32_t PendingOwners(uint32_t partition) const {
    return static_cast<uint32_t>(WriteOwners(partition).size() - ReadOwners(partition).size());
  }
  // True when both views send the partition's reads and writes to the same
  // member ids (fencing: a request planned under one is valid under the other).
  bool SamePlacement(const ClusterView& other, uint32_t partition) const;
  // True when `id` is one of the partition's write owners.
  bool IsWriteOwner(std::string_view id, uint32_t partition) const;

 private:
  ClusterView() = default;
  std::vector<PeerAddress> members_;
  std::shared_ptr<const Ring> ring_;
  uint64_t fingerprint_ = 0;
  std::string description_;
  uint64_t epoch_ = 0;
  // Empty for views without a pending change.
  std::vector<std::vector<uint32_t>> write_owners_;
  std::vector<std::vector<uint32_t>> write_fallbacks_;
};

// The current view; thread-safe. Replace() swaps the snapshot atomically.
class Membership {
 public:
  explicit Membership(std::shared_ptr<const ClusterView> initial) : view_(std::move(initial)) {}
  std::shared_ptr<const ClusterView> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return view_;
  }
  void Replace(std::shared_ptr<const ClusterView> next) {
    std::lock_guard<std::mutex> lock(mu_);
    view_ = std::move(next);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ClusterView> view_;
};

}  // namespace monju
