// The local replica as seen by partition streaming: the sink a node streams
// partitions into (merge by clock; progress kept in the data store's meta
// records, so it is as durable as the data it describes), and the reader
// that serves a partition's items to a node streaming it in (a range scan
// of the partition's keys, records as stored). Thread-safe.
#pragma once

#include "membership.h"
#include "membership_service.h"
#include "partition_streamer.h"
#include "replica.h"

namespace monju {

class ReplicaStreamSink final : public StreamSink {
 public:
  ReplicaStreamSink(Replica* replica, const Membership* membership) : replica_(replica), membership_(membership) {}
  Status Apply(uint32_t partition, const std::vector<StreamedItem>& items) override;
  Status LoadProgress(const std::string& key, std::string* value) override;
  Status SaveProgress(const std::string& key, const std::string& value) override;

 private:
  Replica* replica_;
  const Membership* membership_;
};

class ReplicaPartitionReader final : public PartitionReader {
 public:
  explicit ReplicaPartitionReader(Replica* replica) : replica_(replica) {}
  Status Read(uint32_t partition, const std::string& cursor, uint32_t max_items, uint32_t max_bytes,
              StreamChunkData* out) override;

 private:
  Replica* replica_;
};

// The storage cursor just before a partition's first key (the store's
// keys start with the partition, 4 bytes big-endian).
std::string PartitionStartCursor(uint32_t partition);

}  // namespace monju
