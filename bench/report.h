// The results of a monju-bench run as text (a table per phase) or JSON.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runner.h"

namespace monju::bench {

struct RunDescription {
  std::string driver;        // Driver::Describe()
  std::string workload;      // "a", "b", ..., or "custom"
  std::string mix;           // OpMix::ToString()
  std::string distribution;  // KeyChooser::Describe()
  uint64_t records = 0;
  uint32_t rows_per_pk = 1;
  size_t value_size = 0;
  int threads = 0;
  uint64_t seed = 0;
  double warmup_s = 0;
};

struct Report {
  RunDescription run;
  std::optional<PhaseResult> load;
  std::optional<PhaseResult> workload;
  std::map<std::string, uint64_t> driver_counters;
};

nlohmann::json ToJson(const Report& report);
std::string ToText(const Report& report);

}  // namespace monju::bench
