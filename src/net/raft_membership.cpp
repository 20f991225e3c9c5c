#include "raft_membership.h"

#include <spdlog/spdlog.h>

#include "clock/codec.h"
#include "membership_handler.h"
#include "partition_cleanup.h"
#include "common/thread_name.h"

namespace monju {

StatusOr<std::unique_ptr<RaftMembership>> RaftMembership::Open(const NodeConfig& c) {
  std::unique_ptr<RaftMembership> rm(new RaftMembership());
  rm->self_id_ = c.id;
  ConnectionOptions base;
  if (c.listen_host != "0.0.0.0" && c.listen_host != "::") base.bind_host = c.listen_host;
  rm->peers_ = std::make_unique<ThriftMembershipPeers>(base);

  MembershipOptions o;
  o.self_id = c.id;
  o.self = PeerAddress{c.id, c.listen_host, c.listen_port, c.OwnPeerPort()};
  o.raft_address = c.raft_listen_host + ":" + std::to_string(c.raft_listen_port);
  o.data_dir = c.data_dir;
  o.vnodes = c.vnodes;
  o.write_quorum = c.write_quorum;
  if (!c.peers.empty())
    o.bootstrap =
        BootstrapMetadata(ResolvePeerPorts(c), c.raft_peers, c.vnodes, c.partitions, c.replicas, c.raft_voters);
  if (c.join_port != 0) o.join_address = c.join_host + ":" + std::to_string(c.join_port);
  o.streamer.bytes_per_second = static_cast<double>(c.stream_rate_mb) * (1 << 20);
  auto service = MembershipService::Open(std::move(o), rm->peers_.get());
  if (!service.ok()) return service.status();
  rm->service_ = std::move(service.value());
  const ClusterMetadata& md = rm->service_->InitialMetadata();
  if (c.read_quorum > md.replicas || c.write_quorum > md.replicas)
    return Status::InvalidArgument("-R/-W: must be at most the cluster's N=" + std::to_string(md.replicas));
  return rm;
}

RaftMembership::~RaftMembership() { Stop(); }

Status RaftMembership::Start(Membership* membership, Replica* replica, NodeEndpoints* endpoints,
                             std::function<void(const ClusterView&)> on_view) {
  endpoints_ = endpoints;
  membership_ = membership;
  replica_ = replica;
  sink_ = std::make_unique<ReplicaStreamSink>(replica, membership);
  reader_ = std::make_unique<ReplicaPartitionReader>(replica);
  MembershipHooks hooks;
  hooks.peers = peers_.get();
  hooks.sink = sink_.get();
  hooks.reader = reader_.get();
  const std::string self = self_id_;
  hooks.alive = [endpoints, self](const std::string& id) {
    return id == self || endpoints->Detector(id)->State() != PeerState::kDown;
  };
  hooks.on_view = [this, on_view = std::move(on_view)](const ClusterView& view) {
    if (on_view) on_view(view);
    {
      std::lock_guard<std::mutex> lock(upkeep_mu_);
      upkeep_due_ = true;
    }
    upkeep_cv_.notify_all();
  };
  Status s = service_->Start(membership, std::move(hooks));
  if (!s.ok()) return s;
  upkeep_ = std::thread([this] { Upkeep(); });
  NameThread(upkeep_, "raft-upkeep");
  return Status::OK();
}

void RaftMembership::Upkeep() {
  using namespace std::chrono_literals;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(upkeep_mu_);
      upkeep_cv_.wait_for(lock, 30s, [this] { return upkeep_due_ || stopping_.load(); });
      upkeep_due_ = false;
      if (stopping_) return;
    }
    ClusterMetadata md = service_->Installed();
    auto view = membership_->Current();
    if (md.epoch == 0 || md.change || view->epoch() != md.epoch) continue;  // only once a change is over
    // Partitions this node no longer owns, once per epoch; never on a node
    // that was never a member (its store is not the cluster's).
    if (cleaned_epoch_ == md.epoch || !md.Find(self_id_)) continue;
    // Writes admitted under older epochs may still be landing here.
    if (!service_->gate().WaitDrained(md.epoch, 10s)) continue;
    PartitionCleanup cleanup(replica_);
    // A change that starts during the pass (it bumps the epoch) may give a
    // partition back: from then on nothing more is erased.
    auto keep = [&](uint32_t p) {
      return view->IsWriteOwner(self_id_, p) || membership_->Current()->epoch() != md.epoch;
    };
    auto stats = cleanup.Run(keep, stopping_);
    if (!stats.ok()) {
      spdlog::warn("cleanup of partitions no longer owned failed: {}", stats.status().ToString());
      continue;
    }
    cleaned_epoch_ = md.epoch;
    if (stats.value().erased)
      spdlog::info("erased {} items of partitions this node no longer owns (epoch {}; {} items scanned)",
                   stats.value().erased, md.epoch, stats.value().scanned);
  }
}

void RaftMembership::Register(ServiceDemux& services) {
  NodeEndpoints* endpoints = endpoints_;
  auto handler = std::make_shared<MembershipHandler>(service_.get(), self_id_, [endpoints](const std::string& id) {
    return std::string(PeerStateName(endpoints->Detector(id)->State()));
  });
  services.Register("membership", std::make_shared<membership::MonjuMembershipProcessor>(handler));
}

void RaftMembership::Stop() {
  {
    std::lock_guard<std::mutex> lock(upkeep_mu_);
    stopping_ = true;
  }
  upkeep_cv_.notify_all();
  if (upkeep_.joinable()) upkeep_.join();
  if (service_) service_->Stop();
}

}  // namespace monju
