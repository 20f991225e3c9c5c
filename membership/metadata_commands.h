// Commands of the membership state machine, and the pure function that
// applies one to the cluster metadata.
//
// Epoch rules
// - Bootstrap applies only to empty metadata (epoch 0) and gives epoch 1.
// - Every other command names the epoch it was decided at
//   (`expected_epoch`) and applies only at exactly that epoch, so a command
//   decided on stale metadata, or retried after it already applied, is
//   refused instead of applied twice.
// - A command that applies bumps the epoch by exactly one; a refused one
//   changes nothing.
// - Changes are one at a time: a Begin* is refused while a change is pending.
//   A change then moves through FinishStreaming and Complete (see
//   ChangePhase), or is undone by Abort while still streaming.
//
// Apply is deterministic: every replica of the Raft log reaches the same
// metadata and refuses the same commands with the same message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cluster_metadata.h"
#include "common/status.h"

namespace monju {

struct MetadataCommand {
  enum class Type : uint8_t {
    kBootstrap = 1,        // `bootstrap` becomes epoch 1
    kBeginJoin = 2,        // `member` joins (state joining)
    kBeginLeave = 3,       // `target` leaves (state leaving)
    kBeginReplace = 4,     // `member` replaces `target` (leaving), taking its tokens
    kFinishStreaming = 5,  // the new owners hold their partitions: reads move to them
    kComplete = 6,         // joining -> normal, leaving -> removed; the change ends
    kAbort = 7,            // undo a change that is still streaming (a joiner is forgotten)
  };
  Type type = Type::kBootstrap;
  uint64_t expected_epoch = 0;
  ClusterMetadata bootstrap;  // kBootstrap
  Member member;              // kBeginJoin, kBeginReplace
  std::string target;         // kBeginLeave, kBeginReplace
};
const char* CommandName(MetadataCommand::Type type);
// "join n4", "finish-streaming at epoch 5", ... for logs and errors.
std::string DescribeCommand(const MetadataCommand& command);

std::string EncodeCommand(const MetadataCommand& command);
// Corruption when the bytes are not a command this version reads.
StatusOr<MetadataCommand> DecodeCommand(std::string_view bytes);

// Fills *next with the metadata after `command`, epoch bumped. Refusals:
// InvalidArgument (the command is wrong whatever the state: bad member, N
// cannot be kept, ...), Mismatch (decided at another epoch, or not allowed in
// the current phase; the message says what the state is). *next is
// untouched on refusal.
Status ApplyCommand(const ClusterMetadata& current, const MetadataCommand& command, ClusterMetadata* next);

// The checks Bootstrap makes, for flag validation at start.
Status ValidateBootstrap(const ClusterMetadata& metadata);

}  // namespace monju
