// The node's implementations of the background workers' ports: how hint
// delivery reaches owners and how the tombstone reaper asks them, both over
// the current view and this node's failure detectors.
#pragma once

#include "hint_delivery.h"
#include "membership.h"
#include "replica_endpoints.h"
#include "routed_delivery.h"
#include "tombstone_reaper.h"

namespace monju {

class NodeHintTarget final : public HintTarget {
 public:
  NodeHintTarget(const Membership* membership, NodeEndpoints* endpoints)
      : membership_(membership), endpoints_(endpoints) {}

  bool OwnerAlive(const std::string& owner) override {
    auto view = membership_->Current();
    // Raft-managed: the hints of a member that left go to the current owners.
    if (view->IndexOf(owner) < 0) return view->epoch() > 0;
    return endpoints_->Detector(owner)->State() == PeerState::kAlive;
  }

  Status Deliver(const std::string& owner, const std::vector<Hint>& batch) override {
    auto view = membership_->Current();
    // Raft-managed: hints re-targeted when their owner left or lost the partition.
    if (view->epoch() > 0) return DeliverRouted(*view, *endpoints_, owner, batch);
    int index = view->IndexOf(owner);
    if (index < 0) return Status::NotFound(owner + " is not a member of the current view");
    RemoteReplicaEndpoint* remote = endpoints_->Remote(*view, static_cast<uint32_t>(index));
    if (!remote) return Status::InvalidArgument("a hint names this node as its owner");
    return remote->ApplyBatch(batch);
  }

 private:
  const Membership* membership_;
  NodeEndpoints* endpoints_;
};

class NodeOwnerReader final : public OwnerReader {
 public:
  NodeOwnerReader(const Membership* membership, NodeEndpoints* endpoints)
      : membership_(membership), endpoints_(endpoints) {}

  bool IsOwner(const ItemKey& key) override {
    auto view = membership_->Current();
    int self = view->IndexOf(endpoints_->self_id());
    if (self < 0 || key.partition >= view->ring().partitions()) return false;
    for (uint32_t m : view->WriteOwners(key.partition))
      if (static_cast<int>(m) == self) return true;
    return false;
  }

  Status ReadAllOwners(const ItemKey& key, std::vector<SiblingSet>* out) override {
    auto view = membership_->Current();
    out->clear();
    // Every owner, those gaining the partition in a membership change too.
    for (uint32_t m : view->WriteOwners(key.partition)) {
      SiblingSet set;
      ReplicaEndpoint& ep = endpoints_->Endpoint(*view, m);
      if (!ep.LikelyAlive()) return Status::Unavailable(view->members()[m].id + " is down");
      Status s = ep.Read(key, &set);
      if (!s.ok()) return s;
      out->push_back(std::move(set));
    }
    return Status::OK();
  }

 private:
  const Membership* membership_;
  NodeEndpoints* endpoints_;
};

}  // namespace monju
