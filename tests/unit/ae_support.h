// Helpers for the anti-entropy unit tests: a replica on a real LMDB store in
// a temp dir with its Merkle trees and its exchange side, versions to write,
// and a fake transport that stands between two replicas.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "clock/clock_digest.h"
#include "clock/codec.h"
#include "local_peer.h"
#include "partition_trees.h"
#include "replica.h"
#include "test_support.h"

namespace monju::ae_test {

using monju::test_support::FakeWallClock;
using monju::test_support::TempDir;

inline Version Live(const std::string& actor, uint64_t counter, CausalContext past, std::string value) {
  Version v;
  v.dot = {actor, counter};
  v.past = std::move(past);
  v.value = std::move(value);
  return v;
}

inline Version Tomb(const std::string& actor, uint64_t counter, CausalContext past, int64_t deleted_ms) {
  Version v;
  v.dot = {actor, counter};
  v.past = std::move(past);
  v.tombstone = true;
  v.deleted_unix_ms = deleted_ms;
  return v;
}

// Full context of one version: what a writer that read it has seen.
inline CausalContext Saw(const Version& v) { return v.FullContext(); }

using KeyName = std::tuple<uint32_t, std::string, std::string>;

// One replica: store with the clock digest, trees, local exchange side.
class AeReplica {
 public:
  AeReplica(std::string id, uint32_t partitions, const WallClock* wall, LocalPeerOptions options = {})
      : id_(std::move(id)), partitions_(partitions), wall_(wall), options_(options) {
    Open();
  }
  ~AeReplica() { Close(); }

  void Open() {
    StorageOptions so;
    so.path = dir_.path() + "/data";
    so.map_size_bytes = 256ull << 20;
    so.digest = &ClockDigest;
    so.digest_name = kClockDigestName;
    auto store = DataStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto r = Replica::Open(id_, std::move(store.value()), 7);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    replica_ = std::move(r.value());
    trees_ = std::make_unique<PartitionTrees>(&replica_->store(), partitions_);
    Status s = trees_->Install();
    ASSERT_TRUE(s.ok()) << s.ToString();
    peer_ = std::make_unique<LocalExchangePeer>(replica_.get(), trees_.get(), wall_, options_);
  }
  void Close() {
    peer_.reset();
    if (trees_) trees_->Uninstall();
    replica_.reset();
    trees_.reset();
  }

  void Apply(uint32_t partition, const std::string& pk, const std::string& sk, const Version& v) {
    Status s = replica_->Apply(ItemKey{partition, pk, sk}, v);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // Many versions in shared group commits (in order per key).
  void Load(const std::vector<std::pair<ItemKey, Version>>& items) {
    for (size_t i = 0; i < items.size(); i += 2000) {
      std::vector<std::pair<ItemKey, Version>> part(items.begin() + i, items.begin() + std::min(items.size(), i + 2000));
      for (const Status& s : replica_->ApplyBatch(part)) ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }
  SiblingSet Read(uint32_t partition, const std::string& pk, const std::string& sk) {
    SiblingSet out;
    Status s = replica_->Read(ItemKey{partition, pk, sk}, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  // Every item, decoded.
  std::map<KeyName, SiblingSet> All() {
    std::map<KeyName, SiblingSet> out;
    std::string cursor;
    for (;;) {
      std::vector<RawItem> items;
      std::string next;
      Status s = replica_->ScanAll(cursor, 1000, &items, &next);
      EXPECT_TRUE(s.ok()) << s.ToString();
      for (auto& i : items) out[{i.partition, i.pk, i.sk}] = DecodeSiblings(i.record).value();
      if (next.empty() || !s.ok()) return out;
      cursor = next;
    }
  }
  // A tree built from the records themselves (not the index), for comparison.
  std::vector<MerkleTree> TreesFromRecords() {
    std::vector<MerkleTree> out(partitions_, MerkleTree(trees_->depth()));
    std::string cursor;
    for (;;) {
      std::vector<RawItem> items;
      std::string next;
      Status s = replica_->ScanAll(cursor, 1000, &items, &next);
      EXPECT_TRUE(s.ok()) << s.ToString();
      for (auto& i : items)
        out.at(i.partition).Update(DataStore::KeyHash(i.pk), 0, ClockDigest(i.pk, i.sk, i.record));
      if (next.empty() || !s.ok()) return out;
      cursor = next;
    }
  }
  uint64_t Bytes() {
    uint64_t n = 0;
    std::string cursor;
    for (;;) {
      std::vector<RawItem> items;
      std::string next;
      EXPECT_TRUE(replica_->ScanAll(cursor, 1000, &items, &next).ok());
      for (auto& i : items) n += i.pk.size() + i.sk.size() + i.record.size();
      if (next.empty()) return n;
      cursor = next;
    }
  }

  Replica& replica() { return *replica_; }
  PartitionTrees& trees() { return *trees_; }
  LocalExchangePeer& peer() { return *peer_; }
  uint32_t format() const { return peer_->format(); }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::string id_;
  uint32_t partitions_;
  const WallClock* wall_;
  LocalPeerOptions options_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<PartitionTrees> trees_;
  std::unique_ptr<LocalExchangePeer> peer_;
};

// Stands between the exchange and a replica's side: counts calls and the keys
// asked about, can fail the Nth call, and can answer Fetch one key at a time.
class FakeTransport final : public ExchangePeer {
 public:
  explicit FakeTransport(ExchangePeer* target) : target_(target) {}

  Status ChildHashes(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& parents,
                     std::vector<uint64_t>* out, int64_t* items) override {
    ++hashes_calls;
    if (Status s = MaybeFail(); !s.ok()) return s;
    return target_->ChildHashes(partition, format, level, parents, out, items);
  }
  Status ListKeys(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& nodes,
                  const KeyDigest* after, size_t limit, std::vector<KeyDigest>* out, bool* more) override {
    ++list_calls;
    if (Status s = MaybeFail(); !s.ok()) return s;
    if (repeat_list_pages && after && !last_page_.empty()) {  // a broken peer: the same page again
      *out = last_page_;
      *more = true;
      return Status::OK();
    }
    Status s = target_->ListKeys(partition, format, level, nodes, after, limit, out, more);
    last_page_ = *out;
    listed += static_cast<int>(out->size());
    list_levels.insert(level);
    return s;
  }
  Status Fetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out) override {
    ++fetch_calls;
    if (Status s = MaybeFail(); !s.ok()) return s;
    std::vector<KeyQuery> ask = keys;
    if (one_key_per_fetch && ask.size() > 1) ask.resize(1);
    for (const auto& q : ask) fetched.insert({partition, q.pk, q.sk});
    return target_->Fetch(partition, ask, out);
  }
  Status Push(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) override {
    ++push_calls;
    if (Status s = MaybeFail(); !s.ok()) return s;
    for (const auto& v : versions) pushed.insert({partition, v.pk, v.sk});
    return target_->Push(partition, versions);
  }
  int calls() const { return hashes_calls + list_calls + fetch_calls + push_calls; }

  int hashes_calls = 0, list_calls = 0, fetch_calls = 0, push_calls = 0;
  int listed = 0;                   // index entries listed
  std::set<uint32_t> list_levels;   // levels keys were listed at
  int fail_at_call = -1;  // the call (1-based, all kinds) that fails with Unavailable
  bool one_key_per_fetch = false;
  bool repeat_list_pages = false;  // answer every page after the first with the one before
  std::set<KeyName> fetched, pushed;

 private:
  Status MaybeFail() {
    if (calls() == fail_at_call) return Status::Unavailable("injected transport failure");
    return Status::OK();
  }
  ExchangePeer* target_;
  std::vector<KeyDigest> last_page_;
};

}  // namespace monju::ae_test
