// A bucket: the LMDB value holding every item whose LMDB key is the same
// (same partition, pk hash and truncated sk). Internal to storage.
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
  };
  static StatusOr<Bucket> Decode(std::string_view bytes);
  std::string Encode() const;

  const Entry* Find(std::string_view pk, std::string_view sk) const;
  void Upsert(std::string_view pk, std::string_view sk, std::string record);
  void Erase(std::string_view pk, std::string_view sk);
  bool empty() const { return entries_.empty(); }
  // Sorted by (sk, pk).
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

}  // namespace monju
