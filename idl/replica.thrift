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

service MonjuReplica {
  // Liveness and cluster-parameter check.
  void ping(1: i64 cluster_fingerprint) throws (1: ClusterMismatch mismatch)

  // Merge one version (encoded Version) into the key's siblings. Idempotent.
  void apply(1: i64 cluster_fingerprint, 2: string pk, 3: string sk, 4: binary version)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // Store the version as a hint for `owner`, which is down or slow; this node
  // delivers it when the owner is seen alive again. Returns once the hint is
  // durable. ReplicaError code kNoSpace when the hint caps are reached.
  void apply_hinted(1: i64 cluster_fingerprint, 2: string owner, 3: string pk, 4: string sk, 5: binary version)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // apply() of each, made durable together. Idempotent (hint delivery).
  void apply_batch(1: i64 cluster_fingerprint, 2: list<KeyedVersion> items)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // The key's siblings (encoded SiblingSet), tombstones included; empty when absent.
  binary read(1: i64 cluster_fingerprint, 2: string pk, 3: string sk)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // Items of pk with sk starting with sk_prefix, starting at start_sk
  // (excluded when start_exclusive), tombstones included.
  ScanReply scan(1: i64 cluster_fingerprint, 2: string pk, 3: string sk_prefix, 4: string start_sk,
                 5: bool start_exclusive, 6: i32 limit, 7: bool ascending)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)
}
