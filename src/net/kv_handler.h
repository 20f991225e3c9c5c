// Serves the public MonjuKV API: turns coordinator outcomes into the API's
// results and exceptions. Writes for keys this node does not replicate are
// forwarded to an owner (write_forwarder.h), whose coordinator issues the
// version's dot; a forwarded write is coordinated here or refused, never
// forwarded again.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "MonjuKV.h"
#include "client_pool.h"
#include "coordinator.h"
#include "write_forwarder.h"

namespace monju {

// The API exception a failed outcome is reported as.
struct ApiError {
  enum Kind { kInvalid, kUnavailable, kQuorumFailed, kTimedOut } kind = kQuorumFailed;
  api::InvalidRequest invalid;
  api::Unavailable unavailable;
  api::QuorumFailed quorum;
  api::TimedOut timeout;
};
ApiError ApiErrorFor(const Status& s, const QuorumCount& q);
// A successful write's result.
void FillWriteResult(api::WriteResult& result, WriteOutcome&& out);
// InvalidArgument for a forwarded write of an unknown kind or a bad key.
Status ValidateForwarded(const api::ForwardedWrite& write);

class KvHandler final : public api::MonjuKVIf {
 public:
  // likely_alive: this node's failure-detector view of a peer id; owners it
  // believes down are tried last when forwarding.
  KvHandler(Coordinator* coordinator, const Membership* membership, std::string self_id,
            ConnectionOptions forward_options, std::function<bool(const std::string&)> likely_alive);

  void put(api::WriteResult& _return, const std::string& pk, const std::string& sk, const std::string& value,
           const std::string& context, int32_t w) override;
  void overwrite(api::WriteResult& _return, const std::string& pk, const std::string& sk, const std::string& value,
                 int32_t w) override;
  void get(api::GetResult& _return, const std::string& pk, const std::string& sk, int32_t r) override;
  void remove(api::WriteResult& _return, const std::string& pk, const std::string& sk, const std::string& context,
              int32_t w) override;
  void query(api::QueryResult& _return, const std::string& pk, const std::string& sk_prefix,
             const std::string& start_sk, int32_t limit, bool ascending, int32_t r) override;
  // Coordinated here when this node replicates the key, else NotOwner. For
  // the generated processor: the client server takes forward_write as a
  // deferred call (KvAsyncCalls), which answers the same.
  void forward_write(api::WriteResult& _return, const api::ForwardedWrite& write) override;

  // Any write: coordinated here when this node replicates its key;
  // otherwise forwarded to an owner, or, for a write another node forwarded
  // here (`forwarded_here`), refused with NotOwner. Throws as the API calls do.
  void Write(api::WriteResult& _return, api::ForwardedWrite write, bool forwarded_here);

 private:
  // The write coordinated here (its value is moved out).
  WriteOutcome Coordinate(api::ForwardedWrite& write);

  Coordinator* coordinator_;
  const std::string self_id_;
  WriteForwarder forwarder_;
};

}  // namespace monju
