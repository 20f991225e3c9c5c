// Operator service, multiplexed as "admin" on the node's port: what this node
// sees and counts; no cluster fingerprint needed. Read-only, except the
// testing-only fault injection.

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

exception AdminError { 1: string why }

// Testing only: a fault on this node's calls to one peer.
struct LinkFaultSpec {
  1: bool drop,             // calls fail as if the peer were unreachable
  2: i32 delay_ms,          // added before every call
}

service MonjuAdmin {
  NodeStatus status()
  // Counters since the process started, by name (see docs/design.md).
  map<string, i64> stats()
  // Replaces every injected link fault (peer id -> fault; empty heals all).
  // Refused unless the node runs with --fault-injection.
  void set_link_faults(1: map<string, LinkFaultSpec> faults) throws (1: AdminError error)
}
