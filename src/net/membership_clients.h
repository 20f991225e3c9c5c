// ThriftMembershipPeers (membership/membership_peers.h) over the "membership" service of
// other nodes (idl/membership.thrift), with a client pool per address and
// call class (each class has its own timeouts). Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "MonjuMembership.h"
#include "client_pool.h"
#include "membership_peers.h"

namespace monju {

class ThriftMembershipPeers final : public MembershipPeers {
 public:
  // `base`: connection options (bind address, fault injection) shared by all calls.
  explicit ThriftMembershipPeers(ConnectionOptions base) : base_(std::move(base)) {}

  StatusOr<std::string> FetchMetadata(const std::string& address, uint64_t fingerprint) override;
  StatusOr<ProposeReply> Propose(const std::string& address, const std::string& command, bool forwarded) override;
  StatusOr<NodeReport> Progress(const std::string& address, uint64_t change_epoch) override;
  Status Stream(const std::string& address, uint64_t fingerprint, uint64_t epoch, uint32_t partition,
                const std::string& cursor, uint32_t max_items, uint32_t max_bytes, StreamChunkData* out) override;

 private:
  enum class CallClass { kQuick, kPropose, kStream };
  using Pool = ClientPool<membership::MonjuMembershipClient>;
  Pool* PoolFor(const std::string& address, CallClass c, Status* error);
  template <typename Fn>
  Status Call(const std::string& address, CallClass c, const char* what, Fn&& fn);

  const ConnectionOptions base_;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Pool>> pools_;
};

// The StreamProgress of the IDL from the service's report, and back.
membership::StreamProgress ToThrift(const std::string& node, const StreamReport& r);
StreamReport FromThrift(const membership::StreamProgress& p);

}  // namespace monju
