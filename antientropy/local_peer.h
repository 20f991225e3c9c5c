// LocalExchangePeer: this node's side of anti-entropy exchanges, answered
// from its PartitionTrees, its store's item digests and its Replica. The
// node's exchanges use it as their local side, and the MonjuReplica handler
// serves peers' exchanges from it.
//
// Contract (see exchange.h for the protocol)
// - ChildHashes / ListKeys read the trees and the digests stored in the
//   items only: no record is decoded to compare (Open() writes digests into
//   the items of a store from before they were stored). Levels past the tree's
//   depth are summed from the items over the parents' key-hash ranges (so
//   their cost is the parents' items, read locally).
// - Fetch reads each asked key's record. For want_versions it returns the
//   versions whose dots the asker's context does not contain, except that a
//   key whose versions are all tombstones older than `grace` (by the
//   WallClock; a tombstone of unknown time counts as old) is withheld from an
//   asker that holds nothing of the key. It answers a prefix once the reply
//   passes max_fetch_reply_bytes (always at least one key).
// - Push merges through Replica::ApplyBatch (one durable group commit). A
//   version that does not decode, or a key outside the limits, is skipped and
//   logged (resending it would never succeed); a key whose stored record does
//   not decode is skipped too. Store errors (NoSpace, ShuttingDown) fail the
//   call, and nothing is lost: the versions are merged again next exchange.
// - Errors: Mismatch when the asker's tree format differs; InvalidArgument
//   for a partition, level, node or leaf out of range, a key outside the
//   limits or of another partition, or a request over the limits; Unavailable while the partition's tree is not built; the store's.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>

#include "common/clock.h"
#include "exchange.h"
#include "partition_trees.h"
#include "replica.h"

namespace monju {

struct LocalPeerOptions {
  std::chrono::milliseconds grace{std::chrono::hours(6)};  // the tombstone reaper's grace period
  size_t max_parents = 256;                   // parents per ChildHashes request (16 hashes each)
  size_t max_list_nodes = 4096;               // nodes per ListKeys request
  size_t max_list_entries = 10000;            // entries per ListKeys reply
  size_t max_list_reply_bytes = 4 << 20;      // bytes per ListKeys reply (then `more`)
  size_t max_fetch_keys = 1024;               // keys per Fetch request
  size_t max_fetch_reply_bytes = 8 << 20;     // bytes per Fetch reply (then a prefix)
  size_t max_push_versions = 4096;            // versions per Push
  // The partition of a pk (the ring's). When set, Fetch and Push refuse keys
  // of another partition than the one named (a pushed key would be stored
  // under the wrong partition); tests may leave it unset.
  std::function<uint32_t(std::string_view pk)> partition_of;
};

class LocalExchangePeer final : public ExchangePeer {
 public:
  // None of the pointers is owned; all must outlive this.
  LocalExchangePeer(Replica* replica, PartitionTrees* trees, const WallClock* wall, LocalPeerOptions options = {});

  uint32_t format() const { return TreeFormat(trees_->depth()); }
  const LocalPeerOptions& options() const { return options_; }

  Status ChildHashes(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& parents,
                     std::vector<uint64_t>* out, int64_t* items) override;
  Status ListKeys(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& nodes,
                  const KeyDigest* after, size_t limit, std::vector<KeyDigest>* out, bool* more) override;
  Status Fetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out) override;
  Status Push(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) override;

 private:
  Status CheckFormat(uint32_t partition, uint32_t format) const;
  // Children of `parents` at a level past the tree's depth: digest sums.
  Status RangeSums(uint32_t partition, uint32_t level, const std::vector<uint32_t>& parents,
                   std::vector<uint64_t>* out);

  Replica* const replica_;
  PartitionTrees* const trees_;
  const WallClock* const wall_;
  const LocalPeerOptions options_;
};

}  // namespace monju
