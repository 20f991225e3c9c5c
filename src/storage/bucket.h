// A bucket: the LMDB value holding every item whose LMDB key is the same
// (same partition, pk hash and truncated sk). Internal to storage.
//
// Each entry carries its item's digest, so anti-entropy lists digests from
// the items themselves (no index of its own to write). Two encodings decode:
// v2 (written now: the entry count has its top bit set, and each entry ends
// with its 8-byte digest) and v1 (from before: no digests, so `digest` is 0,
// "not stored", and readers compute it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace monju {

class Bucket {
 public:
  struct Entry {
    std::string pk, sk, record;
    uint64_t digest = 0;  // 0: not stored (a v1 bucket); compute it from the record
  };
  static StatusOr<Bucket> Decode(std::string_view bytes);
  // An entry read in place: its views point into the bytes decoded.
  struct EntryView {
    std::string_view pk, sk, record;
  };
  // Decode() without copying: for readers that keep a few entries of a
  // bucket (a scan). Valid while `bytes` is; the same errors as Decode().
  static StatusOr<std::vector<EntryView>> DecodeViews(std::string_view bytes);
  std::string Encode() const;

  const Entry* Find(std::string_view pk, std::string_view sk) const;
  void Upsert(std::string_view pk, std::string_view sk, std::string record, uint64_t digest);
  void Erase(std::string_view pk, std::string_view sk);
  bool empty() const { return entries_.empty(); }
  // Sorted by (sk, pk).
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

}  // namespace monju
