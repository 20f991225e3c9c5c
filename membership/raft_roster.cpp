#include "raft_roster.h"

#include <algorithm>

namespace monju {

uint32_t TargetVoters(const ClusterMetadata& md) {
  uint32_t normal = 0;
  for (const auto& m : md.members) normal += m.state == MemberState::kNormal ? 1 : 0;
  return std::max<uint32_t>(1, std::min(md.voters, normal));
}

RosterStep NextRosterStep(const ClusterMetadata& md, const std::vector<RaftServer>& config,
                          const std::function<bool(const std::string&)>& alive) {
  RosterStep step;
  auto member_of = [&](uint64_t id) -> const Member* {
    for (const auto& m : md.members)
      if (m.raft_id == id) return &m;
    return nullptr;
  };
  auto server_of = [&](uint64_t id) -> const RaftServer* {
    for (const auto& s : config)
      if (s.id == id) return &s;
    return nullptr;
  };
  // Members missing from the configuration, then spares to make standbys.
  for (const auto& m : md.members) {
    if (m.state == MemberState::kRemoved || server_of(m.raft_id)) continue;
    step = {RosterStep::Kind::kAdd, m.raft_id, m.raft_address, RaftRole::kSpare, m.id, "member not in the Raft group"};
    return step;
  }
  for (const auto& s : config) {
    const Member* m = member_of(s.id);
    if (m && m->state != MemberState::kRemoved && s.role == RaftRole::kSpare) {
      step = {RosterStep::Kind::kAssign, s.id, "", RaftRole::kStandby, m->id, "new member follows the log"};
      return step;
    }
  }
  // Servers that are no (longer) members.
  for (const auto& s : config) {
    const Member* m = member_of(s.id);
    if (!m || m->state == MemberState::kRemoved) {
      step = {RosterStep::Kind::kRemove, s.id, "", RaftRole::kSpare, m ? m->id : std::to_string(s.id),
              "no longer a member"};
      return step;
    }
  }
  // Voters.
  const uint32_t target = TargetVoters(md);
  std::vector<const RaftServer*> voters;
  uint32_t normal_voters = 0;
  for (const auto& s : config) {
    if (s.role != RaftRole::kVoter) continue;
    voters.push_back(&s);
    const Member* m = member_of(s.id);
    normal_voters += m && m->state == MemberState::kNormal ? 1 : 0;
  }
  if (normal_voters < target) {
    for (const auto& m : md.members) {  // by id
      const RaftServer* s = server_of(m.raft_id);
      if (m.state == MemberState::kNormal && s && s->role != RaftRole::kVoter && alive(m.id)) {
        step = {RosterStep::Kind::kAssign, m.raft_id, "", RaftRole::kVoter, m.id, "the group needs a voter"};
        return step;
      }
    }
  }
  // A voter that is not normal (leaving, being replaced) stops voting once
  // enough normal members vote; a dead one first.
  if (normal_voters >= target) {
    const RaftServer* pick = nullptr;
    for (const RaftServer* s : voters) {
      const Member* m = member_of(s->id);
      if (m && m->state == MemberState::kNormal) continue;
      if (!pick || (m && !alive(m->id))) pick = s;
    }
    if (pick) {
      const Member* m = member_of(pick->id);
      step = {RosterStep::Kind::kAssign, pick->id, "", RaftRole::kStandby, m ? m->id : "", "it is leaving"};
      return step;
    }
  }
  // More normal voters than configured: the last by id (a dead one first) stops.
  if (normal_voters > md.voters) {
    const RaftServer* pick = nullptr;
    for (const RaftServer* s : voters) {
      const Member* m = member_of(s->id);
      if (!m || m->state != MemberState::kNormal) continue;
      if (!pick || !alive(m->id) || (alive(member_of(pick->id)->id) && m->id > member_of(pick->id)->id)) pick = s;
    }
    if (pick) {
      step = {RosterStep::Kind::kAssign, pick->id, "", RaftRole::kStandby, member_of(pick->id)->id,
              "more voters than configured"};
      return step;
    }
  }
  return step;
}

}  // namespace monju
