// Node-to-node service. Multiplexed as "replica" on the node's one port;
// MonjuKV is the default (unprefixed) service there.
//
// Versions travel as the same opaque byte encoding that storage uses
// (src/clock/codec.h), so Thrift types never reach storage logic.

namespace cpp monju.rpc

// The caller's cluster parameters (Q, N, vnodes, peer list) differ from ours.
exception ClusterMismatch { 1: string why }

// The replica could not do what was asked (disk full, corrupt input, ...).
// code is a monju::Status code.
exception ReplicaError { 1: string why, 2: i32 code }

// Raft-managed membership: the membership epoch the request was planned
// under (by its coordinator), and the sending node's id. Absent or 0: static
// membership, never fenced. A receiver at an older epoch fetches the
// metadata before acting.
struct EpochStamp {
  1: i64 epoch,
  2: string sender,
}

// The request was planned under an older membership epoch, and the key's
// partition has other owners since: re-plan under `epoch` (the receiver's).
exception StaleEpoch { 1: string why, 2: i64 epoch }

struct StoredItem {
  1: string sk,
  2: binary siblings,   // encoded SiblingSet
}

// One version of one key, for batched applies (hint delivery).
struct KeyedVersion {
  1: string pk,
  2: string sk,
  3: binary version,    // encoded Version
}

struct ScanReply {
  1: list<StoredItem> items,
  2: bool more,          // true when the scan stopped at the limit
}

// Every call carries the caller's EpochStamp (fields added later keep their
// numbers; older callers send none). apply, apply_hinted, read and scan are
// fenced: StaleEpoch when the stamp's placement of the key no longer holds.
service MonjuReplica {
  // Liveness and cluster-parameter check.
  void ping(1: i64 cluster_fingerprint, 2: EpochStamp stamp) throws (1: ClusterMismatch mismatch)

  // Merge one version (encoded Version) into the key's siblings. Idempotent.
  void apply(1: i64 cluster_fingerprint, 2: string pk, 3: string sk, 4: binary version, 5: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // Store the version as a hint for `owner`, which is down or slow; this node
  // delivers it when the owner is seen alive again. Returns once the hint is
  // durable. ReplicaError code kNoSpace when the hint caps are reached.
  void apply_hinted(1: i64 cluster_fingerprint, 2: string owner, 3: string pk, 4: string sk, 5: binary version,
                    6: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // apply() of each, made durable together. Idempotent (hint delivery). Not fenced.
  void apply_batch(1: i64 cluster_fingerprint, 2: list<KeyedVersion> items, 3: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // The key's siblings (encoded SiblingSet), tombstones included; empty when absent.
  binary read(1: i64 cluster_fingerprint, 2: string pk, 3: string sk, 4: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // Items of pk with sk starting with sk_prefix, starting at start_sk
  // (excluded when start_exclusive), tombstones included.
  ScanReply scan(1: i64 cluster_fingerprint, 2: string pk, 3: string sk_prefix, 4: string start_sk,
                 5: bool start_exclusive, 6: i32 limit, 7: bool ascending, 8: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)
}
