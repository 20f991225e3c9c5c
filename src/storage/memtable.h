// MemTable: the store's recent writes in memory, in key order, until they
// are flushed to LMDB (data_store.h, "Write-ahead log").
//
// Entries are (key, seq) -> value or erased. A key may have several
// entries, one per commit (seq) that changed it; a reader at snapshot S sees,
// for each key, its newest entry with seq <= S. Entries are never removed:
// a memtable is dropped whole once LMDB holds what it held.
//
// A skip list of the keys over an arena, each key holding its entries as a
// chain, newest first, and an open-addressing hash index of the keys for
// point lookups (Get() and the writer's Add() of a key it holds skip the
// list search; a hot key's entries never lengthen a walk). One writer adds
// while any number of readers look up and iterate, without locks (nodes,
// entries and index slots are published with release stores once
// complete). Keys order as LMDB's default comparison does (bytewise, a
// prefix first), so merged iteration with an LMDB cursor lines up. The index
// takes keys up to half its slots; later keys are found by the list.
//
// Thread safety: Add() and PutMeta() from one thread at a time; everything
// else from any thread, concurrently with them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace monju {

class MemTable {
 public:
  // A snapshot that sees every entry.
  static constexpr uint64_t kLatest = UINT64_MAX;

  enum class Found { kAbsent, kValue, kErased };

  // `index_slots`: the hash index's size, rounded up to a power of two.
  explicit MemTable(size_t index_slots = 1 << 16);
  ~MemTable();
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  // Adds key's entry of commit `seq` (nullopt: the key is erased). Each
  // (key, seq) is added at most once; seq > 0.
  void Add(uint64_t seq, std::string_view key, std::optional<std::string_view> value);

  // Key's newest entry with seq <= snapshot. *value points into the
  // memtable and stays valid while it lives.
  Found Get(std::string_view key, uint64_t snapshot, std::string_view* value) const;

  // Node-local metadata written through the store's log (data_store.h
  // PutMeta); the newest value per key, visible once the commit is published.
  void PutMeta(uint64_t seq, std::string key, std::string value);
  bool GetMeta(std::string_view key, uint64_t snapshot, std::string* value) const;
  // Every meta key's newest value (for the flush).
  std::vector<std::pair<std::string, std::string>> Metas() const;

  // Bytes of entries held (nodes, keys, values), entries added, and the
  // highest seq added.
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t entries() const { return entries_.load(std::memory_order_relaxed); }
  uint64_t max_seq() const { return max_seq_.load(std::memory_order_acquire); }
  bool empty() const { return entries() == 0 && metas_empty_.load(std::memory_order_acquire); }

  struct Node;
  struct Entry;

  // Walks, at one snapshot, each key's newest entry (erased ones included:
  // callers layering memtables over LMDB need them to hide older values).
  // Positioning: SeekGE/SeekToFirst then Next(); SeekLE/SeekLT/SeekToLast
  // then Prev(). Not thread-safe itself; the memtable must outlive it.
  class Iterator {
   public:
    Iterator(const MemTable* table, uint64_t snapshot) : table_(table), snapshot_(snapshot) {}
    bool Valid() const { return node_ != nullptr; }
    std::string_view key() const;
    std::string_view value() const;  // "" when erased
    bool erased() const;
    uint64_t seq() const;
    void SeekToFirst();
    void SeekToLast();
    void SeekGE(std::string_view target);  // first key >= target
    void SeekLE(std::string_view target);  // last key <= target
    void SeekLT(std::string_view target);  // last key < target
    void Next();
    void Prev();

   private:
    // From key node n forward to the first with an entry visible at the snapshot.
    void ForwardToVisible(const Node* n);
    // From key node n backward (toward smaller keys) to the first with an
    // entry visible at the snapshot.
    void BackwardToVisible(const Node* n);

    const MemTable* table_;
    uint64_t snapshot_;
    const Node* node_ = nullptr;
    const Entry* entry_ = nullptr;  // node_'s entry visible at the snapshot
  };

 private:
  static constexpr int kMaxHeight = 12;
  class Arena;

  int RandomHeight();
  // First key node at or after `key`; fills prev[] when given.
  const Node* FindGreaterOrEqual(std::string_view key, const Node** prev) const;
  // Last key node below `key`; nullptr when none.
  const Node* FindLessThan(std::string_view key) const;
  const Node* FindLast() const;
  // The key's node: through the index, else (keys past its capacity) the list.
  const Node* FindKey(std::string_view key) const;
  // The newest entry of `node` at or below `snapshot`, or nullptr.
  static const Entry* VisibleEntry(const Node* node, uint64_t snapshot);
  void IndexInsert(const Node* node);

  std::unique_ptr<Arena> arena_;
  Node* head_;
  // Slots of the key index; empty ones hold nullptr. Written by the writer only.
  std::unique_ptr<std::atomic<const Node*>[]> index_;
  size_t index_mask_ = 0;
  size_t index_keys_ = 0;                  // writer only
  std::atomic<bool> index_complete_{true};  // every key is in the index
  std::atomic<int> height_{1};
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;  // writer only
  std::atomic<size_t> bytes_{0};
  std::atomic<size_t> entries_{0};
  std::atomic<uint64_t> max_seq_{0};

  mutable std::mutex meta_mu_;
  // key -> its values by seq, oldest first (a reader may be at an older snapshot)
  std::map<std::string, std::vector<std::pair<uint64_t, std::string>>, std::less<>> metas_;
  std::atomic<bool> metas_empty_{true};
};

}  // namespace monju
