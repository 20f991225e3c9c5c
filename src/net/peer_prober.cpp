#include "peer_prober.h"
#include "common/thread_name.h"

#include <spdlog/spdlog.h>

namespace monju {

PeerProber::PeerProber(const Membership* membership, NodeEndpoints* endpoints, ConnectionOptions probe_connection,
                       std::chrono::milliseconds interval, std::function<void(const std::string&)> on_alive)
    : membership_(membership),
      endpoints_(endpoints),
      probe_connection_(std::move(probe_connection)),
      interval_(interval),
      on_alive_(std::move(on_alive)) {}

PeerProber::~PeerProber() { Stop(); }

void PeerProber::Start() {
  auto view = membership_->Current();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& peer : view->members())
    if (peer.id != endpoints_->self_id() && probed_.insert(peer.id).second) {
      threads_.emplace_back([this, peer] { ProbeLoop(peer); });
      NameThread(threads_.back(), "probe-" + peer.id);
    }
}

void PeerProber::Refresh() {
  auto view = membership_->Current();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  for (const auto& peer : view->members())
    if (peer.id != endpoints_->self_id() && probed_.insert(peer.id).second) {
      threads_.emplace_back([this, peer] { ProbeLoop(peer); });
      NameThread(threads_.back(), "probe-" + peer.id);
    }
}

void PeerProber::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads)
    if (t.joinable()) t.join();
}

void PeerProber::ProbeLoop(PeerAddress peer) {
  ConnectionOptions options = probe_connection_;
  options.host = peer.host;
  options.port = peer.peer_port;
  options.service = "replica";
  options.peer_id = peer.id;
  options.max_idle = 1;
  ClientPool<rpc::MonjuReplicaClient> pool(options);
  auto detector = endpoints_->Detector(peer.id);
  PeerState last = detector->State();
  for (;;) {
    const auto next = std::chrono::steady_clock::now() + interval_;
    auto view = membership_->Current();
    if (view->IndexOf(peer.id) < 0) {  // no longer a member: its probe ends
      std::lock_guard<std::mutex> lock(mu_);
      probed_.erase(peer.id);
      return;
    }
    const int64_t fingerprint = static_cast<int64_t>(view->fingerprint());
    rpc::EpochStamp stamp;  // tells the peer our epoch: a lagging one catches up
    stamp.epoch = static_cast<int64_t>(view->epoch());
    stamp.sender = endpoints_->self_id();
    try {
      auto client = pool.Borrow();
      try {
        client->ping(fingerprint, stamp);
        pool.Return(std::move(client));
        detector->RecordSuccess();
      } catch (const rpc::ClusterMismatch& e) {
        pool.Return(std::move(client));
        detector->RecordSuccess();  // alive; the data path logs the mismatch
      }
    } catch (const apache::thrift::TException& e) {
      pool.Clear();
      detector->RecordFailure();
    }
    PeerState now = detector->State();
    if (now != last) {
      spdlog::info("peer {} is now {} (was {})", peer.id, PeerStateName(now), PeerStateName(last));
      if (now == PeerState::kAlive && on_alive_) on_alive_(peer.id);
      last = now;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, next, [this] { return stopping_; })) return;
  }
}

}  // namespace monju
