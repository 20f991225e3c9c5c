// Operator service, multiplexed as "admin" on the node's port: what this node
// sees and counts, and its anti-entropy controls; no cluster fingerprint
// needed. Also, on a node started with --fault-injection only, injected
// link faults (testing).

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
  8: bool repair_paused,    // background anti-entropy paused
}

// One anti-entropy exchange of one partition with one co-owner.
struct ExchangeResult {
  1: i32 partition,
  2: string peer,
  3: bool ok,
  4: string error,            // when not ok
  5: bool different,          // the trees' roots differed
  6: i64 leaves_different,
  7: i64 keys_different,      // keys one side lacked or held with another clock
  8: i64 keys_sent,           // keys the peer got versions of
  9: i64 keys_received,       // keys this node got versions of
  10: i64 versions_sent,
  11: i64 versions_received,
  12: i64 withheld,           // reapable tombstones not sent to a replica holding nothing
  13: i64 bytes_sent,         // payload bytes
  14: i64 bytes_received,
  15: i64 round_trips,
  16: i64 elapsed_ms,
}

struct RepairResult {
  1: list<ExchangeResult> exchanges,
  2: i64 elapsed_ms,
  3: i32 trees_rebuilt,       // trees found inconsistent with the index and rebuilt first
}

// The request cannot be done as asked (code is a monju::Status code).
exception AdminError { 1: string why, 2: i32 code }

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

  // Anti-entropy now: `partition` (-1: every partition this node replicates)
  // with `node` ("": every co-owner), one exchange after another; returns
  // when all are done. Runs even while background exchanges are paused.
  // AdminError InvalidArgument when the partition is not replicated here or
  // the node is not a co-owner of it.
  RepairResult repair(1: i32 partition, 2: string node) throws (1: AdminError error)

  // Pauses (true) or resumes (false) background anti-entropy; running
  // exchanges stop at their next step. Returns the previous setting. Not
  // kept across restarts.
  bool set_repair_paused(1: bool paused)
}
