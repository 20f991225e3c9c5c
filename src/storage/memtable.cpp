#include "storage/memtable.h"

#include <xxhash.h>

#include <cassert>
#include <cstring>
#include <new>

namespace monju {

// Bump allocation in blocks; everything is freed with the memtable.
class MemTable::Arena {
 public:
  ~Arena() {
    for (char* b : blocks_) ::operator delete[](b, std::align_val_t(alignof(std::max_align_t)));
  }
  // 8-byte aligned; `bytes` > 0. Counts what is asked for, not the blocks,
  // so that a memtable's size follows its entries (at most one block more
  // is held).
  char* Allocate(size_t bytes, std::atomic<size_t>* counted) {
    bytes = (bytes + 7) & ~size_t(7);
    counted->fetch_add(bytes, std::memory_order_relaxed);
    if (bytes > kBlock / 4) return NewBlock(bytes);  // large: a block of its own
    if (bytes > left_) {
      ptr_ = NewBlock(kBlock);
      left_ = kBlock;
    }
    char* p = ptr_;
    ptr_ += bytes;
    left_ -= bytes;
    return p;
  }

 private:
  static constexpr size_t kBlock = 256 << 10;
  char* NewBlock(size_t bytes) {
    char* b = static_cast<char*>(::operator new[](bytes, std::align_val_t(alignof(std::max_align_t))));
    blocks_.push_back(b);
    return b;
  }
  std::vector<char*> blocks_;
  char* ptr_ = nullptr;
  size_t left_ = 0;
};

// One commit's entry for a key. Immutable once published.
struct MemTable::Entry {
  uint64_t seq;
  const char* value;
  uint32_t value_size;
  bool erased;
  const Entry* older;  // the key's entry before this one, or nullptr
};

// A key of the skip list, with its entries newest first.
struct MemTable::Node {
  const char* key;
  uint32_t key_size;
  int height;
  std::atomic<const Entry*> newest;
  // height entries; only the first is declared.
  std::atomic<const Node*> next_[1];

  std::string_view Key() const { return {key, key_size}; }
  const Node* Next(int level) const { return next_[level].load(std::memory_order_acquire); }
  void SetNext(int level, const Node* n) { next_[level].store(n, std::memory_order_release); }
  const Node* NextRelaxed(int level) const { return next_[level].load(std::memory_order_relaxed); }
  void SetNextRelaxed(int level, const Node* n) { next_[level].store(n, std::memory_order_relaxed); }
};

namespace {

size_t NodeSize(int height) { return sizeof(MemTable::Node) + sizeof(std::atomic<const MemTable::Node*>) * (height - 1); }

size_t RoundUpToPowerOfTwo(size_t n) {
  size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

MemTable::MemTable(size_t index_slots) : arena_(std::make_unique<Arena>()) {
  char* mem = arena_->Allocate(NodeSize(kMaxHeight), &bytes_);
  head_ = new (mem) Node{nullptr, 0, kMaxHeight, {}, {}};
  head_->newest.store(nullptr, std::memory_order_relaxed);
  for (int i = 0; i < kMaxHeight; ++i) new (&head_->next_[i]) std::atomic<const Node*>(nullptr);
  const size_t slots = RoundUpToPowerOfTwo(index_slots);
  index_ = std::make_unique<std::atomic<const Node*>[]>(slots);
  for (size_t i = 0; i < slots; ++i) index_[i].store(nullptr, std::memory_order_relaxed);
  index_mask_ = slots - 1;
  bytes_.store(0);  // an empty memtable holds no entries
}

MemTable::~MemTable() = default;  // nodes and entries are trivially destructible; the arena frees them

int MemTable::RandomHeight() {
  // Branching 4: each level holds a quarter of the one below.
  int height = 1;
  while (height < kMaxHeight) {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    if ((rng_ & 3) != 0) break;
    ++height;
  }
  return height;
}

const MemTable::Node* MemTable::FindGreaterOrEqual(std::string_view key, const Node** prev) const {
  const Node* x = head_;
  int level = height_.load(std::memory_order_relaxed) - 1;
  for (;;) {
    const Node* next = x->Next(level);
    if (next && next->Key() < key) {
      x = next;
    } else {
      if (prev) prev[level] = x;
      if (level == 0) return next;
      --level;
    }
  }
}

const MemTable::Node* MemTable::FindLessThan(std::string_view key) const {
  const Node* x = head_;
  int level = height_.load(std::memory_order_relaxed) - 1;
  for (;;) {
    const Node* next = x->Next(level);
    if (next && next->Key() < key) {
      x = next;
    } else {
      if (level == 0) return x == head_ ? nullptr : x;
      --level;
    }
  }
}

const MemTable::Node* MemTable::FindLast() const {
  const Node* x = head_;
  int level = height_.load(std::memory_order_relaxed) - 1;
  for (;;) {
    const Node* next = x->Next(level);
    if (next) {
      x = next;
    } else {
      if (level == 0) return x == head_ ? nullptr : x;
      --level;
    }
  }
}

const MemTable::Node* MemTable::FindKey(std::string_view key) const {
  for (size_t i = XXH3_64bits(key.data(), key.size()) & index_mask_;; i = (i + 1) & index_mask_) {
    const Node* n = index_[i].load(std::memory_order_acquire);
    if (!n) break;
    if (n->Key() == key) return n;
  }
  // Not in the index: absent, unless the index filled up before the key came.
  if (index_complete_.load(std::memory_order_acquire)) return nullptr;
  const Node* n = FindGreaterOrEqual(key, nullptr);
  return n && n->Key() == key ? n : nullptr;
}

void MemTable::IndexInsert(const Node* node) {
  // At most half full, so that probes stay short; keys past that are found
  // by the list (index_complete_ goes false before any such key is published).
  if (index_keys_ >= (index_mask_ + 1) / 2) {
    index_complete_.store(false, std::memory_order_release);
    return;
  }
  size_t i = XXH3_64bits(node->key, node->key_size) & index_mask_;
  while (index_[i].load(std::memory_order_relaxed)) i = (i + 1) & index_mask_;
  index_[i].store(node, std::memory_order_release);
  ++index_keys_;
}

const MemTable::Entry* MemTable::VisibleEntry(const Node* node, uint64_t snapshot) {
  const Entry* e = node->newest.load(std::memory_order_acquire);
  while (e && e->seq > snapshot) e = e->older;
  return e;
}

void MemTable::Add(uint64_t seq, std::string_view key, std::optional<std::string_view> value) {
  assert(seq > 0);
  const size_t value_size = value ? value->size() : 0;
  char* mem = arena_->Allocate(sizeof(Entry) + value_size, &bytes_);
  char* value_copy = mem + sizeof(Entry);
  if (value_size) std::memcpy(value_copy, value->data(), value_size);
  Entry* entry = new (mem) Entry{seq, value_copy, uint32_t(value_size), !value, nullptr};

  if (const Node* held = FindKey(key)) {
    // A key already held: the entry goes in front of its chain, no search.
    const Entry* newest = held->newest.load(std::memory_order_relaxed);
    assert(!newest || newest->seq < seq);
    entry->older = newest;
    const_cast<Node*>(held)->newest.store(entry, std::memory_order_release);
  } else {
    const Node* prev[kMaxHeight];
    FindGreaterOrEqual(key, prev);
    const int height = RandomHeight();
    const int current = height_.load(std::memory_order_relaxed);
    if (height > current) {
      for (int i = current; i < height; ++i) prev[i] = head_;
      // Readers that see the new height before the node find nullptr from
      // head_ at those levels and simply drop a level.
      height_.store(height, std::memory_order_relaxed);
    }
    char* node_mem = arena_->Allocate(NodeSize(height) + key.size(), &bytes_);
    char* key_copy = node_mem + NodeSize(height);
    if (!key.empty()) std::memcpy(key_copy, key.data(), key.size());
    Node* node = new (node_mem) Node{key_copy, uint32_t(key.size()), height, {}, {}};
    node->newest.store(entry, std::memory_order_relaxed);
    for (int i = 0; i < height; ++i) new (&node->next_[i]) std::atomic<const Node*>(nullptr);
    for (int i = 0; i < height; ++i) {
      // The node is complete before it is reachable (release).
      node->SetNextRelaxed(i, prev[i]->NextRelaxed(i));
      const_cast<Node*>(prev[i])->SetNext(i, node);
    }
    IndexInsert(node);
  }
  entries_.fetch_add(1, std::memory_order_relaxed);
  if (seq > max_seq_.load(std::memory_order_relaxed)) max_seq_.store(seq, std::memory_order_release);
}

MemTable::Found MemTable::Get(std::string_view key, uint64_t snapshot, std::string_view* value) const {
  const Node* n = FindKey(key);
  const Entry* e = n ? VisibleEntry(n, snapshot) : nullptr;
  if (!e) return Found::kAbsent;
  if (e->erased) return Found::kErased;
  *value = std::string_view(e->value, e->value_size);
  return Found::kValue;
}

void MemTable::PutMeta(uint64_t seq, std::string key, std::string value) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  metas_[std::move(key)].emplace_back(seq, std::move(value));
  metas_empty_.store(false, std::memory_order_release);
  if (seq > max_seq_.load(std::memory_order_relaxed)) max_seq_.store(seq, std::memory_order_release);
}

bool MemTable::GetMeta(std::string_view key, uint64_t snapshot, std::string* value) const {
  std::lock_guard<std::mutex> lock(meta_mu_);
  auto it = metas_.find(key);
  if (it == metas_.end()) return false;
  for (auto v = it->second.rbegin(); v != it->second.rend(); ++v) {
    if (v->first <= snapshot) {
      *value = v->second;
      return true;
    }
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> MemTable::Metas() const {
  std::lock_guard<std::mutex> lock(meta_mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, values] : metas_) out.emplace_back(key, values.back().second);
  return out;
}

// ---------------------------------------------------------------------------
// Iterator

std::string_view MemTable::Iterator::key() const { return node_->Key(); }
std::string_view MemTable::Iterator::value() const {
  return entry_->erased ? std::string_view() : std::string_view(entry_->value, entry_->value_size);
}
bool MemTable::Iterator::erased() const { return entry_->erased; }
uint64_t MemTable::Iterator::seq() const { return entry_->seq; }

void MemTable::Iterator::ForwardToVisible(const Node* n) {
  // A key with no entry at or below the snapshot (added since) is skipped.
  for (; n; n = n->Next(0)) {
    if ((entry_ = VisibleEntry(n, snapshot_))) {
      node_ = n;
      return;
    }
  }
  node_ = nullptr;
  entry_ = nullptr;
}

void MemTable::Iterator::BackwardToVisible(const Node* n) {
  while (n) {
    if ((entry_ = VisibleEntry(n, snapshot_))) {
      node_ = n;
      return;
    }
    n = table_->FindLessThan(n->Key());
  }
  node_ = nullptr;
  entry_ = nullptr;
}

void MemTable::Iterator::SeekToFirst() { ForwardToVisible(table_->head_->Next(0)); }

void MemTable::Iterator::SeekGE(std::string_view target) {
  ForwardToVisible(table_->FindGreaterOrEqual(target, nullptr));
}

void MemTable::Iterator::Next() { ForwardToVisible(node_->Next(0)); }

void MemTable::Iterator::SeekToLast() { BackwardToVisible(table_->FindLast()); }

void MemTable::Iterator::SeekLT(std::string_view target) { BackwardToVisible(table_->FindLessThan(target)); }

void MemTable::Iterator::SeekLE(std::string_view target) {
  const Node* n = table_->FindGreaterOrEqual(target, nullptr);
  if (n && n->Key() == target && (entry_ = VisibleEntry(n, snapshot_))) {
    node_ = n;
    return;
  }
  BackwardToVisible(table_->FindLessThan(target));
}

void MemTable::Iterator::Prev() { BackwardToVisible(table_->FindLessThan(node_->Key())); }

}  // namespace monju
