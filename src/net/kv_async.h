// KvAsyncCalls: MonjuKV's put, overwrite, remove, forward_write and get as
// deferred calls
// (deferred_call.h). The server thread decodes the call and starts it; the
// reply goes out from the thread that completes it (a store's writer, a
// fan-out thread or the coordinator's timer thread), so no server thread
// sleeps while replicas answer. Results and errors are exactly those of
// KvHandler (the generated processor's wire format).
//
// A write for a key this node does not replicate is forwarded to an owner by
// KvHandler on a thread of `forwarder`, which waits for the owner's answer:
// never on a server thread, since nodes forwarding to each other with every
// server thread so held would each wait for the other until the call timed
// out. A full forwarder queue answers Unavailable ("node overloaded"), and
// so does a write that waited longer than `max_wait` for a thread (its
// client has likely given up: sent now, it could land after a later write
// of the same key). Neither reached an owner, so a retry is safe. A write
// forwarded here (forward_write) is coordinated, or refused with NotOwner
// when this node does not replicate its key either; never forwarded again.
// query still runs on the server thread through KvHandler (it waits only on
// replicas, which never wait on this node's server threads).
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "coordinator.h"
#include "deferred_call.h"
#include "kv_handler.h"

namespace monju {

class KvAsyncCalls final : public DeferredCalls {
 public:
  // The coordinator and the forwarder are not owned and must outlive the
  // calls in flight (stop the forwarder first: it runs the tasks queued).
  KvAsyncCalls(Coordinator* coordinator, std::shared_ptr<KvHandler> handler, Executor* forwarder,
               std::chrono::milliseconds max_wait, std::string self_id)
      : coordinator_(coordinator),
        handler_(std::move(handler)),
        forwarder_(forwarder),
        max_wait_(max_wait),
        self_id_(std::move(self_id)) {}

  bool Handles(std::string_view name) const override;
  void Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) override;

 private:
  template <typename Args, typename Result>
  void StartWrite(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply);
  void StartGet(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply);
  void StartForwarded(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply);
  template <typename Args, typename Result>
  void StartForward(std::string name, int32_t seqid, Args& args, std::shared_ptr<DeferredReply> reply);

  Coordinator* coordinator_;
  std::shared_ptr<KvHandler> handler_;
  Executor* forwarder_;
  const std::chrono::milliseconds max_wait_;
  const std::string self_id_;  // named in NotOwner refusals
};

}  // namespace monju
