// MerkleTree: the hash tree of one partition's items, arranged by key hash.
//
// Shape. Fanout 16 and `depth` levels below the root (1..4), so 16^depth
// leaves. Node (level, index): the root is (0, 0); the children of (l, i) are
// (l + 1, 16i .. 16i + 15). Leaf i holds the items whose key hash
// (DataStore::KeyHash, of the pk) has i as its top 4 * depth bits, so a leaf
// is one contiguous key-hash range (LeafRange), which the store lists by one
// range scan of its items.
//
// Hashes. A leaf's hash is the sum (mod 2^64) of its items' digests (the
// store's digest covers the key and its clock): adding, changing or removing
// one item is O(1) at the leaf plus at most `depth` inner rehashes (below),
// and no item list is kept. An inner node's hash is XXH3-64 of its 16 children's hashes. Two
// trees built from the same set of (key hash, digest) pairs are equal,
// whatever order they were added in; a single different item changes its
// leaf and every ancestor (unless two 64-bit sums collide, which random
// digests make a 2^-64 event per comparison).
//
// Lazy inner hashes. Update() changes only the leaf and notes its parent;
// the inner nodes above changed leaves are rehashed once, by the next read
// of a hash (Hash, Root, DifferingLeaves, ==, or Settle). A store's writer
// updates a tree for every committed change and anti-entropy reads it every
// few seconds, so a hot leaf's ancestors are hashed once per read instead of
// once per write (and a tree built item by item, once).
//
// Memory: 8 bytes per node, about 36 KB at depth 3, plus 5 bytes per node of
// the level above the leaves to note which are stale.
//
// Thread safety: none, not even between const methods: reading a hash
// settles the stale inner nodes. Callers serialise access (PartitionTrees
// does, and settles a tree before handing out a copy).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace monju {

class MerkleTree {
 public:
  static constexpr uint32_t kFanout = 16;
  static constexpr uint32_t kMinDepth = 1;
  static constexpr uint32_t kMaxDepth = 4;

  // depth is clamped to kMinDepth..kMaxDepth.
  explicit MerkleTree(uint32_t depth);

  // The depth every node of a cluster with `partitions` partitions uses: the
  // deepest (at most kMaxDepth) whose leaves over all partitions stay within
  // 2^20 (8 MiB of leaf hashes per node at most), and at least kMinDepth.
  // Q = 256 gives 3 (4096 leaves per partition).
  static uint32_t DepthFor(uint32_t partitions);

  uint32_t depth() const { return depth_; }
  uint32_t leaves() const { return static_cast<uint32_t>(levels_.back().size()); }
  // Nodes at `level` (16^level).
  static uint32_t NodesAt(uint32_t level) { return uint32_t(1) << (4 * level); }
  uint32_t LeafOf(uint64_t key_hash) const { return static_cast<uint32_t>(key_hash >> (64 - 4 * depth_)); }
  // First and last key hash (inclusive) under node `index` of `level`.
  static std::pair<uint64_t, uint64_t> NodeRange(uint32_t level, uint32_t index);
  std::pair<uint64_t, uint64_t> LeafRange(uint32_t leaf) const { return NodeRange(depth_, leaf); }

  // One item changed: its digest went from `before` to `after` (0 = absent).
  // O(1): the inner hashes above are brought up to date by the next read.
  void Update(uint64_t key_hash, uint64_t before, uint64_t after);
  // Rehashes the inner nodes above the leaves changed since the last read,
  // each once. Every read of a hash does this first; a copy made after it
  // can be read without writing to it.
  void Settle() const;

  // level <= depth(), index < NodesAt(level); out of range gives 0.
  uint64_t Hash(uint32_t level, uint32_t index) const;
  uint64_t Root() const {
    Settle();
    return levels_[0][0];
  }
  // Items held (adds minus removes).
  int64_t items() const { return items_; }

  // The leaves whose hashes differ from `other`'s (same depth required;
  // otherwise every leaf), found by descending only into differing nodes.
  std::vector<uint32_t> DifferingLeaves(const MerkleTree& other) const;

  bool operator==(const MerkleTree& other) const {
    Settle();
    other.Settle();
    return depth_ == other.depth_ && levels_ == other.levels_;
  }

 private:
  uint32_t depth_;
  // levels_[l]: NodesAt(l) hashes. Mutable: readers settle the inner levels
  // (the leaves change only in Update).
  mutable std::vector<std::vector<uint64_t>> levels_;
  // The nodes of level depth_ - 1 whose children changed since the last
  // Settle, each listed once (stale_[n] is 1 while n is listed).
  mutable std::vector<uint32_t> stale_list_;
  mutable std::vector<uint8_t> stale_;
  int64_t items_ = 0;
};

}  // namespace monju
