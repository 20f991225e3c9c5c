// PeerProber: the failure detector's heartbeats. One thread per peer pings
// it (MonjuReplica.ping, with its own short timeout and connections, so slow
// data calls never delay a probe) every interval and records the outcome in
// the peer's detector. When a peer turns alive again it calls `on_alive`
// (hint delivery starts at once instead of at its next look).
//
// Probes cover the members of the view at Start(); Refresh() adds probes
// for members of the current view that have none (membership changes; a
// removed member's probe ends by itself). Start/Stop are not thread-safe
// with each other; Refresh may be called from any thread; Stop() is
// idempotent and returns after every probe thread has exited.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "client_pool.h"
#include "membership.h"
#include "replica_endpoints.h"

namespace monju {

class PeerProber {
 public:
  PeerProber(const Membership* membership, NodeEndpoints* endpoints, ConnectionOptions probe_connection,
             std::chrono::milliseconds interval, std::function<void(const std::string& peer_id)> on_alive);
  ~PeerProber();
  void Start();
  void Stop();
  void Refresh();

 private:
  void ProbeLoop(PeerAddress peer);

  const Membership* membership_;
  NodeEndpoints* endpoints_;
  const ConnectionOptions probe_connection_;
  const std::chrono::milliseconds interval_;
  const std::function<void(const std::string&)> on_alive_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::set<std::string> probed_;  // guarded by mu_
};

}  // namespace monju
