#include "merkle_tree.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>

namespace monju {
namespace {

uint64_t HashChildren(const uint64_t* children) {
  if constexpr (std::endian::native == std::endian::little)
    return XXH3_64bits(children, MerkleTree::kFanout * sizeof(uint64_t));  // already in the fixed byte order
  unsigned char bytes[MerkleTree::kFanout * 8];
  for (uint32_t c = 0; c < MerkleTree::kFanout; ++c)
    for (int b = 0; b < 8; ++b) bytes[8 * c + b] = uint8_t(children[c] >> (8 * b));  // fixed byte order
  return XXH3_64bits(bytes, sizeof bytes);
}

}  // namespace

MerkleTree::MerkleTree(uint32_t depth) : depth_(std::clamp(depth, kMinDepth, kMaxDepth)) {
  levels_.resize(depth_ + 1);
  for (uint32_t l = 0; l <= depth_; ++l) levels_[l].assign(NodesAt(l), 0);
  // An empty tree's inner hashes: every node of a level is the same.
  for (uint32_t l = depth_; l-- > 0;) {
    const uint64_t h = HashChildren(levels_[l + 1].data());
    std::fill(levels_[l].begin(), levels_[l].end(), h);
  }
  stale_.assign(NodesAt(depth_ - 1), 0);
}

uint32_t MerkleTree::DepthFor(uint32_t partitions) {
  const uint64_t budget = uint64_t(1) << 20;
  uint32_t depth = kMinDepth;
  while (depth < kMaxDepth && uint64_t(std::max<uint32_t>(partitions, 1)) * NodesAt(depth + 1) <= budget) ++depth;
  return depth;
}

std::pair<uint64_t, uint64_t> MerkleTree::NodeRange(uint32_t level, uint32_t index) {
  if (level == 0) return {0, UINT64_MAX};
  const uint32_t shift = 64 - 4 * level;
  const uint64_t first = uint64_t(index) << shift;
  return {first, first | ((uint64_t(1) << shift) - 1)};
}

void MerkleTree::Update(uint64_t key_hash, uint64_t before, uint64_t after) {
  if (before == after) return;
  const uint32_t leaf = LeafOf(key_hash);
  levels_[depth_][leaf] += after - before;  // mod 2^64
  if (before == 0) ++items_;
  if (after == 0) --items_;
  const uint32_t parent = leaf / kFanout;
  if (!stale_[parent]) {
    stale_[parent] = 1;
    stale_list_.push_back(parent);
  }
}

void MerkleTree::Settle() const {
  if (stale_list_.empty()) return;
  // Level by level upwards; sorted, so that each level's parents come out
  // sorted and a parent shared by several stale nodes is hashed once.
  std::vector<uint32_t>& nodes = stale_list_;
  std::sort(nodes.begin(), nodes.end());
  for (uint32_t n : nodes) stale_[n] = 0;
  for (uint32_t level = depth_ - 1;; --level) {
    for (uint32_t n : nodes) levels_[level][n] = HashChildren(&levels_[level + 1][n * kFanout]);
    if (level == 0) break;
    size_t parents = 0;
    for (uint32_t n : nodes)
      if (parents == 0 || nodes[parents - 1] != n / kFanout) nodes[parents++] = n / kFanout;
    nodes.resize(parents);
  }
  nodes.clear();
}

uint64_t MerkleTree::Hash(uint32_t level, uint32_t index) const {
  if (level > depth_ || index >= levels_[level].size()) return 0;
  Settle();
  return levels_[level][index];
}

std::vector<uint32_t> MerkleTree::DifferingLeaves(const MerkleTree& other) const {
  Settle();
  other.Settle();
  std::vector<uint32_t> out;
  if (other.depth_ != depth_) {
    for (uint32_t i = 0; i < leaves(); ++i) out.push_back(i);
    return out;
  }
  std::vector<uint32_t> frontier;
  if (Root() != other.Root()) frontier.push_back(0);
  for (uint32_t l = 1; l <= depth_ && !frontier.empty(); ++l) {
    std::vector<uint32_t> next;
    for (uint32_t parent : frontier)
      for (uint32_t c = parent * kFanout; c < (parent + 1) * kFanout; ++c)
        if (levels_[l][c] != other.levels_[l][c]) next.push_back(c);
    frontier = std::move(next);
  }
  return frontier;
}

}  // namespace monju
