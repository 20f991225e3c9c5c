#include "partition_cleanup.h"

#include <spdlog/spdlog.h>

namespace monju {

StatusOr<CleanupStats> PartitionCleanup::Run(const std::function<bool(uint32_t)>& owned,
                                             const std::atomic<bool>& stop, size_t page_items) {
  CleanupStats stats;
  std::string cursor, next;
  std::vector<RawItem> page;
  do {
    if (stop.load()) break;
    Status s = replica_->ScanAll(cursor, page_items, &page, &next);
    if (!s.ok() && !s.Is(Status::Code::kCorruption)) return s;
    std::vector<std::pair<ItemKey, std::string>> gone;
    for (auto& item : page) {
      ++stats.scanned;
      if (!owned(item.partition))
        gone.emplace_back(ItemKey{item.partition, std::move(item.pk), std::move(item.sk)}, std::move(item.record));
    }
    if (!gone.empty()) {
      auto erased = replica_->EraseIfUnchanged(gone);
      if (!erased.ok()) return erased.status();
      stats.erased += erased.value();
    }
    cursor = next;
  } while (!cursor.empty());
  return stats;
}

}  // namespace monju
