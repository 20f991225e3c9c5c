// RaftRoster: which Raft servers the membership group should have, from the
// cluster metadata. Pure: the leader asks for the next single configuration
// change (libraft allows one at a time) and carries it out.
//
// Rules
// - Every member that is not removed is in the configuration (a joining
//   member too, so it follows the log); a removed member, or a server that
//   is no member, is taken out.
// - New servers enter as spares and are then made standbys.
// - The group keeps `voters` voters (the metadata's number, at most the
//   normal members): current voters stay; a missing voter is a normal
//   standby that is alive, the first by id. A voter that is leaving or being
//   replaced stops voting once enough normal members vote (a dead one
//   first), never before, so a change never shrinks the group's majority
//   below what the live members need. A joining or leaving member is never
//   promoted.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cluster_metadata.h"
#include "raft_group.h"

namespace monju {

struct RosterStep {
  enum class Kind { kNone, kAdd, kAssign, kRemove };
  Kind kind = Kind::kNone;
  uint64_t id = 0;
  std::string address;            // kAdd
  RaftRole role = RaftRole::kStandby;  // kAssign
  std::string member;             // for log lines
  std::string why;
};

RosterStep NextRosterStep(const ClusterMetadata& metadata, const std::vector<RaftServer>& configuration,
                          const std::function<bool(const std::string& member_id)>& alive);

// The voter count the group aims for.
uint32_t TargetVoters(const ClusterMetadata& metadata);

}  // namespace monju
