#include "membership_service.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "change_driver.h"
#include "metadata_commands.h"
#include "placement.h"
#include "raft_roster.h"
#include "common/thread_name.h"

namespace monju {
namespace {

using namespace std::chrono_literals;

bool DirHasEntries(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return false;
  return std::filesystem::directory_iterator(dir, ec) != std::filesystem::directory_iterator();
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

ClusterMetadata BootstrapMetadata(const std::vector<PeerAddress>& peers, const std::vector<PeerAddress>& raft_peers,
                                  uint32_t vnodes, uint32_t partitions, uint32_t replicas, uint32_t voters) {
  ClusterMetadata md;
  md.partitions = partitions;
  md.replicas = replicas;
  md.voters = voters;
  for (const auto& p : peers) {
    Member m;
    m.id = p.id;
    m.host = p.host;
    m.port = p.port;
    m.peer_port = p.peer_port;
    for (const auto& r : raft_peers)
      if (r.id == p.id) m.raft_address = r.host + ":" + std::to_string(r.port);
    m.raft_id = RaftIdOf(p.id);
    m.vnodes = vnodes;
    m.token_owner = p.id;
    m.state = MemberState::kNormal;
    md.members.push_back(std::move(m));
  }
  std::sort(md.members.begin(), md.members.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
  std::string basis = "Q=" + std::to_string(partitions) + " N=" + std::to_string(replicas) +
                      " voters=" + std::to_string(voters);
  for (const auto& m : md.members)
    basis += " " + m.id + "=" + m.Address() + "/" + std::to_string(m.peer_port) + "/" + m.raft_address + "#" +
             std::to_string(m.vnodes);
  md.cluster_id = Hex(XXH64(basis.data(), basis.size(), 0));
  return md;
}

// Streams partitions in from the members named by the installed metadata.
class MembershipService::Source final : public StreamSource {
 public:
  explicit Source(MembershipService* svc) : svc_(svc) {}
  Status Fetch(const std::string& source_id, uint64_t epoch, uint32_t partition, const std::string& cursor,
               uint32_t max_items, uint32_t max_bytes, StreamChunkData* out) override {
    const std::string address = svc_->AddressOfMember(source_id);
    if (address.empty()) return Status::NotFound(source_id + " is not a member");
    return svc_->hooks_.peers->Stream(address, svc_->gate_->Current()->fingerprint(), epoch, partition, cursor,
                                      max_items, max_bytes, out);
  }
  bool Alive(const std::string& source_id) override { return svc_->hooks_.alive(source_id); }

 private:
  MembershipService* svc_;
};

MembershipService::MembershipService(MembershipOptions options, MembershipPeers* peers)
    : options_(std::move(options)),
      peers_(peers),
      cache_((std::filesystem::path(options_.data_dir) / "membership").string()) {}

MembershipService::~MembershipService() { Stop(); }

StatusOr<std::unique_ptr<MembershipService>> MembershipService::Open(MembershipOptions options,
                                                                     MembershipPeers* peers) {
  std::unique_ptr<MembershipService> svc(new MembershipService(std::move(options), peers));
  Status s = svc->LoadInitial();
  if (!s.ok()) return s;
  return svc;
}

Status MembershipService::LoadInitial() {
  const std::string raft_dir = (std::filesystem::path(options_.data_dir) / "raft").string();
  const bool raft_state = DirHasEntries(raft_dir);
  auto cached = cache_.Load();
  if (cached.ok()) {
    initial_metadata_ = std::move(cached.value());
    spdlog::info("membership: cached metadata: {}", initial_metadata_.Summary());
    if (options_.bootstrap && options_.bootstrap->cluster_id != initial_metadata_.cluster_id &&
        initial_metadata_.epoch > 0)
      spdlog::info("membership: --peers differ from the cluster's metadata; the metadata wins");
  } else if (!cached.status().Is(Status::Code::kNotFound)) {
    return Status::IOError("cached membership metadata " + cache_.path() + ": " + cached.status().ToString());
  } else if (options_.bootstrap) {
    Status v = ValidateBootstrap(*options_.bootstrap);
    if (!v.ok()) return Status::InvalidArgument("--peers/--raft-peers: " + v.message());
    initial_metadata_ = *options_.bootstrap;
    bootstrap_raft_ = !raft_state;
    spdlog::info("membership: {} cluster {} of {} members from --peers",
                 bootstrap_raft_ ? "bootstrapping" : "restarting", initial_metadata_.cluster_id,
                 initial_metadata_.members.size());
  } else if (!options_.join_address.empty()) {
    const auto deadline = std::chrono::steady_clock::now() + options_.join_fetch_timeout;
    Status last;
    for (;;) {
      auto bytes = peers_->FetchMetadata(options_.join_address, 0);
      if (bytes.ok()) {
        auto md = DecodeMetadata(bytes.value());
        if (!md.ok()) return Status::InvalidArgument("--join " + options_.join_address + ": " + md.status().ToString());
        if (md.value().epoch == 0)
          last = Status::Unavailable("the cluster has not committed its bootstrap yet");
        else {
          initial_metadata_ = std::move(md.value());
          break;
        }
      } else {
        last = bytes.status();
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return Status::Unavailable("--join: cannot get the cluster's metadata from " + options_.join_address + ": " +
                                   last.ToString());
      std::this_thread::sleep_for(250ms);
    }
    spdlog::info("membership: joining cluster {} through {}: {}", initial_metadata_.cluster_id,
                 options_.join_address, initial_metadata_.Summary());
  } else {
    return Status::InvalidArgument(
        "no cached membership metadata in " + cache_.path() +
        ", and neither --peers (to bootstrap a cluster) nor --join (to join one) was given");
  }
  auto view = BuildView(initial_metadata_);
  if (!view.ok()) return Status::InvalidArgument("membership metadata: " + view.status().message());
  initial_view_ = std::move(view.value());
  installed_ = initial_metadata_;
  return Status::OK();
}

Status MembershipService::Start(Membership* membership, MembershipHooks hooks) {
  hooks_ = std::move(hooks);
  if (!hooks_.alive) hooks_.alive = [](const std::string&) { return true; };
  gate_ = std::make_unique<EpochGate>(membership);
  source_ = std::make_unique<Source>(this);
  streamer_ = std::make_unique<PartitionStreamer>(source_.get(), hooks_.sink, &clock_, options_.streamer);
  machine_.SetListener([this](const ClusterMetadata& md) { Publish(md, "raft"); });

  RaftOptions ro;
  ro.id = RaftIdOf(options_.self_id);
  ro.address = options_.raft_address;
  ro.dir = (std::filesystem::path(options_.data_dir) / "raft").string();
  ro.election_timeout_ms = options_.election_timeout_ms;
  if (bootstrap_raft_) {
    const ClusterMetadata& b = *options_.bootstrap;
    for (size_t i = 0; i < b.members.size(); ++i)
      ro.bootstrap.push_back({b.members[i].raft_id, b.members[i].raft_address,
                              i < b.voters ? RaftRole::kVoter : RaftRole::kStandby});
  }
  auto raft = RaftGroup::Start(std::move(ro), &fsm_);
  if (!raft.ok()) return Status::IOError("--raft-listen: " + raft.status().message());
  raft_ = std::move(raft.value());
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    const bool streaming = installed_.change && installed_.change->phase == ChangePhase::kStreaming;
    if (streaming)
      streamer_->Assign(installed_.change->begin_epoch,
                        StreamTasksFor(installed_, options_.self_id, options_.write_quorum));
  }
  streamer_->Start();
  tick_thread_ = std::thread([this] { TickLoop(); });
  NameThread(tick_thread_, "member-tick");
  started_ = true;
  return Status::OK();
}

void MembershipService::Stop() {
  {
    std::lock_guard<std::mutex> lock(tick_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  tick_cv_.notify_all();
  catchup_cv_.notify_all();
  if (tick_thread_.joinable()) tick_thread_.join();
  if (streamer_) streamer_->Stop();
  if (raft_) raft_->Stop();
}

ClusterMetadata MembershipService::Installed() const {
  std::lock_guard<std::mutex> lock(publish_mu_);
  return installed_;
}

void MembershipService::Publish(const ClusterMetadata& md, const char* from) {
  std::shared_ptr<const ClusterView> view;
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    if (md.epoch <= installed_.epoch) return;
    if (!installed_.cluster_id.empty() && md.cluster_id != installed_.cluster_id) {
      spdlog::error("membership: ignoring metadata of another cluster ({} from {}, ours is {})", md.cluster_id, from,
                    installed_.cluster_id);
      return;
    }
    auto built = BuildView(md);
    if (!built.ok()) {
      spdlog::error("membership: cannot place epoch {}: {}", md.epoch, built.status().ToString());
      return;
    }
    view = std::move(built.value());
    if (!gate_->Install(view)) return;
    installed_ = md;
    Status saved = cache_.Save(md);
    if (!saved.ok()) spdlog::warn("membership: cannot cache the metadata: {}", saved.ToString());
    spdlog::info("membership: installed epoch {} (from {}): {}", md.epoch, from, md.Summary());
    const bool streaming = md.change && md.change->phase == ChangePhase::kStreaming;
    streamer_->Assign(streaming ? md.change->begin_epoch : 0,
                      streaming ? StreamTasksFor(md, options_.self_id, options_.write_quorum)
                                : std::vector<StreamTask>{});
  }
  catchup_cv_.notify_all();
  tick_cv_.notify_all();
  if (hooks_.on_view) hooks_.on_view(*view);
}

std::string MembershipService::AddressOfMember(const std::string& id) const {
  std::lock_guard<std::mutex> lock(publish_mu_);
  const Member* m = installed_.Find(id);
  return m && m->state != MemberState::kRemoved ? m->PeerAddress() : "";
}

std::vector<std::string> MembershipService::MemberAddresses() const {
  std::vector<std::string> out;
  if (!options_.join_address.empty()) out.push_back(options_.join_address);
  std::lock_guard<std::mutex> lock(publish_mu_);
  for (const auto& m : installed_.members)
    if (m.state != MemberState::kRemoved && m.id != options_.self_id &&
        std::find(out.begin(), out.end(), m.PeerAddress()) == out.end())
      out.push_back(m.PeerAddress());
  return out;
}

void MembershipService::CatchUp(uint64_t epoch, const std::string& sender_id, std::chrono::milliseconds timeout) {
  if (!started_ || gate_->epoch() >= epoch) return;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    std::unique_lock<std::mutex> lock(catchup_mu_);
    while (catchup_running_) {
      if (catchup_cv_.wait_until(lock, deadline) == std::cv_status::timeout) return;
      if (gate_->epoch() >= epoch) return;
    }
    catchup_running_ = true;
  }
  std::vector<std::string> addresses;
  const std::string sender = sender_id.empty() ? "" : AddressOfMember(sender_id);
  if (!sender.empty()) addresses.push_back(sender);
  for (const auto& a : MemberAddresses())
    if (a != sender) addresses.push_back(a);
  const uint64_t fingerprint = gate_->Current()->fingerprint();
  for (const auto& address : addresses) {
    if (gate_->epoch() >= epoch || std::chrono::steady_clock::now() >= deadline) break;
    auto bytes = peers_->FetchMetadata(address, fingerprint);
    if (!bytes.ok()) continue;
    auto md = DecodeMetadata(bytes.value());
    if (md.ok()) Publish(md.value(), "a peer");
  }
  {
    std::lock_guard<std::mutex> lock(catchup_mu_);
    catchup_running_ = false;
  }
  catchup_cv_.notify_all();
}

void MembershipService::Refresh() {
  const uint64_t fingerprint = gate_->Current()->fingerprint();
  for (const auto& address : MemberAddresses()) {
    auto bytes = peers_->FetchMetadata(address, fingerprint);
    if (!bytes.ok()) continue;
    auto md = DecodeMetadata(bytes.value());
    if (md.ok()) {
      Publish(md.value(), "a peer");
      return;
    }
  }
}

Member MembershipService::SelfMember(const ClusterMetadata&) const {
  Member m;
  m.id = options_.self_id;
  m.host = options_.self.host;
  m.port = options_.self.port;
  m.peer_port = options_.self.peer_port;
  m.raft_address = options_.raft_address;
  m.raft_id = RaftIdOf(options_.self_id);
  m.vnodes = options_.vnodes;
  m.token_owner = options_.self_id;
  m.state = MemberState::kJoining;
  return m;
}

StatusOr<ProposeReply> MembershipService::Join() {
  Refresh();
  ClusterMetadata md = Installed();
  if (const Member* self = md.Find(options_.self_id)) {
    if (self->state == MemberState::kRemoved)
      return Status::InvalidArgument(options_.self_id + " was removed from the cluster; ids are never reused");
    return ProposeReply{md.epoch, std::string(self->state == MemberState::kJoining ? "already joining: "
                                                                                   : "already a member: ") +
                                      md.Summary()};
  }
  MetadataCommand c;
  c.type = MetadataCommand::Type::kBeginJoin;
  c.expected_epoch = md.epoch;
  c.member = SelfMember(md);
  return ProposeCommand(c);
}

StatusOr<ProposeReply> MembershipService::Replace(const std::string& dead_id, const std::string& new_id) {
  if (new_id != options_.self_id)
    return Status::InvalidArgument("run replace on the new node " + new_id + " itself; this node is " +
                                   options_.self_id);
  Refresh();
  ClusterMetadata md = Installed();
  if (const Member* self = md.Find(options_.self_id)) {
    if (md.change && md.change->kind == ChangeKind::kReplace && md.change->node == new_id &&
        md.change->replaced == dead_id)
      return ProposeReply{md.epoch, "already replacing: " + md.Summary()};
    return Status::InvalidArgument(new_id + " is already a member (" + MemberStateName(self->state) + ")");
  }
  const Member* dead = md.Find(dead_id);
  if (!dead || dead->state != MemberState::kNormal)
    return Status::InvalidArgument(dead_id + " is not a normal member of the cluster");
  MetadataCommand c;
  c.type = MetadataCommand::Type::kBeginReplace;
  c.expected_epoch = md.epoch;
  c.target = dead_id;
  c.member = SelfMember(md);
  c.member.token_owner = dead->token_owner;
  c.member.vnodes = dead->vnodes;
  return ProposeCommand(c);
}

StatusOr<ProposeReply> MembershipService::Leave(const std::string& id) {
  Refresh();
  MetadataCommand c;
  c.type = MetadataCommand::Type::kBeginLeave;
  c.expected_epoch = Installed().epoch;
  c.target = id;
  return ProposeCommand(c);
}

StatusOr<ProposeReply> MembershipService::Abort() {
  Refresh();
  MetadataCommand c;
  c.type = MetadataCommand::Type::kAbort;
  c.expected_epoch = Installed().epoch;
  return ProposeCommand(c);
}

StatusOr<ProposeReply> MembershipService::ProposeCommand(const MetadataCommand& command) {
  spdlog::info("membership: proposing {}", DescribeCommand(command));
  return Route(EncodeCommand(command));
}

StatusOr<ProposeReply> MembershipService::Route(const std::string& command) { return Propose(command, false); }

StatusOr<ProposeReply> MembershipService::Propose(const std::string& command, bool forwarded) {
  if (!raft_) return Status::Unavailable("membership is not started");
  // A leader that just died is replaced within an election timeout or two:
  // keep trying for a while before saying there is none.
  const auto deadline = std::chrono::steady_clock::now() + (forwarded ? 0ms : options_.leader_wait);
  for (;;) {
    auto r = ProposeOnce(command, forwarded);
    if (r.ok() || !r.status().Is(Status::Code::kUnavailable) || std::chrono::steady_clock::now() >= deadline)
      return r;
    std::unique_lock<std::mutex> lock(tick_mu_);
    if (tick_cv_.wait_for(lock, 200ms, [this] { return stopping_; })) return r;
  }
}

StatusOr<ProposeReply> MembershipService::ProposeOnce(const std::string& command, bool forwarded) {
  RaftInfo info = raft_->Info();
  if (info.IsLeader()) {
    RaftGroup::Proposal p = raft_->Propose(command, options_.propose_timeout);
    if (p.status.ok()) {
      if (!p.result.status.ok()) return p.result.status;
      ClusterMetadata md = machine_.Current();
      return ProposeReply{p.result.value, md.Summary()};
    }
    if (!p.not_leader) {
      if (p.status.Is(Status::Code::kTimedOut))
        return Status::TimedOut("the change was not committed within " +
                                std::to_string(options_.propose_timeout.count()) +
                                " ms; it may still apply. Is a majority of the Raft voters up?");
      return p.status;
    }
    info = raft_->Info();
  }
  if (forwarded) return Status::Unavailable("the Raft leader changed while the change was forwarded; retry");
  bool in_group = false;
  std::vector<std::string> voters;
  for (const auto& s : info.configuration) {
    in_group = in_group || s.id == raft_->id();
    if (s.role == RaftRole::kVoter) voters.push_back(s.address);
  }
  std::string list;
  for (const auto& v : voters) list += (list.empty() ? "" : ", ") + v;
  const std::string needs = "membership changes need a majority of the " + std::to_string(voters.size()) +
                            " Raft voters (" + list + ") up and connected; reads and writes of data do not need them";
  if (info.leader_id != 0 && info.leader_id != raft_->id()) {
    std::string address, id;
    {
      std::lock_guard<std::mutex> lock(publish_mu_);
      for (const auto& m : installed_.members)
        if (m.raft_id == info.leader_id) {
          address = m.PeerAddress();
          id = m.id;
        }
    }
    if (!address.empty()) {
      auto r = peers_->Propose(address, command, true);
      if (r.ok() || !r.status().Is(Status::Code::kUnavailable)) return r;
      return Status::Unavailable("the Raft leader " + id + " could not take the change (" + r.status().message() + "); " +
                                 needs);
    }
  }
  if (!in_group) {
    // Not (yet) in the Raft group: let a member route it.
    Status last = Status::Unavailable("no member reachable");
    for (const auto& address : MemberAddresses()) {
      auto r = peers_->Propose(address, command, false);
      if (r.ok() || !r.status().Is(Status::Code::kUnavailable)) return r;
      last = r.status();
    }
    return last;
  }
  return Status::Unavailable("no Raft leader: " + needs);
}

MembersSnapshot MembershipService::Members() {
  MembersSnapshot snap;
  snap.metadata = Installed();
  snap.raft = raft_ ? raft_->Info() : RaftInfo{};
  snap.applied_epoch = machine_.epoch();
  for (const auto& m : snap.metadata.members)
    if (m.raft_id == snap.raft.leader_id && snap.raft.leader_id != 0) snap.leader_id = m.id;
  const ClusterMetadata& md = snap.metadata;
  if (md.change && md.change->phase == ChangePhase::kStreaming) {
    for (const auto& m : md.members) {
      if (m.state == MemberState::kRemoved || StreamTasksFor(md, m.id, options_.write_quorum).empty()) continue;
      if (m.id == options_.self_id) {
        snap.progress[m.id] = streamer_->Report();
        continue;
      }
      auto r = peers_->Progress(m.PeerAddress(), md.change->begin_epoch);
      if (r.ok()) snap.progress[m.id] = r.value().stream;
      else snap.progress[m.id].waiting_for = "no answer: " + r.status().message();
    }
  }
  return snap;
}

StatusOr<std::string> MembershipService::MetadataBytes(uint64_t fingerprint) const {
  auto view = gate_ ? gate_->Current() : initial_view_;
  if (fingerprint != 0 && fingerprint != view->fingerprint())
    return Status::Mismatch("this node belongs to another cluster (" + view->description() + ")");
  return EncodeMetadata(Installed());
}

NodeReport MembershipService::Progress(uint64_t) const {
  NodeReport r;
  r.epoch = gate_->epoch();
  r.stream = streamer_->Report();
  return r;
}

Status MembershipService::ServeStream(uint64_t fingerprint, uint64_t epoch, uint32_t partition,
                                      const std::string& cursor, uint32_t max_items, uint32_t max_bytes,
                                      StreamChunkData* out) {
  auto view = gate_->Current();
  if (fingerprint != view->fingerprint())
    return Status::Mismatch("this node belongs to another cluster (" + view->description() + ")");
  if (partition >= view->ring().partitions()) return Status::InvalidArgument("no such partition");
  if (gate_->epoch() < epoch) CatchUp(epoch, "", 2s);
  if (gate_->epoch() < epoch)
    return Status::Unavailable("this node has not reached epoch " + std::to_string(epoch) + " yet");
  if (!gate_->WaitDrained(epoch, 5s))
    return Status::Unavailable("writes planned under the earlier placement are still running; retry");
  if (!hooks_.reader) return Status::Unavailable("this node cannot serve partitions");
  return hooks_.reader->Read(partition, cursor, max_items, max_bytes, out);
}

void MembershipService::TickLoop() {
  auto last_refresh = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(tick_mu_);
      tick_cv_.wait_for(lock, options_.tick, [this] { return stopping_; });
      if (stopping_) return;
    }
    RaftInfo info = raft_->Info();
    if (info.IsLeader()) {
      LeaderTick();
      continue;
    }
    // A node outside the Raft group (joining, not added yet), or one whose
    // cluster has not bootstrapped, keeps up by asking the members.
    bool in_group = false;
    for (const auto& s : info.configuration) in_group = in_group || (s.id == raft_->id() && s.role != RaftRole::kSpare);
    const auto now = std::chrono::steady_clock::now();
    if ((!in_group || gate_->epoch() == 0) && now - last_refresh >= 1s) {
      last_refresh = now;
      Refresh();
    }
  }
}

void MembershipService::LeaderTick() {
  ClusterMetadata md = machine_.Current();
  if (md.epoch == 0) {
    if (!options_.bootstrap) return;
    MetadataCommand c;
    c.type = MetadataCommand::Type::kBootstrap;
    c.bootstrap = *options_.bootstrap;
    RaftGroup::Proposal p = raft_->Propose(EncodeCommand(c), options_.propose_timeout);
    if (!p.status.ok()) spdlog::warn("membership: bootstrap entry not committed yet: {}", p.status.ToString());
    return;
  }
  RaftInfo info = raft_->Info();
  if (!info.change_in_progress) {
    RosterStep step = NextRosterStep(md, info.configuration, hooks_.alive);
    const bool demotes_self = step.id == raft_->id() && (step.kind == RosterStep::Kind::kRemove ||
                                                          (step.kind == RosterStep::Kind::kAssign &&
                                                           step.role != RaftRole::kVoter));
    if (demotes_self) {
      // Another voter takes over and carries the step out.
      spdlog::info("raft: handing leadership over before {} stops voting ({})", step.member, step.why);
      Status s = raft_->TransferLeadership(10s);
      if (!s.ok()) spdlog::warn("raft: leadership transfer failed: {}", s.ToString());
      return;
    }
    if (step.kind != RosterStep::Kind::kNone) {
      Status s;
      const char* what = "";
      switch (step.kind) {
        case RosterStep::Kind::kAdd:
          what = "adding";
          s = raft_->AddServer(step.id, step.address, 10s);
          break;
        case RosterStep::Kind::kAssign:
          what = step.role == RaftRole::kVoter ? "promoting to voter" : "making a standby";
          s = raft_->AssignRole(step.id, step.role, 30s);
          break;
        case RosterStep::Kind::kRemove:
          what = "removing";
          s = raft_->RemoveServer(step.id, 10s);
          break;
        case RosterStep::Kind::kNone: break;
      }
      if (s.ok())
        spdlog::info("raft: {} {} ({})", what, step.member, step.why);
      else
        spdlog::warn("raft: {} {} failed: {}", what, step.member, s.ToString());
    }
  }
  if (!md.change) return;
  std::map<std::string, NodeReport> reports;
  for (const auto& m : md.members) {
    if (m.state == MemberState::kRemoved) continue;
    if (m.id == options_.self_id) {
      reports[m.id] = Progress(md.change->begin_epoch);
      continue;
    }
    if (!hooks_.alive(m.id)) continue;  // the driver decides whether to wait for it
    auto r = peers_->Progress(m.PeerAddress(), md.change->begin_epoch);
    if (r.ok()) reports[m.id] = r.value();
  }
  DriverDecision d = NextChangeStep(md, reports, hooks_.alive, options_.write_quorum);
  if (!d.propose) {
    static thread_local std::string last_waiting;
    if (d.waiting_for != last_waiting) spdlog::info("membership: change waits: {}", d.waiting_for);
    last_waiting = d.waiting_for;
    return;
  }
  RaftGroup::Proposal p = raft_->Propose(EncodeCommand(*d.propose), options_.propose_timeout);
  if (!p.status.ok())
    spdlog::warn("membership: {} not committed: {}", DescribeCommand(*d.propose), p.status.ToString());
  else if (!p.result.status.ok())
    spdlog::warn("membership: {} refused: {}", DescribeCommand(*d.propose), p.result.status.ToString());
}

}  // namespace monju
