// Serves MonjuReplica (node-to-node) from the local Replica. Refuses callers
// whose cluster fingerprint differs from ours, with a log line naming both.
#pragma once

#include "MonjuReplica.h"
#include "hint_intake.h"
#include "membership.h"
#include "replica.h"

namespace monju {

class ReplicaHandler final : public rpc::MonjuReplicaIf {
 public:
  ReplicaHandler(std::string self_id, Replica* replica, const Membership* membership, HintIntake* hints)
      : self_id_(std::move(self_id)), replica_(replica), membership_(membership), hints_(hints) {}

  void ping(int64_t cluster_fingerprint) override;
  void apply(int64_t cluster_fingerprint, const std::string& pk, const std::string& sk,
             const std::string& version) override;
  void apply_hinted(int64_t cluster_fingerprint, const std::string& owner, const std::string& pk,
                    const std::string& sk, const std::string& version) override;
  void apply_batch(int64_t cluster_fingerprint, const std::vector<rpc::KeyedVersion>& items) override;
  void read(std::string& _return, int64_t cluster_fingerprint, const std::string& pk, const std::string& sk) override;
  void scan(rpc::ScanReply& _return, int64_t cluster_fingerprint, const std::string& pk, const std::string& sk_prefix,
            const std::string& start_sk, bool start_exclusive, int32_t limit, bool ascending) override;

 private:
  // Throws ClusterMismatch; returns the view the request runs under.
  std::shared_ptr<const ClusterView> CheckCaller(int64_t cluster_fingerprint) const;

  const std::string self_id_;
  Replica* replica_;
  const Membership* membership_;
  HintIntake* hints_;
};

}  // namespace monju
