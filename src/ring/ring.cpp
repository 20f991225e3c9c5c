#include "ring/ring.h"

#include <xxhash.h>

#include <algorithm>
#include <set>

namespace monju {
namespace {
constexpr uint64_t kTokenSeed = 0x6d6f6e6a75;  // "monju": tokens differ from key hashes
}

uint64_t Ring::HashPk(std::string_view pk) { return XXH64(pk.data(), pk.size(), 0); }

StatusOr<std::shared_ptr<const Ring>> Ring::Build(std::vector<std::string> node_ids, uint32_t vnodes,
                                                  uint32_t partitions, uint32_t replicas) {
  if (node_ids.empty()) return Status::InvalidArgument("ring needs at least one node");
  if (vnodes == 0 || partitions == 0 || replicas == 0)
    return Status::InvalidArgument("vnodes, partitions and replicas must be at least 1");
  std::vector<RingNode> nodes;
  nodes.reserve(node_ids.size());
  for (auto& id : node_ids) nodes.push_back({id, id, vnodes});
  return Build(std::move(nodes), partitions, replicas);
}

StatusOr<std::shared_ptr<const Ring>> Ring::Build(std::vector<RingNode> nodes, uint32_t partitions,
                                                  uint32_t replicas) {
  if (nodes.empty()) return Status::InvalidArgument("ring needs at least one node");
  if (partitions == 0 || replicas == 0) return Status::InvalidArgument("partitions and replicas must be at least 1");
  std::set<std::string> ids, token_names;
  size_t placed = 0;
  uint32_t max_vnodes = 0;
  for (const auto& n : nodes) {
    if (!ids.insert(n.id).second) return Status::InvalidArgument("node ids must be unique");
    if (n.vnodes == 0) continue;
    if (!token_names.insert(n.token_name).second)
      return Status::InvalidArgument("two placed nodes share the token name '" + n.token_name + "'");
    ++placed;
    max_vnodes = std::max(max_vnodes, n.vnodes);
  }
  if (placed == 0) return Status::InvalidArgument("ring needs at least one node with tokens");

  std::shared_ptr<Ring> ring(new Ring());
  ring->vnodes_ = max_vnodes;
  ring->partitions_ = partitions;
  ring->replicas_ = replicas;
  for (uint32_t n = 0; n < nodes.size(); ++n) {
    ring->nodes_.push_back(nodes[n].id);
    for (uint32_t i = 0; i < nodes[n].vnodes; ++i) {
      std::string name = nodes[n].token_name + "#" + std::to_string(i);
      ring->tokens_.push_back({XXH64(name.data(), name.size(), kTokenSeed), n});
    }
  }
  // Ties (astronomically rare) are broken by node id so every node agrees.
  std::sort(ring->tokens_.begin(), ring->tokens_.end(), [&](const Token& a, const Token& b) {
    if (a.position != b.position) return a.position < b.position;
    return ring->nodes_[a.node] < ring->nodes_[b.node];
  });

  const size_t want = std::min<size_t>(replicas, placed);
  const size_t want_fallbacks = std::min<size_t>(replicas, placed - want);
  ring->preference_.resize(partitions);
  ring->fallbacks_.resize(partitions);
  for (uint32_t p = 0; p < partitions; ++p) {
    uint64_t start = ring->PartitionStart(p);
    auto it = std::lower_bound(ring->tokens_.begin(), ring->tokens_.end(), start,
                               [](const Token& t, uint64_t pos) { return t.position < pos; });
    size_t idx = it - ring->tokens_.begin();
    auto& list = ring->preference_[p];
    auto& more = ring->fallbacks_[p];
    for (size_t step = 0; step < ring->tokens_.size() && more.size() < want_fallbacks + (want - list.size());
         ++step) {
      uint32_t node = ring->tokens_[(idx + step) % ring->tokens_.size()].node;
      if (std::find(list.begin(), list.end(), node) != list.end() ||
          std::find(more.begin(), more.end(), node) != more.end())
        continue;
      (list.size() < want ? list : more).push_back(node);
    }
  }
  return std::shared_ptr<const Ring>(std::move(ring));
}

uint32_t Ring::PartitionOfHash(uint64_t hash) const {
  return static_cast<uint32_t>((static_cast<unsigned __int128>(hash) * partitions_) >> 64);
}

uint64_t Ring::PartitionStart(uint32_t partition) const {
  // Smallest hash h with floor(h * Q / 2^64) == partition: ceil(partition * 2^64 / Q).
  unsigned __int128 num = static_cast<unsigned __int128>(partition) << 64;
  unsigned __int128 start = (num + partitions_ - 1) / partitions_;
  return static_cast<uint64_t>(start);
}

uint32_t Ring::NodeAt(uint64_t position) const {
  auto it = std::lower_bound(tokens_.begin(), tokens_.end(), position,
                             [](const Token& t, uint64_t pos) { return t.position < pos; });
  if (it == tokens_.end()) it = tokens_.begin();
  return it->node;
}

int Ring::IndexOf(std::string_view id) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i] == id) return static_cast<int>(i);
  return -1;
}

}  // namespace monju
