#include "node.h"

#include <spdlog/spdlog.h>
#include <thrift/protocol/TBinaryProtocol.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <random>

#include "admin_handler.h"
#include "antientropy.h"
#include "call_server.h"
#include "clock/clock_digest.h"
#include "descriptor_budget.h"
#include "exchange_peers.h"
#include "executor.h"
#include "hint_delivery.h"
#include "hint_intake.h"
#include "kv_async.h"
#include "kv_handler.h"
#include "peer_prober.h"
#include "peer_services.h"
#include "raft_membership.h"
#include "replica_endpoints.h"
#include "replica_handler.h"
#include "service_demux.h"
#include "thrift_limits.h"
#include "tombstone_reaper.h"

namespace monju {

using namespace apache::thrift;

class Node::Impl {
 public:
  explicit Impl(NodeConfig config) : config_(std::move(config)) {}
  ~Impl() { Stop(); }

  Status Start() {
    StorageOptions so;
    so.path = (std::filesystem::path(config_.data_dir) / "data").string();
    so.map_size_bytes = config_.map_size_mb << 20;
    so.memtable_bytes = config_.memtable_mb << 20;
    // Every request and fan-out thread may hold a read transaction at once.
    so.max_readers = config_.worker_threads + config_.peer_threads + config_.FanoutThreads() + 64;
    so.digest = &ClockDigest;
    so.digest_name = kClockDigestName;
    auto store = DataStore::Open(so);
    if (!store.ok()) return Status::IOError("--data: " + store.status().ToString());
    std::random_device random;
    auto replica = Replica::Open(config_.id, std::move(store.value()), (uint64_t(random()) << 32) ^ random());
    if (!replica.ok()) return Status::IOError("--data: " + replica.status().ToString());
    replica_ = std::move(replica.value());
    spdlog::info("data at {} opened; dot actor '{}'", so.path, replica_->actor());

    std::shared_ptr<const ClusterView> initial_view;
    if (config_.raft_enabled()) {
      auto raft = RaftMembership::Open(config_);
      if (!raft.ok()) return raft.status();
      raft_membership_ = std::move(raft.value());
      initial_view = raft_membership_->InitialView();
    } else {
      auto view = ClusterView::Create(ResolvePeerPorts(config_), config_.vnodes, config_.partitions, config_.replicas);
      if (!view.ok()) return Status::InvalidArgument("--peers: " + view.status().message());
      initial_view = std::move(view.value());
    }
    spdlog::info("cluster {} (fingerprint {:016x})", initial_view->description(), initial_view->fingerprint());
    membership_ = std::make_unique<Membership>(std::move(initial_view));

    // Anti-entropy trees follow the store from here on.
    trees_ = std::make_unique<PartitionTrees>(&replica_->store(), membership_->Current()->ring().partitions());
    Status built = trees_->Install();
    if (!built.ok()) spdlog::warn("anti-entropy: some trees are not built ({}); they are retried before their exchanges", built.ToString());
    spdlog::info("anti-entropy trees: {} items in {} partitions (depth {}) built from the items' digests in {} ms",
                 trees_->items(), trees_->partitions(), trees_->depth(), trees_->install_ms());
    LocalPeerOptions lp;
    lp.grace = std::chrono::seconds(config_.tombstone_grace_s);
    const Membership* membership = membership_.get();
    lp.partition_of = [membership](std::string_view pk) { return membership->Current()->ring().PartitionOf(pk); };
    local_exchange_ = std::make_unique<LocalExchangePeer>(replica_.get(), trees_.get(), &wall_, lp);

    HintLimits limits;
    limits.max_per_owner = config_.hint_max_per_owner;
    limits.max_total = config_.hint_max_total;
    limits.map_size_bytes = config_.hint_map_size_mb << 20;
    const std::string hints_path = (std::filesystem::path(config_.data_dir) / "hints").string();
    auto hints = HintStore::Open(hints_path, limits);
    if (!hints.ok()) return Status::IOError("--data: hints: " + hints.status().ToString());
    hint_store_ = std::move(hints.value());
    intake_ = std::make_unique<HintIntake>(hint_store_.get(), &wall_);
    spdlog::info("hints at {}: {} pending", hints_path, hint_store_->PendingTotal());

    ConnectionOptions conn;
    // Connect from the listen address, unless listening on every address.
    if (config_.listen_host != "0.0.0.0" && config_.listen_host != "::") conn.bind_host = config_.listen_host;
    if (config_.fault_injection) {
      link_faults_ = std::make_unique<LinkFaults>();
      conn.faults = link_faults_.get();
      spdlog::warn("fault injection is ON (--fault-injection): for tests only");
    }
    conn.connect_timeout_ms = static_cast<int>(std::min<uint32_t>(config_.request_timeout_ms, 1000));
    conn.io_timeout_ms = static_cast<int>(config_.request_timeout_ms);
    DetectorOptions detector;
    detector.probe_interval = std::chrono::milliseconds(config_.probe_interval_ms);
    endpoints_ = std::make_unique<NodeEndpoints>(config_.id, replica_.get(), intake_.get(), conn, &clock_, detector);
    const uint32_t fanout_threads = config_.FanoutThreads();
    // The queue bound does not shrink with a small pool: bursts still queue.
    executor_ = std::make_unique<FanoutExecutor>(fanout_threads, std::max<size_t>(fanout_threads * 64, 1024));
    endpoints_->set_executor(executor_.get());
    auto poller = LinkPoller::Start(&clock_, "peer-links");
    if (!poller.ok()) return poller.status();
    poller_ = std::move(poller.value());
    endpoints_->set_poller(poller_.get());

    CoordinatorOptions co;
    co.self_id = config_.id;
    co.default_r = config_.read_quorum;
    co.default_w = config_.write_quorum;
    co.request_timeout = std::chrono::milliseconds(config_.request_timeout_ms);
    co.max_value_bytes = config_.max_value_bytes;
    co.sloppy_quorum = config_.sloppy_quorum;
    co.handoff_after = std::chrono::milliseconds(config_.handoff_after_ms);
    co.read_fanout = config_.read_quorum_only ? ReadFanout::kQuorum : ReadFanout::kAll;
    co.read_speculate_after = std::chrono::milliseconds(config_.read_speculate_ms);
    coordinator_ = std::make_unique<Coordinator>(co, membership_.get(), replica_.get(), endpoints_.get(),
                                                 executor_.get(), &clock_, &wall_);

    hint_target_ = std::make_unique<NodeHintTarget>(membership_.get(), endpoints_.get());
    DeliveryOptions delivery;
    delivery.max_hints_per_second = config_.hint_rate;
    delivery.ttl = std::chrono::seconds(config_.hint_ttl_s);
    delivery_ = std::make_unique<HintDelivery>(hint_store_.get(), hint_target_.get(), &clock_, &wall_, delivery);
    intake_->set_delivery(delivery_.get());
    delivery_->Start();

    owner_reader_ = std::make_unique<NodeOwnerReader>(membership_.get(), endpoints_.get());
    ReaperOptions reaper;
    reaper.grace = std::chrono::seconds(config_.tombstone_grace_s);
    reaper.interval = std::chrono::milliseconds(config_.reap_interval_ms);
    reaper_ = std::make_unique<TombstoneReaper>(replica_.get(), owner_reader_.get(), &wall_, reaper);
    reaper_->Start();

    ae_directory_ = std::make_unique<NodeExchangeDirectory>(membership_.get(), endpoints_.get());
    SchedulerOptions ae;
    ae.interval = std::chrono::seconds(config_.ae_interval_s);
    ae.bytes_per_second = config_.ae_rate_bytes;
    ae.max_concurrent = config_.ae_max_concurrent;
    ae.verify_interval = std::chrono::seconds(config_.ae_verify_interval_s);
    ae_ = std::make_unique<AntiEntropyScheduler>(local_exchange_.get(), local_exchange_->format(), trees_.get(),
                                                 ae_directory_.get(), &clock_, ae);
    ae_->Start();

    ConnectionOptions probe = conn;
    probe.connect_timeout_ms = static_cast<int>(config_.probe_timeout_ms);
    probe.io_timeout_ms = static_cast<int>(config_.probe_timeout_ms);
    HintDelivery* delivery_ptr = delivery_.get();
    prober_ = std::make_unique<PeerProber>(membership_.get(), endpoints_.get(), probe,
                                           std::chrono::milliseconds(config_.probe_interval_ms),
                                           [delivery_ptr](const std::string&) { delivery_ptr->Notify(); });
    prober_->Start();
    if (raft_membership_) {
      PeerProber* prober = prober_.get();
      Status s = raft_membership_->Start(membership_.get(), replica_.get(), endpoints_.get(),
                                         [prober](const ClusterView&) { prober->Refresh(); });
      if (!s.ok()) return s;
      endpoints_->set_fence(&raft_membership_->service());
      coordinator_->set_fence(&raft_membership_->service());
    }
    return StartServer(conn);
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    // First: a `monju repair` running on a request thread returns at its
    // next step instead of holding the server's shutdown.
    if (ae_) ae_->Stop();
    // Writes queued for forwarding are refused ("node stopping") while their
    // clients can still read the answer; forwards under way finish.
    if (forwarder_) forwarder_->Stop();
    // Clients first, so no new request waits on peers that are going away.
    if (client_server_) client_server_->Stop();
    if (peer_server_) peer_server_->Stop();
    if (raft_membership_) raft_membership_->Stop();
    if (prober_) prober_->Stop();
    if (reaper_) reaper_->Stop();
    if (delivery_) delivery_->Stop();
    // Calls waiting on links fail; what their completions hand on still runs.
    if (poller_) poller_->Stop();
    if (executor_) executor_->Stop();
    if (replica_) {
      Status s = replica_->MarkCleanShutdown();
      if (!s.ok()) spdlog::warn("could not record a clean shutdown: {}", s.ToString());
    }
    raft_membership_.reset();
    prober_.reset();
    ae_.reset();
    ae_directory_.reset();
    reaper_.reset();
    owner_reader_.reset();
    delivery_.reset();
    hint_target_.reset();
    coordinator_.reset();
    executor_.reset();
    endpoints_.reset();
    poller_.reset();
    intake_.reset();
    hint_store_.reset();
    local_exchange_.reset();
    if (trees_) trees_->Uninstall();
    replica_.reset();  // closes the store after its writer drained
    trees_.reset();
    spdlog::info("stopped");
  }

 private:
  Status StartServer(const ConnectionOptions& conn) {
    // Node-to-node calls first: peers may call as soon as clients can.
    auto peer_mux = std::make_shared<ServiceDemux>();
    auto replica_handler = std::make_shared<ReplicaHandler>(config_.id, replica_.get(), membership_.get(),
                                                            intake_.get(), local_exchange_.get());
    if (raft_membership_) replica_handler->set_fence(&raft_membership_->service());
    peer_mux->Register("replica", std::make_shared<rpc::MonjuReplicaProcessor>(replica_handler));
    // Raft-managed: node-to-node membership calls (metadata, streaming) too.
    if (raft_membership_) raft_membership_->Register(*peer_mux);
    const uint16_t peer_port = config_.OwnPeerPort();
    // Largest request: a value at the limit plus keys and context; a hint
    // batch of many versions is bounded by the same frame size.
    const auto max_frame = static_cast<int32_t>(config_.max_value_bytes + (1 << 20));
    auto caps = ConnectionBudget();
    if (!caps.ok()) return caps.status();
    CallServer::Options peer;
    peer.max_connections = caps->peer;
    peer.host = config_.listen_host;
    peer.port = peer_port;
    peer.threads = config_.peer_threads;
    peer.max_frame_bytes = max_frame;
    peer.name = "peer";
    // A coordinator's coalesced writes are answered by the store's writer.
    peer.deferred = std::make_shared<ReplicaAsyncCalls>(replica_handler);
    auto peer_server = CallServer::Start(peer, peer_mux);
    if (!peer_server.ok()) return Status::IOError("--peers: cannot serve peers on " + config_.listen_host + ":" +
                                                  std::to_string(peer_port) + " (this node's peer port): " +
                                                  peer_server.status().message());
    peer_server_ = std::move(peer_server.value());
    peer_server_view_.store(peer_server_.get());

    auto mux = std::make_shared<ServiceDemux>();
    NodeEndpoints* endpoints = endpoints_.get();
    auto kv = std::make_shared<KvHandler>(coordinator_.get(), membership_.get(), config_.id, conn,
                                          [endpoints](const std::string& id) {
                                            return endpoints->Detector(id)->LikelyAlive();
                                          });
    mux->RegisterDefault(std::make_shared<api::MonjuKVProcessor>(kv));
    AdminSources sources;
    sources.self_id = config_.id;
    sources.sloppy_quorum = config_.sloppy_quorum;
    sources.membership = membership_.get();
    sources.endpoints = endpoints_.get();
    sources.hints = intake_.get();
    sources.coordinator = coordinator_.get();
    sources.delivery = delivery_.get();
    sources.reaper = reaper_.get();
    sources.replica = replica_.get();
    sources.link_faults = link_faults_.get();
    sources.anti_entropy = ae_.get();
    sources.trees = trees_.get();
    sources.client_server = &client_server_view_;
    sources.peer_server = &peer_server_view_;
    mux->Register("admin",
                  std::make_shared<admin::MonjuAdminProcessor>(std::make_shared<AdminHandler>(std::move(sources))));
    if (raft_membership_) raft_membership_->Register(*mux);
    CallServer::Options client;
    client.host = config_.listen_host;
    client.port = config_.listen_port;
    client.threads = config_.worker_threads;
    client.max_connections = caps->client;
    // `monju stats` and membership changes still get through a client flood.
    client.reserved_connections = kOperatorConnections;
    client.reserved_prefixes = {"admin:", "membership:"};
    client.max_frame_bytes = max_frame;
    client.name = "client";
    // Gets and writes answer from the thread that completes them.
    // Writes for keys other nodes replicate wait for the owner on these.
    forwarder_ = std::make_unique<FanoutExecutor>(config_.forward_threads, config_.forward_threads * 32, "forward");
    // A write queued longer than a request's deadline is refused, not sent.
    client.deferred = std::make_shared<KvAsyncCalls>(coordinator_.get(), kv, forwarder_.get(),
                                                     std::chrono::milliseconds(config_.request_timeout_ms), config_.id);
    auto client_server = CallServer::Start(client, mux);
    if (!client_server.ok()) return Status::IOError("--listen: cannot serve on " + config_.listen_host + ":" +
                                                    std::to_string(config_.listen_port) + ": " +
                                                    client_server.status().message());
    client_server_ = std::move(client_server.value());
    client_server_view_.store(client_server_.get());
    spdlog::info("serving clients on {}:{} ({} workers), peers on {}:{} ({} workers), {} fan-out threads, {} forwarding threads "
                 "(N={} R={} W={})",
                 config_.listen_host, config_.listen_port, config_.worker_threads, config_.listen_host, peer_port,
                 config_.peer_threads, config_.FanoutThreads(), config_.forward_threads, config_.replicas, config_.read_quorum,
                 config_.write_quorum);
    return Status::OK();
  }

  // The servers' connection caps under this process's open-file limit; a
  // --max-client-connections that does not fit is lowered, and logged.
  StatusOr<ConnectionCaps> ConnectionBudget() const {
    auto limit = CurrentDescriptorLimit();
    if (!limit.ok()) return limit.status();
    const CallServer::Options defaults;
    auto caps = FitConnectionCaps(limit.value(), config_.PlannedMembers(), config_.max_client_connections,
                                  defaults.max_connections);
    if (!caps.ok()) return caps.status();
    if (caps->client < config_.max_client_connections)
      spdlog::warn("open-file limit {}: client connections capped at {} (--max-client-connections {}), "
                   "peer connections at {}; raise `ulimit -n` for more",
                   limit.value(), caps->client, config_.max_client_connections, caps->peer);
    return caps;
  }

  const NodeConfig config_;
  SteadyClock clock_;
  SystemWallClock wall_;
  std::unique_ptr<LinkFaults> link_faults_;  // only with --fault-injection
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<PartitionTrees> trees_;
  std::unique_ptr<LocalExchangePeer> local_exchange_;
  std::unique_ptr<HintStore> hint_store_;
  std::unique_ptr<HintIntake> intake_;
  std::unique_ptr<NodeEndpoints> endpoints_;
  std::unique_ptr<FanoutExecutor> executor_;
  std::unique_ptr<LinkPoller> poller_;  // replies of coalesced peer calls
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<NodeHintTarget> hint_target_;
  std::unique_ptr<HintDelivery> delivery_;
  std::unique_ptr<NodeOwnerReader> owner_reader_;
  std::unique_ptr<TombstoneReaper> reaper_;
  std::unique_ptr<NodeExchangeDirectory> ae_directory_;
  std::unique_ptr<AntiEntropyScheduler> ae_;
  std::unique_ptr<PeerProber> prober_;
  std::unique_ptr<RaftMembership> raft_membership_;  // only with --raft-listen
  std::unique_ptr<FanoutExecutor> forwarder_;  // forwarded writes; stopped before the client server
  std::unique_ptr<CallServer> peer_server_;    // MonjuReplica: calls that never wait on other nodes
  std::unique_ptr<CallServer> client_server_;  // MonjuKV and admin
  // For `monju stats`: set once each server serves.
  std::atomic<const CallServer*> peer_server_view_{nullptr};
  std::atomic<const CallServer*> client_server_view_{nullptr};
  std::mutex stop_mu_;
  bool stopped_ = false;
};

StatusOr<std::unique_ptr<Node>> Node::Start(const NodeConfig& config) {
  auto impl = std::make_unique<Impl>(config);
  Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;
void Node::Stop() { impl_->Stop(); }

}  // namespace monju
