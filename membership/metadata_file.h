// MetadataFile: the last cluster metadata this node installed, kept in one
// small file (DATA/membership/metadata) so that a restarted node serves at
// once with the epoch it had, before its Raft member has replayed the log.
// The Raft log stays the source of truth; this is a cache of it.
//
// Save() is atomic and durable (write a temporary file, fsync, rename,
// fsync the directory). Load() gives NotFound when there is none, Corruption
// when it does not decode. Not thread-safe: one writer.
#pragma once

#include <string>

#include "cluster_metadata.h"
#include "common/status.h"

namespace monju {

class MetadataFile {
 public:
  explicit MetadataFile(std::string dir) : dir_(std::move(dir)) {}
  Status Save(const ClusterMetadata& metadata);
  StatusOr<ClusterMetadata> Load() const;
  std::string path() const { return dir_ + "/metadata"; }

 private:
  std::string dir_;
};

}  // namespace monju
