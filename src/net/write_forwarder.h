// WriteForwarder: hands a write this node does not replicate to an owner of
// its key, whose coordinator issues the version's dot.
//
// The owner is asked with forward_write, which it never forwards again: a
// node that does not replicate the key in its own view either (the two
// views differ, during a membership change or with mismatched --peers)
// refuses with NotOwner, and the next owner is tried. Without that, two
// nodes each believing the other an owner would pass the write back and
// forth, holding a forwarding thread on both per hop, until the queues
// filled or the request timed out. An owner from before forward_write (an
// older monjud, during a rolling upgrade) answers "unknown method" and gets
// the write as put, overwrite or remove on the same connection; later
// writes to it go that way at once, and forward_write is tried again every
// kRetryForwardWriteAfter of them (it may have been upgraded). Such an
// owner may forward the write on, as it always did.
//
// Thread safety: Forward() may be called concurrently (one pooled client
// per call and owner).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "MonjuKV.h"
#include "client_pool.h"
#include "membership.h"

namespace monju {

class WriteForwarder {
 public:
  // `membership` is not owned and must outlive the forwarder. likely_alive:
  // this node's failure-detector view of a peer id; owners it believes down
  // are tried last.
  WriteForwarder(const Membership* membership, std::string self_id, ConnectionOptions options,
                 std::function<bool(const std::string&)> likely_alive);

  // Sends `write` (its forwarded_by is set here) to the first owner of its key
  // that takes it and fills `out` with that owner's answer. Throws what the
  // owner threw: InvalidRequest, Unavailable, QuorumFailed or TimedOut (for
  // a connection lost during the call too: the owner may have written it).
  // Unavailable, naming the last reason, when no owner was reached or every
  // owner refused with NotOwner; nothing was written then.
  void Forward(api::WriteResult& out, api::ForwardedWrite write);

  static constexpr uint64_t kRetryForwardWriteAfter = 1000;

 private:
  struct Owner {
    std::string id;
    std::unique_ptr<ClientPool<api::MonjuKVClient>> pool;
    std::atomic<bool> lacks_forward_write{false};  // answered "unknown method"
    std::atomic<uint64_t> public_calls{0};         // since then
  };
  Owner& OwnerFor(const PeerAddress& peer);
  // forward_write, or the public call for an owner that lacks it.
  void SendTo(Owner& owner, api::MonjuKVClient& client, api::WriteResult& out, const api::ForwardedWrite& write);

  const Membership* membership_;
  const std::string self_id_;
  const ConnectionOptions options_;
  const std::function<bool(const std::string&)> likely_alive_;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Owner>> owners_;
};

// The NotOwner refusal of a forwarded write by `self_id`.
api::NotOwner NotOwnerRefusal(const std::string& self_id, const api::ForwardedWrite& write);

}  // namespace monju
