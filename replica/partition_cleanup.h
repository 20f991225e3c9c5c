// PartitionCleanup: after a membership change completed, a node erases the
// items of partitions it no longer owns, so that every partition sits on
// exactly its owners. Walks the store in pages (DataStore::ScanAll) and
// erases in batches, each item only if its record is still the one it saw
// (Replica::EraseIfUnchanged: a write that arrived meanwhile survives, and
// this node's dot counters in erased records are never issued again).
//
// The caller decides when it is safe: only with no change pending (no node
// still reads or streams these partitions from here). Not thread-safe: one
// pass at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "replica.h"

namespace monju {

struct CleanupStats {
  uint64_t scanned = 0;
  uint64_t erased = 0;
};

class PartitionCleanup {
 public:
  explicit PartitionCleanup(Replica* replica) : replica_(replica) {}
  // One pass over the whole store. `owned(partition)` says whether this node
  // keeps it; `stop` ends the pass early when it becomes true.
  StatusOr<CleanupStats> Run(const std::function<bool(uint32_t partition)>& owned, const std::atomic<bool>& stop,
                             size_t page_items = 512);

 private:
  Replica* replica_;
};

}  // namespace monju
