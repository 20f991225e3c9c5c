#include "membership_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "membership_clients.h"
#include "placement.h"

namespace monju {
namespace {

[[noreturn]] void Throw(const Status& s) {
  membership::MembershipError e;
  e.why = s.message();
  e.code = static_cast<int32_t>(s.code());
  throw e;
}

void Fill(membership::ChangeReply& out, const StatusOr<ProposeReply>& r) {
  if (!r.ok()) Throw(r.status());
  out.epoch = static_cast<int64_t>(r.value().epoch);
  out.summary = r.value().summary;
}

constexpr int32_t kMaxStreamItems = 4096;
constexpr int32_t kMaxStreamBytes = 8 << 20;

}  // namespace

void MembershipHandler::join(membership::ChangeReply& _return) { Fill(_return, service_->Join()); }

void MembershipHandler::replace(membership::ChangeReply& _return, const std::string& dead_id,
                                const std::string& new_id) {
  Fill(_return, service_->Replace(dead_id, new_id));
}

void MembershipHandler::leave(membership::ChangeReply& _return, const std::string& id) {
  Fill(_return, service_->Leave(id));
}

void MembershipHandler::abort(membership::ChangeReply& _return) { Fill(_return, service_->Abort()); }

void MembershipHandler::members(membership::MembersReply& _return) {
  MembersSnapshot snap = service_->Members();
  const ClusterMetadata& md = snap.metadata;
  auto view = service_->gate().Current();
  _return.epoch = static_cast<int64_t>(md.epoch);
  _return.partitions = static_cast<int32_t>(md.partitions);
  _return.replicas = static_cast<int32_t>(md.replicas);
  _return.voters = static_cast<int32_t>(md.voters);
  _return.cluster_id = md.cluster_id;
  _return.self_id = self_id_;
  _return.raft_state = RaftStateName(snap.raft.state);
  _return.leader = snap.leader_id;
  _return.raft_term = static_cast<int64_t>(snap.raft.term);
  _return.applied_epoch = static_cast<int64_t>(snap.applied_epoch);
  if (md.change) {
    _return.change = std::string(ChangeKindName(md.change->kind)) + " " + md.change->node;
    if (md.change->kind == ChangeKind::kReplace) _return.change += " for " + md.change->replaced;
    _return.change += std::string(" (") + ChangePhaseName(md.change->phase) + ")";
  }
  std::map<std::string, int32_t> reads, writes;
  for (uint32_t p = 0; p < view->ring().partitions(); ++p) {
    for (uint32_t m : view->ReadOwners(p)) ++reads[view->members()[m].id];
    for (uint32_t m : view->WriteOwners(p)) ++writes[view->members()[m].id];
  }
  for (const auto& m : md.members) {
    membership::MemberInfo info;
    info.id = m.id;
    info.address = m.Address();
    info.peer_address = m.PeerAddress();
    info.raft_address = m.raft_address;
    info.vnodes = static_cast<int32_t>(m.vnodes);
    info.state = MemberStateName(m.state);
    info.token_owner = m.token_owner;
    for (const auto& s : snap.raft.configuration)
      if (s.id == m.raft_id) info.raft_role = RaftRoleName(s.role);
    info.health = m.id == self_id_ ? "self" : m.state == MemberState::kRemoved ? "" : health_(m.id);
    info.partitions_read = reads[m.id];
    info.partitions_written = writes[m.id];
    _return.members.push_back(std::move(info));
  }
  for (const auto& [node, report] : snap.progress) _return.progress.push_back(ToThrift(node, report));
}

void MembershipHandler::ring(membership::RingReply& _return) {
  auto view = service_->gate().Current();
  _return.epoch = static_cast<int64_t>(view->epoch());
  _return.replicas = static_cast<int32_t>(view->ring().replicas());
  for (uint32_t p = 0; p < view->ring().partitions(); ++p) {
    membership::PartitionOwners owners;
    owners.partition = static_cast<int32_t>(p);
    for (uint32_t m : view->ReadOwners(p)) owners.readers.push_back(view->members()[m].id);
    for (uint32_t m : view->WriteOwners(p)) owners.writers.push_back(view->members()[m].id);
    _return.partitions.push_back(std::move(owners));
  }
}

void MembershipHandler::metadata(std::string& _return, int64_t cluster_fingerprint) {
  auto bytes = service_->MetadataBytes(static_cast<uint64_t>(cluster_fingerprint));
  if (!bytes.ok()) Throw(bytes.status());
  _return = std::move(bytes.value());
}

void MembershipHandler::propose(membership::ChangeReply& _return, const std::string& command, bool forwarded) {
  if (command.size() > (1 << 20)) Throw(Status::InvalidArgument("command too large"));
  Fill(_return, service_->Propose(command, forwarded));
}

void MembershipHandler::progress(membership::NodeProgress& _return, int64_t change_epoch) {
  NodeReport r = service_->Progress(static_cast<uint64_t>(std::max<int64_t>(0, change_epoch)));
  _return.epoch = static_cast<int64_t>(r.epoch);
  _return.stream = ToThrift(self_id_, r.stream);
}

void MembershipHandler::stream(membership::StreamChunk& _return, int64_t cluster_fingerprint, int64_t epoch,
                               int32_t partition, const std::string& cursor, int32_t max_items, int32_t max_bytes) {
  if (partition < 0 || epoch < 0 || max_items < 1 || max_bytes < 1 || cursor.size() > 4096)
    Throw(Status::InvalidArgument("stream: bad arguments"));
  StreamChunkData chunk;
  Status s = service_->ServeStream(static_cast<uint64_t>(cluster_fingerprint), static_cast<uint64_t>(epoch),
                                   static_cast<uint32_t>(partition), cursor,
                                   static_cast<uint32_t>(std::min(max_items, kMaxStreamItems)),
                                   static_cast<uint32_t>(std::min(max_bytes, kMaxStreamBytes)), &chunk);
  if (!s.ok()) Throw(s);
  _return.items.reserve(chunk.items.size());
  for (auto& item : chunk.items) {
    membership::StreamItem out;
    out.pk = std::move(item.pk);
    out.sk = std::move(item.sk);
    out.siblings = std::move(item.siblings);
    _return.items.push_back(std::move(out));
  }
  _return.next_cursor = std::move(chunk.next_cursor);
  _return.done = chunk.done;
}

}  // namespace monju
