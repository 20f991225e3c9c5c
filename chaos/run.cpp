#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <random>
#include <thread>

#include "chaos.h"
#include "clock/codec.h"
#include "membership.h"
#include "net_faults.h"
#include "node_clients.h"
#include "node_process.h"

namespace monju::chaos {

namespace {

using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kRequestTimeoutMs = 2000;
constexpr int kAdminTimeoutMs = 3000;

double SecondsSince(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

// Distinct ports that were free on 127.0.0.1 a moment ago, below the
// kernel's range for outgoing connections: a restarting node's port cannot
// have been taken by some connect() meanwhile. Empty when none are found.
std::vector<uint16_t> FreeLoopbackPorts(size_t count) {
  int ephemeral_low = 32768, ephemeral_high = 60999;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &ephemeral_low, &ephemeral_high) != 2) ephemeral_low = 32768;
    std::fclose(f);
  }
  const int low = 15000, high = std::max(low + 1000, ephemeral_low - 1);
  std::mt19937 rng(static_cast<uint32_t>(::getpid()) ^ static_cast<uint32_t>(Steady::now().time_since_epoch().count()));
  std::vector<int> held;
  std::vector<uint16_t> ports;
  for (int attempt = 0; ports.size() < count && attempt < 5000; ++attempt) {
    const auto want = static_cast<uint16_t>(std::uniform_int_distribution<int>(low, high)(rng));
    if (std::find(ports.begin(), ports.end(), want) != ports.end()) continue;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(want);
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      held.push_back(fd);
      ports.push_back(want);
    } else if (fd >= 0) {
      ::close(fd);
    }
  }
  for (int fd : held) ::close(fd);
  if (ports.size() < count) ports.clear();
  return ports;
}

class Run {
 public:
  explicit Run(const RunOptions& o) : o_(o) { report_.options = o; }

  StatusOr<RunReport> Execute() {
    const auto begin = Steady::now();
    Status s = Prepare();
    if (s.ok()) s = StartNodes();
    if (!s.ok()) {
      StopNodes();
      return s;
    }
    report_.partitions_by = net_->partitions_by();
    Say("cluster of " + std::to_string(o_.nodes) + " up; partitions by " + net_->partitions_by() + "; seed " +
        std::to_string(o_.seed));

    ScheduleOptions so;
    so.seed = o_.seed;
    so.nodes = o_.nodes;
    so.run = o_.duration;
    so.kinds = o_.faults;
    const std::vector<Fault> schedule = MakeSchedule(so);

    workload_ = std::make_unique<Workload>(o_.workload, Specs(), &history_);
    const auto epoch = Steady::now();
    workload_->Start(epoch);
    for (const Fault& f : schedule) {
      std::this_thread::sleep_until(epoch + f.start);
      InjectedFault done{f, ""};
      Say("fault: " + f.Describe());
      Apply(f, &done);
      std::this_thread::sleep_until(epoch + f.start + f.duration);
      Heal(f, &done);
      if (!done.error.empty()) Say("  " + done.error);
      report_.faults.push_back(done);
    }
    std::this_thread::sleep_until(epoch + o_.duration);
    workload_->Stop();
    Say("workload stopped after " + std::to_string(history_.size()) + " ops; healing and converging");

    Converge();
    report_.run_s = SecondsSince(begin);
    const std::vector<Op> ops = history_.Snapshot();
    Status w = WriteHistory(ops, o_.out_dir + "/history.jsonl");
    if (!w.ok()) Say("cannot write the history: " + w.ToString());
    StopNodes();
    return report_;
  }

 private:
  void Say(const std::string& line) {
    if (o_.verbose) std::cout << "[chaos] " << line << std::endl;
  }

  std::vector<NodeSpec> Specs() const {
    std::vector<NodeSpec> out;
    for (const auto& n : nodes_) out.push_back(n->spec());
    return out;
  }

  Status Prepare() {
    std::error_code ec;
    std::filesystem::create_directories(o_.out_dir, ec);
    if (ec) return Status::IOError("cannot create " + o_.out_dir + ": " + ec.message());
    std::vector<PeerAddress> peers;
    std::vector<NodeSpec> specs(o_.nodes);
    const std::vector<uint16_t> ports = o_.private_network ? std::vector<uint16_t>{} : FreeLoopbackPorts(2 * o_.nodes);
    if (!o_.private_network && ports.empty()) return Status::IOError("no free ports on 127.0.0.1");
    for (int i = 0; i < o_.nodes; ++i) {
      NodeSpec& s = specs[i];
      s.id = "n" + std::to_string(i + 1);
      if (o_.private_network) {
        s.host = "127.0.0." + std::to_string(11 + i);  // one address per node: filters can tell them apart
        s.port = static_cast<uint16_t>(7101 + i);
        s.peer_port = static_cast<uint16_t>(8101 + i);
      } else {
        s.host = "127.0.0.1";
        s.port = ports[2 * i];
        s.peer_port = ports[2 * i + 1];
      }
      s.data_dir = o_.out_dir + "/" + s.id;
      s.log_path = o_.out_dir + "/" + s.id + ".log";
      peers.push_back({s.id, s.host, s.port, s.peer_port});
    }
    std::string peer_flag;
    for (const auto& p : peers) peer_flag += (peer_flag.empty() ? "" : ",") + p.ToString();
    for (auto& s : specs) {
      s.args = {"--id", s.id, "--listen", s.address(), "--data", s.data_dir, "--peers", peer_flag,
                "-N", std::to_string(o_.n), "-R", std::to_string(o_.r), "-W", std::to_string(o_.w),
                "--request-timeout-ms", std::to_string(kRequestTimeoutMs), "--probe-interval-ms", "100",
                "--probe-timeout-ms", "300", "--map-size-mb", "1024", "--hint-map-size-mb", "256",
                "--fault-injection"};
      s.args.insert(s.args.end(), o_.node_flags.begin(), o_.node_flags.end());
      nodes_.push_back(std::make_unique<NodeProcess>(o_.monjud_path, s));
    }
    auto view = ClusterView::Create(peers, 64, 256, static_cast<uint32_t>(o_.n));
    if (!view.ok()) return view.status();
    view_ = view.value();
    for (int i = 0; i < o_.nodes; ++i) index_of_[specs[i].id] = i;
    auto inject = [this](int node, const std::map<int, InjectedLink>& links) {
      std::map<std::string, admin::LinkFaultSpec> spec;
      for (const auto& [peer, link] : links) {
        admin::LinkFaultSpec f;
        f.drop = link.drop;
        f.delay_ms = static_cast<int32_t>(link.delay.count());
        spec["n" + std::to_string(peer + 1)] = f;
      }
      return Admin(node).SetLinkFaults(spec);
    };
    if (o_.private_network) {
      std::vector<std::string> addresses;
      for (const auto& s : specs) addresses.push_back(s.host);
      net_ = MakePacketFilterFaults(addresses, inject);
    } else {
      net_ = MakeInjectedFaults(o_.nodes, inject);
    }
    return Status::OK();
  }

  NodeAdmin Admin(int i) const {
    const NodeSpec& s = nodes_[i]->spec();
    return NodeAdmin(s.host, s.port, kAdminTimeoutMs);
  }

  Status StartNodes() {
    for (auto& n : nodes_) {
      Status s = n->Start();
      if (!s.ok()) return s;
    }
    return WaitHealthy(Steady::now() + 60s);
  }

  void StopNodes() {
    for (auto& n : nodes_) {
      Status s = n->Stop(10s);
      if (!s.ok()) Say(s.ToString());
    }
    if (!o_.keep_data) {
      for (auto& n : nodes_) {
        std::error_code ec;
        std::filesystem::remove_all(n->spec().data_dir, ec);
      }
    }
  }

  // Every running node answers and sees every running peer alive.
  Status WaitHealthy(Steady::time_point deadline) {
    std::string why;
    while (Steady::now() < deadline) {
      why.clear();
      for (int i = 0; i < o_.nodes && why.empty(); ++i) {
        if (!nodes_[i]->Running()) {
          why = nodes_[i]->spec().id + " is not running (" + nodes_[i]->exit_description() + ")";
          break;
        }
        auto st = Admin(i).GetStatus();
        if (!st.ok()) {
          why = nodes_[i]->spec().id + ": " + st.status().ToString();
          break;
        }
        for (const auto& p : st.value().peers)
          if (p.state != "self" && p.state != "alive") why = nodes_[i]->spec().id + " sees " + p.id + " " + p.state;
      }
      if (why.empty()) return Status::OK();
      std::this_thread::sleep_for(100ms);
    }
    return Status::TimedOut("cluster not healthy: " + why);
  }

  void Apply(const Fault& f, InjectedFault* done) {
    NodeProcess& node = *nodes_[f.nodes.front()];
    Status s;
    switch (f.kind) {
      case FaultKind::kKill:
        node.Kill();
        break;
      case FaultKind::kPause:
        node.Pause();
        break;
      case FaultKind::kWipe:
        node.Kill();
        s = node.WipeData();
        if (s.ok()) s = node.Start();
        break;
      case FaultKind::kPartition:
        s = net_->Partition(f.nodes, f.one_way);
        break;
      case FaultKind::kSlow:
        s = net_->Slow(f.nodes.front(), f.delay);
        break;
    }
    if (!s.ok()) done->error = "could not inject: " + s.ToString();
  }

  void Heal(const Fault& f, InjectedFault* done) {
    NodeProcess& node = *nodes_[f.nodes.front()];
    Status s;
    switch (f.kind) {
      case FaultKind::kKill:
        s = node.Start();
        break;
      case FaultKind::kPause:
        node.Resume();
        break;
      case FaultKind::kWipe:
        // An operator replacing a disk runs a repair of that node before
        // trusting it with the next failure.
        s = WaitHealthy(Steady::now() + 30s);
        if (s.ok()) s = Repair({f.nodes.front()}, Steady::now() + 90s);
        break;
      case FaultKind::kPartition:
      case FaultKind::kSlow:
        s = net_->HealAll();
        break;
    }
    if (!s.ok() && done->error.empty()) done->error = "heal: " + s.ToString();
  }

  std::vector<std::string> Keys() const {
    std::set<std::string> keys;
    for (const Op& op : history_.Snapshot()) keys.insert(op.key);
    return {keys.begin(), keys.end()};
  }

  // Brings the owners of `nodes`' data together, as RunOptions::converge_by says.
  Status Repair(const std::vector<int>& nodes, Steady::time_point deadline) {
    if (o_.converge_by == RunOptions::ConvergeBy::kReadRepair) return RepairPass(deadline);
    for (int i : nodes) {
      for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
        if (left.count() <= 0) return Status::TimedOut("anti-entropy repair of " + nodes_[i]->spec().id);
        auto result = Admin(i).Repair(static_cast<int>(left.count()));
        std::string failed;
        if (result.ok()) {
          for (const auto& x : result.value().exchanges)
            if (!x.ok && failed.empty()) failed = std::to_string(x.partition) + " with " + x.peer + ": " + x.error;
          if (failed.empty()) {
            int64_t received = 0;
            for (const auto& x : result.value().exchanges) received += x.keys_received;
            repaired_keys_ += received;
            break;
          }
        } else {
          failed = result.status().ToString();
        }
        if (Steady::now() >= deadline)
          return Status::TimedOut("anti-entropy repair of " + nodes_[i]->spec().id + ": " + failed);
        std::this_thread::sleep_for(200ms);
      }
    }
    return Status::OK();
  }

  // A get with R = N of every key through the coordinators: read repair
  // sends each owner what it lacks.
  Status RepairPass(Steady::time_point deadline) {
    const std::vector<std::string> keys = Keys();
    std::vector<std::unique_ptr<KvSession>> sessions;
    for (const auto& n : nodes_)
      sessions.push_back(std::make_unique<KvSession>(n->spec().host, n->spec().port, kRequestTimeoutMs + 1000));
    size_t repaired = 0;
    for (size_t k = 0; k < keys.size(); ++k) {
      for (int attempt = 0;; ++attempt) {
        ReadResult r = sessions[(k + attempt) % sessions.size()]->Get(keys[k], kItemSk, o_.n);
        if (r.outcome == OpOutcome::kOk) break;
        if (Steady::now() >= deadline)
          return Status::TimedOut("repair pass read " + std::to_string(repaired) + " of " +
                                  std::to_string(keys.size()) + " keys; " + keys[k] + ": " + r.error);
        std::this_thread::sleep_for(50ms);
      }
      ++repaired;
    }
    return Status::OK();
  }

  Status WaitHintsDrained(Steady::time_point deadline) {
    std::string why;
    while (Steady::now() < deadline) {
      why.clear();
      for (int i = 0; i < o_.nodes && why.empty(); ++i) {
        auto stats = Admin(i).GetStats();
        if (!stats.ok()) {
          why = stats.status().ToString();
        } else if (auto it = stats.value().find("hints.pending"); it == stats.value().end()) {
          why = nodes_[i]->spec().id + " reports no hints.pending counter";
        } else if (it->second != 0) {
          why = nodes_[i]->spec().id + " holds " + std::to_string(it->second) + " hints";
        }
      }
      if (why.empty()) return Status::OK();
      std::this_thread::sleep_for(200ms);
    }
    return Status::TimedOut(why);
  }

  FinalState ReadFinalState(const std::vector<std::string>& keys) {
    std::vector<std::unique_ptr<ReplicaReader>> readers;
    for (const auto& n : nodes_)
      readers.push_back(std::make_unique<ReplicaReader>(n->spec().host, n->spec().peer_port, kAdminTimeoutMs,
                                                        static_cast<int64_t>(view_->fingerprint())));
    FinalState state;
    for (const auto& key : keys) {
      auto& copies = state[key];
      const Ring& ring = view_->ring();
      for (uint32_t m : ring.PreferenceList(ring.PartitionOf(key))) {
        const std::string& id = view_->members()[m].id;
        ReplicaCopy copy{id, std::nullopt};
        auto bytes = readers[index_of_.at(id)]->Read(key, kItemSk);
        if (bytes.ok()) {
          auto set = DecodeSiblings(bytes.value());
          if (set.ok()) copy.versions = std::move(set.value());
        }
        copies.push_back(std::move(copy));
      }
    }
    return state;
  }

  void Converge() {
    const auto start = Steady::now();
    const auto deadline = start + o_.converge_timeout;
    for (auto& n : nodes_) {
      if (n->paused()) n->Resume();
      if (!n->Running()) {
        Status s = n->Start();
        if (!s.ok()) Say(s.ToString());
      }
    }
    Status s = net_->HealAll();
    if (!s.ok()) Say("heal: " + s.ToString());
    const auto healed = Steady::now();
    std::vector<int> all(o_.nodes);
    for (int i = 0; i < o_.nodes; ++i) all[i] = i;
    for (Status step : {WaitHealthy(deadline), WaitHintsDrained(deadline), Repair(all, deadline)})
      if (!step.ok()) Say("convergence: " + step.ToString());
    const std::vector<std::string> keys = Keys();
    FinalState state;
    for (;;) {
      state = ReadFinalState(keys);
      CheckResult probe = Check({}, state);
      if (probe.divergent_keys == 0) {
        report_.converged = true;
        break;
      }
      if (Steady::now() >= deadline) {
        Say("not converged: " + std::to_string(probe.divergent_keys) + " divergent keys");
        break;
      }
      std::this_thread::sleep_for(500ms);
    }
    report_.convergence_s = SecondsSince(healed);
    report_.repaired_keys = repaired_keys_;
    report_.check = Check(history_.Snapshot(), state);
  }

  const RunOptions& o_;
  RunReport report_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  std::shared_ptr<const ClusterView> view_;
  std::map<std::string, int> index_of_;
  std::unique_ptr<NetworkFaults> net_;
  History history_;
  std::unique_ptr<Workload> workload_;
  int64_t repaired_keys_ = 0;  // keys anti-entropy brought to nodes (after wipes and at the end)
};

std::string FaultCounts(const std::vector<InjectedFault>& faults) {
  std::map<std::string, int> counts;
  for (const auto& f : faults) ++counts[FaultKindName(f.fault.kind)];
  std::string s;
  for (const auto& [k, c] : counts) s += (s.empty() ? "" : ", ") + k + " " + std::to_string(c);
  return s.empty() ? "none" : s;
}

}  // namespace

std::string RunReport::Table() const {
  std::ostringstream s;
  const CheckResult& c = check;
  std::string kinds;
  for (auto k : options.faults) kinds += (kinds.empty() ? "" : ",") + std::string(FaultKindName(k));
  s << "chaos run: seed " << options.seed << ", " << options.nodes << " nodes (N=" << options.n
    << " R=" << options.r << " W=" << options.w << "), " << options.duration.count() << " s, faults " << kinds
    << " (partitions by " << partitions_by << "), " << options.workload.clients << " clients at "
    << options.workload.ops_per_second << " cycles/s (a read and its write)\n";
  s << std::setw(8) << "ops" << std::setw(8) << "writes" << std::setw(7) << "acked" << std::setw(8) << "failed"
    << std::setw(9) << "unknown" << std::setw(6) << "lost" << std::setw(13) << "resurrected" << std::setw(11)
    << "divergent" << std::setw(15) << "convergence_s" << "\n";
  s << std::setw(8) << c.ops << std::setw(8) << c.writes << std::setw(7) << c.acknowledged << std::setw(8)
    << c.failed << std::setw(9) << c.unknown << std::setw(6) << c.lost << std::setw(13) << c.resurrected
    << std::setw(11) << c.divergent_keys << std::setw(15) << std::fixed << std::setprecision(1) << convergence_s
    << (converged ? "" : " (not converged)") << "\n";
  s << "converged by "
    << (options.converge_by == RunOptions::ConvergeBy::kAntiEntropy ? "anti-entropy" : "read repair")
    << " (keys received by repairs: " << repaired_keys << "); keys " << c.keys << ", acknowledged set elements " << c.set_elements_acknowledged
    << ", unknown writes found applied " << c.unknown_present << ", run " << std::setprecision(0) << run_s
    << " s\n";
  s << "faults injected: " << FaultCounts(faults) << "\n";
  for (size_t i = 0; i < faults.size(); ++i)
    s << "  " << i + 1 << ". " << faults[i].fault.Describe() << (faults[i].error.empty() ? "" : "  [" + faults[i].error + "]")
      << "\n";
  for (const auto& e : c.lost_examples) s << "LOST: " << e << "\n";
  for (const auto& e : c.resurrected_examples) s << "RESURRECTED: " << e << "\n";
  for (const auto& e : c.divergent_examples) s << "DIVERGENT: " << e << "\n";
  s << (c.ok() && converged ? "PASS" : "FAIL") << "\n";
  return s.str();
}

std::string RunReport::Json() const {
  const CheckResult& c = check;
  nlohmann::json faults_json = nlohmann::json::array();
  for (const auto& f : faults)
    faults_json.push_back({{"kind", FaultKindName(f.fault.kind)},
                           {"description", f.fault.Describe()},
                           {"start_s", f.fault.start.count() / 1000.0},
                           {"duration_s", f.fault.duration.count() / 1000.0},
                           {"one_way", f.fault.one_way},
                           {"error", f.error}});
  std::vector<std::string> kinds;
  for (auto k : options.faults) kinds.push_back(FaultKindName(k));
  nlohmann::json j = {{"seed", options.seed},
                      {"nodes", options.nodes},
                      {"n", options.n},
                      {"r", options.r},
                      {"w", options.w},
                      {"duration_s", options.duration.count()},
                      {"fault_kinds", kinds},
                      {"partitions_by", partitions_by},
                      {"clients", options.workload.clients},
                      {"ops", c.ops},
                      {"writes", c.writes},
                      {"acknowledged", c.acknowledged},
                      {"failed", c.failed},
                      {"unknown", c.unknown},
                      {"lost", c.lost},
                      {"resurrected", c.resurrected},
                      {"divergent", c.divergent_keys},
                      {"unreadable_copies", c.unreadable_copies},
                      {"keys", c.keys},
                      {"set_elements_acknowledged", c.set_elements_acknowledged},
                      {"unknown_present", c.unknown_present},
                      {"converged", converged},
                      {"converged_by", options.converge_by == RunOptions::ConvergeBy::kAntiEntropy ? "anti-entropy"
                                                                                                  : "read-repair"},
                      {"repaired_keys", repaired_keys},
                      {"convergence_s", convergence_s},
                      {"run_s", run_s},
                      {"faults", faults_json},
                      {"lost_examples", c.lost_examples},
                      {"resurrected_examples", c.resurrected_examples},
                      {"divergent_examples", c.divergent_examples},
                      {"pass", c.ok() && converged}};
  return j.dump(2);
}

StatusOr<RunReport> RunChaos(const RunOptions& options) {
  Run run(options);
  return run.Execute();
}

}  // namespace monju::chaos
