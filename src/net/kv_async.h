// KvAsyncCalls: MonjuKV's put, overwrite, remove and get as deferred calls
// (deferred_call.h). The server thread decodes the call and starts it; the
// reply goes out from the thread that completes it (a store's writer, a
// fan-out thread or the coordinator's timer thread), so no server thread
// sleeps while replicas answer. Results and errors are exactly those of
// KvHandler (the generated processor's wire format). Writes this node must
// forward to an owner, and query, still run on the server thread through
// KvHandler.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <memory>
#include <string_view>

#include "coordinator.h"
#include "deferred_call.h"
#include "kv_handler.h"

namespace monju {

class KvAsyncCalls final : public DeferredCalls {
 public:
  // The coordinator is not owned and must outlive the calls in flight.
  KvAsyncCalls(Coordinator* coordinator, std::shared_ptr<KvHandler> handler)
      : coordinator_(coordinator), handler_(std::move(handler)) {}

  bool Handles(std::string_view name) const override;
  void Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) override;

 private:
  template <typename Args, typename Result>
  void StartWrite(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply);
  void StartGet(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply);

  Coordinator* coordinator_;
  std::shared_ptr<KvHandler> handler_;
};

}  // namespace monju
