#include "kv_async.h"

#include <stdexcept>
#include <string>
#include <utility>

namespace monju {
namespace {

// The declared exception of a failed outcome, set in a generated *_result.
template <typename Result>
void SetError(Result& result, const Status& s, const QuorumCount& q) {
  ApiError e = ApiErrorFor(s, q);
  switch (e.kind) {
    case ApiError::kInvalid:
      result.invalid = std::move(e.invalid);
      result.__isset.invalid = true;
      break;
    case ApiError::kUnavailable:
      result.unavailable = std::move(e.unavailable);
      result.__isset.unavailable = true;
      break;
    case ApiError::kTimedOut:
      result.timeout = std::move(e.timeout);
      result.__isset.timeout = true;
      break;
    case ApiError::kQuorumFailed:
      result.quorum = std::move(e.quorum);
      result.__isset.quorum = true;
      break;
  }
}

// Runs a KvHandler method on this thread and answers with what it returns
// or throws, as the generated processor would.
template <typename Result, typename Call>
void AnswerNow(const std::string& name, int32_t seqid, DeferredReply& reply, Call&& call) {
  Result result;
  try {
    call(result.success);
    result.__isset.success = true;
  } catch (api::InvalidRequest& e) {
    result.invalid = std::move(e);
    result.__isset.invalid = true;
  } catch (api::Unavailable& e) {
    result.unavailable = std::move(e);
    result.__isset.unavailable = true;
  } catch (api::QuorumFailed& e) {
    result.quorum = std::move(e);
    result.__isset.quorum = true;
  } catch (api::TimedOut& e) {
    result.timeout = std::move(e);
    result.__isset.timeout = true;
  } catch (const std::exception& e) {
    reply.Send(ExceptionMessage(name, seqid, e.what()));
    return;
  }
  reply.Send(ReplyMessage(name, seqid, result));
}

// The reply to a write, from its outcome.
template <typename Result>
Coordinator::WriteDone WriteReply(std::string name, int32_t seqid, std::shared_ptr<DeferredReply> reply) {
  return [name = std::move(name), seqid, reply = std::move(reply)](WriteOutcome out) {
    Result result;
    if (out.status.ok()) {
      FillWriteResult(result.success, std::move(out));
      result.__isset.success = true;
    } else {
      SetError(result, out.status, out.quorum);
    }
    reply->Send(ReplyMessage(name, seqid, result));
  };
}

// Answers a write that was never forwarded: Unavailable, for `why`.
template <typename Result>
void Refuse(const std::string& name, int32_t seqid, DeferredReply& reply, const std::string& why) {
  Result result;
  result.unavailable.why = "cannot forward the write to a replica of the key: " + why;
  result.unavailable.needed = 1;
  result.unavailable.alive = 0;
  result.__isset.unavailable = true;
  reply.Send(ReplyMessage(name, seqid, result));
}

void Undecodable(const std::string& method) { throw std::runtime_error("a " + method + " call that does not decode"); }

}  // namespace

bool KvAsyncCalls::Handles(std::string_view name) const {
  return name == "put" || name == "overwrite" || name == "get" || name == "remove" || name == "forward_write";
}

void KvAsyncCalls::Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) {
  const std::string_view name = CallName(message, size);
  if (name == "get") return StartGet(message, size, std::move(reply));
  if (name == "put") return StartWrite<api::MonjuKV_put_args, api::MonjuKV_put_result>(message, size, std::move(reply));
  if (name == "overwrite")
    return StartWrite<api::MonjuKV_overwrite_args, api::MonjuKV_overwrite_result>(message, size, std::move(reply));
  if (name == "remove")
    return StartWrite<api::MonjuKV_remove_args, api::MonjuKV_remove_result>(message, size, std::move(reply));
  if (name == "forward_write") return StartForwarded(message, size, std::move(reply));
  throw std::runtime_error("not a deferred call");
}

template <typename Args, typename Result>
void KvAsyncCalls::StartWrite(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) {
  std::string name;
  int32_t seqid = 0;
  Args args;
  if (!ReadCall(message, size, &name, &seqid, &args)) Undecodable("write");
  if (Status s = Coordinator::ValidateKey(args.pk, args.sk); s.ok() && !coordinator_->IsOwner(args.pk))
    return StartForward<Args, Result>(std::move(name), seqid, args, std::move(reply));
  auto done = WriteReply<Result>(std::move(name), seqid, std::move(reply));
  if constexpr (std::is_same_v<Args, api::MonjuKV_put_args>) {
    coordinator_->PutAsync(args.pk, args.sk, std::move(args.value), args.context, args.w, std::move(done));
  } else if constexpr (std::is_same_v<Args, api::MonjuKV_overwrite_args>) {
    coordinator_->OverwriteAsync(args.pk, args.sk, std::move(args.value), args.w, std::move(done));
  } else {
    coordinator_->RemoveAsync(args.pk, args.sk, args.context, args.w, std::move(done));
  }
}

template <typename Args, typename Result>
void KvAsyncCalls::StartForward(std::string name, int32_t seqid, Args& args, std::shared_ptr<DeferredReply> reply) {
  // std::function needs a copyable task: the write is shared, not copied.
  auto call = std::make_shared<api::ForwardedWrite>();
  call->kind = std::is_same_v<Args, api::MonjuKV_put_args>         ? api::WriteKind::PUT
               : std::is_same_v<Args, api::MonjuKV_overwrite_args> ? api::WriteKind::OVERWRITE
                                                                   : api::WriteKind::REMOVE;
  call->pk = std::move(args.pk);
  call->sk = std::move(args.sk);
  if constexpr (!std::is_same_v<Args, api::MonjuKV_remove_args>) call->value = std::move(args.value);
  if constexpr (!std::is_same_v<Args, api::MonjuKV_overwrite_args>) call->context = std::move(args.context);
  call->w = args.w;
  const auto queued_at = std::chrono::steady_clock::now();
  auto task = [handler = handler_, forwarder = forwarder_, max_wait = max_wait_, queued_at, name, seqid, call, reply] {
    if (forwarder->Stopping()) return Refuse<Result>(name, seqid, *reply, forwarder->RefusalReason());
    const auto waited = std::chrono::steady_clock::now() - queued_at;
    if (waited > max_wait)
      return Refuse<Result>(name, seqid, *reply,
                            "node overloaded: the write waited " +
                                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
                                " ms to be forwarded (limit " + std::to_string(max_wait.count()) + " ms)");
    AnswerNow<Result>(name, seqid, *reply,
                      [&](api::WriteResult& out) { handler->Write(out, std::move(*call), false); });
  };
  if (!forwarder_->Submit(std::move(task))) Refuse<Result>(name, seqid, *reply, forwarder_->RefusalReason());
}

void KvAsyncCalls::StartForwarded(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) {
  std::string name;
  int32_t seqid = 0;
  api::MonjuKV_forward_write_args args;
  if (!ReadCall(message, size, &name, &seqid, &args)) Undecodable("forward_write");
  api::ForwardedWrite& write = args.request;
  api::MonjuKV_forward_write_result refused;
  if (Status s = ValidateForwarded(write); !s.ok()) {
    SetError(refused, s, {});
    return reply->Send(ReplyMessage(name, seqid, refused));
  }
  // Never forwarded again: see forward_write in monju.thrift.
  if (!coordinator_->IsOwner(write.pk)) {
    refused.not_owner = NotOwnerRefusal(self_id_, write);
    refused.__isset.not_owner = true;
    return reply->Send(ReplyMessage(name, seqid, refused));
  }
  // The coordinator refuses too when the view moved on since IsOwner().
  auto answer = WriteReply<api::MonjuKV_forward_write_result>(name, seqid, reply);
  auto done = [answer = std::move(answer), refusal = NotOwnerRefusal(self_id_, write), name = std::move(name), seqid,
               reply = std::move(reply)](WriteOutcome out) {
    if (!out.status.Is(Status::Code::kNotOwner)) return answer(std::move(out));
    api::MonjuKV_forward_write_result result;
    result.not_owner = refusal;
    result.__isset.not_owner = true;
    reply->Send(ReplyMessage(name, seqid, result));
  };
  switch (write.kind) {
    case api::WriteKind::PUT:
      return coordinator_->PutAsync(write.pk, write.sk, std::move(write.value), write.context, write.w,
                                    std::move(done));
    case api::WriteKind::OVERWRITE:
      return coordinator_->OverwriteAsync(write.pk, write.sk, std::move(write.value), write.w, std::move(done));
    case api::WriteKind::REMOVE:
      return coordinator_->RemoveAsync(write.pk, write.sk, write.context, write.w, std::move(done));
  }
}

void KvAsyncCalls::StartGet(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) {
  std::string name;
  int32_t seqid = 0;
  api::MonjuKV_get_args args;
  if (!ReadCall(message, size, &name, &seqid, &args)) Undecodable("get");
  coordinator_->GetAsync(args.pk, args.sk, args.r,
                         [name = std::move(name), seqid, reply = std::move(reply)](ReadOutcome out) {
                           api::MonjuKV_get_result result;
                           if (out.status.ok()) {
                             result.success.found = out.found;
                             result.success.values = std::move(out.values);
                             result.success.context = std::move(out.context);
                             result.__isset.success = true;
                           } else {
                             SetError(result, out.status, out.quorum);
                           }
                           reply->Send(ReplyMessage(name, seqid, result));
                         });
}

}  // namespace monju
