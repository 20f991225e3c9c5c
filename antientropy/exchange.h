// Anti-entropy exchange of one partition between two replicas.
//
// Each side is an ExchangePeer: this node's own (LocalExchangePeer, in
// process) and the co-owner's (over MonjuReplica in the node; a fake in
// tests). RunExchange() drives both:
//
//  1. Compare the roots of the partition's Merkle trees; equal: done (one
//     call to each side).
//  2. Descend level by level into the children of differing nodes only,
//     until listing a node's keys costs less than its 16 child hashes (at
//     most keys_per_listed_node keys expected per node, from the larger of
//     the two trees' item counts). Small partitions stop above the leaves;
//     large ones go below them: a level past the tree's depth is computed by
//     the answering side from its items' digests (a node's hash there is the
//     sum of the digests in its key-hash range, as a leaf's is), so a leaf
//     holding many pks is narrowed down without listing all of them. The
//     rows of one pk share a key hash, so a wide pk is never split.
//  3. List both sides' keys under the differing nodes (key, key hash,
//     digest), a group of nodes at a time, page by page on both sides and
//     merge-joined as the pages come (a wide pk is never held whole); a key
//     differs when one side lacks it or the digests differ (same key, other
//     clock).
//  4. For the differing keys, in batches: read the local contexts; ask the
//     peer for the versions the local side lacks (Fetch with the local
//     contexts; it answers with its own contexts too) and merge them in; then
//     compute the versions the peer lacks against its contexts and Push them.
//     Both sides merge through the replica's normal clock merge (Replica::
//     ApplyBatch), so a repeat or a race with other writes is harmless.
//
// Nothing is ever deleted. Tombstones travel like any version, so a replica
// that missed a delete gets the tombstone, which supersedes its old value;
// its old value is superseded on the other side and never comes back. One
// rule serves the tombstone reaper: a key whose versions are all tombstones
// past the grace period is not sent to a replica that holds nothing of it
// ("withheld"). An empty replica has nothing the tombstone must hide (it
// reaped the key or never had it), and sending it back would undo the
// reaper's work on a key every owner is done with.
//
// Cost: step 1 is one hash each when in sync; steps 2-4 move O(differing
// nodes x fanout) hashes, O(keys under differing nodes) digest entries (all
// rows of a differing pk: the descent cannot split one) and
// only the versions a side lacks, so the bytes are proportional to the
// difference, not to the data.
//
// Reply sizes are bounded by the peers (ExchangeLimits on what is asked, and
// the answering side's own limits); a Fetch may answer a prefix of what was
// asked and is asked again for the rest.
//
// Threading: RunExchange runs on the caller's thread, one call at a time to
// each side.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace monju {

// The wire format of trees: fanout 16, leaf = sum of clock digests
// (clock/clock_digest.h) by the pk's key hash (DataStore::KeyHash; 0x100 was
// a hash of pk and sk), levels below the depth as sums over key-hash ranges,
// and the depth. Both sides must agree.
inline constexpr uint32_t TreeFormat(uint32_t depth) { return 0x200 | depth; }
// The deepest level an exchange descends to (16^7 nodes per partition; node
// indices stay within an i32 on the wire).
inline constexpr uint32_t kMaxExchangeLevel = 7;

struct KeyDigest {
  std::string pk, sk;
  uint64_t key_hash = 0;
  uint64_t digest = 0;
};

// Fetch: one key the asker wants to compare.
struct KeyQuery {
  std::string pk, sk;
  // The asker's causal context for the key (encoded; "" = it holds nothing).
  std::string asker_context;
  // False: answer the context only.
  bool want_versions = true;
};

// Fetch: the answering side's state of one key.
struct KeyAnswer {
  std::string pk, sk;
  std::string context;                // encoded; "" = absent here
  std::vector<std::string> versions;  // encoded Versions not in the asker's context
  bool withheld = false;              // reapable tombstones not sent to an empty asker
};

struct KeyedVersionBytes {
  std::string pk, sk;
  std::string version;  // encoded Version
};

class ExchangePeer {
 public:
  virtual ~ExchangePeer() = default;
  // Level 0: the root's hash (parents empty). Level l >= 1 (at most
  // kMaxExchangeLevel): the 16 children at level l of each of `parents`
  // (nodes of level l - 1), in order. *items:
  // the items in the side's tree of the partition. Mismatch when the side's
  // tree format differs from `format`.
  virtual Status ChildHashes(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& parents,
                             std::vector<uint64_t>* out, int64_t* items) = 0;
  // Items under `nodes` (ascending) of `level`, in the side's storage order
  // (key hash ascending), at most `limit`, starting just past `after` (the
  // last entry of the previous page; nullptr: from the start); *more when
  // some remain.
  virtual Status ListKeys(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& nodes,
                          const KeyDigest* after, size_t limit, std::vector<KeyDigest>* out, bool* more) = 0;
  // Answers the keys in order; may answer only a prefix (at least one) when
  // the reply would be too large.
  virtual Status Fetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out) = 0;
  // Merges the versions (clock merge; idempotent). Durable on return.
  virtual Status Push(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) = 0;
};

struct ExchangeLimits {
  size_t parents_per_call = 256;          // parents per ChildHashes call (16 hashes each)
  size_t keys_per_listed_node = 4;        // descend while more keys than this are expected per node
  size_t nodes_per_group = 64;            // differing nodes listed and settled together
  size_t list_page = 4096;                // digest entries per ListKeys call
  size_t fetch_keys = 256;                // keys per Fetch
  size_t fetch_request_bytes = 512 << 10; // request bytes per Fetch (keys + contexts)
  size_t push_versions = 256;             // versions per Push
  size_t push_bytes = 1 << 20;            // bytes per Push (a single larger version goes alone)
};

// What the exchange asks of whoever runs it.
class ExchangeControl {
 public:
  virtual ~ExchangeControl() = default;
  // Checked between calls: true stops the exchange (status Unavailable).
  virtual bool Cancelled() = 0;
  // Bytes about to go to or just came from the peer (rate limiting). May block.
  virtual void Spend(size_t bytes) = 0;
};

struct ExchangeStats {
  Status status;
  bool different = false;        // the roots differed
  uint64_t round_trips = 0;      // calls to the peer
  uint64_t nodes_compared = 0;   // tree hashes compared (root included)
  uint64_t leaves_different = 0; // differing nodes whose keys were listed (leaves, or higher up; see step 2)
  uint64_t keys_different = 0;   // keys one side lacked or held with another clock
  uint64_t keys_sent = 0;        // keys the peer got at least one version of
  uint64_t keys_received = 0;    // keys this side got at least one version of
  uint64_t versions_sent = 0, versions_received = 0;
  uint64_t withheld = 0;         // reapable tombstones not sent to an empty side
  uint64_t bytes_sent = 0;       // payload bytes to the peer (requests and pushes)
  uint64_t bytes_received = 0;   // payload bytes from the peer (replies)
};

// Runs one exchange of `partition` between `local` and `remote`, both of tree
// format `format`. Never throws; a failed call ends it with its status (what
// was merged so far stays merged). `control` may be null.
ExchangeStats RunExchange(uint32_t partition, uint32_t format, ExchangePeer& local, ExchangePeer& remote,
                          ExchangeControl* control, const ExchangeLimits& limits = {});

}  // namespace monju
