#include "replica_stream.h"

#include <spdlog/spdlog.h>

#include "clock/codec.h"
#include "config/node_config.h"

namespace monju {
namespace {
constexpr char kProgressPrefix[] = "membership/";
constexpr size_t kItemsPerScan = 16;  // a reply overshoots its byte budget by at most one such page
}  // namespace

std::string PartitionStartCursor(uint32_t partition) {
  std::string c(4, '\0');
  c[0] = static_cast<char>(partition >> 24);
  c[1] = static_cast<char>(partition >> 16);
  c[2] = static_cast<char>(partition >> 8);
  c[3] = static_cast<char>(partition);
  return c;
}

Status ReplicaStreamSink::Apply(uint32_t partition, const std::vector<StreamedItem>& items) {
  auto view = membership_->Current();
  std::vector<std::pair<ItemKey, Version>> versions;
  for (const auto& item : items) {
    if (item.pk.empty() || item.pk.size() > kMaxPkBytes || item.sk.size() > kMaxSkBytes ||
        view->ring().PartitionOf(item.pk) != partition) {
      spdlog::error("streaming: skipping an item that does not belong to partition {}", partition);
      continue;
    }
    auto set = DecodeSiblings(item.siblings);
    if (!set.ok()) {
      spdlog::error("streaming: skipping an item of partition {} that does not decode: {}", partition,
                    set.status().ToString());
      continue;
    }
    for (const Version& v : set.value().versions()) versions.emplace_back(ItemKey{partition, item.pk, item.sk}, v);
  }
  auto statuses = replica_->ApplyBatch(versions);
  for (size_t i = 0; i < statuses.size(); ++i) {
    const Status& s = statuses[i];
    if (s.ok()) continue;
    if (s.Is(Status::Code::kCorruption) || s.Is(Status::Code::kInvalidArgument)) {
      spdlog::error("streaming: skipping a version of partition {}: {}", partition, s.ToString());
      continue;
    }
    return s;
  }
  return Status::OK();
}

Status ReplicaStreamSink::LoadProgress(const std::string& key, std::string* value) {
  return replica_->store().GetMeta(kProgressPrefix + key, value);
}

Status ReplicaStreamSink::SaveProgress(const std::string& key, const std::string& value) {
  return replica_->store().PutMeta(kProgressPrefix + key, value);
}

Status ReplicaPartitionReader::Read(uint32_t partition, const std::string& cursor, uint32_t max_items,
                                    uint32_t max_bytes, StreamChunkData* out) {
  out->items.clear();
  out->done = false;
  std::string at = cursor.empty() ? PartitionStartCursor(partition) : cursor;
  size_t bytes = 0;
  std::vector<RawItem> page;
  while (out->items.size() < max_items && bytes < max_bytes) {
    std::string next;
    Status s = replica_->ScanAll(at, kItemsPerScan, &page, &next);
    if (!s.ok() && !s.Is(Status::Code::kCorruption)) return s;
    if (!s.ok()) spdlog::error("streaming out partition {}: skipping a bucket: {}", partition, s.ToString());
    for (auto& item : page) {
      if (item.partition != partition) {
        out->done = true;
        break;
      }
      bytes += item.pk.size() + item.sk.size() + item.record.size();
      out->items.push_back({std::move(item.pk), std::move(item.sk), std::move(item.record)});
    }
    if (out->done) break;
    if (next.empty()) {
      out->done = true;
      break;
    }
    at = std::move(next);
  }
  out->next_cursor = out->done ? std::string() : at;
  return Status::OK();
}

}  // namespace monju
