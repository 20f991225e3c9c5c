#include "placement.h"

#include <algorithm>
#include <set>

namespace monju {
namespace {

bool InOldSet(const Member& m) { return m.state == MemberState::kNormal || m.state == MemberState::kLeaving; }
bool InNewSet(const Member& m) { return m.state == MemberState::kNormal || m.state == MemberState::kJoining; }

std::vector<RingNode> RingOf(const ClusterMetadata& md, bool (*placed)(const Member&)) {
  std::vector<RingNode> nodes;
  for (const auto& m : md.members)
    if (m.state != MemberState::kRemoved) nodes.push_back({m.id, m.token_owner, placed(m) ? m.vnodes : 0});
  return nodes;
}

std::string Describe(const ClusterMetadata& md) {
  std::string s = "epoch=" + std::to_string(md.epoch) + " Q=" + std::to_string(md.partitions) +
                  " N=" + std::to_string(md.replicas) + " members=";
  bool first = true;
  for (const auto& m : md.members) {
    if (m.state == MemberState::kRemoved) continue;
    s += (first ? "" : ",") + m.id + "=" + m.Address();
    if (m.state != MemberState::kNormal) s += std::string("(") + MemberStateName(m.state) + ")";
    first = false;
  }
  if (md.change) {
    s += std::string(" change=") + ChangeKindName(md.change->kind) + ":" + md.change->node;
    if (!md.change->replaced.empty()) s += "/" + md.change->replaced;
    s += std::string(":") + ChangePhaseName(md.change->phase);
  }
  return s;
}

}  // namespace

PeerAddress AddressOf(const Member& m) { return PeerAddress{m.id, m.host, m.port, m.peer_port}; }

StatusOr<std::shared_ptr<const ClusterView>> BuildView(const ClusterMetadata& md) {
  if (md.LiveCount() == 0) return Status::InvalidArgument("the cluster metadata has no members");
  ViewLayout layout;
  layout.epoch = md.epoch;
  layout.partitions = md.partitions;
  layout.replicas = md.replicas;
  for (const auto& m : md.members)
    if (m.state != MemberState::kRemoved) layout.members.push_back(AddressOf(m));
  if (!md.change) {
    layout.read_ring = RingOf(md, InNewSet);
  } else if (md.change->phase == ChangePhase::kStreaming) {
    layout.read_ring = RingOf(md, InOldSet);
    layout.other_ring = RingOf(md, InNewSet);
  } else {
    layout.read_ring = RingOf(md, InNewSet);
    layout.other_ring = RingOf(md, InOldSet);
  }
  layout.identity = "cluster=" + md.cluster_id;
  layout.description = Describe(md);
  return ClusterView::Create(std::move(layout));
}

std::vector<StreamTask> StreamTasksFor(const ClusterMetadata& md, std::string_view self, uint32_t write_quorum) {
  std::vector<StreamTask> tasks;
  if (!md.change || md.change->phase != ChangePhase::kStreaming) return tasks;
  auto view = BuildView(md);
  if (!view.ok()) return tasks;
  const ClusterView& v = *view.value();
  const int me = v.IndexOf(self);
  if (me < 0) return tasks;
  const uint32_t w = std::clamp<uint32_t>(write_quorum, 1, md.replicas);
  for (uint32_t p = 0; p < md.partitions; ++p) {
    const auto& old_owners = v.ReadOwners(p);
    if (std::find(old_owners.begin(), old_owners.end(), uint32_t(me)) != old_owners.end()) continue;
    if (!v.IsWriteOwner(self, p)) continue;
    StreamTask t;
    t.partition = p;
    for (uint32_t m : old_owners) {
      const std::string& id = v.members()[m].id;
      if (id != md.change->replaced) t.sources.push_back(id);
    }
    const uint32_t want = md.replicas - w + 1;
    t.required = std::max<uint32_t>(1, std::min<uint32_t>(want, static_cast<uint32_t>(t.sources.size())));
    if (!t.sources.empty()) tasks.push_back(std::move(t));
  }
  return tasks;
}

std::vector<uint32_t> HintTargets(const ClusterView& view, std::string_view owner, uint32_t partition) {
  if (partition >= view.ring().partitions()) return {};
  if (view.IsWriteOwner(owner, partition)) return {static_cast<uint32_t>(view.IndexOf(owner))};
  return view.WriteOwners(partition);
}

MoveCount CountMoves(const ClusterView& before, const ClusterView& after) {
  MoveCount c;
  const uint32_t q = std::min(before.ring().partitions(), after.ring().partitions());
  for (uint32_t p = 0; p < q; ++p) {
    std::set<std::string> was;
    for (uint32_t m : before.ReadOwners(p)) was.insert(before.members()[m].id);
    uint32_t gained = 0;
    for (uint32_t m : after.ReadOwners(p)) gained += was.count(after.members()[m].id) ? 0 : 1;
    c.slots_moved += gained;
    c.slots_total += after.ReadOwners(p).size();
    c.partitions_changed += gained ? 1 : 0;
  }
  return c;
}

}  // namespace monju
