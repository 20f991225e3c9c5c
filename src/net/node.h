// Node: one monjud process. Wires the components in dependency order
// (store -> replica -> membership -> anti-entropy trees -> endpoints ->
// executor -> coordinator -> background workers -> server) and stops them in
// reverse.
//
// Two servers, each a TNonblockingServer (TFramedTransport + TBinaryProtocol):
// - the client port (--listen) serves the public MonjuKV API (unprefixed, the
//   multiplexer's default) and MonjuAdmin ("admin") on a worker pool of
//   --worker-threads;
// - the peer port (this node's peer_port in --peers) serves MonjuReplica
//   ("replica") on --peer-threads I/O threads, each running its requests to
//   completion; with Raft-managed membership, whose peer calls may wait on
//   other nodes, on a worker pool of --peer-threads instead.
// A client request holds its worker while it waits for replicas; replica
// calls never wait on other nodes. Were both on one pool, a loaded cluster
// could have every worker of every node waiting for peers whose workers are
// all waiting too, until the request timeout. Apart, replica calls always
// find a thread. They run on the I/O thread that read them because the
// hand-off to a pool and back (two thread wake-ups per call) cost more than
// the calls themselves; peer connections come only from the peers' bounded
// client pools, so a call waiting on its fsync delays few others.
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
