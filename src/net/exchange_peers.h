// How this node's anti-entropy scheduler reaches co-owners: the replicas of
// each partition in the current view, their liveness from this node's
// failure detectors, and their side of an exchange over MonjuReplica (ae_*
// calls on the pooled peer connections, each feeding the peer's detector).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "antientropy.h"
#include "membership.h"
#include "replica_endpoints.h"

namespace monju {

// A peer's side of an exchange, over its RemoteReplicaEndpoint. Thread-safe.
class RemoteExchangePeer final : public ExchangePeer {
 public:
  explicit RemoteExchangePeer(RemoteReplicaEndpoint* endpoint) : endpoint_(endpoint) {}
  Status ChildHashes(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& parents,
                     std::vector<uint64_t>* out, int64_t* items) override {
    return endpoint_->AeHashes(partition, format, level, parents, out, items);
  }
  Status ListKeys(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& nodes,
                  const KeyDigest* after, size_t limit, std::vector<KeyDigest>* out, bool* more) override {
    return endpoint_->AeKeys(partition, format, level, nodes, after, limit, out, more);
  }
  Status Fetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out) override {
    return endpoint_->AeFetch(partition, keys, out);
  }
  Status Push(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) override {
    return endpoint_->AePush(partition, versions);
  }

 private:
  RemoteReplicaEndpoint* const endpoint_;
};

class NodeExchangeDirectory final : public ExchangeDirectory {
 public:
  NodeExchangeDirectory(const Membership* membership, NodeEndpoints* endpoints)
      : membership_(membership), endpoints_(endpoints) {}

  std::vector<uint32_t> OwnedPartitions() override {
    auto view = membership_->Current();
    const int self = view->IndexOf(endpoints_->self_id());
    std::vector<uint32_t> out;
    if (self < 0) return out;
    for (uint32_t p = 0; p < view->ring().partitions(); ++p)
      for (uint32_t m : view->ring().PreferenceList(p))
        if (static_cast<int>(m) == self) out.push_back(p);
    return out;
  }

  std::vector<std::string> CoOwners(uint32_t partition) override {
    auto view = membership_->Current();
    std::vector<std::string> out;
    if (partition >= view->ring().partitions()) return out;
    for (uint32_t m : view->ring().PreferenceList(partition)) {
      const std::string& id = view->members()[m].id;
      if (id != endpoints_->self_id()) out.push_back(id);
    }
    return out;
  }

  // A view's placement is named by its fingerprint (static views) and its
  // epoch (Raft-managed views move on with every change).
  uint64_t LayoutId() override {
    auto view = membership_->Current();
    return view->fingerprint() ^ (view->epoch() * 0x9E3779B97F4A7C15ull);
  }

  bool PeerAlive(const std::string& peer) override {
    return endpoints_->Detector(peer)->State() == PeerState::kAlive;
  }

  ExchangePeer* Peer(const std::string& peer) override {
    auto view = membership_->Current();
    const int index = view->IndexOf(peer);
    if (index < 0) return nullptr;
    RemoteReplicaEndpoint* endpoint = endpoints_->Remote(*view, static_cast<uint32_t>(index));
    if (!endpoint) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = peers_[endpoint];  // endpoints live as long as the directory's NodeEndpoints
    if (!slot) slot = std::make_unique<RemoteExchangePeer>(endpoint);
    return slot.get();
  }

 private:
  const Membership* membership_;
  NodeEndpoints* endpoints_;
  std::mutex mu_;
  std::map<RemoteReplicaEndpoint*, std::unique_ptr<RemoteExchangePeer>> peers_;
};

}  // namespace monju
