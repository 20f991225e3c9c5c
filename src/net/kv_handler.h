// Serves the public MonjuKV API: turns coordinator outcomes into the API's
// results and exceptions. Writes for keys this node does not replicate are
// forwarded to a live owner (its coordinator issues the version's dot).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "MonjuKV.h"
#include "client_pool.h"
#include "coordinator.h"

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

 private:
  // Runs `fn` against an owner's MonjuKV; rethrows its API exceptions.
  template <typename Fn>
  void Forward(const std::string& pk, Fn&& fn);
  // A write: coordinated here (`local` returns its outcome) when this node
  // is a replica of pk, else forwarded (`remote` makes the same call on an
  // owner's client, filling _return itself).
  template <typename Local, typename Remote>
  void Write(api::WriteResult& _return, const std::string& pk, const std::string& sk, Local&& local,
             Remote&& remote);
  ClientPool<api::MonjuKVClient>& PoolFor(const PeerAddress& peer);

  Coordinator* coordinator_;
  const Membership* membership_;
  const std::string self_id_;
  const ConnectionOptions forward_options_;
  const std::function<bool(const std::string&)> likely_alive_;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<ClientPool<api::MonjuKVClient>>> pools_;
};

}  // namespace monju
