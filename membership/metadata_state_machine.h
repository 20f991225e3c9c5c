// MetadataStateMachine: the replicated state machine of the membership Raft
// group. It holds the current ClusterMetadata and applies encoded commands to
// it (metadata_commands.h); snapshots are the whole encoded metadata.
//
// Contract
// - Apply() is deterministic and never fails the log: an undecodable or
//   refused command is an outcome (logged, metadata unchanged), never an
//   error, so every replica of the log stays in step.
// - Restore() replaces the state with a snapshot; Corruption leaves it as it
//   was.
// - The listener runs after every change of the metadata (an applied command
//   or a restore), on the caller's thread (the Raft thread), with the new
//   metadata. It must not block on the data path or call back into Apply.
//
// Thread safety: Apply and Restore are called by one thread at a time (the
// Raft thread); the other methods from any thread.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "cluster_metadata.h"
#include "common/status.h"
#include "raft_group.h"

namespace monju {

struct ApplyOutcome {
  Status status;       // OK when the command applied; the refusal otherwise
  uint64_t epoch = 0;  // the epoch after the command
};

class MetadataStateMachine {
 public:
  using Listener = std::function<void(const ClusterMetadata&)>;

  MetadataStateMachine() = default;
  explicit MetadataStateMachine(ClusterMetadata initial) : metadata_(std::move(initial)) {}

  ApplyOutcome Apply(std::string_view command);
  std::string Snapshot() const;
  Status Restore(std::string_view snapshot);

  ClusterMetadata Current() const;
  uint64_t epoch() const;
  // Set before the Raft group starts.
  void SetListener(Listener listener);

 private:
  mutable std::mutex mu_;
  ClusterMetadata metadata_;
  Listener listener_;
};

// The state machine as the Raft group replicates it (value: the epoch).
class MetadataRaftFsm final : public RaftFsm {
 public:
  explicit MetadataRaftFsm(MetadataStateMachine* machine) : machine_(machine) {}
  Result Apply(std::string_view entry) override {
    ApplyOutcome o = machine_->Apply(entry);
    return {o.status, o.epoch};
  }
  std::string Snapshot() override { return machine_->Snapshot(); }
  Status Restore(std::string_view snapshot) override { return machine_->Restore(snapshot); }

 private:
  MetadataStateMachine* machine_;
};

}  // namespace monju
