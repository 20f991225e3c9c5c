// Limits on what Thrift's binary protocol will allocate for one message.
//
// Thrift 0.17 trusts the sizes it reads: a string whose header claims 2 GB is
// allocated and zero-filled before any of its bytes arrive, and a list of
// structs claiming 2^31 elements is resized to that length (the transport's
// byte-count check treats a struct as zero bytes long). One small garbage
// frame could therefore take gigabytes and stall every thread on the
// allocator. Every protocol Monju builds, server and client, sets both limits.
#pragma once

#include <thrift/protocol/TBinaryProtocol.h>

#include <cstdint>
#include <memory>

namespace monju {

// Largest element count of any list in the IDL, with room: a get may carry up
// to 65,536 siblings (the codec's limit); a replica batch holds at most 4,096.
inline constexpr int32_t kMaxThriftListElements = 1 << 17;

// A protocol factory for servers whose frames are at most max_frame_bytes: no
// string can be longer than the frame that holds it.
inline std::shared_ptr<apache::thrift::protocol::TBinaryProtocolFactory> LimitedProtocolFactory(
    int32_t max_frame_bytes) {
  return std::make_shared<apache::thrift::protocol::TBinaryProtocolFactory>(max_frame_bytes, kMaxThriftListElements,
                                                                            false, true);
}

// A client protocol over `transport`, whose replies are at most
// max_message_bytes.
inline std::shared_ptr<apache::thrift::protocol::TBinaryProtocol> LimitedProtocol(
    std::shared_ptr<apache::thrift::transport::TTransport> transport, int32_t max_message_bytes) {
  return std::make_shared<apache::thrift::protocol::TBinaryProtocol>(std::move(transport), max_message_bytes,
                                                                     kMaxThriftListElements, false, true);
}

}  // namespace monju
