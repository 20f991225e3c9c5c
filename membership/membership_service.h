// MembershipService: a node's part in Raft-managed membership. It owns the
// node's Raft member (raft_group.h) and the metadata state machine, installs
// every newer metadata epoch as the node's view (epoch_gate.h), and runs the
// background work of changes:
// - on the Raft leader: the bootstrap entry of a new cluster, the Raft
//   configuration (raft_roster.h), and the steps of a pending change
//   (change_driver.h);
// - on every node: streaming in the partitions it gains
//   (partition_streamer.h), and catching up with newer metadata it hears of.
//
// The data path never waits on Raft: views are installed by the Raft thread
// or by a catch-up fetch from a peer, and requests only read the current one.
//
// Start-up (Open): the view to serve with comes from the metadata cached at
// the last install (DATA/membership/metadata) when there is one; otherwise
// from --peers (a new cluster: epoch 0 until its bootstrap entry commits as
// epoch 1), or fetched from the --join member (a new node, not yet a member).
// A new cluster bootstraps its Raft group only when DATA/raft is empty and no
// metadata is cached.
//
// Thread safety: every public method may be called concurrently, after
// Start() and before Stop().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cluster_metadata.h"
#include "data_path_fence.h"
#include "epoch_gate.h"
#include "membership.h"
#include "membership_peers.h"
#include "metadata_file.h"
#include "metadata_state_machine.h"
#include "partition_streamer.h"
#include "raft_group.h"

namespace monju {

// Serves a partition's items to a node streaming it in.
class PartitionReader {
 public:
  virtual ~PartitionReader() = default;
  // Items of `partition` in storage order strictly after `cursor` ("" = from
  // its start); out->done when the partition has no more.
  virtual Status Read(uint32_t partition, const std::string& cursor, uint32_t max_items, uint32_t max_bytes,
                      StreamChunkData* out) = 0;
};

struct MembershipOptions {
  std::string self_id;
  PeerAddress self;          // this node's client address
  std::string raft_address;  // --raft-listen host:port
  std::string data_dir;      // DATA: Raft in DATA/raft, the cache in DATA/membership
  uint32_t vnodes = 64;      // this node's, when it joins
  uint32_t write_quorum = 2;
  // A new cluster, from --peers and --raft-peers (members normal, epoch 0).
  std::optional<ClusterMetadata> bootstrap;
  std::string join_address;  // --join
  StreamerOptions streamer;
  unsigned election_timeout_ms = 1000;
  std::chrono::milliseconds rpc_timeout{5000};
  std::chrono::milliseconds propose_timeout{10000};
  std::chrono::milliseconds leader_wait{5000};  // for a new leader when the last one is gone
  std::chrono::milliseconds tick{200};
  std::chrono::milliseconds join_fetch_timeout{30000};
};

// What the node lends the service once it is wired.
struct MembershipHooks {
  MembershipPeers* peers = nullptr;
  StreamSink* sink = nullptr;
  PartitionReader* reader = nullptr;
  // This node's failure-detector view: false while the member is down.
  std::function<bool(const std::string& member_id)> alive;
  // After a view was installed; must be quick (it runs on the installing thread).
  std::function<void(const ClusterView& view)> on_view;
};

// A change's progress as one node reports it, by node id.
struct MembersSnapshot {
  ClusterMetadata metadata;  // as installed here
  RaftInfo raft;
  uint64_t applied_epoch = 0;  // this node's own state machine
  std::map<std::string, StreamReport> progress;
  std::string leader_id;
};

// A new cluster's metadata from flags: members sorted by id, normal; the
// cluster id is a hash of all of it, so that every node computes the same.
ClusterMetadata BootstrapMetadata(const std::vector<PeerAddress>& peers, const std::vector<PeerAddress>& raft_peers,
                                  uint32_t vnodes, uint32_t partitions, uint32_t replicas, uint32_t voters);

class MembershipService final : public DataPathFence {
 public:
  // Errors: IOError (cache unreadable), Unavailable (--join member
  // unreachable), InvalidArgument (bad bootstrap).
  static StatusOr<std::unique_ptr<MembershipService>> Open(MembershipOptions options, MembershipPeers* peers);
  ~MembershipService() override;

  std::shared_ptr<const ClusterView> InitialView() const { return initial_view_; }
  const ClusterMetadata& InitialMetadata() const { return initial_metadata_; }
  // Starts Raft and the background work; `membership` holds the node's view
  // (created from InitialView()). Errors: those of RaftGroup::Start.
  Status Start(Membership* membership, MembershipHooks hooks);
  void Stop();

  EpochGate& gate() { return *gate_; }
  ClusterMetadata Installed() const;

  // DataPathFence.
  uint64_t epoch() const override { return gate_->epoch(); }
  void Observe(uint64_t epoch, const std::string& sender, std::chrono::milliseconds timeout) override {
    CatchUp(epoch, sender, timeout);
  }
  Status Admit(uint64_t planned, uint32_t partition, EpochGate::Ticket* ticket) override {
    return gate_->Admit(planned, partition, ticket);
  }
  Status Admit(const ClusterView& planned_view, uint32_t partition, EpochGate::Ticket* ticket) override {
    return gate_->Admit(planned_view, partition, ticket);
  }

  // A request or reply named `epoch`: if it is newer than ours, fetch the
  // metadata (from `sender_id` first, else from any member) before acting.
  // Bounded by `timeout`; concurrent callers share one fetch.
  void CatchUp(uint64_t epoch, const std::string& sender_id, std::chrono::milliseconds timeout);

  // Operator commands; each returns once its first Raft entry committed.
  StatusOr<ProposeReply> Join();
  StatusOr<ProposeReply> Replace(const std::string& dead_id, const std::string& new_id);
  StatusOr<ProposeReply> Leave(const std::string& id);
  StatusOr<ProposeReply> Abort();
  MembersSnapshot Members();

  // Node to node.
  StatusOr<std::string> MetadataBytes(uint64_t fingerprint) const;
  StatusOr<ProposeReply> Propose(const std::string& command, bool forwarded);
  NodeReport Progress(uint64_t change_epoch) const;
  Status ServeStream(uint64_t fingerprint, uint64_t epoch, uint32_t partition, const std::string& cursor,
                     uint32_t max_items, uint32_t max_bytes, StreamChunkData* out);

 private:
  class Source;
  MembershipService(MembershipOptions options, MembershipPeers* peers);
  Status LoadInitial();
  // Installs metadata newer than the current one: view, cache, streamer.
  void Publish(const ClusterMetadata& metadata, const char* from);
  StatusOr<ProposeReply> ProposeCommand(const MetadataCommand& command);
  StatusOr<ProposeReply> Route(const std::string& command);
  StatusOr<ProposeReply> ProposeOnce(const std::string& command, bool forwarded);
  // Refreshes the installed metadata from a member (before deciding on it).
  void Refresh();
  std::string AddressOfMember(const std::string& id) const;
  std::vector<std::string> MemberAddresses() const;
  void TickLoop();
  void LeaderTick();
  Member SelfMember(const ClusterMetadata& md) const;

  MembershipOptions options_;
  MembershipPeers* peers_;
  ClusterMetadata initial_metadata_;
  std::shared_ptr<const ClusterView> initial_view_;
  bool bootstrap_raft_ = false;
  MetadataFile cache_;

  MetadataStateMachine machine_;
  MetadataRaftFsm fsm_{&machine_};
  std::unique_ptr<RaftGroup> raft_;
  std::unique_ptr<EpochGate> gate_;
  MembershipHooks hooks_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<PartitionStreamer> streamer_;
  SteadyClock clock_;

  mutable std::mutex publish_mu_;  // serialises Publish; guards installed_
  ClusterMetadata installed_;

  std::mutex catchup_mu_;
  std::condition_variable catchup_cv_;
  bool catchup_running_ = false;

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;
  std::thread tick_thread_;
  std::atomic<bool> started_{false};
};

}  // namespace monju
