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

}  // namespace monju
