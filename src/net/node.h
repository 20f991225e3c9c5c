// Node: one monjud process. Wires the components in dependency order
// (store -> replica -> membership -> anti-entropy trees -> endpoints ->
// executor -> coordinator -> background workers -> server) and stops them in
// reverse.
//
// Two servers, each a CallServer (call_server.h: TFramedTransport's format,
// TBinaryProtocol; each call runs on the pool thread that read it, which
// writes the reply itself):
// - the client port (--listen) serves the public MonjuKV API (unprefixed, the
//   multiplexer's default) and MonjuAdmin ("admin") on --worker-threads;
// - the peer port (this node's peer_port in --peers) serves MonjuReplica
//   ("replica") on --peer-threads.
// A client request holds its thread while it waits for replicas; replica
// calls never wait on other nodes (but for Raft-managed membership's few,
// which wait on a bounded number of peers). Were both on one pool, a loaded
// cluster could have every thread of every node waiting for peers whose
// threads are all waiting too, until the request timeout. Apart, replica
// calls always find a thread.
#pragma once

#include <memory>
#include <thread>

#include "config/node_config.h"
#include "common/status.h"

namespace monju {

class Node {
 public:
  // Opens the data, starts serving and returns once the port is listening.
  // Errors: IOError (data cannot be opened, port cannot be bound) with a
  // message naming the flag to change.
  static StatusOr<std::unique_ptr<Node>> Start(const NodeConfig& config);
  // Stops serving, finishes in-flight writes and records a clean shutdown.
  ~Node();
  void Stop();

 private:
  class Impl;
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monju
