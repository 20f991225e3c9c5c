#include "storage/layered_cursor.h"

#include <cerrno>

namespace monju {
namespace {

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

Status LmdbError(const char* what, int rc) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL || rc == ENOSPC) return Status::NoSpace(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND) return Status::Corruption(msg);
  return Status::IOError(msg);
}

LayeredCursor::LayeredCursor(const std::vector<const MemTable*>& layers, uint64_t snapshot, MDB_txn* txn,
                             MDB_dbi dbi) {
  sources_.reserve(layers.size() + 1);
  for (const MemTable* m : layers) sources_.emplace_back(MemTable::Iterator(m, snapshot));
  sources_.emplace_back(MemTable::Iterator(nullptr, 0));
  const int rc = mdb_cursor_open(txn, dbi, &cursor_);
  if (rc) {
    cursor_ = nullptr;
    status_ = LmdbError("mdb_cursor_open", rc);
  }
}

LayeredCursor::~LayeredCursor() {
  if (cursor_) mdb_cursor_close(cursor_);
}

void LayeredCursor::Load(size_t i) {
  Source& s = sources_[i];
  s.valid = s.mem.Valid();
  if (!s.valid) return;
  s.key = s.mem.key();
  s.erased = s.mem.erased();
  s.value = s.mem.value();
}

void LayeredCursor::Move(size_t i, Op op, std::string_view target) {
  Source& s = sources_[i];
  if (i + 1 < sources_.size()) {
    MemTable::Iterator& it = s.mem;
    switch (op) {
      case Op::kFirst: it.SeekToFirst(); break;
      case Op::kGE: it.SeekGE(target); break;
      case Op::kNext: it.Next(); break;
      case Op::kLast: it.SeekToLast(); break;
      case Op::kLE: it.SeekLE(target); break;
      case Op::kLT: it.SeekLT(target); break;
      case Op::kPrev: it.Prev(); break;
    }
    Load(i);
    return;
  }
  s.valid = false;
  if (!cursor_ || !status_.ok()) return;
  MDB_val k{}, v{};
  int rc = MDB_NOTFOUND;
  switch (op) {
    case Op::kFirst: rc = mdb_cursor_get(cursor_, &k, &v, MDB_FIRST); break;
    case Op::kNext: rc = mdb_cursor_get(cursor_, &k, &v, MDB_NEXT); break;
    case Op::kLast: rc = mdb_cursor_get(cursor_, &k, &v, MDB_LAST); break;
    case Op::kPrev: rc = mdb_cursor_get(cursor_, &k, &v, MDB_PREV); break;
    case Op::kGE:
      if (target.empty()) {
        rc = mdb_cursor_get(cursor_, &k, &v, MDB_FIRST);
        break;
      }
      k = Val(target);
      rc = mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE);
      break;
    case Op::kLE:
    case Op::kLT:
      if (target.empty()) {  // no LMDB key is empty, so none is below or at ""
        rc = MDB_NOTFOUND;
        break;
      }
      k = Val(target);
      rc = mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE);
      if (rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(cursor_, &k, &v, MDB_LAST);
      } else if (rc == 0 && (op == Op::kLT || View(k) != target)) {
        rc = mdb_cursor_get(cursor_, &k, &v, MDB_PREV);
      }
      break;
  }
  if (rc == MDB_NOTFOUND) return;
  if (rc) {
    status_ = LmdbError("mdb_cursor_get", rc);
    return;
  }
  s.valid = true;
  s.erased = false;
  s.key = View(k);
  s.value = View(v);
}

void LayeredCursor::Resolve(bool forward) {
  for (;;) {
    int best = -1;
    for (size_t i = 0; i < sources_.size(); ++i) {
      // The smallest key going forward, the largest going back; on equal
      // keys the earlier (newer) layer wins.
      if (!sources_[i].valid) continue;
      if (best < 0 || (forward ? sources_[i].key < sources_[best].key : sources_[i].key > sources_[best].key))
        best = int(i);
    }
    if (best < 0 || !status_.ok()) {
      current_ = -1;
      return;
    }
    if (!sources_[best].erased) {
      current_ = best;
      return;
    }
    scratch_.assign(sources_[best].key);  // erased here: step every layer past it
    for (size_t i = 0; i < sources_.size(); ++i)
      if (sources_[i].valid && sources_[i].key == scratch_) Move(i, forward ? Op::kNext : Op::kPrev, {});
  }
}

void LayeredCursor::Position(Op op, std::string_view target) {
  // The target may point into a source's current key: keep a copy.
  std::string copy(target);
  for (size_t i = 0; i < sources_.size(); ++i) Move(i, op, copy);
  Resolve(op == Op::kFirst || op == Op::kGE);
}

void LayeredCursor::SeekToFirst() { Position(Op::kFirst, {}); }
void LayeredCursor::SeekGE(std::string_view target) { Position(Op::kGE, target); }
void LayeredCursor::SeekToLast() { Position(Op::kLast, {}); }
void LayeredCursor::SeekLE(std::string_view target) { Position(Op::kLE, target); }
void LayeredCursor::SeekLT(std::string_view target) { Position(Op::kLT, target); }

void LayeredCursor::Next() {
  if (current_ < 0) return;
  scratch_.assign(sources_[current_].key);
  for (size_t i = 0; i < sources_.size(); ++i)
    if (sources_[i].valid && sources_[i].key == scratch_) Move(i, Op::kNext, {});
  Resolve(true);
}

void LayeredCursor::Prev() {
  if (current_ < 0) return;
  scratch_.assign(sources_[current_].key);
  for (size_t i = 0; i < sources_.size(); ++i)
    if (sources_[i].valid && sources_[i].key == scratch_) Move(i, Op::kPrev, {});
  Resolve(false);
}

StatusOr<bool> LayeredGet(const std::vector<const MemTable*>& layers, uint64_t snapshot, MDB_txn* txn, MDB_dbi dbi,
                          std::string_view key, std::string_view* value) {
  for (const MemTable* m : layers) {
    switch (m->Get(key, snapshot, value)) {
      case MemTable::Found::kValue: return true;
      case MemTable::Found::kErased: return false;
      case MemTable::Found::kAbsent: break;
    }
  }
  if (key.empty()) return false;  // LMDB keys are never empty
  MDB_val mk = Val(key), mv;
  const int rc = mdb_get(txn, dbi, &mk, &mv);
  if (rc == MDB_NOTFOUND) return false;
  if (rc) return LmdbError("mdb_get", rc);
  *value = View(mv);
  return true;
}

}  // namespace monju
