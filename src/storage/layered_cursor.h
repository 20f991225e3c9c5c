// LayeredCursor: one ordered walk over memtables laid over an LMDB database,
// as one read snapshot of the store (data_store.h, "Write-ahead log").
//
// For each key the newest layer that has it decides: a memtable's value, or
// its erasure (the key is then skipped), else LMDB's value. Internal to
// storage.
//
// Positioning: SeekToFirst/SeekGE, then Next(); SeekToLast/SeekLE/SeekLT,
// then Prev() (no turning around in place: seek again instead). key() and
// value() stay valid until the cursor moves. An LMDB error ends the walk;
// status() says which. Not thread-safe; the memtables and the transaction
// must outlive it.
#pragma once

#include <lmdb.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/memtable.h"

namespace monju {

// An LMDB error as a Status: NoSpace for a full map or disk, Corruption for
// a damaged file, IOError otherwise.
Status LmdbError(const char* what, int rc);

class LayeredCursor {
 public:
  // `layers`: newest first, each read at `snapshot`.
  LayeredCursor(const std::vector<const MemTable*>& layers, uint64_t snapshot, MDB_txn* txn, MDB_dbi dbi);
  ~LayeredCursor();
  LayeredCursor(const LayeredCursor&) = delete;
  LayeredCursor& operator=(const LayeredCursor&) = delete;

  bool Valid() const { return current_ >= 0; }
  std::string_view key() const { return sources_[current_].key; }
  std::string_view value() const { return sources_[current_].value; }
  const Status& status() const { return status_; }

  void SeekToFirst();
  void SeekGE(std::string_view target);
  void Next();
  void SeekToLast();
  void SeekLE(std::string_view target);
  void SeekLT(std::string_view target);
  void Prev();

 private:
  enum class Op { kFirst, kGE, kNext, kLast, kLE, kLT, kPrev };
  struct Source {
    explicit Source(MemTable::Iterator it) : mem(it) {}
    MemTable::Iterator mem;  // unused for the LMDB source
    bool valid = false;
    bool erased = false;
    std::string_view key, value;
  };
  // Moves source i; the LMDB source is the last.
  void Move(size_t i, Op op, std::string_view target);
  void Load(size_t i);
  // Settles on the smallest key (going forward) or the largest (going
  // back) whose newest layer holds a value.
  void Resolve(bool forward);
  void Position(Op op, std::string_view target);

  std::vector<Source> sources_;
  MDB_cursor* cursor_ = nullptr;
  int current_ = -1;
  Status status_;
  std::string scratch_;  // a key copied before the LMDB cursor moves off it
};

// The newest layer's answer for `key`: true with *value set when it holds a
// value; false when erased or absent. *value stays valid while the
// memtables and the transaction do.
StatusOr<bool> LayeredGet(const std::vector<const MemTable*>& layers, uint64_t snapshot, MDB_txn* txn, MDB_dbi dbi,
                          std::string_view key, std::string_view* value);

}  // namespace monju
