#include "config/node_config.h"

#include <unistd.h>

#include <boost/program_options.hpp>
#include <algorithm>
#include <thread>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace monju {

bool IsValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return Status::InvalidArgument("expected HOST:PORT, got '" + std::string(text) + "'");
  std::string_view h = text.substr(0, colon), p = text.substr(colon + 1);
  unsigned long n = 0;
  for (char c : p) {
    if (!isdigit(static_cast<unsigned char>(c)) || n > 65535)
      return Status::InvalidArgument("bad port in '" + std::string(text) + "'");
    n = n * 10 + (c - '0');
  }
  if (n == 0 || n > 65535) return Status::InvalidArgument("port out of range in '" + std::string(text) + "'");
  if (h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = std::string(h);
  *port = static_cast<uint16_t>(n);
  return Status::OK();
}

Status ParsePeers(std::string_view text, std::vector<PeerAddress>* peers) {
  peers->clear();
  std::stringstream ss{std::string(text)};
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos)
      return Status::InvalidArgument("--peers: expected id=host:port, got '" + item + "'");
    PeerAddress p;
    p.id = item.substr(0, eq);
    if (!IsValidNodeId(p.id))
      return Status::InvalidArgument("--peers: bad node id '" + p.id + "' (1-64 of A-Z a-z 0-9 _ . -)");
    std::string_view address = std::string_view(item).substr(eq + 1);
    const auto slash = address.find('/');
    if (slash != std::string_view::npos) {
      std::string_view digits = address.substr(slash + 1);
      unsigned long n = 0;
      bool ok = !digits.empty() && digits.size() <= 5;
      for (char c : digits) {
        ok = ok && isdigit(static_cast<unsigned char>(c));
        n = n * 10 + (c - '0');
      }
      if (!ok || n == 0 || n > 65535)
        return Status::InvalidArgument("--peers: bad peer port in '" + item + "' (expected id=host:port/peer_port)");
      p.peer_port = static_cast<uint16_t>(n);
      address = address.substr(0, slash);
    }
    Status s = ParseHostPort(address, &p.host, &p.port);
    if (!s.ok()) return Status::InvalidArgument("--peers: " + s.message());
    peers->push_back(std::move(p));
  }
  if (peers->empty()) return Status::InvalidArgument("--peers: empty peer list");
  return Status::OK();
}

Status ValidateNodeConfig(const NodeConfig& c) {
  if (!IsValidNodeId(c.id)) return Status::InvalidArgument("--id: must be 1-64 of A-Z a-z 0-9 _ . -");
  if (c.listen_port == 0) return Status::InvalidArgument("--listen: required, HOST:PORT");
  if (c.join_port != 0 && !c.peers.empty())
    return Status::InvalidArgument("--join: a joining node gets the members from the cluster; drop --peers");
  if (c.peers.empty() && !c.joining())
    return Status::InvalidArgument(c.join_port ? "--join: needs --raft-listen (Raft-managed membership)"
                                               : "--peers: required, id=host:port,...");
  if (c.peer_port_offset < 1 || c.peer_port_offset > 65534)
    return Status::InvalidArgument("--peer-port-offset: must be 1..65534");
  if (c.peer_threads < 1 || c.peer_threads > 1024) return Status::InvalidArgument("--peer-threads: must be 1..1024");
  std::set<std::string> ids, addrs;
  bool self_found = c.joining();  // a joining node gets the members from the cluster
  for (const auto& p : c.peers) {
    if (!ids.insert(p.id).second) return Status::InvalidArgument("--peers: duplicate id '" + p.id + "'");
    std::string addr = p.host + ":" + std::to_string(p.port);
    if (!addrs.insert(addr).second) return Status::InvalidArgument("--peers: duplicate address " + addr);
    if (p.peer_port == 0 && uint32_t(p.port) + c.peer_port_offset > 65535)
      return Status::InvalidArgument("--peers: " + p.ToString() + ": port + --peer-port-offset " +
                                     std::to_string(c.peer_port_offset) +
                                     " exceeds 65535; give its peer port as id=host:port/peer_port");
  }
  for (const auto& p : ResolvePeerPorts(c)) {
    std::string addr = p.host + ":" + std::to_string(p.peer_port);
    if (!addrs.insert(addr).second)
      return Status::InvalidArgument("--peers: peer port of " + p.id + " (" + addr +
                                     ") is already used by another entry; every port must be distinct");
  }
  for (const auto& p : c.peers) {
    if (p.id == c.id) {
      self_found = true;
      if (p.port != c.listen_port)
        return Status::InvalidArgument("--peers: own entry " + p.ToString() + " does not match --listen port " +
                                       std::to_string(c.listen_port));
    }
  }
  if (!self_found) return Status::InvalidArgument("--peers: own id '" + c.id + "' is not in the peer list");
  if (c.vnodes < 1 || c.vnodes > 4096) return Status::InvalidArgument("--vnodes: must be 1..4096");
  if (c.partitions < 1 || c.partitions > 65536) return Status::InvalidArgument("--partitions: must be 1..65536");
  if (c.replicas < 1) return Status::InvalidArgument("--replicas: N must be at least 1");
  if (!c.joining() && c.replicas > c.peers.size())
    return Status::InvalidArgument("--replicas: N=" + std::to_string(c.replicas) + " exceeds the " +
                                   std::to_string(c.peers.size()) + " peers");
  if (c.read_quorum < 1 || c.read_quorum > c.replicas)
    return Status::InvalidArgument("-R: must be 1..N (N=" + std::to_string(c.replicas) + ")");
  if (c.write_quorum < 1 || c.write_quorum > c.replicas)
    return Status::InvalidArgument("-W: must be 1..N (N=" + std::to_string(c.replicas) + ")");
  if (c.request_timeout_ms < 1 || c.request_timeout_ms > 600000)
    return Status::InvalidArgument("--request-timeout-ms: must be 1..600000");
  if (c.max_value_bytes < 1 || c.max_value_bytes > (64u << 20))
    return Status::InvalidArgument("--max-value-bytes: must be 1..67108864");
  if (c.map_size_mb < 1 || c.map_size_mb > (uint64_t(1) << 24))
    return Status::InvalidArgument("--map-size-mb: must be 1..16777216 (16 TiB)");
  if (c.memtable_mb < 1 || c.memtable_mb > 1024) return Status::InvalidArgument("--memtable-mb: must be 1..1024");
  if (c.worker_threads < 1 || c.worker_threads > 1024)
    return Status::InvalidArgument("--worker-threads: must be 1..1024");
  // The descriptor budget keeps 64 forwarding connections per member.
  if (c.forward_threads < 1 || c.forward_threads > 64)
    return Status::InvalidArgument("--forward-threads: must be 1..64");
  if (c.max_client_connections < 1 || c.max_client_connections > 1000000)
    return Status::InvalidArgument("--max-client-connections: must be 1..1000000");
  if (c.fanout_threads > 4096)
    return Status::InvalidArgument("--fanout-threads: must be 0..4096 (0: 4 per other member)");
  if (c.handoff_after_ms < 1 || c.handoff_after_ms >= c.request_timeout_ms)
    return Status::InvalidArgument("--handoff-after-ms: must be 1..request-timeout-ms-1 (" +
                                   std::to_string(c.request_timeout_ms) + " ms now)");
  if (c.read_speculate_ms < 1 || c.read_speculate_ms >= c.request_timeout_ms)
    return Status::InvalidArgument("--read-speculate-ms: must be 1..request-timeout-ms-1 (" +
                                   std::to_string(c.request_timeout_ms) + " ms now)");
  if (c.probe_interval_ms < 10 || c.probe_interval_ms > 60000)
    return Status::InvalidArgument("--probe-interval-ms: must be 10..60000");
  if (c.probe_timeout_ms < 10 || c.probe_timeout_ms > 60000)
    return Status::InvalidArgument("--probe-timeout-ms: must be 10..60000");
  if (c.hint_max_per_owner < 1 || c.hint_max_total < 1)
    return Status::InvalidArgument("--hint-max-per-owner/--hint-max-total: must be at least 1");
  if (c.hint_map_size_mb < 1 || c.hint_map_size_mb > (uint64_t(1) << 24))
    return Status::InvalidArgument("--hint-map-size-mb: must be 1..16777216");
  if (c.hint_ttl_s < 1) return Status::InvalidArgument("--hint-ttl-s: must be at least 1");
  if (c.hint_rate < 1) return Status::InvalidArgument("--hint-rate: must be at least 1 hint per second");
  if (c.tombstone_grace_s < 1) return Status::InvalidArgument("--tombstone-grace-s: must be at least 1");
  // A hint delivered after the tombstone that superseded it was reaped would
  // bring the key back: hints must expire first, with room for clock skew
  // between the node holding the hint and the one that stamped the delete.
  if (c.hint_ttl_s >= c.tombstone_grace_s)
    return Status::InvalidArgument("--hint-ttl-s: " + std::to_string(c.hint_ttl_s) +
                                   " must be below --tombstone-grace-s " + std::to_string(c.tombstone_grace_s) +
                                   "; a late hint could resurrect a reaped delete");
  if (c.reap_interval_ms < 10) return Status::InvalidArgument("--reap-interval-ms: must be at least 10");
  if (c.ae_interval_s > 30 * 86400) return Status::InvalidArgument("--ae-interval-s: must be 0..2592000 (30 days)");
  if (c.ae_max_concurrent < 1 || c.ae_max_concurrent > 64)
    return Status::InvalidArgument("--ae-max-concurrent: must be 1..64");
  if (c.ae_rate_bytes != 0 && c.ae_rate_bytes < 4096)
    return Status::InvalidArgument("--ae-rate-bytes: must be 0 (unlimited) or at least 4096");
  if (c.ae_verify_interval_s < 1) return Status::InvalidArgument("--ae-verify-interval-s: must be at least 1");
  if (c.data_dir.empty()) return Status::InvalidArgument("--data: required");
  std::error_code ec;
  std::filesystem::create_directories(c.data_dir, ec);
  if (ec) return Status::InvalidArgument("--data: cannot create " + c.data_dir + ": " + ec.message());
  if (!std::filesystem::is_directory(c.data_dir, ec))
    return Status::InvalidArgument("--data: " + c.data_dir + " is not a directory");
  if (access(c.data_dir.c_str(), W_OK | X_OK) != 0)
    return Status::InvalidArgument("--data: " + c.data_dir + " is not writable");
  return ValidateRaftConfig(c);
}

Status ValidateRaftConfig(const NodeConfig& c) {
  if (!c.raft_enabled()) {
    if (c.join_port != 0) return Status::InvalidArgument("--join: needs --raft-listen (Raft-managed membership)");
    if (!c.raft_peers.empty()) return Status::InvalidArgument("--raft-peers: needs --raft-listen");
    if (c.join_peer_port != 0) return Status::InvalidArgument("--peer-port: only with --join");
    return Status::OK();
  }
  if (c.raft_listen_host == "0.0.0.0" || c.raft_listen_host == "::" || c.raft_listen_host.empty())
    return Status::InvalidArgument("--raft-listen: give the address peers reach this node at, not a wildcard");
  if (c.raft_listen_host == c.listen_host && c.raft_listen_port == c.listen_port)
    return Status::InvalidArgument("--raft-listen: must differ from --listen");
  if (c.raft_voters < 1 || c.raft_voters > 9 || c.raft_voters % 2 == 0)
    return Status::InvalidArgument("--raft-voters: must be odd, 1..9");
  if (c.stream_rate_mb < 1 || c.stream_rate_mb > 10240)
    return Status::InvalidArgument("--stream-rate-mb: must be 1..10240");
  if (c.joining()) {
    if (c.join_port == 0)
      return Status::InvalidArgument("--peers or --join: a Raft node needs the cluster to bootstrap (--peers) or "
                                     "a member to join (--join HOST:PORT)");
    if (!c.raft_peers.empty()) return Status::InvalidArgument("--raft-peers: only with --peers (bootstrap)");
    if (c.join_peer_port == 0 && uint32_t(c.listen_port) + c.peer_port_offset > 65535)
      return Status::InvalidArgument("--peer-port: --listen port + --peer-port-offset exceeds 65535; give --peer-port");
    if (c.OwnPeerPort() == c.listen_port || c.OwnPeerPort() == c.raft_listen_port)
      return Status::InvalidArgument("--peer-port: must differ from the --listen and --raft-listen ports");
    return Status::OK();
  }
  if (c.join_peer_port != 0)
    return Status::InvalidArgument("--peer-port: only with --join (with --peers, give it as id=host:port/peer_port)");
  // Bootstrap: every --peers member needs its Raft address.
  if (c.raft_peers.size() != c.peers.size())
    return Status::InvalidArgument("--raft-peers: give the Raft address of each of the " +
                                   std::to_string(c.peers.size()) + " --peers members (id=host:port,...)");
  std::set<std::string> addrs;
  for (const auto& p : ResolvePeerPorts(c)) {
    addrs.insert(p.host + ":" + std::to_string(p.port));
    addrs.insert(p.host + ":" + std::to_string(p.peer_port));
  }
  for (const auto& r : c.raft_peers) {
    bool member = false;
    for (const auto& p : c.peers) member = member || p.id == r.id;
    if (!member) return Status::InvalidArgument("--raft-peers: '" + r.id + "' is not in --peers");
    if (!addrs.insert(r.host + ":" + std::to_string(r.port)).second)
      return Status::InvalidArgument("--raft-peers: address " + r.host + ":" + std::to_string(r.port) +
                                     " is used twice");
    if (r.id == c.id && (r.port != c.raft_listen_port))
      return Status::InvalidArgument("--raft-peers: own entry " + r.ToString() + " does not match --raft-listen port " +
                                     std::to_string(c.raft_listen_port));
  }
  return Status::OK();
}

uint16_t NodeConfig::OwnPeerPort() const {
  for (const auto& p : peers)
    if (p.id == id) return p.peer_port ? p.peer_port : static_cast<uint16_t>(p.port + peer_port_offset);
  return join_peer_port ? join_peer_port : static_cast<uint16_t>(listen_port + peer_port_offset);
}

size_t NodeConfig::PlannedMembers() const {
  return std::max<size_t>(peers.size(), raft_enabled() ? raft_voters : 0);
}

namespace {

uint32_t Cores() { return std::max(1u, std::thread::hardware_concurrency()); }

}  // namespace

uint32_t DefaultWorkerThreads() { return std::clamp(2 * Cores(), 4u, 64u); }
uint32_t DefaultPeerThreads() { return std::clamp(Cores(), 2u, 32u); }

uint32_t NodeConfig::FanoutThreads() const {
  if (fanout_threads != 0) return fanout_threads;
  const size_t others = PlannedMembers() > 0 ? PlannedMembers() - 1 : 0;
  const uint64_t derived = uint64_t(kFanoutThreadsPerPeer) * others;
  return static_cast<uint32_t>(std::clamp<uint64_t>(derived, kMinFanoutThreads, kMaxFanoutThreads));
}

std::vector<PeerAddress> ResolvePeerPorts(const NodeConfig& config) {
  std::vector<PeerAddress> out = config.peers;
  for (auto& p : out)
    if (p.peer_port == 0) p.peer_port = static_cast<uint16_t>(p.port + config.peer_port_offset);
  return out;
}

ParsedArgs ParseNodeArgs(int argc, const char* const* argv) {
  ParsedArgs out;
  NodeConfig& c = out.config;
  std::string listen, peers, config_file, quorum_mode = "sloppy", read_fanout = "all",
              cpu_scheduling = "normal";
  std::string raft_listen, raft_peers, join;
  po::options_description desc(
      "monjud: a Monju node (coordinator and replica; clients on one port, peers on another)\n\n"
      "Usage: monjud --id ID --listen HOST:PORT --data DIR --peers id=host:port[/peer_port],... [options]\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("config", po::value(&config_file), "read options from FILE (lines 'key = value', same keys as the flags)")
    ("id", po::value(&c.id), "this node's id; must appear in --peers")
    ("listen", po::value(&listen), "HOST:PORT to serve clients on (peers are served on this node's peer port, see --peers)")
    ("data", po::value(&c.data_dir), "data directory (LMDB files under DATA/data)")
    ("peers", po::value(&peers), "the full cluster, this node included: id=host:port[/peer_port],... (peer_port: node-to-node calls; default port + --peer-port-offset)")
    ("peer-port-offset", po::value(&c.peer_port_offset)->default_value(c.peer_port_offset), "a member's peer port when --peers gives none: its port plus this (cluster constant)")
    ("peer-threads", po::value(&c.peer_threads)->default_value(c.peer_threads), "threads serving node-to-node requests (apart from --worker-threads); default 1 per core, 2..32")
    ("vnodes", po::value(&c.vnodes)->default_value(c.vnodes), "ring tokens per node")
    ("partitions", po::value(&c.partitions)->default_value(c.partitions), "Q, the fixed number of partitions (cluster constant)")
    ("replicas,N", po::value(&c.replicas)->default_value(c.replicas), "N, replicas per key")
    ("read-quorum,R", po::value(&c.read_quorum)->default_value(c.read_quorum), "R, default read quorum")
    ("write-quorum,W", po::value(&c.write_quorum)->default_value(c.write_quorum), "W, default write quorum")
    ("request-timeout-ms", po::value(&c.request_timeout_ms)->default_value(c.request_timeout_ms), "deadline of each client request")
    ("max-value-bytes", po::value(&c.max_value_bytes)->default_value(c.max_value_bytes), "largest value accepted")
    ("map-size-mb", po::value(&c.map_size_mb)->default_value(c.map_size_mb), "LMDB map size: the data store's size cap")
    ("memtable-mb", po::value(&c.memtable_mb)->default_value(c.memtable_mb),
     "writes held in memory and in the write-ahead log before they are flushed into LMDB (two such at most)")
    ("worker-threads", po::value(&c.worker_threads)->default_value(c.worker_threads), "threads handling client requests; default 2 per core, 4..64")
    ("forward-threads", po::value(&c.forward_threads)->default_value(c.forward_threads), "threads forwarding writes for keys this node does not replicate to an owner (each waits for the owner's answer; 1..64)")
    ("max-client-connections", po::value(&c.max_client_connections)->default_value(c.max_client_connections), "client connections open at once; more are accepted and closed (lowered to fit the open-file limit)")
    ("fanout-threads", po::value(&c.fanout_threads)->default_value(c.fanout_threads), "threads making calls to peers (0: 4 per other member, 4..256)")
    ("log-level", po::value(&c.log_level)->default_value(c.log_level), "trace|debug|info|warn|error")
    ("cpu-scheduling", po::value(&cpu_scheduling)->default_value(cpu_scheduling), "normal: the policy monjud was started with (the kernel's default unless started under chrt); batch: every thread runs under SCHED_BATCH, so a thread woken by another's message does not preempt the one running (fewer context switches: faster reads, slower durable writes, see README)")
    ("quorum-mode", po::value(&quorum_mode)->default_value(quorum_mode), "sloppy: fallbacks holding hints count toward W; strict: only owners count")
    ("handoff-after-ms", po::value(&c.handoff_after_ms)->default_value(c.handoff_after_ms), "an owner silent this long also gets a hinted copy on a fallback")
    ("read-fanout", po::value(&read_fanout)->default_value(read_fanout), "all: a get asks every live replica (and repairs them all); quorum: it asks R, this node's own first, and the others only when one fails or is slow")
    ("read-speculate-ms", po::value(&c.read_speculate_ms)->default_value(c.read_speculate_ms), "with --read-fanout quorum: a replica silent this long makes the get ask the others too")
    ("probe-interval-ms", po::value(&c.probe_interval_ms)->default_value(c.probe_interval_ms), "failure-detector probe period per peer")
    ("probe-timeout-ms", po::value(&c.probe_timeout_ms)->default_value(c.probe_timeout_ms), "a probe unanswered this long fails")
    ("hint-max-per-owner", po::value(&c.hint_max_per_owner)->default_value(c.hint_max_per_owner), "hints held for one owner; more are refused")
    ("hint-max-total", po::value(&c.hint_max_total)->default_value(c.hint_max_total), "hints held in total; more are refused")
    ("hint-map-size-mb", po::value(&c.hint_map_size_mb)->default_value(c.hint_map_size_mb), "LMDB map size of DATA/hints")
    ("hint-ttl-s", po::value(&c.hint_ttl_s)->default_value(c.hint_ttl_s), "hints older than this are dropped (at most --tombstone-grace-s)")
    ("hint-rate", po::value(&c.hint_rate)->default_value(c.hint_rate), "hints delivered per second, all owners together")
    ("tombstone-grace-s", po::value(&c.tombstone_grace_s)->default_value(c.tombstone_grace_s), "a tombstone is reaped no sooner than this after the delete")
    ("reap-interval-ms", po::value(&c.reap_interval_ms)->default_value(c.reap_interval_ms), "pause between tombstone-reaper passes")
    ("ae-interval-s", po::value(&c.ae_interval_s)->default_value(c.ae_interval_s), "anti-entropy: exchange each partition with each co-owner this often (0: only on `monju repair`)")
    ("ae-rate-bytes", po::value(&c.ae_rate_bytes)->default_value(c.ae_rate_bytes), "anti-entropy: bytes per second, all exchanges together (0: unlimited)")
    ("ae-max-concurrent", po::value(&c.ae_max_concurrent)->default_value(c.ae_max_concurrent), "anti-entropy: exchanges running at once")
    ("ae-verify-interval-s", po::value(&c.ae_verify_interval_s)->default_value(c.ae_verify_interval_s), "anti-entropy: check each partition's tree against its items' digests this often")
    ("fault-injection", po::bool_switch(&c.fault_injection), "TESTING ONLY: accept admin calls that drop or delay this node's calls to chosen peers")
    ("raft-listen", po::value(&raft_listen), "HOST:PORT of this node's Raft endpoint: membership is then Raft-managed (log and snapshots in DATA/raft)")
    ("raft-peers", po::value(&raft_peers), "bootstrap: the Raft address of each --peers member, id=host:port,...")
    ("raft-voters", po::value(&c.raft_voters)->default_value(c.raft_voters), "bootstrap: Raft voters, the first members by id (odd); the others follow as standbys")
    ("join", po::value(&join), "HOST:PORT of any member: a new node that joins an existing Raft-managed cluster (instead of --peers)")
    ("peer-port", po::value(&c.join_peer_port), "with --join: this node's peer port (default: the --listen port plus --peer-port-offset)")
    ("stream-rate-mb", po::value(&c.stream_rate_mb)->default_value(c.stream_rate_mb), "MiB/s this node streams in when a membership change gives it partitions");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::ostringstream ss;
      ss << desc;
      out.action = ParsedArgs::Action::kHelp;
      out.text = ss.str();
      return out;
    }
    if (vm.count("config")) {
      std::ifstream in(vm["config"].as<std::string>());
      if (!in) {
        out.action = ParsedArgs::Action::kError;
        out.text = "--config: cannot read " + vm["config"].as<std::string>();
        return out;
      }
      po::store(po::parse_config_file(in, desc), vm);  // command line wins: stored first
    }
    po::notify(vm);
  } catch (const po::error& e) {
    out.action = ParsedArgs::Action::kError;
    out.text = e.what();
    return out;
  }
  Status s;
  if (listen.empty()) {
    s = Status::InvalidArgument("--listen: required, HOST:PORT");
  } else if (Status hp = ParseHostPort(listen, &c.listen_host, &c.listen_port); !hp.ok()) {
    s = Status::InvalidArgument("--listen: " + hp.message());
  } else if (peers.empty() && join.empty()) {
    s = Status::InvalidArgument(raft_listen.empty()
                                    ? "--peers: required, id=host:port,..."
                                    : "--peers or --join: a Raft node needs the cluster to bootstrap (--peers) or a "
                                      "member to join (--join HOST:PORT)");
  } else if (!peers.empty()) {
    s = ParsePeers(peers, &c.peers);
  }
  if (s.ok() && !raft_listen.empty()) {
    if (Status hp = ParseHostPort(raft_listen, &c.raft_listen_host, &c.raft_listen_port); !hp.ok())
      s = Status::InvalidArgument("--raft-listen: " + hp.message());
  }
  if (s.ok() && !raft_peers.empty()) {
    s = ParsePeers(raft_peers, &c.raft_peers);
    if (!s.ok()) s = Status::InvalidArgument("--raft-peers: " + s.message().substr(s.message().find(':') + 2));
  }
  if (s.ok() && !join.empty()) {
    if (Status hp = ParseHostPort(join, &c.join_host, &c.join_port); !hp.ok())
      s = Status::InvalidArgument("--join: " + hp.message());
  }
  if (s.ok()) {
    if (quorum_mode == "sloppy" || quorum_mode == "strict") {
      c.sloppy_quorum = quorum_mode == "sloppy";
    } else {
      s = Status::InvalidArgument("--quorum-mode: must be sloppy or strict, got '" + quorum_mode + "'");
    }
  }
  if (s.ok()) {
    if (read_fanout == "all" || read_fanout == "quorum") {
      c.read_quorum_only = read_fanout == "quorum";
    } else {
      s = Status::InvalidArgument("--read-fanout: must be all or quorum, got '" + read_fanout + "'");
    }
  }
  if (s.ok()) {
    if (cpu_scheduling == "batch" || cpu_scheduling == "normal") {
      c.batch_scheduling = cpu_scheduling == "batch";
    } else {
      s = Status::InvalidArgument("--cpu-scheduling: must be batch or normal, got '" + cpu_scheduling + "'");
    }
  }
  if (s.ok()) s = ValidateNodeConfig(c);
  if (!s.ok()) {
    out.action = ParsedArgs::Action::kError;
    out.text = s.message();
  }
  return out;
}

}  // namespace monju
