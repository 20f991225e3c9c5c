// Serves MonjuAdmin (multiplexed as "admin"): this node's view of the ring
// and its peers, its counters, its anti-entropy controls (repair now,
// pause), and, on a node started with --fault-injection only, injected link
// faults. Every source must outlive it.
#pragma once

#include <atomic>

#include "MonjuAdmin.h"
#include "antientropy.h"
#include "call_server.h"
#include "coordinator.h"
#include "hint_delivery.h"
#include "hint_intake.h"
#include "link_faults.h"
#include "replica_endpoints.h"
#include "tombstone_reaper.h"

namespace monju {

struct AdminSources {
  std::string self_id;
  bool sloppy_quorum = true;
  const Membership* membership = nullptr;
  NodeEndpoints* endpoints = nullptr;
  HintIntake* hints = nullptr;
  const Coordinator* coordinator = nullptr;
  const HintDelivery* delivery = nullptr;
  const TombstoneReaper* reaper = nullptr;
  Replica* replica = nullptr;
  LinkFaults* link_faults = nullptr;  // null unless --fault-injection
  AntiEntropyScheduler* anti_entropy = nullptr;
  const PartitionTrees* trees = nullptr;
  // The two servers' counters ("client", "peer"); null until each serves.
  const std::atomic<const CallServer*>* client_server = nullptr;
  const std::atomic<const CallServer*>* peer_server = nullptr;
};

class AdminHandler final : public admin::MonjuAdminIf {
 public:
  explicit AdminHandler(AdminSources sources) : src_(std::move(sources)) {}
  void status(admin::NodeStatus& _return) override;
  void stats(std::map<std::string, int64_t>& _return) override;
  void set_link_faults(const std::map<std::string, admin::LinkFaultSpec>& faults) override;
  void repair(admin::RepairResult& _return, int32_t partition, const std::string& node) override;
  bool set_repair_paused(bool paused) override;

 private:
  AdminSources src_;
};

}  // namespace monju
