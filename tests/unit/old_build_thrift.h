// Pieces for in-process Thrift servers that stand in for an older monjud
// (old_peer_test, write_forwarder_test).
#pragma once

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TProtocol.h>
#include <thrift/server/TServer.h>

#include <future>
#include <string>

namespace monju::test_support {

// Skips the call's arguments and answers "unknown method", as a build that
// lacks `fname` does (the generated processor's answer to any unknown name).
inline void AnswerUnknownMethod(apache::thrift::protocol::TProtocol* in, apache::thrift::protocol::TProtocol* out,
                                const std::string& fname, int32_t seqid) {
  using apache::thrift::TApplicationException;
  in->skip(apache::thrift::protocol::T_STRUCT);
  in->readMessageEnd();
  in->getTransport()->readEnd();
  TApplicationException x(TApplicationException::UNKNOWN_METHOD, "Invalid method name: '" + fname + "'");
  out->writeMessageBegin(fname, apache::thrift::protocol::T_EXCEPTION, seqid);
  x.write(out);
  out->writeMessageEnd();
  out->getTransport()->writeEnd();
  out->getTransport()->flush();
}

// Tells when a server listens (set it as the server's event handler).
class Listening final : public apache::thrift::server::TServerEventHandler {
 public:
  void preServe() override { ready.set_value(); }
  std::promise<void> ready;
};

}  // namespace monju::test_support
