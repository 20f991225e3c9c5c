// ServiceDemux: Thrift's multiplexing ("service:method" message names) at
// the cost of a header rewrite instead of TMultiplexedProcessor's.
//
// Why: under load, TMultiplexedProcessor took about 7% of a node's
// user-space instructions (callgrind, workload A): every call splits its
// name with boost::tokenizer into a vector of strings, looks the service up,
// and wraps the input protocol in a heap-allocated StoredMessageProtocol.
// Route() instead finds the service in the frame's message header and
// rewrites that header in place so that the frame, read from a later
// offset, is the same call named by its method alone; the service's
// processor then reads it as if it had come unmultiplexed.
//
// Behaviour is TMultiplexedProcessor's: a name without ':' goes to the
// default processor; "service:method" to the service's. Every other frame
// (another message type, an empty part, more than one ':', an unknown
// service, a header that does not parse) is left as it is and routed to a
// TMultiplexedProcessor holding the same registrations, which answers or
// throws exactly as Thrift does.
//
// Thread-safety: Register*() before the first call; Route() and process()
// from any number of threads at once (the processors must allow it, as
// Thrift's generated ones do with thread-safe handlers).
#pragma once

#include <thrift/TProcessor.h>
#include <thrift/processor/TMultiplexedProcessor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace monju {

class ServiceDemux final : public apache::thrift::TProcessor {
 public:
  ServiceDemux();

  // Calls named "service:method" go to `processor`.
  void Register(const std::string& service, std::shared_ptr<apache::thrift::TProcessor> processor);
  // Calls named without a service go to `processor`.
  void RegisterDefault(std::shared_ptr<apache::thrift::TProcessor> processor);

  // The processor for the binary-protocol call in frame[0, *size). When it
  // is a service's or the default one, *frame and *size may move past a
  // rewritten prefix (the bytes before the new *frame are then garbage);
  // otherwise they are left untouched and the fallback is returned.
  apache::thrift::TProcessor& Route(uint8_t** frame, uint32_t* size);

  // As TMultiplexedProcessor (for callers without the frame's bytes).
  bool process(std::shared_ptr<apache::thrift::protocol::TProtocol> in,
               std::shared_ptr<apache::thrift::protocol::TProtocol> out, void* connection_context) override;

 private:
  std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>, std::less<>> services_;
  std::shared_ptr<apache::thrift::TProcessor> default_;
  std::shared_ptr<apache::thrift::TMultiplexedProcessor> fallback_;
};

}  // namespace monju
