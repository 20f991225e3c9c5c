#include "report.h"

#include <cstdio>

namespace monju::bench {
namespace {

using nlohmann::json;

constexpr OpType kOrder[] = {OpType::kInsert, OpType::kRead, OpType::kUpdate, OpType::kQuery};

json PhaseJson(const PhaseResult& p) {
  json ops = json::object();
  for (OpType op : kOrder) {
    const OpStats& s = p.ops[size_t(op)];
    if (s.ok + s.errors == 0) continue;
    const auto& h = s.latency_us;
    ops[OpName(op)] = {{"ok", s.ok},
                       {"errors", s.errors},
                       {"ops_per_s", p.seconds > 0 ? double(s.ok) / p.seconds : 0.0},
                       {"mean_us", h.mean()},
                       {"p50_us", h.Percentile(0.50)},
                       {"p95_us", h.Percentile(0.95)},
                       {"p99_us", h.Percentile(0.99)},
                       {"p999_us", h.Percentile(0.999)},
                       {"max_us", h.max()}};
  }
  return {{"seconds", p.seconds},     {"ok", p.ok()},
          {"errors", p.errors()},     {"ops_per_s", p.throughput()},
          {"ops", ops},               {"error_kinds", p.error_kinds},
          {"error_samples", p.error_samples}, {"query_items", p.query_items},
          {"connect_failures", p.connect_failures}};
}

std::string Ms(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", double(us) / 1000.0);
  return buf;
}

void PhaseText(const PhaseResult& p, std::string* out) {
  char line[256];
  std::snprintf(line, sizeof line, "%s: %.1f s, %llu ok, %llu errors, %.0f ops/s\n", p.phase.c_str(), p.seconds,
                static_cast<unsigned long long>(p.ok()), static_cast<unsigned long long>(p.errors()),
                p.throughput());
  *out += line;
  std::snprintf(line, sizeof line, "  %-7s %10s %8s %10s %8s %8s %8s %8s %8s   (latency ms)\n", "op", "ok", "errors",
                "ops/s", "p50", "p95", "p99", "p99.9", "max");
  *out += line;
  for (OpType op : kOrder) {
    const OpStats& s = p.ops[size_t(op)];
    if (s.ok + s.errors == 0) continue;
    const auto& h = s.latency_us;
    std::snprintf(line, sizeof line, "  %-7s %10llu %8llu %10.0f %8s %8s %8s %8s %8s\n", OpName(op),
                  static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.errors),
                  p.seconds > 0 ? double(s.ok) / p.seconds : 0.0, Ms(h.Percentile(0.5)).c_str(),
                  Ms(h.Percentile(0.95)).c_str(), Ms(h.Percentile(0.99)).c_str(), Ms(h.Percentile(0.999)).c_str(),
                  Ms(h.max()).c_str());
    *out += line;
  }
  for (const auto& [kind, count] : p.error_kinds)
    *out += "  errors '" + kind + "': " + std::to_string(count) + "\n";
  for (const auto& sample : p.error_samples) *out += "  e.g. " + sample + "\n";
}

}  // namespace

json ToJson(const Report& r) {
  json out = {{"driver", r.run.driver},
              {"workload", r.run.workload},
              {"mix", r.run.mix},
              {"distribution", r.run.distribution},
              {"records", r.run.records},
              {"rows_per_pk", r.run.rows_per_pk},
              {"value_size", r.run.value_size},
              {"threads", r.run.threads},
              {"seed", r.run.seed},
              {"warmup_s", r.run.warmup_s},
              {"driver_counters", r.driver_counters}};
  out["load"] = r.load ? PhaseJson(*r.load) : json(nullptr);
  out["run"] = r.workload ? PhaseJson(*r.workload) : json(nullptr);
  return out;
}

std::string ToText(const Report& r) {
  std::string out = "driver " + r.run.driver + "\nworkload " + r.run.workload + " (" + r.run.mix + "), " +
                    r.run.distribution + " over " + std::to_string(r.run.records) + " records (" +
                    std::to_string(r.run.rows_per_pk) + " per pk), " + std::to_string(r.run.value_size) +
                    "-byte values, " + std::to_string(r.run.threads) + " threads, seed " +
                    std::to_string(r.run.seed) + "\n";
  if (r.load) PhaseText(*r.load, &out);
  if (r.workload) PhaseText(*r.workload, &out);
  for (const auto& [name, value] : r.driver_counters) out += name + ": " + std::to_string(value) + "\n";
  return out;
}

}  // namespace monju::bench
