// NodeConfig: everything monjud is started with, parsed from flags and an
// optional --config file (same keys, "key = value" lines), then validated.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace monju {

// Threads serving requests run them (no request holds one while replicas
// answer), so their number follows the cores: with more, they wake more
// often for less work each. On 2 cores 4 client and 2 peer threads served
// workloads A, C, write and query 4-30% faster than 8 and 4 (README).
uint32_t DefaultWorkerThreads();  // 2 per core, 4..64
uint32_t DefaultPeerThreads();    // 1 per core, 2..32

// One member as --peers names it: `id=host:port` or `id=host:port/peer_port`.
// `port` serves clients (MonjuKV, admin); `peer_port` serves node-to-node
// calls (MonjuReplica) on a server and threads of its own, so that
// client requests waiting on peers can never occupy the threads those peers'
// replica calls need. 0 means port + --peer-port-offset (ResolvePeerPorts).
struct PeerAddress {
  std::string id;
  std::string host;
  uint16_t port = 0;
  uint16_t peer_port = 0;
  std::string ToString() const {
    return id + "=" + host + ":" + std::to_string(port) + (peer_port ? "/" + std::to_string(peer_port) : "");
  }
  bool operator==(const PeerAddress&) const = default;
};

struct NodeConfig {
  std::string id;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  std::string data_dir;
  std::vector<PeerAddress> peers;  // the whole cluster, this node included
  uint32_t vnodes = 64;
  uint32_t partitions = 256;        // Q: a cluster constant
  uint32_t replicas = 3;            // N
  uint32_t read_quorum = 2;         // R
  uint32_t write_quorum = 2;        // W
  uint32_t request_timeout_ms = 2000;
  uint64_t max_value_bytes = 1 << 20;
  uint64_t map_size_mb = 16384;
  uint64_t memtable_mb = 8;  // writes held in memory (and the log) before a flush into LMDB
  uint32_t worker_threads = DefaultWorkerThreads();  // client-port threads (gets and writes do not hold one while replicas answer)
  uint32_t fanout_threads = 0;      // outbound replica calls; 0: FanoutThreads() derives it (see README)
  uint32_t peer_threads = DefaultPeerThreads();  // threads serving node-to-node requests
  uint32_t forward_threads = 8;     // threads forwarding writes for keys this node does not replicate
  uint32_t max_client_connections = 10000;  // lowered to fit the open-file limit (descriptor_budget.h)
  uint32_t peer_port_offset = 1000; // a peer's node-to-node port when --peers gives none
  std::string log_level = "info";
  bool batch_scheduling = false;    // SCHED_BATCH for every thread (net/cpu_scheduling.h)

  // Failure handling.
  bool sloppy_quorum = true;            // fallbacks holding hints count toward W
  uint32_t handoff_after_ms = 300;      // an owner silent this long gets a fallback too
  bool read_quorum_only = false;        // a get asks R replicas first, not all N
  uint32_t read_speculate_ms = 10;      // ... and the others when one is this slow
  uint32_t probe_interval_ms = 250;     // failure-detector probes per peer
  uint32_t probe_timeout_ms = 500;
  uint64_t hint_max_per_owner = 100000;
  uint64_t hint_max_total = 1000000;
  uint64_t hint_map_size_mb = 4096;     // LMDB map of DATA/hints
  uint32_t hint_ttl_s = 3 * 3600;       // older hints are dropped; below tombstone_grace_s
  uint32_t hint_rate = 5000;            // hints delivered per second, all owners together
  uint32_t tombstone_grace_s = 6 * 3600;
  uint32_t reap_interval_ms = 10000;    // between tombstone-reaper passes

  // Anti-entropy.
  uint32_t ae_interval_s = 600;          // each (partition, co-owner) at most this often; 0: background off
  uint64_t ae_rate_bytes = 4 << 20;      // bytes per second, all exchanges together; 0: unlimited
  uint32_t ae_max_concurrent = 1;        // exchanges at once, background and repair together
  uint32_t ae_verify_interval_s = 86400; // a partition's tree is checked against the index at most this often

  // Testing only: lets the admin service make this node drop or delay its
  // calls to chosen peers (chaos runs without root). Off in production.
  bool fault_injection = false;

  // Raft-managed membership (membership/). Without --raft-listen the
  // cluster is static: --peers, as above.
  std::string raft_listen_host;
  uint16_t raft_listen_port = 0;
  std::vector<PeerAddress> raft_peers;  // Raft addresses of the --peers members (bootstrap)
  uint32_t raft_voters = 3;             // Raft voters of a new cluster (odd)
  std::string join_host;                // any member's client address (a joining node)
  uint16_t join_port = 0;
  uint16_t join_peer_port = 0;          // with --join: this node's peer port (0: listen port + offset)
  uint32_t stream_rate_mb = 32;         // MiB/s this node streams in during membership changes
  bool raft_enabled() const { return raft_listen_port != 0; }
  bool joining() const { return raft_enabled() && peers.empty(); }
  // This node's node-to-node port.
  uint16_t OwnPeerPort() const;
  // Members this node plans for at start: --peers, or for a joining node at
  // least the Raft voters. Members added later share what was planned.
  size_t PlannedMembers() const;
  // The fan-out pool's size: --fanout-threads, or when that is 0,
  // kFanoutThreadsPerPeer per other planned member (at least
  // kMinFanoutThreads, at most kMaxFanoutThreads).
  uint32_t FanoutThreads() const;
};

// Each peer's coalesced writes and reads keep at most 2 calls out each
// (CoalescerOptions::max_senders), so 4 threads per peer let every sender
// run; more threads than that only wait (README, `--fanout-threads`).
inline constexpr uint32_t kFanoutThreadsPerPeer = 4;
inline constexpr uint32_t kMinFanoutThreads = 4;
inline constexpr uint32_t kMaxFanoutThreads = 256;

// Limits on client input, enforced by the coordinator.
inline constexpr size_t kMaxPkBytes = 1024;
inline constexpr size_t kMaxSkBytes = 1024;
inline constexpr size_t kMaxContextBytes = 64 * 1024;
inline constexpr int32_t kDefaultQueryLimit = 100;
inline constexpr int32_t kMaxQueryLimit = 1000;

// Outcome of parsing argv: run with `config`, or print `text` and exit.
struct ParsedArgs {
  enum class Action { kRun, kHelp, kError } action = Action::kRun;
  NodeConfig config;
  std::string text;  // help text, or one error line naming the flag
};

// Parses and validates (validation includes checking that the data dir is
// writable). Never throws.
ParsedArgs ParseNodeArgs(int argc, const char* const* argv);

// Each returns InvalidArgument with a message that starts with the flag name.
Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port);
Status ParsePeers(std::string_view text, std::vector<PeerAddress>* peers);
// The peers with every peer_port filled in (port + peer_port_offset where
// --peers gave none). Call on a validated config.
std::vector<PeerAddress> ResolvePeerPorts(const NodeConfig& config);
Status ValidateNodeConfig(const NodeConfig& config);
// The Raft flags' part of ValidateNodeConfig.
Status ValidateRaftConfig(const NodeConfig& config);
// A node id: 1..64 of [A-Za-z0-9_.-].
bool IsValidNodeId(std::string_view id);

}  // namespace monju
