#include "membership.h"

#include <xxhash.h>

#include <algorithm>

namespace monju {

StatusOr<std::shared_ptr<const ClusterView>> ClusterView::Create(std::vector<PeerAddress> members, uint32_t vnodes,
                                                                 uint32_t partitions, uint32_t replicas) {
  // Every node sorts the same way, whatever order --peers listed them in.
  std::sort(members.begin(), members.end(), [](const PeerAddress& a, const PeerAddress& b) { return a.id < b.id; });
  std::vector<std::string> ids;
  for (const auto& m : members) ids.push_back(m.id);
  auto ring = Ring::Build(ids, vnodes, partitions, replicas);
  if (!ring.ok()) return ring.status();

  std::shared_ptr<ClusterView> view(new ClusterView());
  view->ring_ = std::move(ring.value());
  view->description_ = "Q=" + std::to_string(partitions) + " N=" + std::to_string(replicas) +
                       " vnodes=" + std::to_string(vnodes) + " peers=";
  for (size_t i = 0; i < members.size(); ++i) view->description_ += (i ? "," : "") + members[i].ToString();
  view->fingerprint_ = XXH64(view->description_.data(), view->description_.size(), 0);
  view->members_ = std::move(members);
  return std::shared_ptr<const ClusterView>(std::move(view));
}

StatusOr<std::shared_ptr<const ClusterView>> ClusterView::Create(ViewLayout layout) {
  auto by_id = [](const auto& a, const auto& b) { return a.id < b.id; };
  std::sort(layout.members.begin(), layout.members.end(), by_id);
  std::sort(layout.read_ring.begin(), layout.read_ring.end(), by_id);
  std::sort(layout.other_ring.begin(), layout.other_ring.end(), by_id);
  if (layout.read_ring.size() != layout.members.size() ||
      (!layout.other_ring.empty() && layout.other_ring.size() != layout.members.size()))
    return Status::InvalidArgument("every member needs one ring node in each ring");
  for (size_t i = 0; i < layout.members.size(); ++i)
    if (layout.read_ring[i].id != layout.members[i].id ||
        (!layout.other_ring.empty() && layout.other_ring[i].id != layout.members[i].id))
      return Status::InvalidArgument("ring nodes do not match the members");
  auto ring = Ring::Build(layout.read_ring, layout.partitions, layout.replicas);
  if (!ring.ok()) return ring.status();

  std::shared_ptr<ClusterView> view(new ClusterView());
  view->ring_ = std::move(ring.value());
  view->epoch_ = layout.epoch;
  if (!layout.other_ring.empty()) {
    auto other = Ring::Build(layout.other_ring, layout.partitions, layout.replicas);
    if (!other.ok()) return other.status();
    const Ring& read = *view->ring_;
    view->write_owners_.resize(layout.partitions);
    view->write_fallbacks_.resize(layout.partitions);
    for (uint32_t p = 0; p < layout.partitions; ++p) {
      auto& owners = view->write_owners_[p];
      owners = read.PreferenceList(p);
      for (uint32_t m : other.value()->PreferenceList(p))
        if (std::find(owners.begin(), owners.end(), m) == owners.end()) owners.push_back(m);
      for (uint32_t m : read.Fallbacks(p))
        if (std::find(owners.begin(), owners.end(), m) == owners.end()) view->write_fallbacks_[p].push_back(m);
    }
  }
  const std::string basis = "raft " + layout.identity + " Q=" + std::to_string(layout.partitions) +
                            " N=" + std::to_string(layout.replicas);
  view->fingerprint_ = XXH64(basis.data(), basis.size(), 0);
  view->description_ = std::move(layout.description);
  view->members_ = std::move(layout.members);
  return std::shared_ptr<const ClusterView>(std::move(view));
}

namespace {

std::vector<std::string_view> IdsOf(const ClusterView& v, const std::vector<uint32_t>& members) {
  std::vector<std::string_view> ids;
  for (uint32_t m : members) ids.push_back(v.members()[m].id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

bool ClusterView::SamePlacement(const ClusterView& other, uint32_t partition) const {
  if (partition >= ring_->partitions() || partition >= other.ring().partitions()) return false;
  if (&other == this) return true;
  return IdsOf(*this, ReadOwners(partition)) == IdsOf(other, other.ReadOwners(partition)) &&
         IdsOf(*this, WriteOwners(partition)) == IdsOf(other, other.WriteOwners(partition));
}

bool ClusterView::IsWriteOwner(std::string_view id, uint32_t partition) const {
  if (partition >= ring_->partitions()) return false;
  for (uint32_t m : WriteOwners(partition))
    if (members_[m].id == id) return true;
  return false;
}

}  // namespace monju
