// The transport stack of every Monju Thrift client: framed, over a read
// buffer, over a TSocket with explicit timeouts.
//
// The read buffer matters for the syscall count: TFramedTransport reads a
// frame's 4-byte size and then its body, two recv() calls straight on a
// socket; over the buffer one recv() usually brings both. Writes are not
// buffered twice: the framed transport hands each whole frame down in one
// write, which passes straight to the socket.
//
// A connection carries one call at a time, so once a reply has been read the
// buffer is empty, and a readable socket still means a reply is waiting
// (ReadinessPoller relies on that).
#pragma once

#include <thrift/TConfiguration.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <memory>

namespace monju {

struct ClientSocketOptions {
  int connect_timeout_ms = 1000;
  int io_timeout_ms = 5000;  // each send and receive
  bool no_delay = true;      // TCP_NODELAY: requests are small and latency-bound
};

// Sets the socket's timeouts and options the way every Monju client does.
inline void ConfigureClientSocket(apache::thrift::transport::TSocket& socket, const ClientSocketOptions& options) {
  socket.setConnTimeout(options.connect_timeout_ms);
  socket.setRecvTimeout(options.io_timeout_ms);
  socket.setSendTimeout(options.io_timeout_ms);
  socket.setNoDelay(options.no_delay);
  socket.setLinger(false, 0);
}

// The framed, read-buffered transport over `socket` (not opened yet). `config`
// bounds every frame, as TFramedTransport checks it.
inline std::shared_ptr<apache::thrift::transport::TFramedTransport> FramedClientTransport(
    std::shared_ptr<apache::thrift::transport::TSocket> socket,
    std::shared_ptr<apache::thrift::TConfiguration> config) {
  using namespace apache::thrift::transport;
  // Most replies fit; larger ones stream through it in pieces of this size.
  constexpr uint32_t kReadBuffer = 64 << 10;
  // Unused for writes (whole frames bypass it), so the smallest allowed.
  constexpr uint32_t kWriteBuffer = 1;
  auto buffered = std::make_shared<TBufferedTransport>(std::move(socket), kReadBuffer, kWriteBuffer, config);
  return std::make_shared<TFramedTransport>(std::move(buffered), std::move(config));
}

// The socket under a FramedClientTransport stack, or nullptr for another one.
inline std::shared_ptr<apache::thrift::transport::TSocket> SocketUnder(
    const std::shared_ptr<apache::thrift::transport::TTransport>& transport) {
  using namespace apache::thrift::transport;
  auto framed = std::dynamic_pointer_cast<TFramedTransport>(transport);
  auto buffered = framed ? std::dynamic_pointer_cast<TBufferedTransport>(framed->getUnderlyingTransport()) : nullptr;
  return buffered ? std::dynamic_pointer_cast<TSocket>(buffered->getUnderlyingTransport()) : nullptr;
}

}  // namespace monju
