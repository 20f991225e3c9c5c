// HintStore: durable hints for hinted handoff, in their own LMDB environment
// (DATA/hints), apart from the data.
//
// A hint is a version that a fallback node holds for an owner that was down.
// Contract
// - Add() returns only once the hint is durable (fsync'd commit), so a write
//   may count the hint as an acknowledgement.
// - Hints of one owner come back in the order they were added.
// - Bounded: at most `max_per_owner` hints per owner and `max_total` overall;
//   beyond either, Add() refuses with NoSpace and stores nothing.
// - Keys and values are opaque bytes: any pk or sk bytes work.
// - Remove() deletes one delivered hint; removing an absent hint is OK
//   (delivery is idempotent).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace monju {

struct HintLimits {
  uint64_t max_per_owner = 100000;
  uint64_t max_total = 1000000;
  uint64_t map_size_bytes = 4ull << 30;
};

struct Hint {
  std::string owner;        // node id the version belongs to
  uint32_t partition = 0;
  std::string pk;
  std::string sk;
  std::string version;      // encoded Version (src/clock/codec.h)
  int64_t created_unix_ms = 0;
};

struct StoredHint {
  uint64_t sequence = 0;    // per store, increasing in Add() order
  Hint hint;
};

class HintStore {
 public:
  // Opens or creates the environment at `path` (a directory). Errors: IOError.
  static StatusOr<std::unique_ptr<HintStore>> Open(const std::string& path, HintLimits limits);
  ~HintStore();
  HintStore(const HintStore&) = delete;
  HintStore& operator=(const HintStore&) = delete;

  // Durable add. NoSpace when a cap is reached (nothing stored) or the map is full.
  Status Add(const Hint& hint);
  // Up to `max` of the owner's oldest hints, oldest first.
  Status Oldest(const std::string& owner, size_t max, std::vector<StoredHint>* out) const;
  // Durable removal of one hint.
  Status Remove(const std::string& owner, uint64_t sequence);

  uint64_t PendingFor(const std::string& owner) const;
  uint64_t PendingTotal() const;
  // Owners with at least one hint, and their counts.
  std::map<std::string, uint64_t> PendingByOwner() const;

 private:
  class Impl;
  explicit HintStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monju
