// ClusterMetadata: the one source of truth of a Raft-managed cluster, held by
// the membership group's replicated state machine (metadata_state_machine.h).
//
// It holds only what placement needs: the epoch, Q, N, the number of Raft
// voters to keep, and every member (id, client address, Raft address, vnodes,
// whose tokens it owns, state), plus at most one pending change. Removed
// members stay listed (their ids are never reused). The ring and every
// partition's preference lists are derived from it deterministically
// (placement.h); nothing else about the data lives here.
//
// The epoch is the metadata's version: 0 before bootstrap, 1 after it, and
// one more for each committed change (metadata_commands.h). Equal epochs mean
// equal metadata on every node.
//
// Encoding: a versioned, bounds-checked byte format shared by Raft log
// entries, snapshots and the metadata fetch between nodes. Decoding treats
// its input as untrusted: Corruption, never a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace monju {

enum class MemberState : uint8_t {
  kJoining = 1,  // gaining partitions: written to now, read from once reads move
  kNormal = 2,
  kLeaving = 3,  // losing its partitions (decommission, or being replaced)
  kRemoved = 4,  // gone; kept so that its id is never reused
};
const char* MemberStateName(MemberState state);

struct Member {
  std::string id;
  std::string host;  // client (MonjuKV, admin, membership) address
  uint16_t port = 0;
  uint16_t peer_port = 0;  // node-to-node (MonjuReplica, membership) on `host`
  std::string raft_address;  // host:port of its Raft endpoint
  uint64_t raft_id = 0;      // RaftIdOf(id)
  uint32_t vnodes = 0;
  // Tokens are derived from this id: the member's own, or, for a
  // replacement, that of the member it replaced (it takes over exactly the
  // same ring positions, so only the replaced member's partitions move).
  std::string token_owner;
  MemberState state = MemberState::kNormal;
  bool operator==(const Member&) const = default;
  std::string Address() const { return host + ":" + std::to_string(port); }
  std::string PeerAddress() const { return host + ":" + std::to_string(peer_port); }
};

enum class ChangeKind : uint8_t { kJoin = 1, kLeave = 2, kReplace = 3 };
const char* ChangeKindName(ChangeKind kind);

// A change goes through three committed steps, one epoch each (after
// Cassandra's transactional metadata): begin (phase kStreaming: writes go to
// old and new owners, reads to the old), streamed (phase kReadsMoved: reads go
// to the new owners, writes still to both), complete (the change is gone; only
// the new owners remain). Between steps every live node must have reached the
// previous epoch, so nodes that differ by one epoch always agree on a
// placement that holds every acknowledged write.
enum class ChangePhase : uint8_t { kStreaming = 1, kReadsMoved = 2 };
const char* ChangePhaseName(ChangePhase phase);

struct PendingChange {
  ChangeKind kind = ChangeKind::kJoin;
  std::string node;      // joining, leaving, or the replacement
  std::string replaced;  // kReplace: the member being replaced
  ChangePhase phase = ChangePhase::kStreaming;
  uint64_t begin_epoch = 0;  // the epoch the change began at
  bool operator==(const PendingChange&) const = default;
};

struct ClusterMetadata {
  uint64_t epoch = 0;
  std::string cluster_id;  // fixed at bootstrap; part of the fingerprint
  uint32_t partitions = 0;  // Q
  uint32_t replicas = 0;    // N
  uint32_t voters = 3;      // Raft voters to keep (odd)
  std::vector<Member> members;  // sorted by id
  std::optional<PendingChange> change;
  bool operator==(const ClusterMetadata&) const = default;

  const Member* Find(std::string_view id) const;
  Member* Find(std::string_view id);
  // Members that are not removed.
  size_t LiveCount() const;
  // "epoch 5, Q=256 N=3, 4 members, join n4 streaming" for log lines.
  std::string Summary() const;
};

// Limits that decoding and validation enforce.
inline constexpr size_t kMaxMembers = 1024;
inline constexpr size_t kMaxAddressBytes = 255;

// A Raft server id for a member id: stable, never 0.
uint64_t RaftIdOf(std::string_view member_id);

std::string EncodeMetadata(const ClusterMetadata& metadata);
// Corruption when the bytes are not a metadata record this version reads.
StatusOr<ClusterMetadata> DecodeMetadata(std::string_view bytes);

// Appends / reads one member (shared with the command encoding).
void EncodeMember(std::string& out, const Member& member);
bool DecodeMember(std::string_view in, size_t& pos, Member* member);

}  // namespace monju
