#include "change_driver.h"

#include "placement.h"

namespace monju {

DriverDecision NextChangeStep(const ClusterMetadata& md, const std::map<std::string, NodeReport>& reports,
                              const std::function<bool(const std::string&)>& alive, uint32_t write_quorum) {
  DriverDecision d;
  if (!md.change) return d;
  const PendingChange& change = *md.change;
  for (const auto& m : md.members) {
    if (m.state == MemberState::kRemoved) continue;
    const bool gains = change.phase == ChangePhase::kStreaming && !StreamTasksFor(md, m.id, write_quorum).empty();
    const bool up = alive(m.id);
    if (!up && !gains) continue;
    auto it = reports.find(m.id);
    if (it == reports.end()) {
      d.waiting_for = m.id + (up ? " does not answer" : " is down and has partitions to stream");
      return d;
    }
    if (it->second.epoch < md.epoch) {
      d.waiting_for = m.id + " is at epoch " + std::to_string(it->second.epoch) + ", not yet " + std::to_string(md.epoch);
      return d;
    }
    if (gains) {
      const StreamReport& s = it->second.stream;
      if (s.change_epoch != change.begin_epoch || !s.done) {
        d.waiting_for = m.id + " streaming " + std::to_string(s.partitions_done) + "/" +
                        std::to_string(s.partitions_total) + " partitions" +
                        (s.waiting_for.empty() ? "" : " (" + s.waiting_for + ")");
        return d;
      }
    }
  }
  MetadataCommand c;
  c.type = change.phase == ChangePhase::kStreaming ? MetadataCommand::Type::kFinishStreaming
                                                   : MetadataCommand::Type::kComplete;
  c.expected_epoch = md.epoch;
  d.propose = c;
  return d;
}

}  // namespace monju
