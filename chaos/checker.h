// Checker: decides from a run's history and the replicas' final state whether
// the store kept its promises. Pure: no I/O, no clock.
//
// What it checks
// - lost: an acknowledged write (register write or create) whose value is
//   neither present at the end nor superseded, i.e. read by a later write or
//   delete that was acknowledged or may have applied (and whose own value
//   survived, for writes). An acknowledged set element absent from the final
//   union of the key's values is lost too.
// - resurrected: a value that an acknowledged write, add or delete had read,
//   and so replaced, is present at the end. This covers a deleted key coming
//   back: a key re-written after its delete holds only the new value, which
//   that delete never read.
// - divergent: a key whose replicas (all N owners) do not hold identical
//   versions, or one of whose owners could not be read.
// Operations of unknown outcome may have applied or not; they are counted,
// and their values are allowed either way.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clock/causal.h"
#include "history.h"

namespace monju::chaos {

// What one owner of a key holds after the run; nullopt when it could not be
// read.
struct ReplicaCopy {
  std::string node;
  std::optional<SiblingSet> versions;
};

// Every key of the history, with each of its N owners' copies.
using FinalState = std::map<std::string, std::vector<ReplicaCopy>>;

struct CheckResult {
  uint64_t ops = 0;
  uint64_t writes = 0;        // every write-like op (write, add, create, delete)
  uint64_t acknowledged = 0;  // write-like ops acknowledged
  uint64_t failed = 0;        // ops of any kind definitely not applied
  uint64_t unknown = 0;       // ops of any kind whose outcome is unknown
  uint64_t lost = 0;
  uint64_t resurrected = 0;
  uint64_t divergent_keys = 0;
  uint64_t unreadable_copies = 0;  // owner copies that could not be read
  uint64_t keys = 0;
  uint64_t unknown_present = 0;  // unknown writes whose value is present at the end
  uint64_t set_elements_acknowledged = 0;
  // A few examples of each failure, for the report.
  std::vector<std::string> lost_examples, resurrected_examples, divergent_examples;

  bool ok() const { return lost == 0 && resurrected == 0 && divergent_keys == 0; }
};

CheckResult Check(const std::vector<Op>& history, const FinalState& final_state);

}  // namespace monju::chaos
