// Thrift clients of a chaos run to one node: the public API (for the
// workload), the admin service (status, stats, injected faults) and the
// replica service (reading one owner's copy directly). Each object holds one
// connection and is used by one thread; it reconnects after a broken call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "MonjuAdmin.h"
#include "MonjuKV.h"
#include "MonjuReplica.h"
#include "common/status.h"
#include "history.h"

namespace monju::chaos {

struct CallOutcome {
  OpOutcome outcome = OpOutcome::kOk;
  std::string error;  // empty when ok
};

struct ReadResult : CallOutcome {
  bool found = false;
  std::vector<std::string> values;
  std::string context;
};

class KvSession {
 public:
  KvSession(std::string host, uint16_t port, int timeout_ms);
  ~KvSession();
  // r/w 0: the node's default.
  ReadResult Get(const std::string& pk, const std::string& sk, int r);
  CallOutcome Put(const std::string& pk, const std::string& sk, const std::string& value,
                  const std::string& context, int w);
  CallOutcome Remove(const std::string& pk, const std::string& sk, const std::string& context, int w);

 private:
  struct Conn;
  // Connects when needed; false (with the reason) when the node cannot be
  // reached, which means nothing was sent.
  bool Ensure(std::string* why);
  template <typename Fn>
  CallOutcome Call(bool is_write, Fn&& fn);

  const std::string host_;
  const uint16_t port_;
  const int timeout_ms_;
  std::unique_ptr<Conn> conn_;
};

// Reads one owner's own copy of keys (MonjuReplica.read, no quorum) over one
// kept connection, reconnecting after a failure.
class ReplicaReader {
 public:
  ReplicaReader(std::string host, uint16_t port, int timeout_ms, int64_t fingerprint);
  ~ReplicaReader();
  // The stored record bytes (encoded siblings; empty when absent).
  StatusOr<std::string> Read(const std::string& pk, const std::string& sk);

 private:
  struct Conn;
  const std::string host_;
  const uint16_t port_;
  const int timeout_ms_;
  const int64_t fingerprint_;
  std::unique_ptr<Conn> conn_;
};

// One-shot admin calls (a fresh connection each; they are rare).
class NodeAdmin {
 public:
  NodeAdmin(std::string host, uint16_t port, int timeout_ms);
  StatusOr<admin::NodeStatus> GetStatus() const;
  StatusOr<std::map<std::string, int64_t>> GetStats() const;
  Status SetLinkFaults(const std::map<std::string, admin::LinkFaultSpec>& faults) const;
  // Anti-entropy of every partition this node replicates with every
  // co-owner, now (`monju repair`); waits up to timeout_ms.
  StatusOr<admin::RepairResult> Repair(int timeout_ms) const;

 private:
  const std::string host_;
  const uint16_t port_;
  const int timeout_ms_;
};

}  // namespace monju::chaos
