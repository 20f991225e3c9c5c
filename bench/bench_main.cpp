// monju-bench: a closed-loop, YCSB-style load generator for Monju, redis and
// etcd. See `monju-bench --help` and README.md.
//
// Exit codes: 0 every operation succeeded; 1 some operations failed (all
// results are still printed); 2 invalid arguments; 4 no client could connect.
#include <signal.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>

#include "report.h"

namespace po = boost::program_options;
using namespace monju;
using namespace monju::bench;

namespace {

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "monju-bench: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::string driver_kind, addr, workload, mix_text, distribution, phase, monju_update;
  uint64_t records = 0, operations = 0, seed = 0;
  uint32_t rows_per_pk = 0;
  size_t value_size = 0;
  int threads = 0, query_limit = 0, timeout_ms = 0;
  double duration_s = 0, warmup_s = 0, theta = 0, progress_s = 0;
  bool json_out = false;

  po::options_description opts(
      "monju-bench: closed-loop YCSB-style load generator\n"
      "usage: monju-bench --driver monju|redis|etcd --addr A[,B...] [options]\n\noptions");
  // clang-format off
  opts.add_options()
    ("help,h", "this help")
    ("driver", po::value(&driver_kind)->default_value("monju"), "monju, redis or etcd")
    ("addr", po::value(&addr)->default_value("127.0.0.1:7001"),
     "comma-separated endpoints: monju nodes host:port (threads are spread over them), "
     "one redis host:port, etcd members http://host:port")
    ("phase", po::value(&phase)->default_value("both"), "load, run, or both (load then run)")
    ("workload", po::value(&workload)->default_value("a"),
     "a (50% read, 50% update), b (95/5), c (read only), write (update only), query (query only)")
    ("mix", po::value(&mix_text), "READ:UPDATE:QUERY weights, instead of --workload (e.g. 90:10:0)")
    ("distribution", po::value(&distribution)->default_value("zipfian"), "key choice: zipfian or uniform")
    ("zipf-theta", po::value(&theta)->default_value(0.99), "zipfian skew, in (0, 1)")
    ("records", po::value(&records)->default_value(100000), "records loaded and chosen from")
    ("rows-per-pk", po::value(&rows_per_pk)->default_value(10), "records per partition key (a query returns up to this many)")
    ("value-size", po::value(&value_size)->default_value(100), "bytes per value")
    ("threads", po::value(&threads)->default_value(32), "client threads (each with its own connection)")
    ("duration", po::value(&duration_s)->default_value(10), "seconds measured in the run phase (0: use --operations)")
    ("operations", po::value(&operations)->default_value(0), "measured operations in the run phase (0: use --duration)")
    ("warmup", po::value(&warmup_s)->default_value(2), "seconds of unmeasured operations before measuring")
    ("query-limit", po::value(&query_limit)->default_value(10), "items per query")
    ("seed", po::value(&seed), "random seed (default: random; always printed)")
    ("timeout-ms", po::value(&timeout_ms)->default_value(5000), "per-request client timeout")
    ("monju-update", po::value(&monju_update)->default_value("overwrite"),
     "monju updates: read (get, then put with the context read: replaces every sibling), cached "
     "(one put with the record's last seen context: concurrent updates leave siblings) or overwrite "
     "(one overwrite call: replaces what the coordinating replica holds)")
    ("progress", po::value(&progress_s)->default_value(1), "seconds between progress lines on stderr (0: none)")
    ("json", po::bool_switch(&json_out), "print the results as one JSON object on stdout");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return Fail(std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  if (!vm.count("seed")) seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  if (phase != "load" && phase != "run" && phase != "both") return Fail("--phase: expected load, run or both");
  if (threads < 1 || threads > 4096) return Fail("--threads: must be 1..4096");
  if (value_size < 1 || value_size > (16u << 20)) return Fail("--value-size: must be 1..16777216");
  if (rows_per_pk < 1 || rows_per_pk > 100000) return Fail("--rows-per-pk: must be 1..100000");
  if (query_limit < 1 || query_limit > 1000) return Fail("--query-limit: must be 1..1000");
  if (duration_s < 0 || warmup_s < 0 || progress_s < 0) return Fail("--duration, --warmup, --progress: must be >= 0");
  if (duration_s == 0 && operations == 0) return Fail("--duration 0 needs --operations");
  if (timeout_ms < 1) return Fail("--timeout-ms: must be at least 1");

  auto mix = vm.count("mix") ? ParseMix(mix_text) : WorkloadMix(workload);
  if (!mix.ok()) return Fail(mix.status().message());
  auto keys = MakeKeyChooser(distribution, records, theta);
  if (!keys.ok()) return Fail(keys.status().message());
  auto driver = MakeDriver({driver_kind, Split(addr), timeout_ms, monju_update});
  if (!driver.ok()) return Fail(driver.status().message());

  PhaseConfig config;
  config.threads = threads;
  config.duration = std::chrono::milliseconds(static_cast<int64_t>(duration_s * 1000));
  config.operations = operations;
  config.warmup = std::chrono::milliseconds(static_cast<int64_t>(warmup_s * 1000));
  config.mix = mix.value();
  config.keys = keys.value().get();
  config.layout = KeyLayout(records, rows_per_pk);
  config.value_size = value_size;
  config.query_limit = query_limit;
  config.seed = seed;
  config.progress_interval = std::chrono::milliseconds(static_cast<int64_t>(progress_s * 1000));
  config.progress = &std::cerr;
  config.progress_is_tty = isatty(STDERR_FILENO);

  Report report;
  report.run = {driver.value()->Describe(), vm.count("mix") ? "custom" : workload, mix.value().ToString(),
                keys.value()->Describe(), records, rows_per_pk, value_size, threads, seed, warmup_s};
  std::fprintf(stderr, "monju-bench: %s, workload %s (%s), %s, %llu records, %zu-byte values, %d threads, seed %llu\n",
               report.run.driver.c_str(), report.run.workload.c_str(), report.run.mix.c_str(),
               report.run.distribution.c_str(), static_cast<unsigned long long>(records), value_size, threads,
               static_cast<unsigned long long>(seed));

  SteadyClock clock;
  // No thread of a phase could connect: the system is not there.
  bool unreachable = false;
  if (phase != "run") {
    report.load = RunLoad(*driver.value(), config, clock);
    unreachable = report.load->connect_failures == uint64_t(threads);
  }
  if (phase != "load" && !unreachable) {
    report.workload = RunWorkload(*driver.value(), config, clock);
    unreachable = report.workload->connect_failures == uint64_t(threads);
  }
  report.driver_counters = driver.value()->Counters();

  if (json_out) {
    std::cout << ToJson(report).dump() << std::endl;
  } else {
    std::cout << ToText(report) << std::flush;
  }
  uint64_t errors = (report.load ? report.load->errors() : 0) + (report.workload ? report.workload->errors() : 0);
  if (unreachable) return 4;
  return errors > 0 ? 1 : 0;
}
