// Runner: drives a Driver with closed-loop client threads (each thread sends
// its next request as soon as the previous one is answered) and measures.
//
// - Load phase: the threads insert records 0..records-1 between them.
// - Run phase: each operation is drawn from the mix, its record from the key
//   chooser. Operations started during the warm-up are not measured; then
//   the run lasts `duration` (operations still running at its end are not
//   counted) or until `operations` measured operations have been made.
// - Every operation's latency goes to its type's histogram; failures are
//   counted per type and by kind (the start of their message), with a few
//   messages kept. Nothing is retried.
// - A progress line goes to `progress` every `progress_interval` (when set).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "driver.h"
#include "common/latency_histogram.h"
#include "workload.h"

namespace monju::bench {

struct PhaseConfig {
  int threads = 32;
  std::chrono::milliseconds duration{10000};  // 0: until `operations`
  uint64_t operations = 0;                    // 0: until `duration`
  std::chrono::milliseconds warmup{2000};
  OpMix mix{0.5, 0.5, 0};
  const KeyChooser* keys = nullptr;  // run phase
  KeyLayout layout{1000, 1};
  size_t value_size = 100;
  int query_limit = 10;
  uint64_t seed = 1;
  std::chrono::milliseconds progress_interval{1000};  // 0: no progress line
  std::ostream* progress = nullptr;
  bool progress_is_tty = false;  // redraw one line instead of printing many
};

struct OpStats {
  LatencyHistogram latency_us;  // successful operations only
  uint64_t ok = 0;
  uint64_t errors = 0;
};

struct PhaseResult {
  std::string phase;  // "load" or "run"
  double seconds = 0;  // measured time
  std::array<OpStats, kOpTypes> ops;
  std::map<std::string, uint64_t> error_kinds;  // "timed out" -> count
  std::vector<std::string> error_samples;       // a few distinct messages
  uint64_t query_items = 0;                     // items all queries returned
  uint64_t connect_failures = 0;                // threads that could not connect (counted in errors())
  uint64_t ok() const;
  uint64_t errors() const;
  double throughput() const { return seconds > 0 ? double(ok()) / seconds : 0; }
};

// `clock` times the phases and operations; it must outlive the call.
PhaseResult RunLoad(Driver& driver, const PhaseConfig& config, const Clock& clock);
PhaseResult RunWorkload(Driver& driver, const PhaseConfig& config, const Clock& clock);

// The kind of an error message: its text before the first ':' (at most 40 bytes).
std::string ErrorKind(const std::string& message);

}  // namespace monju::bench
