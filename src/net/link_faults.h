// LinkFaults: injected faults on this node's calls to chosen peers, for chaos
// runs that cannot cut the network itself (no root). Only a node started with
// --fault-injection has one; everywhere else the pointer is null and calls
// are untouched.
//
// A dropped link behaves like an unreachable peer: the call waits for the
// connect timeout and fails without reaching the peer. A delayed link waits
// before every call. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace monju {

struct LinkFault {
  bool drop = false;
  std::chrono::milliseconds delay{0};
};

class LinkFaults {
 public:
  // Replaces every fault at once; peers not named are healthy.
  void Set(std::map<std::string, LinkFault> faults) {
    std::lock_guard<std::mutex> lock(mu_);
    faults_ = std::move(faults);
  }
  LinkFault To(const std::string& peer) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = faults_.find(peer);
    return it == faults_.end() ? LinkFault{} : it->second;
  }
  std::map<std::string, LinkFault> All() const {
    std::lock_guard<std::mutex> lock(mu_);
    return faults_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, LinkFault> faults_;
};

}  // namespace monju
