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

// One version of one key, for batched applies (hint delivery, apply_many).
struct KeyedVersion {
  1: string pk,
  2: string sk,
  3: binary version,    // encoded Version
}

// What one item of apply_many came to: code 0 (kOk) when durable, else a
// monju::Status code and why; for kStaleEpoch, the receiver's epoch.
struct ApplyOutcome {
  1: i32 code,
  2: string why,
  3: i64 epoch,
}

// One key to read, for read_many.
struct KeyRef {
  1: string pk,
  2: string sk,
}

// What one key of read_many came to: code 0 (kOk) with the key's siblings
// (encoded SiblingSet; empty when absent), else a monju::Status code and
// why; for kStaleEpoch, the receiver's epoch. `deferred`: not read, because
// the reply had grown past its bound; ask again.
struct ReadOutcome {
  1: i32 code,
  2: string why,
  3: i64 epoch,
  4: binary siblings,
  5: bool deferred,
}

struct ScanReply {
  1: list<StoredItem> items,
  2: bool more,          // true when the scan stopped at the limit
}

// Anti-entropy (antientropy/exchange.h). tree_format names the fanout, leaf
// digest and depth of the caller's Merkle trees; a node whose trees differ
// refuses with ReplicaError code kMismatch.

// One item's digest, as anti-entropy lists them.
struct AeKeyDigest {
  1: string pk,
  2: string sk,
  3: i64 key_hash,
  4: i64 digest,
}

struct AeKeyPage {
  1: list<AeKeyDigest> entries,  // in storage order (key hash ascending)
  2: bool more,                  // entries remain after the last one
}

struct AeHashes {
  1: list<i64> hashes,
  2: i64 items,                  // items in the answering node's tree of the partition
}

struct AeKeyQuery {
  1: string pk,
  2: string sk,
  3: binary asker_context,  // encoded CausalContext; empty: the asker holds nothing
  4: bool want_versions,    // false: answer the context only
}

struct AeKeyAnswer {
  1: string pk,
  2: string sk,
  3: binary context,         // this node's context for the key; empty: absent here
  4: list<binary> versions,  // encoded Versions the asker's context lacks
  5: bool withheld,          // tombstones past the grace, not sent to an asker holding nothing
}

// Every call carries the caller's EpochStamp (fields added later keep their
// numbers; older callers send none). apply, apply_hinted, read, scan and the
// ae_* calls are fenced: StaleEpoch when the stamp's placement of the key's
// partition no longer holds.
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

  // apply() of each, made durable together. Idempotent (hint delivery). Not
  // fenced by the stamp; with Raft-managed membership a batch holding a key
  // of a partition this node does not own is refused (ReplicaError code
  // kStaleEpoch), so the sender re-targets it.
  void apply_batch(1: i64 cluster_fingerprint, 2: list<KeyedVersion> items, 3: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // apply() of each item (at most 4096), as one call: a coordinator's writes
  // to this node, coalesced. Each item is validated, fenced and applied on
  // its own and gets its own outcome, in order; the durable ones share group
  // commits. Only ClusterMismatch refuses the whole call.
  list<ApplyOutcome> apply_many(1: i64 cluster_fingerprint, 2: list<KeyedVersion> items, 3: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // The key's siblings (encoded SiblingSet), tombstones included; empty when absent.
  binary read(1: i64 cluster_fingerprint, 2: string pk, 3: string sk, 4: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // read() of each key (at most 4096), as one call: a coordinator's reads
  // from this node, coalesced. Each key is validated, fenced and read on its
  // own and gets its own outcome, in order. Past about 8 MiB of siblings the
  // remaining keys come back deferred. Only ClusterMismatch or too many keys
  // refuse the whole call.
  list<ReadOutcome> read_many(1: i64 cluster_fingerprint, 2: list<KeyRef> keys, 3: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error)

  // Items of pk with sk starting with sk_prefix, starting at start_sk
  // (excluded when start_exclusive), tombstones included.
  ScanReply scan(1: i64 cluster_fingerprint, 2: string pk, 3: string sk_prefix, 4: string start_sk,
                 5: bool start_exclusive, 6: i32 limit, 7: bool ascending, 8: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // Anti-entropy: level 0, the root of the partition's Merkle tree (parents
  // empty); level l >= 1, the 16 children at level l of each of `parents`
  // (at most 256 nodes of level l - 1), in order. Also the tree's item count.
  AeHashes ae_hashes(1: i64 cluster_fingerprint, 2: i32 partition, 3: i32 tree_format, 4: i32 level,
                     5: list<i32> parents, 6: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // Anti-entropy: the items' digests under `nodes` of `level` (ascending, at
  // most 4096) in storage order, starting just past the entry (after_key_hash,
  // after_pk, after_sk) when has_after, at most `limit` (1..10000) and about
  // 4 MiB per reply.
  AeKeyPage ae_keys(1: i64 cluster_fingerprint, 2: i32 partition, 3: i32 tree_format, 4: i32 level,
                    5: list<i32> nodes, 6: bool has_after, 7: i64 after_key_hash, 8: i32 limit,
                    9: EpochStamp stamp, 10: string after_pk, 11: string after_sk)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // Anti-entropy: this node's state of each key of the partition (at most
  // 1024) and the versions the asker lacks. May answer only a prefix of the
  // keys (replies stop past about 8 MiB); the asker asks again for the rest.
  list<AeKeyAnswer> ae_fetch(1: i64 cluster_fingerprint, 2: i32 partition, 3: list<AeKeyQuery> keys,
                             4: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)

  // Anti-entropy: merges the versions (at most 4096, all of the partition)
  // by clock, durable together on return. Idempotent.
  void ae_push(1: i64 cluster_fingerprint, 2: i32 partition, 3: list<KeyedVersion> versions,
               4: EpochStamp stamp)
    throws (1: ClusterMismatch mismatch, 2: ReplicaError error, 3: StaleEpoch stale)
}
