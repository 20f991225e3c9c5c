// Deferred calls: a CallServer call answered after its handler has returned,
// from whichever thread completes it, so that no server thread waits while a
// request waits for replicas or a disk (call_server.h).
//
// A DeferredCalls handler sees each call's method name before the Thrift
// processor does. The calls it takes get a DeferredReply; the connection
// reads no further call until that reply is sent, so a connection's calls
// are still answered in order.
#pragma once

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "thrift_limits.h"

namespace monju {

// The answer to one deferred call. Thread-safe; Send() at most once.
class DeferredReply {
 public:
  virtual ~DeferredReply() = default;
  // Sends `message` (a whole binary-protocol reply message, without the
  // frame's length) on the call's connection. Never blocks: what the socket
  // does not take at once is sent by the server's threads. Dropped when the
  // connection has closed meanwhile. A reply destroyed unsent closes the
  // connection (the caller would otherwise wait for ever).
  virtual void Send(std::string message) = 0;
};

class DeferredCalls {
 public:
  virtual ~DeferredCalls() = default;
  // True for the method names (as in the frame, service prefix included)
  // that Start() answers.
  virtual bool Handles(std::string_view name) const = 0;
  // Takes the call in `message` (the frame without its length, valid only
  // during this call). Errors in it are answered through `reply` as the
  // generated processor would; an exception closes the connection.
  virtual void Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) = 0;
};

// The method name of the binary-protocol message in frame[0, size) (strict
// or old-style header); empty when the header does not parse.
std::string_view CallName(const uint8_t* frame, uint32_t size);

// Reads a call's message header and arguments; false when they do not
// decode (a frame for the method that is not a valid call).
template <typename Args>
bool ReadCall(const uint8_t* message, uint32_t size, std::string* name, int32_t* seqid, Args* args) {
  using apache::thrift::transport::TMemoryBuffer;
  auto buffer = std::make_shared<TMemoryBuffer>(const_cast<uint8_t*>(message), size, TMemoryBuffer::OBSERVE);
  apache::thrift::protocol::TBinaryProtocol in(buffer, size, kMaxThriftListElements, false, true);
  try {
    apache::thrift::protocol::TMessageType type;
    in.readMessageBegin(*name, type, *seqid);
    if (type != apache::thrift::protocol::T_CALL) return false;
    args->read(&in);
    in.readMessageEnd();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// A reply message (T_REPLY) for the call `name`/`seqid` carrying `result`
// (a generated *_result struct).
template <typename Result>
std::string ReplyMessage(const std::string& name, int32_t seqid, const Result& result) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(256);
  apache::thrift::protocol::TBinaryProtocol out(buffer);
  out.writeMessageBegin(name, apache::thrift::protocol::T_REPLY, seqid);
  result.write(&out);
  out.writeMessageEnd();
  return buffer->getBufferAsString();
}

// The reply a generated processor sends when its handler throws something
// that is not one of the method's declared exceptions.
std::string ExceptionMessage(const std::string& name, int32_t seqid, const std::string& what);

}  // namespace monju
