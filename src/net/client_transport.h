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
// buffer is empty; bytes left in it mean the framing is lost, and the pool
// checks that (ClientReadBuffer::HasBuffered) before it reuses a connection.
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

// The read buffer under the framed layer. A read at least as large as the
// buffer, with nothing buffered (the body of a big reply: a read_many may be
// 8 MiB), goes straight into the caller's memory rather than through the
// buffer in pieces of its size.
class ClientReadBuffer final : public apache::thrift::transport::TBufferedTransport {
 public:
  using TBufferedTransport::TBufferedTransport;
  // Bytes read from the socket and not yet taken: after a whole reply, any
  // are stray bytes, and the connection's framing cannot be trusted.
  bool HasBuffered() const { return rBase_ != rBound_; }

 protected:
  uint32_t readSlow(uint8_t* buf, uint32_t len) override {
    if (rBase_ == rBound_ && len >= rBufSize_) return transport_->read(buf, len);
    return TBufferedTransport::readSlow(buf, len);
  }
};

// The framed, read-buffered transport over `socket` (not opened yet). `config`
// bounds every frame, as TFramedTransport checks it.
inline std::shared_ptr<apache::thrift::transport::TFramedTransport> FramedClientTransport(
    std::shared_ptr<apache::thrift::transport::TSocket> socket,
    std::shared_ptr<apache::thrift::TConfiguration> config) {
  using namespace apache::thrift::transport;
  // Most replies fit in one recv().
  constexpr uint32_t kReadBuffer = 64 << 10;
  // Unused for writes (whole frames bypass it), so the smallest allowed.
  constexpr uint32_t kWriteBuffer = 1;
  auto buffered = std::make_shared<ClientReadBuffer>(std::move(socket), kReadBuffer, kWriteBuffer, config);
  return std::make_shared<TFramedTransport>(std::move(buffered), std::move(config));
}

// The read buffer under a FramedClientTransport stack, or nullptr for another.
inline std::shared_ptr<ClientReadBuffer> ReadBufferUnder(
    const std::shared_ptr<apache::thrift::transport::TTransport>& transport) {
  auto framed = std::dynamic_pointer_cast<apache::thrift::transport::TFramedTransport>(transport);
  return framed ? std::dynamic_pointer_cast<ClientReadBuffer>(framed->getUnderlyingTransport()) : nullptr;
}

// The socket under a FramedClientTransport stack, or nullptr for another one.
inline std::shared_ptr<apache::thrift::transport::TSocket> SocketUnder(
    const std::shared_ptr<apache::thrift::transport::TTransport>& transport) {
  auto buffered = ReadBufferUnder(transport);
  return buffered ? std::dynamic_pointer_cast<apache::thrift::transport::TSocket>(buffered->getUnderlyingTransport())
                  : nullptr;
}

}  // namespace monju
