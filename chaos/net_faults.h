// NetworkFaults: how a chaos run cuts and slows links between its nodes.
//
// - PacketFilterFaults: real packet loss. The run lives in a network
//   namespace of its own (see EnterPrivateNetwork), every node listens on
//   its own 127.0.0.x address and connects from it, and iptables rules in
//   that namespace drop the traffic between chosen addresses. Needs root.
// - Injected faults (--fault-injection on every node): each node's admin
//   service makes its calls to chosen peers fail or wait. Used without root,
//   and for slow links always (this kernel has no netem qdisc to delay
//   packets).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace monju::chaos {

// What one node is told to do with its calls to each peer (by node index).
struct InjectedLink {
  bool drop = false;
  std::chrono::milliseconds delay{0};
};
// Replaces node `node`'s injected faults (empty: heal).
using SetInjectedLinks = std::function<Status(int node, const std::map<int, InjectedLink>& links)>;

class NetworkFaults {
 public:
  virtual ~NetworkFaults() = default;
  // Drops traffic from every node of `side` to every other node and, unless
  // one_way, back.
  virtual Status Partition(const std::vector<int>& side, bool one_way) = 0;
  // Delays every call to and from `node`.
  virtual Status Slow(int node, std::chrono::milliseconds delay) = 0;
  // Removes every fault.
  virtual Status HealAll() = 0;
  // "iptables" or "injected", for the report.
  virtual std::string partitions_by() const = 0;
};

// Partitions with iptables between the nodes' addresses; slow links injected.
std::unique_ptr<NetworkFaults> MakePacketFilterFaults(std::vector<std::string> node_addresses,
                                                      SetInjectedLinks inject);
// Everything injected.
std::unique_ptr<NetworkFaults> MakeInjectedFaults(int nodes, SetInjectedLinks inject);

// Moves this process (call it before any thread starts) into a new network
// namespace with its loopback up and iptables working there, so that nodes
// started afterwards share it and nothing leaves it. Fails (and changes
// nothing that outlives the process) without root or without iptables.
Status EnterPrivateNetwork();

// Runs a program (looked up in PATH) and returns IOError with its output when
// it fails, or TimedOut (the program is killed) when it has not finished
// within `timeout`.
Status RunProgram(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace monju::chaos
