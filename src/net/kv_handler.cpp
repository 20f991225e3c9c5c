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
    case Status::Code::kNotOwner:  // the view moved on between routing and coordinating: nothing written
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
      self_id_(self_id),
      forwarder_(membership, std::move(self_id), std::move(forward_options), std::move(likely_alive)) {}

namespace {

api::ForwardedWrite MakeForwarded(api::WriteKind::type kind, const std::string& pk, const std::string& sk,
                                  const std::string& value, const std::string& context, int32_t w) {
  api::ForwardedWrite f;
  f.kind = kind;
  f.pk = pk;
  f.sk = sk;
  f.value = value;
  f.context = context;
  f.w = w;
  return f;
}

}  // namespace

void KvHandler::put(api::WriteResult& _return, const std::string& pk, const std::string& sk, const std::string& value,
                    const std::string& context, int32_t w) {
  Write(_return, MakeForwarded(api::WriteKind::PUT, pk, sk, value, context, w), false);
}

void KvHandler::overwrite(api::WriteResult& _return, const std::string& pk, const std::string& sk,
                          const std::string& value, int32_t w) {
  Write(_return, MakeForwarded(api::WriteKind::OVERWRITE, pk, sk, value, "", w), false);
}

void KvHandler::remove(api::WriteResult& _return, const std::string& pk, const std::string& sk,
                       const std::string& context, int32_t w) {
  Write(_return, MakeForwarded(api::WriteKind::REMOVE, pk, sk, "", context, w), false);
}

Status ValidateForwarded(const api::ForwardedWrite& write) {
  if (write.kind != api::WriteKind::PUT && write.kind != api::WriteKind::OVERWRITE &&
      write.kind != api::WriteKind::REMOVE)
    return Status::InvalidArgument("unknown write kind " + std::to_string(static_cast<int>(write.kind)));
  return Coordinator::ValidateKey(write.pk, write.sk);
}

WriteOutcome KvHandler::Coordinate(api::ForwardedWrite& write) {
  switch (write.kind) {
    case api::WriteKind::PUT:
      return coordinator_->Put(write.pk, write.sk, std::move(write.value), write.context, write.w);
    case api::WriteKind::OVERWRITE:
      return coordinator_->Overwrite(write.pk, write.sk, std::move(write.value), write.w);
    case api::WriteKind::REMOVE:
      return coordinator_->Remove(write.pk, write.sk, write.context, write.w);
  }
  WriteOutcome invalid;
  invalid.status = Status::InvalidArgument("unknown write kind " + std::to_string(static_cast<int>(write.kind)));
  return invalid;
}

void KvHandler::Write(api::WriteResult& _return, api::ForwardedWrite write, bool forwarded_here) {
  if (Status s = ValidateForwarded(write); !s.ok()) ThrowFor(s, {});
  if (!coordinator_->IsOwner(write.pk)) {
    if (forwarded_here) throw NotOwnerRefusal(self_id_, write);
    return forwarder_.Forward(_return, std::move(write));
  }
  WriteOutcome out = Coordinate(write);
  // The view moved on since IsOwner(): nothing written.
  if (forwarded_here && out.status.Is(Status::Code::kNotOwner)) throw NotOwnerRefusal(self_id_, write);
  if (!out.status.ok()) ThrowFor(out.status, out.quorum);
  FillWriteResult(_return, std::move(out));
}

void KvHandler::forward_write(api::WriteResult& _return, const api::ForwardedWrite& write) {
  Write(_return, write, true);
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
