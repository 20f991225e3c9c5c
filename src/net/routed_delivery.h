// Hint delivery in a Raft-managed cluster: each hint goes where HintTargets
// (membership/placement.h) says, its owner while the owner still owns the
// hint's partition, else every current owner (re-targeted). OK only when
// every target applied its hints durably; any failure keeps the whole batch
// for a later attempt (applies are idempotent).
#pragma once

#include <string>
#include <vector>

#include "hintstore.h"
#include "membership.h"
#include "replica_endpoints.h"

namespace monju {

Status DeliverRouted(const ClusterView& view, NodeEndpoints& endpoints, const std::string& owner,
                     const std::vector<Hint>& batch);

}  // namespace monju
