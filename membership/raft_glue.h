// Internal to membership/: the C glue between libraft and RaftFsm, shared by
// RaftGroup (libuv I/O) and the deterministic tests on libraft's in-memory
// fixture (raft/fixture.h). Every function here must run on the thread that
// drives the raft instance.
#pragma once

// libraft 0.15 headers have no extern "C" guards of their own.
extern "C" {
#include <raft.h>
}

#include <functional>
#include <string>
#include <string_view>

#include "raft_group.h"

namespace monju::raft_glue {

// A raft_fsm calling into a RaftFsm. Pass &glue->fsm to raft_init (or the
// fixture); the glue must outlive the raft instance.
struct FsmGlue {
  struct raft_fsm fsm {};
  RaftFsm* machine = nullptr;
  // The outcome of the entry applied last; libraft hands its address to the
  // apply callback right after the apply, on the same thread.
  RaftFsm::Result last;
};
void InitFsm(FsmGlue* glue, RaftFsm* machine);

// libraft lays entries out in batches padded to 8 bytes and gives followers
// the padded length back, so every entry and snapshot handed to it is
// framed: a 4-byte big-endian payload length, the payload, zeros up to a
// multiple of 8. Frame allocates with raft_malloc (false: out of memory).
bool Frame(std::string_view payload, struct raft_buffer* out);
// False when the buffer is not a well-formed frame.
bool Unframe(const struct raft_buffer& buf, std::string_view* payload);

// A Status for a libraft error code, naming what failed.
Status FromRaft(int rv, const std::string& what, struct raft* r);
bool IsNotLeader(int rv);

// Appends `entry`. OK: `done` runs later, once the entry is applied here or
// failed (leadership lost, shutdown). An error is returned at once (done is
// never called); *rv then holds libraft's code.
using ApplyDone = std::function<void(Status status, const RaftFsm::Result& result)>;
Status SubmitApply(struct raft* r, std::string_view entry, ApplyDone done, int* rv = nullptr);

using ChangeDone = std::function<void(Status status)>;
Status SubmitAdd(struct raft* r, uint64_t id, const std::string& address, ChangeDone done, int* rv = nullptr);
Status SubmitAssign(struct raft* r, uint64_t id, RaftRole role, ChangeDone done, int* rv = nullptr);
Status SubmitRemove(struct raft* r, uint64_t id, ChangeDone done, int* rv = nullptr);
// To any other voter; `done` runs once the transfer ended (OK or not).
Status SubmitTransfer(struct raft* r, ChangeDone done, int* rv = nullptr);

int RoleCode(RaftRole role);
RaftInfo InfoOf(struct raft* r);

}  // namespace monju::raft_glue
