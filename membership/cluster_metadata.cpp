#include "cluster_metadata.h"

#include <xxhash.h>

#include "common/fixed_codec.h"

namespace monju {
namespace {

using fixed::GetBytes;
using fixed::GetU32;
using fixed::GetU64;
using fixed::GetU8;
using fixed::PutBytes;
using fixed::PutU32;
using fixed::PutU64;

constexpr uint32_t kFormat = 1;
constexpr char kMagic[] = "MJMD";

bool GetShortBytes(std::string_view in, size_t& pos, std::string& out) {
  return GetBytes(in, pos, out) && out.size() <= kMaxAddressBytes;
}

}  // namespace

const char* MemberStateName(MemberState state) {
  switch (state) {
    case MemberState::kJoining: return "joining";
    case MemberState::kNormal: return "normal";
    case MemberState::kLeaving: return "leaving";
    case MemberState::kRemoved: return "removed";
  }
  return "?";
}

const char* ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kJoin: return "join";
    case ChangeKind::kLeave: return "leave";
    case ChangeKind::kReplace: return "replace";
  }
  return "?";
}

const char* ChangePhaseName(ChangePhase phase) {
  switch (phase) {
    case ChangePhase::kStreaming: return "streaming";
    case ChangePhase::kReadsMoved: return "reads-moved";
  }
  return "?";
}

const Member* ClusterMetadata::Find(std::string_view id) const {
  for (const auto& m : members)
    if (m.id == id) return &m;
  return nullptr;
}

Member* ClusterMetadata::Find(std::string_view id) {
  for (auto& m : members)
    if (m.id == id) return &m;
  return nullptr;
}

size_t ClusterMetadata::LiveCount() const {
  size_t n = 0;
  for (const auto& m : members) n += m.state != MemberState::kRemoved ? 1 : 0;
  return n;
}

std::string ClusterMetadata::Summary() const {
  std::string s = "epoch " + std::to_string(epoch) + ", Q=" + std::to_string(partitions) +
                  " N=" + std::to_string(replicas) + ", " + std::to_string(LiveCount()) + " members";
  if (change) {
    s += std::string(", ") + ChangeKindName(change->kind) + " " + change->node;
    if (change->kind == ChangeKind::kReplace) s += " for " + change->replaced;
    s += std::string(" (") + ChangePhaseName(change->phase) + ")";
  }
  return s;
}

uint64_t RaftIdOf(std::string_view member_id) {
  uint64_t h = XXH64(member_id.data(), member_id.size(), 0x72616674);  // "raft"
  return h == 0 ? 1 : h;
}

void EncodeMember(std::string& out, const Member& m) {
  PutBytes(out, m.id);
  PutBytes(out, m.host);
  PutU32(out, m.port);
  PutU32(out, m.peer_port);
  PutBytes(out, m.raft_address);
  PutU64(out, m.raft_id);
  PutU32(out, m.vnodes);
  PutBytes(out, m.token_owner);
  out.push_back(static_cast<char>(m.state));
}

bool DecodeMember(std::string_view in, size_t& pos, Member* m) {
  uint32_t port = 0, peer_port = 0;
  uint8_t state = 0;
  if (!GetShortBytes(in, pos, m->id) || !GetShortBytes(in, pos, m->host) || !GetU32(in, pos, port) ||
      !GetU32(in, pos, peer_port) ||
      !GetShortBytes(in, pos, m->raft_address) || !GetU64(in, pos, m->raft_id) || !GetU32(in, pos, m->vnodes) ||
      !GetShortBytes(in, pos, m->token_owner) || !GetU8(in, pos, state))
    return false;
  if (port > 65535 || peer_port > 65535 || state < 1 || state > 4) return false;
  m->port = static_cast<uint16_t>(port);
  m->peer_port = static_cast<uint16_t>(peer_port);
  m->state = static_cast<MemberState>(state);
  return true;
}

std::string EncodeMetadata(const ClusterMetadata& md) {
  std::string out(kMagic, 4);
  PutU32(out, kFormat);
  PutU64(out, md.epoch);
  PutBytes(out, md.cluster_id);
  PutU32(out, md.partitions);
  PutU32(out, md.replicas);
  PutU32(out, md.voters);
  PutU32(out, static_cast<uint32_t>(md.members.size()));
  for (const auto& m : md.members) EncodeMember(out, m);
  out.push_back(md.change ? 1 : 0);
  if (md.change) {
    out.push_back(static_cast<char>(md.change->kind));
    PutBytes(out, md.change->node);
    PutBytes(out, md.change->replaced);
    out.push_back(static_cast<char>(md.change->phase));
    PutU64(out, md.change->begin_epoch);
  }
  return out;
}

StatusOr<ClusterMetadata> DecodeMetadata(std::string_view in) {
  auto bad = [](const char* why) { return Status::Corruption(std::string("cluster metadata: ") + why); };
  if (in.size() < 8 || in.substr(0, 4) != std::string_view(kMagic, 4)) return bad("not a metadata record");
  size_t pos = 4;
  uint32_t format = 0, count = 0;
  ClusterMetadata md;
  if (!GetU32(in, pos, format)) return bad("truncated");
  if (format != kFormat) return bad("unknown format version");
  if (!GetU64(in, pos, md.epoch) || !GetShortBytes(in, pos, md.cluster_id) || !GetU32(in, pos, md.partitions) ||
      !GetU32(in, pos, md.replicas) || !GetU32(in, pos, md.voters) || !GetU32(in, pos, count))
    return bad("truncated");
  if (count > kMaxMembers) return bad("too many members");
  md.members.resize(count);
  for (auto& m : md.members)
    if (!DecodeMember(in, pos, &m)) return bad("truncated or invalid member");
  uint8_t has_change = 0;
  if (!GetU8(in, pos, has_change) || has_change > 1) return bad("truncated");
  if (has_change) {
    PendingChange c;
    uint8_t kind = 0, phase = 0;
    if (!GetU8(in, pos, kind) || !GetShortBytes(in, pos, c.node) || !GetShortBytes(in, pos, c.replaced) ||
        !GetU8(in, pos, phase) || !GetU64(in, pos, c.begin_epoch))
      return bad("truncated change");
    if (kind < 1 || kind > 3 || phase < 1 || phase > 2) return bad("invalid change");
    c.kind = static_cast<ChangeKind>(kind);
    c.phase = static_cast<ChangePhase>(phase);
    md.change = std::move(c);
  }
  if (pos != in.size()) return bad("trailing bytes");
  return md;
}

}  // namespace monju
