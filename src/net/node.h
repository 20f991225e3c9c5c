// Node: one monjud process. Wires the components in dependency order
// (store -> replica -> membership -> anti-entropy trees -> endpoints ->
// executor -> coordinator -> background workers -> server) and stops them in
// reverse.
//
// One port serves both the public MonjuKV API (unprefixed, the multiplexer's
// default) and MonjuReplica (multiplexed as "replica"), with TFramedTransport +
// TBinaryProtocol on a TNonblockingServer whose requests run on a worker pool.
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
