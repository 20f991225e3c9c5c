// Membership service, multiplexed as "membership" on the node's port, served
// only by nodes started with --raft-listen. It carries the operator's
// membership commands (join, leave, replace, abort, members, ring), the
// metadata fetch that nodes use to catch up with a newer epoch, and the
// partition streaming of membership changes. Fields may be added, never
// renumbered.
//
// Metadata travels in its own encoding (membership/cluster_metadata.h) and
// streamed items as encoded sibling sets (src/clock/codec.h), so Thrift
// types never reach membership or storage logic.

namespace cpp monju.membership

// Why a membership call failed. code is a monju::Status code:
// Unavailable (no Raft leader / no majority of voters), Mismatch (refused in
// the current state: another change in progress, wrong epoch, ...),
// InvalidArgument (the request itself is wrong), TimedOut (outcome unknown).
exception MembershipError {
  1: string why,
  2: i32 code,
}

struct MemberInfo {
  1: string id,
  2: string address,       // host:port of its client port
  3: string raft_address,
  4: i32 vnodes,
  5: string state,         // joining | normal | leaving | removed
  6: string token_owner,   // whose ring tokens it holds
  7: string raft_role,     // voter | standby | spare | "" (not in the Raft configuration)
  8: string health,        // this node's failure-detector view: alive | suspect | down | self
  9: i32 partitions_read,  // partitions whose reads it serves
  10: i32 partitions_written,
  11: string peer_address,  // host:port of its node-to-node port
}

// A node's streaming of the pending change's partitions to itself.
struct StreamProgress {
  1: string node,
  2: i64 change_epoch,      // the epoch the change began at
  3: i32 partitions_total,
  4: i32 partitions_done,
  5: i64 items,             // items received (each source counted)
  6: i64 bytes,
  7: bool done,
  8: string waiting_for,    // why it is not progressing, "" when it is
  9: i64 elapsed_ms,
}

struct MembersReply {
  1: i64 epoch,             // the metadata epoch this node has installed
  2: i32 partitions,
  3: i32 replicas,
  4: i32 voters,
  5: string cluster_id,
  6: list<MemberInfo> members,
  7: string change,         // "" or e.g. "join n4 (streaming)"
  8: list<StreamProgress> progress,
  9: string self_id,
  10: string raft_state,    // this node's: leader | follower | candidate | unavailable
  11: string leader,        // id of the Raft leader as this node knows it, "" when none
  12: i64 raft_term,
  13: i64 applied_epoch,    // the epoch this node's own Raft state machine reached
}

struct PartitionOwners {
  1: i32 partition,
  2: list<string> readers,  // preference order
  3: list<string> writers,  // the readers, then those pending
}

struct RingReply {
  1: i64 epoch,
  2: i32 replicas,
  3: list<PartitionOwners> partitions,
}

struct ChangeReply {
  1: i64 epoch,             // the epoch after the command
  2: string summary,        // the metadata summary after it
}

// What a node reports to the leader's change driver.
struct NodeProgress {
  1: i64 epoch,             // installed
  2: StreamProgress stream, // for the change the caller asked about
}

struct StreamItem {
  1: string pk,
  2: string sk,
  3: binary siblings,       // encoded SiblingSet, tombstones included
}

struct StreamChunk {
  1: list<StreamItem> items,
  2: binary next_cursor,    // pass back for the next chunk
  3: bool done,             // the partition has no more items
}

service MonjuMembership {
  // ---- operator commands (monju admin ...); each returns once its first
  // Raft entry committed; the CLI then follows progress with members().
  // On a node started with --join: ask the cluster to let this node join.
  ChangeReply join() throws (1: MembershipError error)
  // On the replacement node (new_id is its own id, a safety check).
  ChangeReply replace(1: string dead_id, 2: string new_id) throws (1: MembershipError error)
  ChangeReply leave(1: string id) throws (1: MembershipError error)
  // Undo a change that is still streaming.
  ChangeReply abort() throws (1: MembershipError error)
  MembersReply members() throws (1: MembershipError error)
  RingReply ring() throws (1: MembershipError error)

  // ---- node to node
  // The encoded metadata this node has installed; cluster_fingerprint 0
  // means "whatever cluster" (a node that is about to join).
  binary metadata(1: i64 cluster_fingerprint) throws (1: MembershipError error)
  // An encoded command for the Raft leader; a node that is not the leader
  // forwards it once (forwarded = true on that hop).
  ChangeReply propose(1: binary command, 2: bool forwarded) throws (1: MembershipError error)
  NodeProgress progress(1: i64 change_epoch) throws (1: MembershipError error)
  // Items of one partition in storage order after `cursor` ("" = from the
  // start), at most max_items / about max_bytes. Served only by a node that
  // has installed at least `epoch`, after every write it accepted under an
  // older placement of the partition has finished.
  StreamChunk stream(1: i64 cluster_fingerprint, 2: i64 epoch, 3: i32 partition, 4: binary cursor,
                     5: i32 max_items, 6: i32 max_bytes) throws (1: MembershipError error)
}
