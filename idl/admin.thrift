// Operator service, multiplexed as "admin" on the node's port: what this node
// sees and counts. Read-only; no cluster fingerprint needed.

namespace cpp monju.admin

struct PeerStatus {
  1: string id,
  2: string address,        // host:port
  3: string state,          // alive | suspect | down (this node's view); "self"
  4: double phi,            // accrual suspicion level
  5: i64 ms_since_heard,
  6: i64 pending_hints,     // hints this node holds for the peer
}

struct NodeStatus {
  1: string id,
  2: string ring,           // Q, N, vnodes and members
  3: i64 fingerprint,
  4: list<PeerStatus> peers,
  5: i64 pending_hints_total,
  6: map<string, i32> partitions_owned,  // member id -> partitions it replicates
  7: bool sloppy_quorum,
}

service MonjuAdmin {
  NodeStatus status()
  // Counters since the process started, by name (see docs/design.md).
  map<string, i64> stats()
}
