// RaftGroup: one member of the membership Raft group, on Debian's libraft
// (the raft.h C API, its libuv I/O with the TCP transport). No libraft or
// libuv type appears outside membership/.
//
// Contract
// - Start() opens (or creates) the log and snapshots in `dir`, bootstraps a
//   new group from `bootstrap` when the directory holds no Raft state yet
//   (ignored otherwise), listens on `address`, and returns once the loop
//   runs. With an empty `bootstrap` and no state, the member waits to be
//   added by the leader (a joining node).
// - libuv's loop and every libraft call run on the group's own thread. The
//   state machine's Apply/Snapshot/Restore are called there, one at a time.
// - Propose() appends an entry and waits until this member applied it, up to
//   the timeout. Only the leader can propose: elsewhere it fails at once with
//   not_leader set (Info() names the leader, if one is known). TimedOut
//   means the outcome is unknown (a later leader may still commit it); the
//   state machine's epoch rules make a retried entry harmless.
// - AddServer/AssignRole/RemoveServer change the Raft configuration (leader
//   only; one change at a time, else Unavailable "busy").
// - Info() returns what the loop last published (at most ~100 ms old); it
//   never waits for the loop.
// - Stop() closes the group (pending proposals fail with ShuttingDown) and
//   joins the thread; idempotent.
//
// Thread safety: every method may be called from any thread except the
// group's own (a state machine callback must not call back into it).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace monju {

// What libraft replicates: implemented by the membership state machine.
class RaftFsm {
 public:
  struct Result {
    Status status;       // the command's own outcome (a refusal is not a log error)
    uint64_t value = 0;  // e.g. the epoch after it
  };
  virtual ~RaftFsm() = default;
  virtual Result Apply(std::string_view entry) = 0;
  virtual std::string Snapshot() = 0;
  // Corruption when the bytes are not a snapshot: the group then fails.
  virtual Status Restore(std::string_view snapshot) = 0;
};

enum class RaftRole { kVoter, kStandby, kSpare };
const char* RaftRoleName(RaftRole role);

struct RaftServer {
  uint64_t id = 0;
  std::string address;
  RaftRole role = RaftRole::kVoter;
  bool operator==(const RaftServer&) const = default;
};

struct RaftInfo {
  enum class State { kUnavailable, kFollower, kCandidate, kLeader };
  State state = State::kUnavailable;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t last_applied = 0;
  uint64_t leader_id = 0;  // 0 when none is known
  std::string leader_address;
  std::vector<RaftServer> configuration;
  bool change_in_progress = false;  // an uncommitted configuration change
  bool IsLeader() const { return state == State::kLeader; }
};
const char* RaftStateName(RaftInfo::State state);

struct RaftOptions {
  uint64_t id = 0;
  std::string address;  // host:port (IPv4) to listen on and advertise
  std::string dir;      // created if missing
  std::vector<RaftServer> bootstrap;
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned snapshot_threshold = 128;  // entries between snapshots
  unsigned snapshot_trailing = 64;    // entries kept after one
  unsigned connect_retry_ms = 250;
  size_t max_queued_calls = 256;      // calls waiting for the loop; more are refused
};

class RaftGroup {
 public:
  // Errors: IOError (directory, log or listening address unusable),
  // InvalidArgument (bad options). `fsm` must outlive the group.
  static StatusOr<std::unique_ptr<RaftGroup>> Start(RaftOptions options, RaftFsm* fsm);
  ~RaftGroup();
  RaftGroup(const RaftGroup&) = delete;
  RaftGroup& operator=(const RaftGroup&) = delete;
  void Stop();

  struct Proposal {
    Status status;           // OK once applied here; see the contract
    bool not_leader = false;
    RaftFsm::Result result;  // the state machine's outcome, when applied
  };
  Proposal Propose(std::string entry, std::chrono::milliseconds timeout);

  // *not_leader is set when the call failed because this member is not
  // the leader.
  Status AddServer(uint64_t id, const std::string& address, std::chrono::milliseconds timeout,
                   bool* not_leader = nullptr);
  Status AssignRole(uint64_t id, RaftRole role, std::chrono::milliseconds timeout, bool* not_leader = nullptr);
  Status RemoveServer(uint64_t id, std::chrono::milliseconds timeout, bool* not_leader = nullptr);
  // Hands leadership to another voter (before this member is demoted or
  // removed); returns once the transfer ended either way.
  Status TransferLeadership(std::chrono::milliseconds timeout);

  RaftInfo Info() const;
  uint64_t id() const;
  const std::string& address() const;

 private:
  class Impl;
  explicit RaftGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monju
