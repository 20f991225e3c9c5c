// ClientPool: reusable Thrift clients to one peer.
//
// Generated Thrift clients are not thread-safe, so each call borrows one
// client for its whole duration. A client whose call failed at the transport
// level is dropped, never returned. An idle connection that the peer closed
// (it restarted) is noticed at Borrow() and replaced, so the first call after
// a peer restart does not fail. Thread-safe.
#pragma once

#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "connect_from.h"
#include "link_faults.h"
#include "client_transport.h"
#include "thrift_limits.h"

#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace monju {

struct ConnectionOptions {
  std::string host;
  uint16_t port = 0;
  int connect_timeout_ms = 1000;
  int io_timeout_ms = 2000;          // send and receive
  int max_message_bytes = 64 << 20;  // replies larger than this are refused
  std::string service;               // multiplexed service name; "" for none
  size_t max_idle = 64;              // idle clients kept per peer
  // Local address to connect from ("" for the kernel's choice): a node
  // connects from the address it listens on, so peers (and packet filters)
  // see which node a connection comes from.
  std::string bind_host;
  // Testing only (--fault-injection): faults on the link to `peer_id`.
  const LinkFaults* faults = nullptr;
  std::string peer_id;
};

template <typename Client>
class ClientPool {
 public:
  explicit ClientPool(ConnectionOptions options) : options_(std::move(options)) {}

  // A connected client; throws apache::thrift::transport::TTransportException
  // when the peer cannot be reached.
  std::unique_ptr<Client> Borrow() {
    if (options_.faults) ApplyInjectedFault();
    for (;;) {
      std::unique_ptr<Client> c;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (idle_.empty()) break;
        c = std::move(idle_.back());
        idle_.pop_back();
      }
      if (StillOpen(*c)) return c;
    }
    return Connect();
  }

  // Returns a client whose last call completed (successfully or with an
  // application exception); its connection is in a known state.
  void Return(std::unique_ptr<Client> client) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < options_.max_idle) idle_.push_back(std::move(client));
  }

  // Drops idle connections (after a peer was seen failing).
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.clear();
  }

  const ConnectionOptions& options() const { return options_; }

  // The descriptor of a client's connection, to poll for a reply: -1 when it
  // is not open, or when bytes are already buffered (the caller then takes
  // the reply at once; polling could wait for bytes already read). After a
  // send, nothing of its reply is buffered before the socket is readable.
  static int SocketOf(Client& client) {
    auto socket = QuietSocket(client);
    return socket ? static_cast<int>(socket->getSocketFD()) : -1;
  }

 private:
  // The client's socket when it is open and nothing is buffered above it,
  // else nullptr.
  static std::shared_ptr<apache::thrift::transport::TSocket> QuietSocket(Client& client) {
    const auto& transport = client.getInputProtocol()->getTransport();
    auto buffer = ReadBufferUnder(transport);
    if (!buffer || buffer->HasBuffered()) return nullptr;
    auto socket = SocketUnder(transport);
    return socket && socket->isOpen() ? socket : nullptr;
  }

  // An idle connection must have nothing to read: end of file means the peer
  // closed it, and stray bytes mean its framing is lost. Never blocks.
  static bool StillOpen(Client& client) {
    auto socket = QuietSocket(client);
    if (!socket) return false;
    char byte;
    ssize_t n = ::recv(socket->getSocketFD(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void ApplyInjectedFault() {
    LinkFault fault = options_.faults->To(options_.peer_id);
    if (fault.delay.count() > 0) std::this_thread::sleep_for(fault.delay);
    if (!fault.drop) return;
    Clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.connect_timeout_ms));
    throw apache::thrift::transport::TTransportException(apache::thrift::transport::TTransportException::NOT_OPEN,
                                                         options_.peer_id + " unreachable (injected fault)");
  }

  std::unique_ptr<Client> Connect() {
    using namespace apache::thrift;
    auto config = std::make_shared<TConfiguration>(options_.max_message_bytes, options_.max_message_bytes);
    std::shared_ptr<transport::TSocket> socket;
    if (options_.bind_host.empty()) {
      socket = std::make_shared<transport::TSocket>(options_.host, options_.port, config);
    } else {
      socket = std::make_shared<transport::TSocket>(
          ConnectFrom(options_.bind_host, options_.host, options_.port, options_.connect_timeout_ms), config);
    }
    ConfigureClientSocket(*socket, {options_.connect_timeout_ms, options_.io_timeout_ms});
    auto transport = FramedClientTransport(socket, config);
    std::shared_ptr<protocol::TProtocol> protocol = LimitedProtocol(transport, options_.max_message_bytes);
    if (!options_.service.empty())
      protocol = std::make_shared<protocol::TMultiplexedProtocol>(protocol, options_.service);
    transport->open();
    return std::make_unique<Client>(protocol);
  }

  const ConnectionOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Client>> idle_;
};

}  // namespace monju
