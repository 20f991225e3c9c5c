// How the membership service reaches other nodes (their "membership"
// service); implemented over Thrift by the node (src/net), by fakes in tests.
// Every call blocks up to its own timeout and may run on any thread.
// Errors keep the remote Status code (MembershipError.code); Unavailable
// when the node cannot be reached.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "change_driver.h"
#include "common/status.h"

namespace monju {

// One item of a streamed partition: its stored sibling set, encoded.
struct StreamedItem {
  std::string pk, sk;
  std::string siblings;
};

struct StreamChunkData {
  std::vector<StreamedItem> items;
  std::string next_cursor;
  bool done = false;
};

struct ProposeReply {
  uint64_t epoch = 0;
  std::string summary;
};

class MembershipPeers {
 public:
  virtual ~MembershipPeers() = default;
  // address: a node's client host:port.
  virtual StatusOr<std::string> FetchMetadata(const std::string& address, uint64_t fingerprint) = 0;
  virtual StatusOr<ProposeReply> Propose(const std::string& address, const std::string& command, bool forwarded) = 0;
  virtual StatusOr<NodeReport> Progress(const std::string& address, uint64_t change_epoch) = 0;
  virtual Status Stream(const std::string& address, uint64_t fingerprint, uint64_t epoch, uint32_t partition,
                        const std::string& cursor, uint32_t max_items, uint32_t max_bytes, StreamChunkData* out) = 0;
};

}  // namespace monju
