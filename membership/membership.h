// Membership: who is in the cluster and how keys are placed.
//
// A ClusterView is an immutable snapshot (members, Q, N, vnodes, the ring and
// a fingerprint of all of it). Readers hold shared_ptr<const ClusterView> for
// the length of one request; a change publishes a new snapshot and never
// edits one in place. Today the view comes from --peers at start; the
// Raft-managed membership group will publish new views through the same
// interface.
//
// The fingerprint travels on every node-to-node request: a node refuses a
// peer whose Q, N, vnodes or peer list differ instead of misplacing data.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/node_config.h"
#include "ring/ring.h"

namespace monju {

class ClusterView {
 public:
  // InvalidArgument when the members cannot form a ring.
  static StatusOr<std::shared_ptr<const ClusterView>> Create(std::vector<PeerAddress> members, uint32_t vnodes,
                                                             uint32_t partitions, uint32_t replicas);

  const Ring& ring() const { return *ring_; }
  // Members in ring order (ring().nodes()[i] is members()[i].id).
  const std::vector<PeerAddress>& members() const { return members_; }
  // Index of the member with this id, or -1.
  int IndexOf(std::string_view id) const { return ring_->IndexOf(id); }
  uint64_t fingerprint() const { return fingerprint_; }
  // "Q=256 N=3 vnodes=64 peers=a=127.0.0.1:7001,..." for log lines.
  const std::string& description() const { return description_; }

 private:
  ClusterView() = default;
  std::vector<PeerAddress> members_;
  std::shared_ptr<const Ring> ring_;
  uint64_t fingerprint_ = 0;
  std::string description_;
};

// The current view; thread-safe. Replace() swaps the snapshot atomically.
class Membership {
 public:
  explicit Membership(std::shared_ptr<const ClusterView> initial) : view_(std::move(initial)) {}
  std::shared_ptr<const ClusterView> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return view_;
  }
  void Replace(std::shared_ptr<const ClusterView> next) {
    std::lock_guard<std::mutex> lock(mu_);
    view_ = std::move(next);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ClusterView> view_;
};

}  // namespace monju
