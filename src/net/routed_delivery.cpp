#include "routed_delivery.h"

#include <spdlog/spdlog.h>

#include <map>

#include "clock/codec.h"
#include "placement.h"

namespace monju {

Status DeliverRouted(const ClusterView& view, NodeEndpoints& endpoints, const std::string& owner,
                     const std::vector<Hint>& batch) {
  std::map<uint32_t, std::vector<Hint>> by_target;
  size_t rerouted = 0;
  for (const Hint& h : batch) {
    auto targets = HintTargets(view, owner, h.partition);
    if (targets.empty()) {
      spdlog::error("hints for {}: dropping a hint of partition {}, which does not exist", owner, h.partition);
      continue;
    }
    if (targets.size() != 1 || view.members()[targets[0]].id != owner) ++rerouted;
    for (uint32_t m : targets) by_target[m].push_back(h);
  }
  for (auto& [member, hints] : by_target) {
    Status s;
    if (RemoteReplicaEndpoint* remote = endpoints.Remote(view, member)) {
      s = remote->ApplyBatch(hints);
    } else {
      ReplicaEndpoint& local = endpoints.Endpoint(view, member);  // this node owns the partition now
      for (const Hint& h : hints) {
        auto version = DecodeVersion(h.version);
        if (!version.ok()) continue;  // can never apply; drop it
        s = local.Apply(ItemKey{h.partition, h.pk, h.sk}, version.value());
        if (!s.ok()) break;
      }
    }
    if (!s.ok()) return s;
  }
  if (rerouted)
    spdlog::info("hints for {}: {} of {} re-targeted to the partitions' current owners", owner, rerouted,
                 batch.size());
  return Status::OK();
}

}  // namespace monju
