// The coordinator's ways to reach replicas: in-process for this node, Thrift
// (MonjuReplica, multiplexed as "replica") for peers.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "MonjuReplica.h"
#include "client_pool.h"
#include "coordinator.h"
#include "peer_health.h"

namespace monju {

class LocalReplicaEndpoint final : public ReplicaEndpoint {
 public:
  explicit LocalReplicaEndpoint(Replica* replica) : replica_(replica) {}
  Status Apply(const ItemKey& key, const Version& version) override { return replica_->Apply(key, version); }
  Status Read(const ItemKey& key, SiblingSet* out) override { return replica_->Read(key, out); }
  Status Scan(const DataStore::ScanRequest& r, std::vector<ScannedItem>* out, bool* more) override {
    return replica_->Scan(r, out, more);
  }
  bool LikelyAlive() const override { return true; }

 private:
  Replica* replica_;
};

// Thread-safe: each call borrows its own pooled client.
class RemoteReplicaEndpoint final : public ReplicaEndpoint {
 public:
  RemoteReplicaEndpoint(std::string peer_id, ConnectionOptions options, uint64_t fingerprint, const Clock* clock);
  Status Apply(const ItemKey& key, const Version& version) override;
  Status Read(const ItemKey& key, SiblingSet* out) override;
  Status Scan(const DataStore::ScanRequest& r, std::vector<ScannedItem>* out, bool* more) override;
  bool LikelyAlive() const override { return health_.LikelyAlive(); }
  // A bare liveness and parameter check.
  Status Ping();

 private:
  template <typename Fn>
  Status Call(const char* what, Fn&& fn);

  const std::string peer_id_;
  const int64_t fingerprint_;
  ClientPool<rpc::MonjuReplicaClient> pool_;
  PeerHealth health_;
};

// Endpoints for the members of the current view, created on first use.
class NodeEndpoints final : public EndpointDirectory {
 public:
  NodeEndpoints(std::string self_id, Replica* local, ConnectionOptions base, const Clock* clock);
  ReplicaEndpoint& Endpoint(const ClusterView& view, uint32_t member_index) override;

 private:
  const std::string self_id_;
  LocalReplicaEndpoint local_;
  const ConnectionOptions base_;
  const Clock* clock_;
  std::mutex mu_;
  // Keyed by "id=host:port@fingerprint" so a changed view gets fresh endpoints.
  std::unordered_map<std::string, std::unique_ptr<RemoteReplicaEndpoint>> remotes_;
};

}  // namespace monju
