// Serves MonjuMembership (multiplexed as "membership") from the node's
// MembershipService; only nodes with Raft-managed membership register it.
// Failures become MembershipError with the Status code. Every source must
// outlive it.
#pragma once

#include <functional>
#include <string>

#include "MonjuMembership.h"
#include "membership_service.h"

namespace monju {

class MembershipHandler final : public membership::MonjuMembershipIf {
 public:
  // health: this node's view of a peer ("alive", "suspect", "down", "self").
  MembershipHandler(MembershipService* service, std::string self_id,
                    std::function<std::string(const std::string&)> health)
      : service_(service), self_id_(std::move(self_id)), health_(std::move(health)) {}

  void join(membership::ChangeReply& _return) override;
  void replace(membership::ChangeReply& _return, const std::string& dead_id, const std::string& new_id) override;
  void leave(membership::ChangeReply& _return, const std::string& id) override;
  void abort(membership::ChangeReply& _return) override;
  void members(membership::MembersReply& _return) override;
  void ring(membership::RingReply& _return) override;
  void metadata(std::string& _return, int64_t cluster_fingerprint) override;
  void propose(membership::ChangeReply& _return, const std::string& command, bool forwarded) override;
  void progress(membership::NodeProgress& _return, int64_t change_epoch) override;
  void stream(membership::StreamChunk& _return, int64_t cluster_fingerprint, int64_t epoch, int32_t partition,
              const std::string& cursor, int32_t max_items, int32_t max_bytes) override;

 private:
  MembershipService* service_;
  const std::string self_id_;
  const std::function<std::string(const std::string&)> health_;
};

}  // namespace monju
