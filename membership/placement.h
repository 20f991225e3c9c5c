// Placement derived from the cluster metadata: the same metadata gives the
// same view, rings and preference lists on every node (members are sorted by
// id; tokens depend only on token owners and vnodes).
//
// Rings: without a change, every member (all normal) is placed. During a
// change the "old" ring places normal and leaving members, the "new" ring
// normal and joining ones. In phase kStreaming reads use the old ring and
// writes go to both; in phase kReadsMoved reads use the new ring and writes
// still go to both (ClusterView::WriteOwners).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster_metadata.h"
#include "membership.h"

namespace monju {

// InvalidArgument when the metadata cannot be placed (no members). The
// view's epoch is the metadata's (0 for a node's provisional view before the
// cluster's bootstrap committed).
StatusOr<std::shared_ptr<const ClusterView>> BuildView(const ClusterMetadata& metadata);

// Member addresses of the metadata's live members, as the data path sees them.
PeerAddress AddressOf(const Member& member);

// One partition a member gains in the pending change, and where it can copy
// the partition from: the partition's owners before the change, less the
// member itself and a member being replaced. Every one that is up is copied,
// and at least `required` (N - W + 1, at most all of them): every write
// acknowledged by W old owners is then on at least one of them.
struct StreamTask {
  uint32_t partition = 0;
  std::vector<std::string> sources;  // in preference order
  uint32_t required = 1;
};

// The partitions `self` must stream while the pending change is in phase
// kStreaming (empty in any other state). write_quorum: the cluster's W.
std::vector<StreamTask> StreamTasksFor(const ClusterMetadata& metadata, std::string_view self,
                                       uint32_t write_quorum);

// Where a hint held for `owner` is delivered for `partition`: to the owner
// while it is one of the partition's write owners; otherwise (it left the
// cluster, or the partition moved away from it) to every current write
// owner (merged by clock there, so the owners that already hold it lose
// nothing). Member indices of `view`.
std::vector<uint32_t> HintTargets(const ClusterView& view, std::string_view owner, uint32_t partition);

// Partition replicas whose owner differs between two placements (owner sets
// compared per partition, by member id).
struct MoveCount {
  uint64_t slots_moved = 0;   // sum over partitions of owners gained
  uint64_t slots_total = 0;   // Q x N of the later view
  uint32_t partitions_changed = 0;
  double fraction() const { return slots_total ? double(slots_moved) / double(slots_total) : 0; }
};
MoveCount CountMoves(const ClusterView& before, const ClusterView& after);

}  // namespace monju
