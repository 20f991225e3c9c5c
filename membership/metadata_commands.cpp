#include "metadata_commands.h"

#include <algorithm>
#include <set>

#include "common/fixed_codec.h"
#include "config/node_config.h"

namespace monju {
namespace {

using fixed::GetBytes;
using fixed::GetU32;
using fixed::GetU64;
using fixed::GetU8;
using fixed::PutBytes;
using fixed::PutU32;
using fixed::PutU64;

constexpr char kMagic[] = "MJCM";
constexpr uint32_t kFormat = 1;

Status Refuse(const std::string& why) { return Status::Mismatch(why); }

// Checks a member that is about to be added (join or replacement).
Status ValidateNewMember(const ClusterMetadata& md, const Member& m) {
  if (!IsValidNodeId(m.id)) return Status::InvalidArgument("member id '" + m.id + "' is not 1-64 of A-Z a-z 0-9 _ . -");
  if (m.host.empty() || m.host.size() > kMaxAddressBytes || m.port == 0)
    return Status::InvalidArgument("member " + m.id + " needs a client address host:port");
  if (m.peer_port == 0 || m.peer_port == m.port)
    return Status::InvalidArgument("member " + m.id + " needs a peer port of its own");
  if (m.raft_address.empty() || m.raft_address.size() > kMaxAddressBytes)
    return Status::InvalidArgument("member " + m.id + " needs a Raft address host:port");
  if (m.vnodes < 1 || m.vnodes > 4096) return Status::InvalidArgument("member " + m.id + ": vnodes must be 1..4096");
  if (m.raft_id != RaftIdOf(m.id)) return Status::InvalidArgument("member " + m.id + ": wrong Raft id");
  if (md.members.size() >= kMaxMembers)
    return Status::InvalidArgument("the cluster has the most members it can list (" + std::to_string(kMaxMembers) +
                                   ")");
  for (const auto& other : md.members) {
    if (other.id == m.id)
      return Status::InvalidArgument("member id " + m.id +
                                     (other.state == MemberState::kRemoved ? " belonged to a removed member; ids are never reused"
                                                                          : " is already a member"));
    if (other.raft_id == m.raft_id) return Status::InvalidArgument("Raft id of " + m.id + " collides with " + other.id);
    if (other.state == MemberState::kRemoved) continue;
    for (const std::string& mine : {m.Address(), m.PeerAddress()})
      for (const std::string& theirs : {other.Address(), other.PeerAddress()})
        if (mine == theirs) return Status::InvalidArgument("address " + mine + " is already used by " + other.id);
    if (other.raft_address == m.raft_address)
      return Status::InvalidArgument("Raft address " + m.raft_address + " is already used by " + other.id);
  }
  return Status::OK();
}

size_t CountState(const ClusterMetadata& md, MemberState s) {
  return static_cast<size_t>(
      std::count_if(md.members.begin(), md.members.end(), [s](const Member& m) { return m.state == s; }));
}

void SortMembers(ClusterMetadata* md) {
  std::sort(md->members.begin(), md->members.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
}

}  // namespace

const char* CommandName(MetadataCommand::Type type) {
  switch (type) {
    case MetadataCommand::Type::kBootstrap: return "bootstrap";
    case MetadataCommand::Type::kBeginJoin: return "join";
    case MetadataCommand::Type::kBeginLeave: return "leave";
    case MetadataCommand::Type::kBeginReplace: return "replace";
    case MetadataCommand::Type::kFinishStreaming: return "finish-streaming";
    case MetadataCommand::Type::kComplete: return "complete";
    case MetadataCommand::Type::kAbort: return "abort";
  }
  return "?";
}

std::string DescribeCommand(const MetadataCommand& c) {
  std::string s = CommandName(c.type);
  switch (c.type) {
    case MetadataCommand::Type::kBootstrap:
      return s + " (" + std::to_string(c.bootstrap.members.size()) + " members)";
    case MetadataCommand::Type::kBeginJoin: s += " " + c.member.id; break;
    case MetadataCommand::Type::kBeginLeave: s += " " + c.target; break;
    case MetadataCommand::Type::kBeginReplace: s += " " + c.target + " by " + c.member.id; break;
    default: break;
  }
  return s + " at epoch " + std::to_string(c.expected_epoch);
}

std::string EncodeCommand(const MetadataCommand& c) {
  std::string out(kMagic, 4);
  PutU32(out, kFormat);
  out.push_back(static_cast<char>(c.type));
  PutU64(out, c.expected_epoch);
  switch (c.type) {
    case MetadataCommand::Type::kBootstrap: PutBytes(out, EncodeMetadata(c.bootstrap)); break;
    case MetadataCommand::Type::kBeginJoin: EncodeMember(out, c.member); break;
    case MetadataCommand::Type::kBeginLeave: PutBytes(out, c.target); break;
    case MetadataCommand::Type::kBeginReplace:
      PutBytes(out, c.target);
      EncodeMember(out, c.member);
      break;
    default: break;
  }
  return out;
}

StatusOr<MetadataCommand> DecodeCommand(std::string_view in) {
  auto bad = [](const char* why) { return Status::Corruption(std::string("membership command: ") + why); };
  if (in.size() < 9 || in.substr(0, 4) != std::string_view(kMagic, 4)) return bad("not a command");
  size_t pos = 4;
  uint32_t format = 0;
  if (!GetU32(in, pos, format) || format != kFormat) return bad("unknown format version");
  const uint8_t type = static_cast<uint8_t>(in[pos++]);
  if (type < 1 || type > 7) return bad("unknown command type");
  MetadataCommand c;
  c.type = static_cast<MetadataCommand::Type>(type);
  if (!GetU64(in, pos, c.expected_epoch)) return bad("truncated");
  bool ok = true;
  switch (c.type) {
    case MetadataCommand::Type::kBootstrap: {
      std::string bytes;
      ok = GetBytes(in, pos, bytes);
      if (!ok) break;
      auto md = DecodeMetadata(bytes);
      if (!md.ok()) return md.status();
      c.bootstrap = std::move(md.value());
      break;
    }
    case MetadataCommand::Type::kBeginJoin: ok = DecodeMember(in, pos, &c.member); break;
    case MetadataCommand::Type::kBeginLeave: ok = GetBytes(in, pos, c.target) && c.target.size() <= kMaxAddressBytes; break;
    case MetadataCommand::Type::kBeginReplace:
      ok = GetBytes(in, pos, c.target) && c.target.size() <= kMaxAddressBytes && DecodeMember(in, pos, &c.member);
      break;
    default: break;
  }
  if (!ok) return bad("truncated or invalid payload");
  if (pos != in.size()) return bad("trailing bytes");
  return c;
}

Status ValidateBootstrap(const ClusterMetadata& md) {
  if (md.members.empty()) return Status::InvalidArgument("bootstrap needs at least one member");
  if (md.members.size() > kMaxMembers) return Status::InvalidArgument("too many members");
  if (md.partitions < 1 || md.partitions > 65536) return Status::InvalidArgument("Q must be 1..65536");
  if (md.replicas < 1 || md.replicas > md.members.size())
    return Status::InvalidArgument("N=" + std::to_string(md.replicas) + " must be 1.." +
                                   std::to_string(md.members.size()) + " (the members)");
  if (md.voters < 1 || md.voters % 2 == 0) return Status::InvalidArgument("the number of Raft voters must be odd");
  if (md.cluster_id.empty() || md.cluster_id.size() > kMaxAddressBytes)
    return Status::InvalidArgument("bootstrap needs a cluster id");
  if (md.change) return Status::InvalidArgument("bootstrap metadata cannot have a pending change");
  ClusterMetadata empty;
  for (const auto& m : md.members) {
    if (m.state != MemberState::kNormal || m.token_owner != m.id)
      return Status::InvalidArgument("bootstrap member " + m.id + " must be normal and own its tokens");
    Status s = ValidateNewMember(empty, m);
    if (!s.ok()) return s;
    empty.members.push_back(m);
  }
  return Status::OK();
}

Status ApplyCommand(const ClusterMetadata& cur, const MetadataCommand& c, ClusterMetadata* next) {
  using T = MetadataCommand::Type;
  if (c.type == T::kBootstrap) {
    if (cur.epoch != 0) return Refuse("already bootstrapped (epoch " + std::to_string(cur.epoch) + ")");
    Status s = ValidateBootstrap(c.bootstrap);
    if (!s.ok()) return s;
    ClusterMetadata md = c.bootstrap;
    SortMembers(&md);
    md.epoch = 1;
    *next = std::move(md);
    return Status::OK();
  }
  if (cur.epoch == 0) return Refuse("the cluster is not bootstrapped yet");
  const bool begins = c.type == T::kBeginJoin || c.type == T::kBeginLeave || c.type == T::kBeginReplace;
  if (begins && cur.change)
    return Refuse("a change is already in progress (" + cur.Summary() + "); changes are one at a time");
  if (c.expected_epoch != cur.epoch)
    return Refuse(std::string(CommandName(c.type)) + " was decided at epoch " + std::to_string(c.expected_epoch) +
                  " but the metadata is at epoch " + std::to_string(cur.epoch));

  ClusterMetadata md = cur;
  switch (c.type) {
    case T::kBeginJoin: {
      Status s = ValidateNewMember(cur, c.member);
      if (!s.ok()) return s;
      if (c.member.state != MemberState::kJoining || c.member.token_owner != c.member.id)
        return Status::InvalidArgument("a joining member must be in state joining and own its tokens");
      md.members.push_back(c.member);
      md.change = PendingChange{ChangeKind::kJoin, c.member.id, "", ChangePhase::kStreaming, cur.epoch + 1};
      break;
    }
    case T::kBeginLeave: {
      Member* m = md.Find(c.target);
      if (!m || m->state == MemberState::kRemoved) return Status::InvalidArgument(c.target + " is not a member");
      if (CountState(cur, MemberState::kNormal) - 1 < cur.replicas)
        return Status::InvalidArgument("cannot remove " + c.target + ": " + std::to_string(cur.replicas) +
                                       " members must remain for N=" + std::to_string(cur.replicas));
      m->state = MemberState::kLeaving;
      md.change = PendingChange{ChangeKind::kLeave, c.target, "", ChangePhase::kStreaming, cur.epoch + 1};
      break;
    }
    case T::kBeginReplace: {
      const Member* dead = cur.Find(c.target);
      if (!dead || dead->state != MemberState::kNormal) return Status::InvalidArgument(c.target + " is not a member");
      Status s = ValidateNewMember(cur, c.member);
      if (!s.ok()) return s;
      if (c.member.state != MemberState::kJoining || c.member.token_owner != dead->token_owner ||
          c.member.vnodes != dead->vnodes)
        return Status::InvalidArgument("a replacement must be joining and take over the replaced member's tokens");
      md.Find(c.target)->state = MemberState::kLeaving;
      md.members.push_back(c.member);
      md.change =
          PendingChange{ChangeKind::kReplace, c.member.id, c.target, ChangePhase::kStreaming, cur.epoch + 1};
      break;
    }
    case T::kFinishStreaming:
      if (!cur.change || cur.change->phase != ChangePhase::kStreaming)
        return Refuse("no change is streaming (" + cur.Summary() + ")");
      md.change->phase = ChangePhase::kReadsMoved;
      break;
    case T::kComplete:
      if (!cur.change || cur.change->phase != ChangePhase::kReadsMoved)
        return Refuse("no change has moved its reads yet (" + cur.Summary() + ")");
      for (auto& m : md.members) {
        if (m.state == MemberState::kJoining) m.state = MemberState::kNormal;
        if (m.state == MemberState::kLeaving) m.state = MemberState::kRemoved;
      }
      md.change.reset();
      break;
    case T::kAbort:
      if (!cur.change) return Refuse("no change is in progress");
      if (cur.change->phase != ChangePhase::kStreaming)
        return Refuse("the change already moved its reads; it can only complete");
      // A member that never got its reads is forgotten, so it may try again.
      std::erase_if(md.members, [](const Member& m) { return m.state == MemberState::kJoining; });
      for (auto& m : md.members)
        if (m.state == MemberState::kLeaving) m.state = MemberState::kNormal;
      md.change.reset();
      break;
    case T::kBootstrap: break;  // handled above
  }
  SortMembers(&md);
  md.epoch = cur.epoch + 1;
  *next = std::move(md);
  return Status::OK();
}

}  // namespace monju
