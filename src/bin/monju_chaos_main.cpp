// monju-chaos: a bounded chaos run against a local cluster. See --help.
#include <signal.h>
#include <unistd.h>

#include <string>
#include <thrift/TOutput.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "chaos.h"
#include "net_faults.h"

namespace po = boost::program_options;
using namespace monju::chaos;

namespace {

// Ends the process (and every node, which dies with it) if the run overruns.
void StartWatchdog(std::chrono::seconds limit) {
  std::thread([limit] {
    std::this_thread::sleep_for(limit);
    std::fprintf(stderr, "monju-chaos: watchdog: the run overran %lld s; exiting\n",
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
    ::_exit(3);
  }).detach();
}

std::string DefaultMonjud(const char* argv0) {
  std::filesystem::path self = std::filesystem::weakly_canonical(std::filesystem::path(argv0));
  return (self.parent_path() / "monjud").string();
}

}  // namespace

int main(int argc, char** argv) {
  RunOptions o;
  std::string faults = "kill,pause,partition,wipe,slow", network = "auto", json_path, converge_by = "anti-entropy";
  int64_t seed = -1;
  int seconds = 0, minutes = 0, converge_s = 180;
  po::options_description desc(
      "monju-chaos: starts a local Monju cluster, runs a concurrent client workload against every node while\n"
      "injecting faults from a seed, heals, waits for the replicas to converge and checks that no acknowledged\n"
      "write was lost, no deleted key came back and every replica holds the same versions.\n"
      "Exit status: 0 pass, 1 a check failed, 2 bad arguments or the run could not be carried out.\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("nodes", po::value(&o.nodes)->default_value(3), "cluster size (3..9)")
    ("seconds", po::value(&seconds), "workload duration in seconds (default 60)")
    ("minutes", po::value(&minutes), "workload duration in minutes")
    ("seed", po::value(&seed), "seed of the fault schedule and the clients (default: random, printed)")
    ("faults", po::value(&faults)->default_value(faults), "fault kinds: kill,pause,partition,wipe,slow or all")
    ("write-quorum,W", po::value(&o.w)->default_value(o.w), "W of the nodes (W=1 with wipes loses data: a check of the checker)")
    ("read-quorum,R", po::value(&o.r)->default_value(o.r), "R of the nodes")
    ("clients", po::value(&o.workload.clients)->default_value(o.workload.clients), "client threads")
    ("rate", po::value(&o.workload.ops_per_second)->default_value(o.workload.ops_per_second), "client cycles per second (a read and the write based on it), all clients together")
    ("network", po::value(&network)->default_value(network), "auto | private (own network namespace, iptables; root) | injected (fault hooks)")
    ("converge-timeout-s", po::value(&converge_s)->default_value(converge_s), "longest wait for replicas to converge after the heal")
    ("converge-by", po::value(&converge_by)->default_value(converge_by), "anti-entropy (monju repair on the nodes) or read-repair (a quorum read of every key), after the heal and after each wipe")
    ("out", po::value(&o.out_dir), "output directory (default: /tmp/monju-chaos-<seed>-<pid>)")
    ("json", po::value(&json_path), "also write the summary JSON here (always in OUT/summary.json)")
    ("keep-data", po::bool_switch(&o.keep_data), "keep the nodes' data directories")
    ("node-flag", po::value(&o.node_flags)->composing(), "a monjud flag or value added to every node's arguments, repeatable (e.g. --node-flag=--read-fanout --node-flag=quorum)")
    ("monjud", po::value(&o.monjud_path), "monjud binary (default: next to this one)")
    ("quiet", "no progress lines");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "monju-chaos: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  auto kinds = ParseFaultKinds(faults);
  if (!kinds.ok()) {
    std::fprintf(stderr, "monju-chaos: %s\n", kinds.status().message().c_str());
    return 2;
  }
  o.faults = kinds.value();
  if (o.nodes < 3 || o.nodes > 9) {
    std::fprintf(stderr, "monju-chaos: --nodes: must be 3..9\n");
    return 2;
  }
  if (seconds < 0 || minutes < 0 || (seconds > 0 && minutes > 0)) {
    std::fprintf(stderr, "monju-chaos: give --seconds or --minutes (positive), not both\n");
    return 2;
  }
  o.duration = std::chrono::seconds(minutes > 0 ? minutes * 60 : seconds > 0 ? seconds : 60);
  if (o.workload.clients < 1 || o.workload.clients > 256 || o.workload.ops_per_second <= 0) {
    std::fprintf(stderr, "monju-chaos: --clients must be 1..256 and --rate positive\n");
    return 2;
  }
  if (o.w < 1 || o.w > o.n || o.r < 1 || o.r > o.n) {
    std::fprintf(stderr, "monju-chaos: -R and -W must be 1..%d (N)\n", o.n);
    return 2;
  }
  if (converge_s < 10) {
    std::fprintf(stderr, "monju-chaos: --converge-timeout-s: at least 10\n");
    return 2;
  }
  o.converge_timeout = std::chrono::seconds(converge_s);
  if (converge_by != "anti-entropy" && converge_by != "read-repair") {
    std::fprintf(stderr, "monju-chaos: --converge-by: anti-entropy or read-repair\n");
    return 2;
  }
  o.converge_by = converge_by == "anti-entropy" ? RunOptions::ConvergeBy::kAntiEntropy : RunOptions::ConvergeBy::kReadRepair;
  o.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}() % 1000000;
  o.workload.seed = o.seed;
  o.verbose = !vm.count("quiet");
  if (o.monjud_path.empty()) o.monjud_path = DefaultMonjud(argv[0]);
  if (access(o.monjud_path.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "monju-chaos: --monjud: %s is not an executable\n", o.monjud_path.c_str());
    return 2;
  }
  if (o.out_dir.empty())
    o.out_dir = "/tmp/monju-chaos-" + std::to_string(o.seed) + "-" + std::to_string(::getpid());

  // Before any thread: the private network namespace is per thread, and
  // every node started later inherits it.
  if (network != "auto" && network != "private" && network != "injected") {
    std::fprintf(stderr, "monju-chaos: --network: auto, private or injected\n");
    return 2;
  }
  if (network != "injected") {
    monju::Status s = EnterPrivateNetwork();
    if (s.ok()) {
      o.private_network = true;
    } else if (network == "private") {
      std::fprintf(stderr, "monju-chaos: --network private: %s\n", s.ToString().c_str());
      return 2;
    } else {
      std::printf("[chaos] no private network (%s); faults are injected in the nodes\n", s.ToString().c_str());
    }
  }
  std::printf("[chaos] seed %llu (replay with --seed %llu); output in %s\n",
              static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(o.seed), o.out_dir.c_str());
  std::fflush(stdout);
  signal(SIGPIPE, SIG_IGN);
  apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
  StartWatchdog(o.duration + o.converge_timeout + std::chrono::seconds(240));

  auto report = RunChaos(o);
  if (!report.ok()) {
    std::fprintf(stderr, "monju-chaos: %s\n", report.status().ToString().c_str());
    return 2;
  }
  const std::string json = report.value().Json();
  for (const std::string& path : {o.out_dir + "/summary.json", json_path}) {
    if (path.empty()) continue;
    std::ofstream out(path, std::ios::trunc);
    out << json << "\n";
    if (!out) std::fprintf(stderr, "monju-chaos: cannot write %s\n", path.c_str());
  }
  std::cout << report.value().Table() << std::flush;
  const bool pass = report.value().check.ok() && report.value().converged;
  return pass ? 0 : 1;
}
