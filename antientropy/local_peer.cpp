#include "local_peer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "clock/codec.h"
#include "config/node_config.h"

namespace monju {

LocalExchangePeer::LocalExchangePeer(Replica* replica, PartitionTrees* trees, const WallClock* wall,
                                     LocalPeerOptions options)
    : replica_(replica), trees_(trees), wall_(wall), options_(options) {}

Status LocalExchangePeer::CheckFormat(uint32_t partition, uint32_t format) const {
  if (format != this->format())
    return Status::Mismatch("anti-entropy tree format " + std::to_string(format) + " differs from this node's " +
                            std::to_string(this->format()));
  if (partition >= trees_->partitions()) return Status::InvalidArgument("partition out of range");
  return Status::OK();
}

Status LocalExchangePeer::ChildHashes(uint32_t partition, uint32_t format, uint32_t level,
                                      const std::vector<uint32_t>& parents, std::vector<uint64_t>* out,
                                      int64_t* items) {
  out->clear();
  Status s = CheckFormat(partition, format);
  if (!s.ok()) return s;
  if (level > kMaxExchangeLevel) return Status::InvalidArgument("tree level out of range");
  if (parents.size() > options_.max_parents)
    return Status::InvalidArgument("at most " + std::to_string(options_.max_parents) + " parents per request");
  if (level > trees_->depth()) {
    s = RangeSums(partition, level, parents, out);
    if (s.ok()) *items = trees_->Items(partition);
    return s;
  }
  std::vector<uint32_t> nodes;
  if (level == 0) {
    if (!parents.empty()) return Status::InvalidArgument("the root has no parent");
    nodes.push_back(0);
  } else {
    const uint32_t count = MerkleTree::NodesAt(level - 1);
    nodes.reserve(parents.size() * MerkleTree::kFanout);
    for (uint32_t parent : parents) {
      if (parent >= count) return Status::InvalidArgument("tree node out of range");
      for (uint32_t c = 0; c < MerkleTree::kFanout; ++c) nodes.push_back(parent * MerkleTree::kFanout + c);
    }
  }
  s = trees_->Hashes(partition, level, nodes, out);
  if (!s.ok()) return s;
  *items = trees_->Items(partition);
  return Status::OK();
}

Status LocalExchangePeer::RangeSums(uint32_t partition, uint32_t level, const std::vector<uint32_t>& parents,
                                    std::vector<uint64_t>* out) {
  const uint32_t shift = 64 - 4 * level;
  std::vector<DigestEntry> page;
  for (uint32_t parent : parents) {
    if (parent >= MerkleTree::NodesAt(level - 1)) return Status::InvalidArgument("tree node out of range");
    uint64_t sums[MerkleTree::kFanout] = {};
    auto [first, last] = MerkleTree::NodeRange(level - 1, parent);
    std::optional<DigestEntry> after;
    for (;;) {
      bool more = false;
      Status s = replica_->store().ScanDigests(partition, first, last, after ? &*after : nullptr, 10000, &page, &more);
      if (!s.ok()) return s;
      for (const DigestEntry& e : page) sums[(e.key_hash >> shift) & (MerkleTree::kFanout - 1)] += e.digest;
      if (!more || page.empty()) break;
      after = std::move(page.back());
    }
    out->insert(out->end(), sums, sums + MerkleTree::kFanout);
  }
  return Status::OK();
}

Status LocalExchangePeer::ListKeys(uint32_t partition, uint32_t format, uint32_t level,
                                   const std::vector<uint32_t>& nodes, const KeyDigest* after, size_t limit,
                                   std::vector<KeyDigest>* out, bool* more) {
  out->clear();
  *more = false;
  Status s = CheckFormat(partition, format);
  if (!s.ok()) return s;
  if (level > kMaxExchangeLevel) return Status::InvalidArgument("tree level out of range");
  if (nodes.size() > options_.max_list_nodes)
    return Status::InvalidArgument("at most " + std::to_string(options_.max_list_nodes) + " nodes per request");
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i] >= MerkleTree::NodesAt(level)) return Status::InvalidArgument("tree node out of range");
    if (i > 0 && nodes[i] <= nodes[i - 1]) return Status::InvalidArgument("nodes must be ascending");
  }
  limit = std::clamp<size_t>(limit, 1, options_.max_list_entries);
  size_t bytes = 0;
  std::vector<DigestEntry> page;
  std::optional<DigestEntry> resume;
  if (after) resume = DigestEntry{after->pk, after->sk, after->key_hash, 0};
  for (uint32_t node : nodes) {
    auto [first, last] = MerkleTree::NodeRange(level, node);
    if (resume && resume->key_hash > last) continue;
    for (;;) {
      if (out->size() >= limit || bytes >= options_.max_list_reply_bytes) {
        *more = true;  // this node or a later one may hold more
        return Status::OK();
      }
      bool range_more = false;
      s = replica_->store().ScanDigests(partition, first, last, resume ? &*resume : nullptr, limit - out->size(), &page,
                                        &range_more);
      if (!s.ok()) return s;
      if (!page.empty()) resume = page.back();
      for (DigestEntry& e : page) {
        bytes += e.pk.size() + e.sk.size() + 32;
        out->push_back({std::move(e.pk), std::move(e.sk), e.key_hash, e.digest});
      }
      if (!range_more || page.empty()) break;
    }
  }
  return Status::OK();
}

Status LocalExchangePeer::Fetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out) {
  out->clear();
  if (partition >= trees_->partitions()) return Status::InvalidArgument("partition out of range");
  if (keys.size() > options_.max_fetch_keys)
    return Status::InvalidArgument("at most " + std::to_string(options_.max_fetch_keys) + " keys per fetch");
  const int64_t now_ms = wall_->UnixMillis();
  size_t bytes = 0;
  for (const KeyQuery& q : keys) {
    if (!out->empty() && bytes >= options_.max_fetch_reply_bytes) break;  // the asker asks again for the rest
    if (q.pk.empty() || q.pk.size() > kMaxPkBytes || q.sk.size() > kMaxSkBytes)
      return Status::InvalidArgument("key outside limits");
    if (options_.partition_of && options_.partition_of(q.pk) != partition)
      return Status::InvalidArgument("a key asked about is not in partition " + std::to_string(partition));
    auto asker = DecodeContext(q.asker_context);
    if (!asker.ok()) return Status::Corruption("asker context does not decode");
    KeyAnswer a;
    a.pk = q.pk;
    a.sk = q.sk;
    SiblingSet mine;
    Status s = replica_->Read(ItemKey{partition, q.pk, q.sk}, &mine);
    if (s.Is(Status::Code::kCorruption)) {
      // Nothing usable here; the asker keeps what it has.
      spdlog::warn("anti-entropy: a record of partition {} does not decode; not offered", partition);
      mine = SiblingSet();
    } else if (!s.ok()) {
      return s;
    }
    a.context = EncodeContext(mine.Context());
    if (q.want_versions && !mine.empty()) {
      const int64_t deleted = mine.LatestDeleteMs();
      const bool reapable =
          mine.AllTombstones() && (deleted == 0 || now_ms - deleted >= options_.grace.count());
      if (reapable && asker->empty()) {
        a.withheld = true;
      } else {
        for (const Version& v : mine.versions())
          if (!asker->Contains(v.dot)) a.versions.push_back(EncodeVersion(v));
      }
    }
    bytes += a.pk.size() + a.sk.size() + a.context.size();
    for (const auto& v : a.versions) bytes += v.size();
    out->push_back(std::move(a));
  }
  return Status::OK();
}

Status LocalExchangePeer::Push(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) {
  if (partition >= trees_->partitions()) return Status::InvalidArgument("partition out of range");
  if (versions.size() > options_.max_push_versions)
    return Status::InvalidArgument("at most " + std::to_string(options_.max_push_versions) + " versions per push");
  if (options_.partition_of)
    for (const KeyedVersionBytes& kv : versions)
      if (options_.partition_of(kv.pk) != partition)
        return Status::InvalidArgument("a pushed key is not in partition " + std::to_string(partition));
  std::vector<std::pair<ItemKey, Version>> items;
  items.reserve(versions.size());
  for (const KeyedVersionBytes& kv : versions) {
    auto v = DecodeVersion(kv.version);
    if (kv.pk.empty() || kv.pk.size() > kMaxPkBytes || kv.sk.size() > kMaxSkBytes || !v.ok()) {
      spdlog::error("anti-entropy: skipping a pushed version that cannot apply (pk of {} bytes): {}", kv.pk.size(),
                    v.ok() ? "key outside limits" : v.status().ToString());
      continue;
    }
    items.emplace_back(ItemKey{partition, kv.pk, kv.sk}, std::move(v.value()));
  }
  std::vector<Status> results = replica_->ApplyBatch(items);
  for (size_t i = 0; i < results.size(); ++i) {
    const Status& s = results[i];
    if (s.ok()) continue;
    if (s.Is(Status::Code::kCorruption) || s.Is(Status::Code::kInvalidArgument)) {
      spdlog::error("anti-entropy: skipping a version for a key of partition {}: {}", partition, s.ToString());
      continue;
    }
    return s;
  }
  return Status::OK();
}

}  // namespace monju
