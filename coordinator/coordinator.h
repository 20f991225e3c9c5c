// Coordinator: runs one client request against the key's N replicas.
//
// Contract
// - Every request goes to all N replicas of the key's partition in parallel
//   (never one after another); the local replica is called in-process. The
//   answer comes as soon as W writes (or R reads) have acknowledged, within
//   the request deadline. Partial success is never reported as success.
// - Errors: InvalidArgument (bad input, nothing sent), Unavailable (fewer
//   replicas believed alive than needed, nothing sent), QuorumFailed (replicas
//   answered but too few acknowledged), TimedOut (the deadline passed first).
//   `needed` and `got` say how many were needed and how many were alive or
//   acknowledged.
// - Writes need a dot from a replica of the key. When this node is not one,
//   IsOwner() is false and the caller forwards the write to an owner
//   (Put/Remove then return InvalidArgument).
// - Reads merge the replies by clock. A key whose surviving siblings are all
//   tombstones reads as not found, with the context still returned.
//
// Thread safety: all methods may be called concurrently. The coordinator does
// not own the endpoints, executor, clock or membership; they must outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clock/causal.h"
#include "common/clock.h"
#include "common/status.h"
#include "membership.h"
#include "replica.h"
#include "storage/data_store.h"

namespace monju {

// How the coordinator reaches one replica. Calls block until answered or
// until the endpoint's own timeout; they may run on any thread.
class ReplicaEndpoint {
 public:
  virtual ~ReplicaEndpoint() = default;
  virtual Status Apply(const ItemKey& key, const Version& version) = 0;
  virtual Status Read(const ItemKey& key, SiblingSet* out) = 0;
  virtual Status Scan(const DataStore::ScanRequest& request, std::vector<ScannedItem>* out, bool* more) = 0;
  // False while the peer is known to be down: the coordinator does not count it.
  virtual bool LikelyAlive() const = 0;
};

// Endpoints by member index of a view (the local one included).
class EndpointDirectory {
 public:
  virtual ~EndpointDirectory() = default;
  virtual ReplicaEndpoint& Endpoint(const ClusterView& view, uint32_t member_index) = 0;
};

// Runs fan-out calls on other threads (tests may run quick tasks inline).
class Executor {
 public:
  virtual ~Executor() = default;
  // False when the executor is overloaded or stopping: the task will not run.
  virtual bool Submit(std::function<void()> task) = 0;
};

struct CoordinatorOptions {
  std::string self_id;
  uint32_t default_r = 2;
  uint32_t default_w = 2;
  std::chrono::milliseconds request_timeout{2000};
  uint64_t max_value_bytes = 1 << 20;
};

struct QuorumCount {
  int needed = 0;
  int got = 0;  // alive (Unavailable) or acknowledged (QuorumFailed)
};

struct WriteOutcome {
  Status status;
  QuorumCount quorum;
  std::string context;  // encoded; covers exactly the version written
};

struct ReadOutcome {
  Status status;
  QuorumCount quorum;
  bool found = false;
  std::vector<std::string> values;
  std::string context;
};

struct QueryItem {
  std::string sk;
  std::vector<std::string> values;
  std::string context;
};

struct QueryOutcome {
  Status status;
  QuorumCount quorum;
  std::vector<QueryItem> items;
  std::string next_start_sk;
};

struct QueryRequest {
  std::string pk;
  std::string sk_prefix;
  std::string start_sk;
  int32_t limit = 0;  // 0: 100; > 1000 invalid
  bool ascending = true;
  int32_t r = 0;
};

class Coordinator {
 public:
  // `local` may be null on a node that holds no data (tests); then the node
  // never coordinates writes itself.
  Coordinator(CoordinatorOptions options, const Membership* membership, Replica* local,
              EndpointDirectory* endpoints, Executor* executor, const Clock* clock);

  // True when this node is a replica of pk's partition in the current view.
  bool IsOwner(const std::string& pk) const;

  // w == 0 means the default. context: bytes from a previous read or write.
  WriteOutcome Put(const std::string& pk, const std::string& sk, std::string value, const std::string& context,
                   int32_t w);
  WriteOutcome Remove(const std::string& pk, const std::string& sk, const std::string& context, int32_t w);
  ReadOutcome Get(const std::string& pk, const std::string& sk, int32_t r);
  QueryOutcome Query(const QueryRequest& request);

  // Validation shared with the network layer: InvalidArgument naming the field.
  static Status ValidateKey(const std::string& pk, const std::string& sk);
  Status ValidateQuorum(int32_t value, const char* name, uint32_t replicas) const;

 private:
  WriteOutcome Write(const std::string& pk, const std::string& sk, bool tombstone, std::string value,
                     const std::string& context, int32_t w);

  CoordinatorOptions options_;
  const Membership* membership_;
  Replica* local_;
  EndpointDirectory* endpoints_;
  Executor* executor_;
  const Clock* clock_;
};

}  // namespace monju
