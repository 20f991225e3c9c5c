// RaftMembership: the node-side wiring of Raft-managed membership (a node
// started with --raft-listen): the MembershipService with its Thrift clients,
// the replica as streaming sink and source, the "membership" service, and the
// upkeep after a change completed (a thread of its own): this node erases
// the partitions it no longer owns (partition_cleanup.h). Hints for owners
// that lost a partition are re-targeted when delivered (peer_services.h).
// Static clusters never create one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "config/node_config.h"
#include "membership_clients.h"
#include "membership_service.h"
#include "replica.h"
#include "replica_endpoints.h"
#include "replica_stream.h"
#include "service_demux.h"

namespace monju {

class RaftMembership {
 public:
  // Loads or fetches the metadata to start with (see MembershipService).
  static StatusOr<std::unique_ptr<RaftMembership>> Open(const NodeConfig& config);
  ~RaftMembership();

  std::shared_ptr<const ClusterView> InitialView() const { return service_->InitialView(); }
  // Starts Raft and the background work. on_view runs after every installed view.
  Status Start(Membership* membership, Replica* replica, NodeEndpoints* endpoints,
               std::function<void(const ClusterView&)> on_view);
  void Register(ServiceDemux& services);
  void Stop();
  MembershipService& service() { return *service_; }

 private:
  RaftMembership() = default;
  std::string self_id_;
  NodeEndpoints* endpoints_ = nullptr;
  std::unique_ptr<ThriftMembershipPeers> peers_;
  std::unique_ptr<MembershipService> service_;
  std::unique_ptr<ReplicaStreamSink> sink_;
  std::unique_ptr<ReplicaPartitionReader> reader_;

  void Upkeep();
  Membership* membership_ = nullptr;
  Replica* replica_ = nullptr;
  std::thread upkeep_;
  std::mutex upkeep_mu_;
  std::condition_variable upkeep_cv_;
  bool upkeep_due_ = false;
  std::atomic<bool> stopping_{false};
  uint64_t cleaned_epoch_ = 0;  // upkeep thread only
};

}  // namespace monju
