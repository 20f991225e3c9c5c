#include "kv_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace monju {
namespace {

// Throws the API exception matching a failed outcome.
[[noreturn]] void ThrowFor(const Status& s, const QuorumCount& q) {
  ApiError e = ApiErrorFor(s, q);
  switch (e.kind) {
    case ApiError::kInvalid: throw e.invalid;
    case ApiError::kUnavailable: throw e.unavailable;
    case ApiError::kTimedOut: throw e.timeout;
    case ApiError::kQuorumFailed: throw e.quorum;
  }
  throw e.quorum;
}

}  // namespace

ApiError ApiErrorFor(const Status& s, const QuorumCount& q) {
  ApiError e;
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
      e.kind = ApiError::kInvalid;
      e.invalid.why = s.message();
      break;
    case Status::Code::kUnavailable:
      e.kind = ApiError::kUnavailable;
      e.unavailable.why = s.message();
      e.unavailable.needed = q.needed;
      e.unavailable.alive = q.got;
      break;
    case Status::Code::kTimedOut:
      e.kind = ApiError::kTimedOut;
      e.timeout.why = s.message();
      break;
    default:
      e.kind = ApiError::kQuorumFailed;
      e.quorum.why = s.Is(Status::Code::kQuorumFailed) ? s.message() : s.ToString();
      e.quorum.needed = q.needed;
      e.quorum.acked = q.got;
  }
  return e;
}

void FillWriteResult(api::WriteResult& result, WriteOutcome&& out) {
  result.context = std::move(out.context);
  result.acked_by = std::move(out.acked_by);
  result.used_fallback = out.used_fallback;
  result.hinted_for = std::move(out.hinted_for);
}

KvHandler::KvHandler(Coordinator* coordinator, const Membership* membership, std::string self_id,
                     ConnectionOptions forward_options, std::function<bool(const std::string&)> likely_alive)
    : coordinator_(coordinator),
      membership_(membership),
      self_id_(std::move(self_id)),
      forward_options_(std::move(forward_options)),
      likely_alive_(std::move(likely_alive)) {}

ClientPool<api::MonjuKVClient>& KvHandler::PoolFor(const PeerAddress& peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = pools_[peer.ToString()];
  if (!slot) {
    ConnectionOptions o = forward_options_;
    o.host = peer.host;
    o.port = peer.port;
    o.service = "";
    o.peer_id = peer.id;
    slot = std::make_unique<ClientPool<api::MonjuKVClient>>(o);
  }
  return *slot;
}

template <typename Fn>
void KvHandler::Forward(const std::string& pk, Fn&& fn) {
  auto view = membership_->Current();
  std::vector<uint32_t> owners = view->WriteOwners(view->ring().PartitionOf(pk));
  // Owners believed alive first, in preference order.
  std::stable_partition(owners.begin(), owners.end(),
                        [&](uint32_t m) { return likely_alive_(view->members()[m].id); });
  std::string last_error = "no owner reachable";
  for (uint32_t index : owners) {
    const PeerAddress& peer = view->members()[index];
    if (peer.id == self_id_) continue;
    auto& pool = PoolFor(peer);
    std::unique_ptr<api::MonjuKVClient> client;
    try {
      client = pool.Borrow();
    } catch (const apache::thrift::TException& e) {
      last_error = peer.id + ": " + e.what();  // never reached it: try the next owner
      continue;
    }
    try {
      fn(*client);
      pool.Return(std::move(client));
      return;
    } catch (const api::InvalidRequest&) {
      pool.Return(std::move(client));
      throw;
    } catch (const api::Unavailable&) {
      pool.Return(std::move(client));
      throw;
    } catch (const api::QuorumFailed&) {
      pool.Return(std::move(client));
      throw;
    } catch (const api::TimedOut&) {
      pool.Return(std::move(client));
      throw;
    } catch (const apache::thrift::TException& e) {
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

template <typename Local, typename Remote>
void KvHandler::Write(api::WriteResult& _return, const std::string& pk, const std::string& sk, Local&& local,
                      Remote&& remote) {
  if (Status s = Coordinator::ValidateKey(pk, sk); !s.ok()) ThrowFor(s, {});
  if (!coordinator_->IsOwner(pk)) {
    Forward(pk, std::forward<Remote>(remote));
    return;
  }
  WriteOutcome out = local();
  if (!out.status.ok()) ThrowFor(out.status, out.quorum);
  FillWriteResult(_return, std::move(out));
}

void KvHandler::put(api::WriteResult& _return, const std::string& pk, const std::string& sk, const std::string& value,
                    const std::string& context, int32_t w) {
  Write(
      _return, pk, sk, [&] { return coordinator_->Put(pk, sk, value, context, w); },
      [&](api::MonjuKVClient& c) { c.put(_return, pk, sk, value, context, w); });
}

void KvHandler::overwrite(api::WriteResult& _return, const std::string& pk, const std::string& sk,
                          const std::string& value, int32_t w) {
  Write(
      _return, pk, sk, [&] { return coordinator_->Overwrite(pk, sk, value, w); },
      [&](api::MonjuKVClient& c) { c.overwrite(_return, pk, sk, value, w); });
}

void KvHandler::remove(api::WriteResult& _return, const std::string& pk, const std::string& sk,
                       const std::string& context, int32_t w) {
  Write(
      _return, pk, sk, [&] { return coordinator_->Remove(pk, sk, context, w); },
      [&](api::MonjuKVClient& c) { c.remove(_return, pk, sk, context, w); });
}

void KvHandler::get(api::GetResult& _return, const std::string& pk, const std::string& sk, int32_t r) {
  ReadOutcome out = coordinator_->Get(pk, sk, r);
  if (!out.status.ok()) ThrowFor(out.status, out.quorum);
  _return.found = out.found;
  _return.values = std::move(out.values);
  _return.context = std::move(out.context);
}

void KvHandler::query(api::QueryResult& _return, const std::string& pk, const std::string& sk_prefix,
                      const std::string& start_sk, int32_t limit, bool ascending, int32_t r) {
  QueryRequest request{pk, sk_prefix, start_sk, limit, ascending, r};
  QueryOutcome out = coordinator_->Query(request);
  if (!out.status.ok()) ThrowFor(out.status, out.quorum);
  _return.items.reserve(out.items.size());
  for (auto& item : out.items) {
    api::Item i;
    i.pk = pk;
    i.sk = std::move(item.sk);
    i.values = std::move(item.values);
    i.context = std::move(item.context);
    _return.items.push_back(std::move(i));
  }
  _return.next_start_sk = std::move(out.next_start_sk);
}

}  // namespace monju
