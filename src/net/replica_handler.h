// Serves MonjuReplica (node-to-node) from the local Replica. Refuses callers
// whose cluster fingerprint differs from ours, with a log line naming both.
// With Raft-managed membership (set_fence), a request stamped with a newer
// epoch first makes this node catch up, and apply, apply_hinted, read and
// scan (and each item of apply_many and read_many) are admitted only while the stamp's placement of the key still holds
// (StaleEpoch otherwise); so are the anti-entropy calls, per partition.
#pragma once

#include "MonjuReplica.h"
#include "antientropy.h"
#include "deferred_call.h"
#include "data_path_fence.h"
#include "hint_intake.h"
#include "membership.h"
#include "replica.h"

namespace monju {

class ReplicaHandler final : public rpc::MonjuReplicaIf {
 public:
  // `exchange` serves anti-entropy (ae_*); null: those calls fail Unavailable.
  ReplicaHandler(std::string self_id, Replica* replica, const Membership* membership, HintIntake* hints,
                 LocalExchangePeer* exchange = nullptr)
      : self_id_(std::move(self_id)), replica_(replica), membership_(membership), hints_(hints), exchange_(exchange) {}

  // Raft-managed membership only; set before serving.
  void set_fence(DataPathFence* fence) { fence_ = fence; }

  void ping(int64_t cluster_fingerprint, const rpc::EpochStamp& stamp) override;
  void apply(int64_t cluster_fingerprint, const std::string& pk, const std::string& sk, const std::string& version,
             const rpc::EpochStamp& stamp) override;
  void apply_hinted(int64_t cluster_fingerprint, const std::string& owner, const std::string& pk,
                    const std::string& sk, const std::string& version, const rpc::EpochStamp& stamp) override;
  void apply_batch(int64_t cluster_fingerprint, const std::vector<rpc::KeyedVersion>& items,
                   const rpc::EpochStamp& stamp) override;
  void apply_many(std::vector<rpc::ApplyOutcome>& _return, int64_t cluster_fingerprint,
                  const std::vector<rpc::KeyedVersion>& items, const rpc::EpochStamp& stamp) override;
  // apply_many() without waiting for the commit: `done` gets the outcomes
  // on the store's writer thread once durable (or here, when nothing was
  // admitted). Throws what apply_many() throws, before anything is applied.
  void ApplyMany(int64_t cluster_fingerprint, const std::vector<rpc::KeyedVersion>& items,
                 const rpc::EpochStamp& stamp, std::function<void(std::vector<rpc::ApplyOutcome>)> done);
  void read_many(std::vector<rpc::ReadOutcome>& _return, int64_t cluster_fingerprint,
                 const std::vector<rpc::KeyRef>& keys, const rpc::EpochStamp& stamp) override;
  void read(std::string& _return, int64_t cluster_fingerprint, const std::string& pk, const std::string& sk,
            const rpc::EpochStamp& stamp) override;
  void scan(rpc::ScanReply& _return, int64_t cluster_fingerprint, const std::string& pk, const std::string& sk_prefix,
            const std::string& start_sk, bool start_exclusive, int32_t limit, bool ascending,
            const rpc::EpochStamp& stamp) override;
  void ae_hashes(rpc::AeHashes& _return, int64_t cluster_fingerprint, int32_t partition, int32_t tree_format,
                 int32_t level, const std::vector<int32_t>& parents, const rpc::EpochStamp& stamp) override;
  void ae_keys(rpc::AeKeyPage& _return, int64_t cluster_fingerprint, int32_t partition, int32_t tree_format,
               int32_t level, const std::vector<int32_t>& nodes, bool has_after, int64_t after_key_hash,
               int32_t limit, const rpc::EpochStamp& stamp, const std::string& after_pk,
               const std::string& after_sk) override;
  void ae_fetch(std::vector<rpc::AeKeyAnswer>& _return, int64_t cluster_fingerprint, int32_t partition,
                const std::vector<rpc::AeKeyQuery>& keys, const rpc::EpochStamp& stamp) override;
  void ae_push(int64_t cluster_fingerprint, int32_t partition, const std::vector<rpc::KeyedVersion>& versions,
               const rpc::EpochStamp& stamp) override;

 private:
  // Throws ClusterMismatch; catches up with a newer stamp; returns the view
  // the request runs under.
  std::shared_ptr<const ClusterView> CheckCaller(int64_t cluster_fingerprint, const rpc::EpochStamp& stamp) const;
  // Throws StaleEpoch when the stamp's placement of pk's partition no
  // longer holds; the ticket is held while the request runs.
  void Admit(const rpc::EpochStamp& stamp, uint32_t partition, EpochGate::Ticket* ticket) const;
  // The same for one item of a batch call, as a status: StaleEpoch with the
  // receiver's epoch in *epoch. OK without a fence (ticket unused, may be null).
  Status AdmitItem(uint64_t planned, uint32_t partition, EpochGate::Ticket* ticket, int64_t* epoch) const;
  // CheckCaller, plus: anti-entropy is served here and the partition exists.
  LocalExchangePeer& CheckExchange(int64_t cluster_fingerprint, const rpc::EpochStamp& stamp, int32_t partition,
                                   std::shared_ptr<const ClusterView>* view, EpochGate::Ticket* ticket) const;

  const std::string self_id_;
  Replica* replica_;
  const Membership* membership_;
  HintIntake* hints_;
  LocalExchangePeer* exchange_;
  DataPathFence* fence_ = nullptr;
};

// apply_many as a deferred call (deferred_call.h): the peer server's thread
// goes back to its other connections while the items are committed, and
// the store's writer sends the answer.
class ReplicaAsyncCalls final : public DeferredCalls {
 public:
  explicit ReplicaAsyncCalls(std::shared_ptr<ReplicaHandler> handler) : handler_(std::move(handler)) {}
  bool Handles(std::string_view name) const override;
  void Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) override;

 private:
  std::shared_ptr<ReplicaHandler> handler_;
};

}  // namespace monju
