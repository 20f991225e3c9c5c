// The consistent-hash ring: immutable once built (readers share it as
// shared_ptr<const Ring>; a membership change builds a new one).
//
// Placement follows Dynamo's strategy 3. Each node owns `vnodes` tokens,
// xxHash64 of "<id>#<i>". The 64-bit key space is cut into Q equal partitions;
// a key's partition is chosen by xxHash64 of its pk alone (so every sk of a pk
// lives in one partition). Every key of a partition has the same preference
// list: the first N distinct nodes met walking the ring clockwise from the
// partition's first hash value.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace monju {

// One node of a ring built node by node: its tokens are xxHash64 of
// "<token_name>#<i>" for i < vnodes. A replacement node takes over the tokens
// of the node it replaces by naming it as token_name; a node with 0 vnodes is
// listed in nodes() but owns nothing (a member that is not placed yet).
struct RingNode {
  std::string id;
  std::string token_name;
  uint32_t vnodes = 0;
};

class Ring {
 public:
  struct Token {
    uint64_t position;
    uint32_t node;  // index into nodes()
  };

  // node_ids must be unique and non-empty; vnodes >= 1; partitions >= 1;
  // replicas >= 1 (lists are cut to the node count when it is smaller).
  static StatusOr<std::shared_ptr<const Ring>> Build(std::vector<std::string> node_ids, uint32_t vnodes,
                                                     uint32_t partitions, uint32_t replicas);
  // The same from per-node token names and counts. Ids and
  // token names of placed nodes must be unique; at least one node must have
  // tokens. Lists are cut to the number of placed nodes. vnodes() is the
  // largest count.
  static StatusOr<std::shared_ptr<const Ring>> Build(std::vector<RingNode> nodes, uint32_t partitions,
                                                     uint32_t replicas);

  static uint64_t HashPk(std::string_view pk);
  uint32_t PartitionOf(std::string_view pk) const { return PartitionOfHash(HashPk(pk)); }
  uint32_t PartitionOfHash(uint64_t hash) const;
  // First hash value of a partition.
  uint64_t PartitionStart(uint32_t partition) const;

  // Node indices, primary first; size min(replicas, node count).
  const std::vector<uint32_t>& PreferenceList(uint32_t partition) const { return preference_[partition]; }
  // The next distinct nodes clockwise after the preference list (at most
  // `replicas` of them): where writes go when owners are down (sloppy quorum).
  const std::vector<uint32_t>& Fallbacks(uint32_t partition) const { return fallbacks_[partition]; }
  // The node index owning the first token at or after `position`.
  uint32_t NodeAt(uint64_t position) const;

  const std::vector<std::string>& nodes() const { return nodes_; }
  const std::vector<Token>& tokens() const { return tokens_; }
  // Index of a node id, or -1.
  int IndexOf(std::string_view id) const;
  uint32_t partitions() const { return partitions_; }
  uint32_t replicas() const { return replicas_; }
  uint32_t vnodes() const { return vnodes_; }

 private:
  Ring() = default;
  std::vector<std::string> nodes_;
  std::vector<Token> tokens_;  // sorted by position
  std::vector<std::vector<uint32_t>> preference_;
  std::vector<std::vector<uint32_t>> fallbacks_;
  uint32_t vnodes_ = 0, partitions_ = 0, replicas_ = 0;
};

}  // namespace monju
