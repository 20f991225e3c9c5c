#include "schedule.h"

#include <algorithm>
#include <random>
#include <sstream>

namespace monju::chaos {

namespace {

std::chrono::milliseconds Between(std::mt19937_64& rng, std::chrono::milliseconds lo, std::chrono::milliseconds hi) {
  if (hi <= lo) return lo;
  return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(lo.count(), hi.count())(rng));
}

std::string Nodes(const std::vector<int>& nodes) {
  std::string s = "{";
  for (size_t i = 0; i < nodes.size(); ++i) s += (i ? "," : "") + std::string("n") + std::to_string(nodes[i] + 1);
  return s + "}";
}

}  // namespace

const char* FaultKindName(FaultKind k) {
  switch (k) {
    case FaultKind::kKill: return "kill";
    case FaultKind::kPause: return "pause";
    case FaultKind::kPartition: return "partition";
    case FaultKind::kWipe: return "wipe";
    case FaultKind::kSlow: return "slow";
  }
  return "?";
}

StatusOr<std::vector<FaultKind>> ParseFaultKinds(const std::string& text) {
  const std::vector<FaultKind> all = {FaultKind::kKill, FaultKind::kPause, FaultKind::kPartition, FaultKind::kWipe,
                                      FaultKind::kSlow};
  if (text == "all") return all;
  std::vector<FaultKind> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto it = std::find_if(all.begin(), all.end(), [&](FaultKind k) { return item == FaultKindName(k); });
    if (it == all.end())
      return Status::InvalidArgument("--faults: unknown fault '" + item + "' (kill, pause, partition, wipe, slow, all)");
    if (std::find(out.begin(), out.end(), *it) == out.end()) out.push_back(*it);
  }
  if (out.empty()) return Status::InvalidArgument("--faults: name at least one fault");
  return out;
}

std::string Fault::Describe() const {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << FaultKindName(kind) << " ";
  if (kind == FaultKind::kPartition) {
    s << Nodes(nodes) << (one_way ? " -/-> rest" : " <-/-> rest");
  } else {
    s << Nodes(nodes);
    if (kind == FaultKind::kSlow) s << " +" << delay.count() << " ms";
  }
  s << " at " << start.count() / 1000.0 << " s for " << duration.count() / 1000.0 << " s";
  return s.str();
}

std::vector<Fault> MakeSchedule(const ScheduleOptions& o) {
  std::vector<Fault> out;
  if (o.kinds.empty() || o.nodes < 2) return out;
  std::mt19937_64 rng(o.seed);
  std::vector<FaultKind> order;
  std::chrono::milliseconds t{0};
  for (;;) {
    t += Between(rng, o.min_gap, o.max_gap);
    Fault f;
    f.start = t;
    f.duration = Between(rng, o.min_fault, o.max_fault);
    if (f.start + f.duration > o.run) break;
    if (order.empty()) {
      order = o.kinds;
      std::shuffle(order.begin(), order.end(), rng);
    }
    f.kind = order.back();
    order.pop_back();
    const int target = std::uniform_int_distribution<int>(0, o.nodes - 1)(rng);
    f.nodes = {target};
    if (f.kind == FaultKind::kPartition) {
      // A minority cut off from the rest: one node, or two of five.
      if (o.nodes >= 5 && std::uniform_int_distribution<int>(0, 1)(rng) == 1)
        f.nodes.push_back((target + 1 + std::uniform_int_distribution<int>(0, o.nodes - 2)(rng)) % o.nodes);
      std::sort(f.nodes.begin(), f.nodes.end());
      f.one_way = std::uniform_int_distribution<int>(0, 2)(rng) == 0;
    }
    if (f.kind == FaultKind::kSlow) f.delay = Between(rng, std::chrono::milliseconds(50), std::chrono::milliseconds(400));
    out.push_back(f);
    t += f.duration;
  }
  return out;
}

}  // namespace monju::chaos
