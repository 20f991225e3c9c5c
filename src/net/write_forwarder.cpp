#include "write_forwarder.h"

#include <spdlog/spdlog.h>
#include <thrift/TApplicationException.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace monju {
namespace {

// The write as the public call it came in as.
void SendPublic(api::MonjuKVClient& client, api::WriteResult& out, const api::ForwardedWrite& write) {
  switch (write.kind) {
    case api::WriteKind::PUT:
      return client.put(out, write.pk, write.sk, write.value, write.context, write.w);
    case api::WriteKind::OVERWRITE:
      return client.overwrite(out, write.pk, write.sk, write.value, write.w);
    case api::WriteKind::REMOVE:
      return client.remove(out, write.pk, write.sk, write.context, write.w);
  }
  api::InvalidRequest invalid;
  invalid.why = "unknown write kind " + std::to_string(static_cast<int>(write.kind));
  throw invalid;
}

// One of the exceptions forward_write declares (NotOwner aside): the owner's
// answer, as opposed to a transport or protocol failure.
bool IsOwnersAnswer(const apache::thrift::TException& e) {
  return dynamic_cast<const api::InvalidRequest*>(&e) || dynamic_cast<const api::Unavailable*>(&e) ||
         dynamic_cast<const api::QuorumFailed*>(&e) || dynamic_cast<const api::TimedOut*>(&e);
}

}  // namespace

WriteForwarder::WriteForwarder(const Membership* membership, std::string self_id, ConnectionOptions options,
                               std::function<bool(const std::string&)> likely_alive)
    : membership_(membership),
      self_id_(std::move(self_id)),
      options_(std::move(options)),
      likely_alive_(std::move(likely_alive)) {}

WriteForwarder::Owner& WriteForwarder::OwnerFor(const PeerAddress& peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = owners_[peer.ToString()];
  if (!slot) {
    ConnectionOptions o = options_;
    o.host = peer.host;
    o.port = peer.port;
    o.service = "";
    o.peer_id = peer.id;
    slot = std::make_unique<Owner>();
    slot->id = peer.id;
    slot->pool = std::make_unique<ClientPool<api::MonjuKVClient>>(o);
  }
  return *slot;
}

void WriteForwarder::SendTo(Owner& owner, api::MonjuKVClient& client, api::WriteResult& out,
                            const api::ForwardedWrite& write) {
  if (owner.lacks_forward_write.load() && ++owner.public_calls % kRetryForwardWriteAfter != 0)
    return SendPublic(client, out, write);
  try {
    client.forward_write(out, write);
    owner.lacks_forward_write.store(false);
    return;
  } catch (const apache::thrift::TApplicationException& e) {
    if (e.getType() != apache::thrift::TApplicationException::UNKNOWN_METHOD) throw;
  }
  if (!owner.lacks_forward_write.exchange(true)) {
    owner.public_calls.store(0);
    spdlog::info("{} does not know forward_write (an older monjud?): writes forwarded to it go as public calls",
                 owner.id);
  }
  SendPublic(client, out, write);
}

void WriteForwarder::Forward(api::WriteResult& out, api::ForwardedWrite write) {
  write.forwarded_by = self_id_;
  auto view = membership_->Current();
  std::vector<uint32_t> owners = view->WriteOwners(view->ring().PartitionOf(write.pk));
  // Owners believed alive first, in preference order.
  std::stable_partition(owners.begin(), owners.end(),
                        [&](uint32_t m) { return likely_alive_(view->members()[m].id); });
  std::string last_error = "no owner reachable";
  for (uint32_t index : owners) {
    const PeerAddress& peer = view->members()[index];
    if (peer.id == self_id_) continue;
    Owner& owner = OwnerFor(peer);
    auto& pool = *owner.pool;
    std::unique_ptr<api::MonjuKVClient> client;
    try {
      client = pool.Borrow();
    } catch (const apache::thrift::TException& e) {
      last_error = peer.id + ": " + e.what();  // never reached it: try the next owner
      continue;
    }
    try {
      SendTo(owner, *client, out, write);
      pool.Return(std::move(client));
      return;
    } catch (const api::NotOwner& e) {
      pool.Return(std::move(client));
      last_error = e.why;  // nothing written there: try the next owner
      continue;
    } catch (const apache::thrift::TException& e) {
      if (IsOwnersAnswer(e)) {  // the call completed: the connection is sound
        pool.Return(std::move(client));
        throw;
      }
      // The owner may have coordinated the write: retrying elsewhere could
      // apply it twice, so the outcome is reported as unknown.
      pool.Clear();
      api::TimedOut t;
      t.why = "forwarded write to " + peer.id + " failed, outcome unknown: " + e.what();
      throw t;
    }
  }
  api::Unavailable e;
  e.why = "cannot forward the write to any replica of the key: " + last_error;
  e.needed = 1;
  e.alive = 0;
  throw e;
}

api::NotOwner NotOwnerRefusal(const std::string& self_id, const api::ForwardedWrite& write) {
  api::NotOwner refusal;
  refusal.why = self_id + " does not replicate the key in its membership view either (forwarded by " +
                (write.forwarded_by.empty() ? std::string("an unnamed node") : write.forwarded_by) +
                "): the two nodes' views differ, during a membership change or with mismatched --peers; "
                "nothing was written";
  return refusal;
}

}  // namespace monju
