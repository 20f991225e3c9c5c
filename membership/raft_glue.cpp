#include "raft_glue.h"

#include <cstring>
#include <exception>

namespace monju::raft_glue {
namespace {

}  // namespace

bool Frame(std::string_view payload, struct raft_buffer* out) {
  if (payload.size() > UINT32_MAX - 16) return false;
  const size_t framed = (4 + payload.size() + 7) / 8 * 8;
  out->base = raft_malloc(framed);
  if (!out->base) return false;
  out->len = framed;
  auto* bytes = static_cast<unsigned char*>(out->base);
  std::memset(bytes, 0, framed);
  const auto n = static_cast<uint32_t>(payload.size());
  bytes[0] = static_cast<unsigned char>(n >> 24);
  bytes[1] = static_cast<unsigned char>(n >> 16);
  bytes[2] = static_cast<unsigned char>(n >> 8);
  bytes[3] = static_cast<unsigned char>(n);
  if (!payload.empty()) std::memcpy(bytes + 4, payload.data(), payload.size());
  return true;
}

bool Unframe(const struct raft_buffer& buf, std::string_view* payload) {
  if (buf.len < 4) return false;
  const auto* bytes = static_cast<const unsigned char*>(buf.base);
  const uint32_t n = (uint32_t(bytes[0]) << 24) | (uint32_t(bytes[1]) << 16) | (uint32_t(bytes[2]) << 8) | bytes[3];
  if (n > buf.len - 4) return false;
  *payload = std::string_view(reinterpret_cast<const char*>(bytes + 4), n);
  return true;
}

namespace {

int FsmApply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
  auto* glue = static_cast<FsmGlue*>(fsm->data);
  std::string_view payload;
  if (!Unframe(*buf, &payload)) {
    glue->last = RaftFsm::Result{Status::Corruption("a Raft entry without its frame"), 0};
    *result = &glue->last;
    return 0;
  }
  try {
    glue->last = glue->machine->Apply(payload);
  } catch (const std::exception& e) {
    // A command must never stop the log; the state machine is not expected to throw.
    glue->last = RaftFsm::Result{Status::IOError(std::string("apply failed: ") + e.what()), 0};
  }
  *result = &glue->last;
  return 0;
}

int FsmSnapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
  auto* glue = static_cast<FsmGlue*>(fsm->data);
  std::string bytes;
  try {
    bytes = glue->machine->Snapshot();
  } catch (const std::exception&) {
    return RAFT_NOMEM;
  }
  auto* out = static_cast<struct raft_buffer*>(raft_malloc(sizeof(struct raft_buffer)));
  if (!out) return RAFT_NOMEM;
  if (!Frame(bytes, &out[0])) {
    raft_free(out);
    return RAFT_NOMEM;
  }
  *bufs = out;
  *n_bufs = 1;
  return 0;
}

int FsmRestore(struct raft_fsm* fsm, struct raft_buffer* buf) {
  auto* glue = static_cast<FsmGlue*>(fsm->data);
  std::string_view payload;
  if (!Unframe(*buf, &payload)) return RAFT_MALFORMED;
  Status s = glue->machine->Restore(payload);
  if (!s.ok()) return RAFT_MALFORMED;  // libraft still owns the buffer
  raft_free(buf->base);                // on success the state machine owns it
  return 0;
}

struct ApplyRequest {
  struct raft_apply req {};
  ApplyDone done;
};

void ApplyCb(struct raft_apply* req, int status, void* result) {
  auto* r = static_cast<ApplyRequest*>(req->data);
  if (status == 0 && result) {
    r->done(Status::OK(), *static_cast<const RaftFsm::Result*>(result));
  } else {
    r->done(FromRaft(status == 0 ? RAFT_IOERR : status, "the entry was not applied", nullptr), RaftFsm::Result{});
  }
  delete r;
}

struct ChangeRequest {
  struct raft_change req {};
  ChangeDone done;
};

void ChangeCb(struct raft_change* req, int status) {
  auto* r = static_cast<ChangeRequest*>(req->data);
  r->done(status == 0 ? Status::OK() : FromRaft(status, "the configuration change failed", nullptr));
  delete r;
}

template <typename Submit>
Status SubmitChange(struct raft* r, const std::string& what, ChangeDone done, int* rv_out, Submit submit) {
  auto* req = new ChangeRequest;
  req->req.data = req;
  req->done = std::move(done);
  int rv = submit(&req->req);
  if (rv_out) *rv_out = rv;
  if (rv != 0) {
    delete req;
    return FromRaft(rv, what, r);
  }
  return Status::OK();
}

}  // namespace

void InitFsm(FsmGlue* glue, RaftFsm* machine) {
  glue->machine = machine;
  std::memset(&glue->fsm, 0, sizeof(glue->fsm));
  glue->fsm.version = 1;
  glue->fsm.data = glue;
  glue->fsm.apply = FsmApply;
  glue->fsm.snapshot = FsmSnapshot;
  glue->fsm.restore = FsmRestore;
}

bool IsNotLeader(int rv) { return rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST; }

Status FromRaft(int rv, const std::string& what, struct raft* r) {
  std::string m = what + ": " + raft_strerror(rv);
  if (r && r->errmsg[0] != '\0' && rv != RAFT_NOTLEADER) m += " (" + std::string(r->errmsg) + ")";
  switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
    case RAFT_NOCONNECTION:
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
      return Status::Unavailable(m);
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
      return Status::ShuttingDown(m);
    case RAFT_NOSPACE:
      return Status::NoSpace(m);
    case RAFT_CORRUPT:
    case RAFT_MALFORMED:
      return Status::Corruption(m);
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_INVALID:
    case RAFT_NAMETOOLONG:
    case RAFT_TOOBIG:
    case RAFT_NOTFOUND:
      return Status::InvalidArgument(m);
    default:
      return Status::IOError(m);
  }
}

Status SubmitApply(struct raft* r, std::string_view entry, ApplyDone done, int* rv_out) {
  struct raft_buffer buf;
  if (!Frame(entry, &buf)) return Status::IOError("out of memory for a Raft entry");
  auto* req = new ApplyRequest;
  req->req.data = req;
  req->done = std::move(done);
  int rv = raft_apply(r, &req->req, &buf, 1, ApplyCb);
  if (rv_out) *rv_out = rv;
  if (rv != 0) {
    raft_free(buf.base);  // not taken over on failure
    delete req;
    return FromRaft(rv, "cannot append the entry", r);
  }
  return Status::OK();
}

namespace {

struct TransferRequest {
  struct raft_transfer req {};
  ChangeDone done;
};

void TransferCb(struct raft_transfer* req) {
  auto* r = static_cast<TransferRequest*>(req->data);
  r->done(Status::OK());
  delete r;
}

}  // namespace

Status SubmitTransfer(struct raft* r, ChangeDone done, int* rv_out) {
  auto* req = new TransferRequest;
  req->req.data = req;
  req->done = std::move(done);
  int rv = raft_transfer(r, &req->req, 0, TransferCb);
  if (rv_out) *rv_out = rv;
  if (rv != 0) {
    delete req;
    return FromRaft(rv, "cannot transfer leadership", r);
  }
  return Status::OK();
}

int RoleCode(RaftRole role) {
  switch (role) {
    case RaftRole::kVoter: return RAFT_VOTER;
    case RaftRole::kStandby: return RAFT_STANDBY;
    case RaftRole::kSpare: return RAFT_SPARE;
  }
  return RAFT_SPARE;
}

Status SubmitAdd(struct raft* r, uint64_t id, const std::string& address, ChangeDone done, int* rv) {
  return SubmitChange(r, "cannot add Raft server " + address, std::move(done), rv,
                      [&](struct raft_change* req) { return raft_add(r, req, id, address.c_str(), ChangeCb); });
}

Status SubmitAssign(struct raft* r, uint64_t id, RaftRole role, ChangeDone done, int* rv) {
  return SubmitChange(r, std::string("cannot make a Raft server ") + RaftRoleName(role), std::move(done), rv,
                      [&](struct raft_change* req) { return raft_assign(r, req, id, RoleCode(role), ChangeCb); });
}

Status SubmitRemove(struct raft* r, uint64_t id, ChangeDone done, int* rv) {
  return SubmitChange(r, "cannot remove a Raft server", std::move(done), rv,
                      [&](struct raft_change* req) { return raft_remove(r, req, id, ChangeCb); });
}

RaftInfo InfoOf(struct raft* r) {
  RaftInfo info;
  switch (raft_state(r)) {
    case RAFT_FOLLOWER: info.state = RaftInfo::State::kFollower; break;
    case RAFT_CANDIDATE: info.state = RaftInfo::State::kCandidate; break;
    case RAFT_LEADER: info.state = RaftInfo::State::kLeader; break;
    default: info.state = RaftInfo::State::kUnavailable;
  }
  info.term = r->current_term;
  info.commit_index = r->commit_index;
  info.last_applied = raft_last_applied(r);
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(r, &leader, &address);
  info.leader_id = leader;
  if (address) info.leader_address = address;
  for (unsigned i = 0; i < r->configuration.n; ++i) {
    const struct raft_server& s = r->configuration.servers[i];
    RaftRole role = s.role == RAFT_VOTER ? RaftRole::kVoter : s.role == RAFT_STANDBY ? RaftRole::kStandby
                                                                                      : RaftRole::kSpare;
    info.configuration.push_back({s.id, s.address ? s.address : "", role});
  }
  info.change_in_progress = r->configuration_uncommitted_index != 0;
  return info;
}

}  // namespace monju::raft_glue
