#include "storage/memtable.h"

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
  // 8-byte aligned; `bytes` > 0.
  // Counts what is asked for, not the blocks, so that a memtable's size
  // follows its entries (at most one block more is held).
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

struct MemTable::Node {
  const char* key;
  const char* value;
  uint32_t key_size;
  uint32_t value_size;
  uint64_t seq;
  bool erased;
  int height;
  // height entries; only the first is declared.
  std::atomic<const Node*> next_[1];

  std::string_view Key() const { return {key, key_size}; }
  const Node* Next(int level) const { return next_[level].load(std::memory_order_acquire); }
  void SetNext(int level, const Node* n) { next_[level].store(n, std::memory_order_release); }
  const Node* NextRelaxed(int level) const { return next_[level].load(std::memory_order_relaxed); }
  void SetNextRelaxed(int level, const Node* n) { next_[level].store(n, std::memory_order_relaxed); }
};

namespace {

// (key ascending, seq descending): a key's newest entry comes first.
int Compare(std::string_view a_key, uint64_t a_seq, std::string_view b_key, uint64_t b_seq) {
  const int c = a_key.compare(b_key);
  if (c != 0) return c;
  if (a_seq > b_seq) return -1;
  if (a_seq < b_seq) return 1;
  return 0;
}

size_t NodeSize(int height) { return sizeof(MemTable::Node) + sizeof(std::atomic<const MemTable::Node*>) * (height - 1); }

}  // namespace

MemTable::MemTable() : arena_(std::make_unique<Arena>()) {
  char* mem = arena_->Allocate(NodeSize(kMaxHeight), &bytes_);
  head_ = new (mem) Node{nullptr, nullptr, 0, 0, 0, false, kMaxHeight, {}};
  for (int i = 0; i < kMaxHeight; ++i) new (&head_->next_[i]) std::atomic<const Node*>(nullptr);
  bytes_.store(0);  // an empty memtable holds no entries
}

MemTable::~MemTable() = default;  // nodes are trivially destructible; the arena frees them

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

const MemTable::Node* MemTable::FindGreaterOrEqual(std::string_view key, uint64_t seq, const Node** prev) const {
  const Node* x = head_;
  int level = height_.load(std::memory_order_relaxed) - 1;
  for (;;) {
    const Node* next = x->Next(level);
    if (next && Compare(next->Key(), next->seq, key, seq) < 0) {
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

void MemTable::Add(uint64_t seq, std::string_view key, std::optional<std::string_view> value) {
  assert(seq > 0);
  const Node* prev[kMaxHeight];
  [[maybe_unused]] const Node* at = FindGreaterOrEqual(key, seq, prev);
  assert(!at || Compare(at->Key(), at->seq, key, seq) != 0);
  const int height = RandomHeight();
  const int current = height_.load(std::memory_order_relaxed);
  if (height > current) {
    for (int i = current; i < height; ++i) prev[i] = head_;
    // Readers that see the new height before the node find nullptr from
    // head_ at those levels and simply drop a level.
    height_.store(height, std::memory_order_relaxed);
  }
  const size_t value_size = value ? value->size() : 0;
  char* mem = arena_->Allocate(NodeSize(height) + key.size() + value_size, &bytes_);
  char* key_copy = mem + NodeSize(height);
  char* value_copy = key_copy + key.size();
  if (!key.empty()) std::memcpy(key_copy, key.data(), key.size());
  if (value_size) std::memcpy(value_copy, value->data(), value_size);
  Node* node = new (mem) Node{key_copy, value_copy, uint32_t(key.size()), uint32_t(value_size), seq, !value, height, {}};
  for (int i = 0; i < height; ++i) new (&node->next_[i]) std::atomic<const Node*>(nullptr);
  for (int i = 0; i < height; ++i) {
    // The node is complete before it is reachable (release).
    node->SetNextRelaxed(i, prev[i]->NextRelaxed(i));
    const_cast<Node*>(prev[i])->SetNext(i, node);
  }
  entries_.fetch_add(1, std::memory_order_relaxed);
  if (seq > max_seq_.load(std::memory_order_relaxed)) max_seq_.store(seq, std::memory_order_release);
}

MemTable::Found MemTable::Get(std::string_view key, uint64_t snapshot, std::string_view* value) const {
  // The first entry at or after (key, snapshot) is key's newest one at or
  // below the snapshot, if it is key's at all.
  const Node* n = FindGreaterOrEqual(key, snapshot, nullptr);
  if (!n || n->Key() != key) return Found::kAbsent;
  if (n->erased) return Found::kErased;
  *value = std::string_view(n->value, n->value_size);
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
  return node_->erased ? std::string_view() : std::string_view(node_->value, node_->value_size);
}
bool MemTable::Iterator::erased() const { return node_->erased; }
uint64_t MemTable::Iterator::seq() const { return node_->seq; }

void MemTable::Iterator::ForwardToVisible(const Node* n) {
  // Within a key, entries go newest first: the first at or below the
  // snapshot is the one visible; a key with none visible is skipped.
  while (n && n->seq > snapshot_) n = n->Next(0);
  node_ = n;
}

void MemTable::Iterator::SeekToFirst() { ForwardToVisible(table_->head_->Next(0)); }

void MemTable::Iterator::SeekGE(std::string_view target) {
  ForwardToVisible(table_->FindGreaterOrEqual(target, kLatest, nullptr));
}

void MemTable::Iterator::Next() {
  const std::string_view current = node_->Key();
  const Node* n = node_->Next(0);
  // A hot key has an entry per commit that changed it: step over a few,
  // then search past them all at once (seq 0 sorts after every entry of it).
  for (int steps = 0; n && n->Key() == current; ++steps) {
    if (steps == 4) {
      n = table_->FindGreaterOrEqual(current, 0, nullptr);
      break;
    }
    n = n->Next(0);
  }
  ForwardToVisible(n);
}

void MemTable::Iterator::BackwardFrom(std::string_view bound, bool have_bound) {
  for (;;) {
    const Node* last = have_bound ? table_->FindLessThan(bound) : table_->FindLast();
    if (!last) {
      node_ = nullptr;
      return;
    }
    // `last` is the oldest entry of its key; its visible one is the first
    // at or after (key, snapshot).
    const std::string_view key = last->Key();
    const Node* visible = table_->FindGreaterOrEqual(key, snapshot_, nullptr);
    if (visible && visible->Key() == key) {
      node_ = visible;
      return;
    }
    bound = key;  // nothing of that key visible yet: the key before it
    have_bound = true;
  }
}

void MemTable::Iterator::SeekToLast() { BackwardFrom({}, false); }

void MemTable::Iterator::SeekLT(std::string_view target) { BackwardFrom(target, true); }

void MemTable::Iterator::SeekLE(std::string_view target) {
  const Node* n = table_->FindGreaterOrEqual(target, snapshot_, nullptr);
  if (n && n->Key() == target) {
    node_ = n;
    return;
  }
  BackwardFrom(target, true);
}

void MemTable::Iterator::Prev() { BackwardFrom(node_->Key(), true); }

}  // namespace monju
