#include "coordinator.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>

#include "clock/codec.h"
#include "common/shared_histogram.h"
#include "config/node_config.h"
#include "quorum_call.h"

namespace monju {
namespace {

struct Ack {};

// The replicas of one request: the view it was planned under and the list.
struct Placement {
  std::shared_ptr<const ClusterView> view;
  uint32_t partition = 0;
  std::vector<uint32_t> members;
  int self_index = -1;  // position of this node in members, or -1
  uint32_t pending = 0;  // writes: owners beyond the read owners (a membership change)
};

std::string Describe(const QuorumCount& q, const char* what) {
  return std::string(what) + " " + std::to_string(q.got) + " of " + std::to_string(q.needed) + " needed";
}

// Versions of `merged` that `reply` lacks (neither holds nor supersedes).
std::vector<const Version*> Missing(const SiblingSet& reply, const SiblingSet& merged) {
  std::vector<const Version*> out;
  for (const auto& v : merged.versions()) {
    SiblingSet probe = reply;
    if (probe.Add(v)) out.push_back(&v);
  }
  return out;
}

}  // namespace

struct Coordinator::Counters {
  std::atomic<uint64_t> puts{0}, gets{0}, removes{0}, queries{0};
  std::atomic<uint64_t> unavailable{0}, quorum_failed{0}, timed_out{0}, invalid{0};
  std::atomic<uint64_t> writes_with_fallback{0}, writes_hinted{0}, read_repairs{0}, speculative_reads{0};
  std::atomic<uint64_t> spare_reads_skipped{0};
  SharedHistogram put_us, get_us, remove_us, query_us;
};

namespace {
// Records the time from its construction to its end into `into` (µs).
class RequestTimer {
 public:
  RequestTimer(const Clock* clock, SharedHistogram* into) : clock_(clock), into_(into), start_(clock->Now()) {}
  ~RequestTimer() {
    const Clock::TimePoint end = clock_->Now();
    into_->Record(MicrosOf(end - start_), end);
  }
  RequestTimer(const RequestTimer&) = delete;
  RequestTimer& operator=(const RequestTimer&) = delete;

 private:
  const Clock* clock_;
  SharedHistogram* into_;
  Clock::TimePoint start_;
};
}  // namespace

// One write's plan and what its calls share; outlives the request while
// calls are still running.
struct Coordinator::WriteRun {
  WriteRun(WritePlan p) : plan(std::move(p)) {}
  absl::Mutex mu;  // not std::mutex: see Clock::WaitUntil
  absl::CondVar cv;
  WritePlan plan;
  std::shared_ptr<const ClusterView> view;
  std::shared_ptr<const ItemKey> key;
  std::shared_ptr<const Version> version;
  uint32_t self = 0;
  std::string first_error;
  bool stale = false;  // a replica refused: planned under a stale epoch
};

bool Executor::WhenReadable(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready) {
  return Submit([fd, wait, on_ready = std::move(on_ready)] {
    pollfd p{fd, POLLIN, 0};
    const int ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 3'600'000));
    int n;
    do {
      n = ::poll(&p, 1, ms);
    } while (n < 0 && errno == EINTR);
    on_ready(n > 0);
  });
}

Coordinator::Coordinator(CoordinatorOptions options, const Membership* membership, Replica* local,
                         EndpointDirectory* endpoints, Executor* executor, const Clock* clock,
                         const WallClock* wall)
    : options_(std::move(options)),
      membership_(membership),
      local_(local),
      endpoints_(endpoints),
      executor_(executor),
      clock_(clock),
      wall_(wall),
      counters_(std::make_unique<Counters>()) {}

Coordinator::~Coordinator() = default;

CoordinatorStats Coordinator::stats() const {
  CoordinatorStats s;
  s.puts = counters_->puts;
  s.gets = counters_->gets;
  s.removes = counters_->removes;
  s.queries = counters_->queries;
  s.unavailable = counters_->unavailable;
  s.quorum_failed = counters_->quorum_failed;
  s.timed_out = counters_->timed_out;
  s.invalid = counters_->invalid;
  s.writes_with_fallback = counters_->writes_with_fallback;
  s.writes_hinted = counters_->writes_hinted;
  s.read_repairs = counters_->read_repairs;
  s.speculative_reads = counters_->speculative_reads;
  s.spare_reads_skipped = counters_->spare_reads_skipped;
  s.put_us = counters_->put_us.Snapshot();
  s.get_us = counters_->get_us.Snapshot();
  s.remove_us = counters_->remove_us.Snapshot();
  s.query_us = counters_->query_us.Snapshot();
  const Clock::TimePoint now = clock_->Now();
  s.recent_put_us = counters_->put_us.Recent(now);
  s.recent_get_us = counters_->get_us.Recent(now);
  s.recent_remove_us = counters_->remove_us.Recent(now);
  s.recent_query_us = counters_->query_us.Recent(now);
  return s;
}

void Coordinator::Count(const Status& s) {
  switch (s.code()) {
    case Status::Code::kUnavailable:
      ++counters_->unavailable;
      break;
    case Status::Code::kTimedOut:
      ++counters_->timed_out;
      break;
    case Status::Code::kInvalidArgument:
      ++counters_->invalid;
      break;
    case Status::Code::kOk:
      break;
    default:
      ++counters_->quorum_failed;
  }
}

Status Coordinator::ValidateKey(const std::string& pk, const std::string& sk) {
  if (pk.empty()) return Status::InvalidArgument("pk must not be empty");
  if (pk.size() > kMaxPkBytes)
    return Status::InvalidArgument("pk is " + std::to_string(pk.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxPkBytes));
  if (sk.size() > kMaxSkBytes)
    return Status::InvalidArgument("sk is " + std::to_string(sk.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxSkBytes));
  return Status::OK();
}

Status Coordinator::ValidateQuorum(int32_t value, const char* name, uint32_t replicas) const {
  if (value < 0 || static_cast<uint32_t>(value) > replicas)
    return Status::InvalidArgument(std::string(name) + "=" + std::to_string(value) + " is outside 0.." +
                                   std::to_string(replicas) + " (N=" + std::to_string(replicas) + ", 0 = default)");
  return Status::OK();
}

bool Coordinator::IsOwner(const std::string& pk) const {
  auto view = membership_->Current();
  int self = view->IndexOf(options_.self_id);
  if (self < 0 || !local_) return false;
  const auto& list = view->WriteOwners(view->ring().PartitionOf(pk));
  return std::find(list.begin(), list.end(), static_cast<uint32_t>(self)) != list.end();
}

bool Coordinator::NewerView(const ClusterView& planned) const {
  return membership_->Current()->epoch() > planned.epoch();
}

namespace {

// Reads go to the read owners; writes to the write owners (the same unless
// a membership change is pending).
Placement Place(std::shared_ptr<const ClusterView> view, const std::string& self_id, const std::string& pk,
                bool write) {
  Placement p;
  p.view = std::move(view);
  p.partition = p.view->ring().PartitionOf(pk);
  p.members = write ? p.view->WriteOwners(p.partition) : p.view->ReadOwners(p.partition);
  p.pending = write ? p.view->PendingOwners(p.partition) : 0;
  int self = p.view->IndexOf(self_id);
  for (size_t i = 0; i < p.members.size(); ++i)
    if (static_cast<int>(p.members[i]) == self) p.self_index = static_cast<int>(i);
  return p;
}

// A remote read in flight whose StaleEpoch refusal, like a Read()'s, makes
// the get re-plan.
class StaleNoting final : public PendingRead {
 public:
  StaleNoting(std::unique_ptr<PendingRead> inner, std::shared_ptr<std::atomic<bool>> stale)
      : inner_(std::move(inner)), stale_(std::move(stale)) {}
  int fd() const override { return inner_ ? inner_->fd() : -1; }
  Status Finish(SiblingSet* out) override {
    if (!inner_) return Status::IOError("the endpoint could not send the read");
    Status s = inner_->Finish(out);
    if (s.Is(Status::Code::kStaleEpoch)) stale_->store(true);
    return s;
  }

 private:
  std::unique_ptr<PendingRead> inner_;
  std::shared_ptr<std::atomic<bool>> stale_;
};

// Calls targets[begin, end), replies in target order: the remote ones first,
// then this node's own replica (target `local`, -1 for none) on the calling
// thread, which would otherwise only wait. A remote call goes to `async`
// when given (it returns false when it could not take the call), else runs on
// the executor, or, given `send`, is sent from this thread and awaited
// (QuorumCall::Await; never together with `async`).
template <typename Reply, typename MakeCall>
void StartTargets(QuorumCall<Reply>& call, const std::vector<ReplicaEndpoint*>& targets, size_t begin, size_t end,
                  int local, MakeCall&& make,
                  const std::function<std::unique_ptr<PendingCall<Reply>>(ReplicaEndpoint*)>& send = nullptr,
                  const std::function<bool(ReplicaEndpoint*, size_t slot)>& async = nullptr) {
  std::vector<size_t> slots;
  slots.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) slots.push_back(call.AddSlot());
  for (size_t i = begin; i < end; ++i) {
    if (static_cast<int>(i) == local) continue;
    if (async && async(targets[i], slots[i - begin])) continue;
    if (send) {
      call.Await(slots[i - begin], send(targets[i]));
    } else {
      call.Launch(slots[i - begin], make(targets[i]));
    }
  }
  if (local >= static_cast<int>(begin) && local < static_cast<int>(end))
    call.RunHere(slots[local - begin], make(targets[local]));
}

}  // namespace

WriteOutcome Coordinator::Put(const std::string& pk, const std::string& sk, std::string value,
                              const std::string& context, int32_t w) {
  return PutValue(pk, sk, std::move(value), context, w, false);
}

WriteOutcome Coordinator::Overwrite(const std::string& pk, const std::string& sk, std::string value, int32_t w) {
  return PutValue(pk, sk, std::move(value), std::string(), w, true);
}

WriteOutcome Coordinator::PutValue(const std::string& pk, const std::string& sk, std::string value,
                                   const std::string& context, int32_t w, bool replace_local) {
  ++counters_->puts;
  RequestTimer timer(clock_, &counters_->put_us);
  if (value.size() > options_.max_value_bytes) {
    WriteOutcome out;
    out.status = Status::InvalidArgument("value is " + std::to_string(value.size()) + " bytes; the limit is " +
                                         std::to_string(options_.max_value_bytes));
    Count(out.status);
    return out;
  }
  WriteOutcome out = Write(pk, sk, false, std::move(value), context, w, replace_local);
  Count(out.status);
  return out;
}

WriteOutcome Coordinator::Remove(const std::string& pk, const std::string& sk, const std::string& context,
                                 int32_t w) {
  ++counters_->removes;
  RequestTimer timer(clock_, &counters_->remove_us);
  WriteOutcome out = Write(pk, sk, true, std::string(), context, w);
  Count(out.status);
  return out;
}

void Coordinator::Execute(const std::shared_ptr<WriteRun>& run, const std::vector<WritePlan::Action>& actions,
                          bool local_here) {
  // An action the executor would not take fails at once.
  auto refuse = [this, &run](const WritePlan::Action& action, bool local) {
    if (action.kind == WritePlan::Kind::kApply && local) local_->FinishWrite(*run->key, run->version->dot, false);
    std::vector<WritePlan::Action> next;
    {
      absl::MutexLock lock(&run->mu);
      if (run->first_error.empty()) run->first_error = executor_->RefusalReason();
      next = run->plan.OnFailure(action);
    }
    run->cv.SignalAll();  // outside the lock: the waiter would only block on it
    Execute(run, next);
  };
  std::function<void()> here;  // the local apply, run last on this thread
  std::optional<WritePlan::Action> here_action;
  bool overloaded = false;
  for (const auto& action : actions) {
    const bool local = action.member == run->self;
    ReplicaEndpoint* ep = &endpoints_->Endpoint(*run->view, action.member);
    Replica* replica = local_;
    DataPathFence* fence = fence_;
    auto complete = [this, run, action](const Status& s) {
      std::vector<WritePlan::Action> next;
      {
        absl::MutexLock lock(&run->mu);
        if (s.ok()) {
          next = run->plan.OnSuccess(action);
        } else {
          if (run->first_error.empty()) run->first_error = s.ToString();
          if (s.Is(Status::Code::kStaleEpoch)) run->stale = true;
          next = run->plan.OnFailure(action);
        }
      }
      run->cv.SignalAll();  // outside the lock: the waiter would only block on it
      Execute(run, next);
    };
    // A peer's apply rides with the other writes to that peer (no thread
    // waits for it) when its endpoint can.
    if (!local && action.kind == WritePlan::Kind::kApply && ep->ApplyAsync(run->key, run->version, complete))
      continue;
    auto task = [run, action, local, ep, replica, fence, complete] {
      Status s;
      if (action.kind == WritePlan::Kind::kApply && local) {
        // Admitted only while the planned placement holds; held until durable.
        EpochGate::Ticket ticket;
        if (fence) s = fence->Admit(*run->view, run->key->partition, &ticket);
        if (s.ok()) s = replica->Apply(*run->key, *run->version);
        replica->FinishWrite(*run->key, run->version->dot, s.ok());
      } else if (action.kind == WritePlan::Kind::kApply) {
        s = ep->Apply(*run->key, *run->version);
      } else {
        s = ep->ApplyHinted(run->view->members()[action.owner].id, *run->key, *run->version);
      }
      complete(s);
    };
    if (local_here && local && action.kind == WritePlan::Kind::kApply && !here) {
      here = std::move(task);
      here_action = action;
      continue;
    }
    if (executor_->Submit(std::move(task))) continue;
    overloaded = true;
    refuse(action, local);
  }
  if (here) {
    // An overloaded node does no partial work: its own apply is refused too.
    if (overloaded) {
      refuse(*here_action, true);
    } else {
      here();
    }
  }
}

WriteOutcome Coordinator::Write(const std::string& pk, const std::string& sk, bool tombstone, std::string value,
                                const std::string& context, int32_t w, bool replace_local) {
  WriteOutcome out;
  if (!(out.status = ValidateKey(pk, sk)).ok()) return out;
  if (context.size() > kMaxContextBytes) {
    out.status = Status::InvalidArgument("context is larger than " + std::to_string(kMaxContextBytes) + " bytes");
    return out;
  }
  auto ctx = DecodeContext(context);
  if (!ctx.ok()) {
    out.status = Status::InvalidArgument("context is malformed: pass back the bytes a read or write returned");
    return out;
  }
  Placement place = Place(membership_->Current(), options_.self_id, pk, true);
  const uint32_t n = static_cast<uint32_t>(place.view->ReadOwners(place.partition).size());
  if (!(out.status = ValidateQuorum(w, "w", n)).ok()) return out;
  const int base_needed = w == 0 ? static_cast<int>(std::min(options_.default_w, n)) : w;
  if (place.self_index < 0 || !local_) {
    out.status = Status::InvalidArgument("this node is not a replica of the key; forward the write to an owner");
    return out;
  }
  int needed = base_needed + static_cast<int>(place.pending);
  {
    const uint32_t self = place.members[place.self_index];
    const auto& view = place.view;
    auto alive = [this, view, self](uint32_t member) {
      return member == self || endpoints_->Endpoint(*view, member).LikelyAlive();
    };
    // Nothing is sent unless enough nodes are believed alive to meet W.
    const int slots = static_cast<int>(place.members.size());
    int alive_owners = 0, alive_fallbacks = 0;
    for (uint32_t m : place.members) alive_owners += alive(m) ? 1 : 0;
    if (options_.sloppy_quorum)
      for (uint32_t m : view->WriteFallbacks(place.partition)) alive_fallbacks += alive(m) ? 1 : 0;
    const int available = alive_owners + std::min(alive_fallbacks, slots - alive_owners);
    out.quorum = {needed, available};
    if (available < needed) {
      out.status = Status::Unavailable(Describe(out.quorum, options_.sloppy_quorum
                                                                ? "replicas and fallbacks alive:"
                                                                : "replicas alive:"));
      return out;
    }
  }

  const auto start = clock_->Now();
  const auto deadline = start + options_.request_timeout;
  ItemKey key{place.partition, pk, sk};
  auto version = local_->PrepareWrite(key, ctx.value(), tombstone, std::move(value), replace_local);
  if (!version.ok()) {
    out.status = version.status().Is(Status::Code::kInvalidArgument)
                     ? version.status()
                     : Status::QuorumFailed("local replica could not prepare the write: " +
                                            version.status().ToString());
    out.quorum = {needed, 0};
    return out;
  }
  if (tombstone) version.value().deleted_unix_ms = wall_->UnixMillis();
  auto shared_key = std::make_shared<const ItemKey>(std::move(key));
  auto shared_version = std::make_shared<const Version>(std::move(version.value()));

  for (int attempt = 0;; ++attempt) {
    const uint32_t self = place.members[place.self_index];
    const auto view = place.view;
    auto alive = [this, view, self](uint32_t member) {
      return member == self || endpoints_->Endpoint(*view, member).LikelyAlive();
    };
    auto run = std::make_shared<WriteRun>(
        WritePlan(place.members, view->WriteFallbacks(place.partition), self, needed, options_.sloppy_quorum, alive));
    run->view = view;
    run->self = self;
    run->key = shared_key;
    run->version = shared_version;
    RunWrite(run, deadline, clock_->Now() + options_.handoff_after);

    absl::MutexLock lock(&run->mu);
    const auto& plan = run->plan;
    out = WriteOutcome{};
    out.quorum = {needed, plan.acked_slots()};
    for (uint32_t m : plan.acked_members()) out.acked_by.push_back(view->members()[m].id);
    for (uint32_t m : plan.hinted_owners()) out.hinted_for.push_back(view->members()[m].id);
    out.used_fallback = plan.used_fallback();
    switch (plan.result()) {
      case WritePlan::Result::kMet:
        out.status = Status::OK();
        out.context = EncodeContext(run->version->FullContext());
        if (out.used_fallback) ++counters_->writes_with_fallback;
        if (!out.hinted_for.empty()) ++counters_->writes_hinted;
        return out;
      case WritePlan::Result::kFailed:
        out.status = Status::QuorumFailed(Describe(out.quorum, "write acknowledged by") + "; first error: " +
                                          run->first_error);
        break;
      case WritePlan::Result::kPending:
        out.status = Status::TimedOut(Describe(out.quorum, "write acknowledged by") + " within " +
                                      std::to_string(options_.request_timeout.count()) + " ms");
        break;
    }
    // A replica is at a newer membership epoch: send the same version to
    // the owners of that epoch (idempotent for those that already hold it).
    if (!run->stale || attempt + 1 >= kMaxEpochRetries || !NewerView(*view) || clock_->Now() >= deadline)
      return out;
    Placement next = Place(membership_->Current(), options_.self_id, pk, true);
    if (next.self_index < 0) {
      out.status = Status::TimedOut("the key's owners changed during the write and this node is no longer one of "
                                    "them; outcome unknown: " + out.status.message());
      return out;
    }
    place = std::move(next);
    needed = std::min(base_needed, static_cast<int>(place.view->ReadOwners(place.partition).size())) +
             static_cast<int>(place.pending);
  }
}

void Coordinator::RunWrite(const std::shared_ptr<WriteRun>& run, Clock::TimePoint deadline,
                           Clock::TimePoint handoff_at) {
  std::vector<WritePlan::Action> first;
  {
    absl::MutexLock lock(&run->mu);
    first = run->plan.Start();
  }
  // The local apply runs on this thread once the peers' calls are out: it
  // waits for the fsync, as this thread would anyway.
  Execute(run, first, /*local_here=*/true);

  absl::MutexLock lock(&run->mu);
  bool handoff_fired = false;
  while (!run->plan.Done()) {
    auto now = clock_->Now();
    if (now >= deadline) break;
    if (!handoff_fired && now >= handoff_at) {
      handoff_fired = true;
      auto more = run->plan.OnHandoffDeadline();
      {
        MutexReleased unlocked(run->mu);
        Execute(run, more);
      }
      continue;
    }
    clock_->WaitUntil(run->cv, run->mu, handoff_fired ? deadline : std::min(handoff_at, deadline));
  }
}

void Coordinator::RepairKey(const ItemKey& key, const std::vector<ReplicaEndpoint*>& targets,
                            const std::vector<const SiblingSet*>& replies, const SiblingSet& merged) {
  // Deciding is cheap and may run on the client's thread; the sends are
  // handed to the executor, so only a read that needs repair costs a hop.
  struct Send {
    ReplicaEndpoint* target;
    Version version;
  };
  std::vector<Send> sends;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!replies[i]) continue;  // no answer: nothing known about this replica
    for (const Version* v : Missing(*replies[i], merged)) sends.push_back({targets[i], *v});
  }
  if (sends.empty()) return;
  // A peer's repairs ride its coalesced writes (apply_many) when it takes
  // them: under a hot key's concurrent updates a quarter of reads find a
  // replica behind (mostly writes still in flight), and a call and a thread
  // each would hold fan-out threads that the quorum calls need.
  auto shared_key = std::make_shared<const ItemKey>(key);
  Counters* counters = counters_.get();
  std::vector<Send> rest;
  for (Send& send : sends) {
    auto version = std::make_shared<const Version>(std::move(send.version));
    const bool taken = send.target->ApplyAsync(shared_key, version, [counters](Status s) {
      if (s.ok()) ++counters->read_repairs;
    });
    if (!taken) rest.push_back({send.target, *version});
  }
  if (rest.empty()) return;
  // Dropped when the executor is full: repair is best effort.
  executor_->Submit([this, key, rest = std::move(rest)] {
    for (const Send& send : rest)
      if (send.target->Apply(key, send.version).ok()) ++counters_->read_repairs;
  });
}

ReadOutcome Coordinator::Get(const std::string& pk, const std::string& sk, int32_t r) {
  ++counters_->gets;
  RequestTimer timer(clock_, &counters_->get_us);
  ReadOutcome out;
  for (int attempt = 0;; ++attempt) {
    auto view = membership_->Current();
    bool stale = false;
    out = GetInternal(pk, sk, r, view, &stale);
    // A replica is at a newer epoch (this node has caught up): read again
    // from that epoch's owners rather than trust a mixed answer.
    if (!stale || attempt + 1 >= kMaxEpochRetries || !NewerView(*view)) break;
  }
  Count(out.status);
  return out;
}

ReadOutcome Coordinator::GetInternal(const std::string& pk, const std::string& sk, int32_t r,
                                     const std::shared_ptr<const ClusterView>& view, bool* stale_out) {
  ReadOutcome out;
  if (!(out.status = ValidateKey(pk, sk)).ok()) return out;
  Placement place = Place(view, options_.self_id, pk, false);
  const uint32_t n = static_cast<uint32_t>(place.members.size());
  if (!(out.status = ValidateQuorum(r, "r", n)).ok()) return out;
  const int needed = r == 0 ? static_cast<int>(std::min(options_.default_r, n)) : r;

  const auto deadline = clock_->Now() + options_.request_timeout;
  auto shared_key = std::make_shared<const ItemKey>(ItemKey{place.partition, pk, sk});
  QuorumCall<SiblingSet> call(needed, executor_, clock_);
  std::vector<ReplicaEndpoint*> targets;
  int local_target = -1;  // position of this node's replica in targets
  for (size_t i = 0; i < n; ++i) {
    ReplicaEndpoint* ep = &endpoints_->Endpoint(*place.view, place.members[i]);
    if (static_cast<int>(i) == place.self_index) local_target = static_cast<int>(targets.size());
    if (static_cast<int>(i) == place.self_index || ep->LikelyAlive()) targets.push_back(ep);
  }
  out.quorum = {needed, static_cast<int>(targets.size())};
  if (static_cast<int>(targets.size()) < needed) {
    out.status = Status::Unavailable(Describe(out.quorum, "replicas alive:"));
    return out;
  }
  // Replicas beyond the R needed that are far behind on this node's reads
  // are left out (never this node's own).
  for (size_t i = 0; i < targets.size() && static_cast<int>(targets.size()) > needed;) {
    if (static_cast<int>(i) == local_target || targets[i]->ReadsInFlight() < options_.max_spare_reads_in_flight) {
      ++i;
      continue;
    }
    targets.erase(targets.begin() + static_cast<long>(i));
    if (local_target > static_cast<int>(i)) --local_target;
    ++counters_->spare_reads_skipped;
  }
  // Asked first: every target, or R of them with this node's own first.
  size_t first_round = targets.size();
  if (options_.read_fanout == ReadFanout::kQuorum) {
    if (local_target > 0)
      std::rotate(targets.begin(), targets.begin() + local_target, targets.begin() + local_target + 1);
    if (local_target >= 0) local_target = 0;
    first_round = static_cast<size_t>(needed);
  }
  // Read repair, once every replica asked has answered or failed. Replies
  // come in target order; targets never asked have none.
  call.OnSettled([this, targets, shared_key](const std::vector<std::optional<SiblingSet>>& replies) {
    SiblingSet merged;
    std::vector<const SiblingSet*> answered(targets.size(), nullptr);
    for (size_t i = 0; i < replies.size() && i < targets.size(); ++i) {
      if (!replies[i]) continue;
      answered[i] = &*replies[i];
      merged.Merge(*replies[i]);
    }
    RepairKey(*shared_key, targets, answered, merged);
  });
  auto stale = std::make_shared<std::atomic<bool>>(false);
  DataPathFence* fence = fence_;
  const auto planned = place.view;
  ReplicaEndpoint* local = local_target >= 0 ? targets[local_target] : nullptr;
  auto make_read = [shared_key, stale, fence, planned, local](ReplicaEndpoint* ep) -> QuorumCall<SiblingSet>::Call {
    return [ep, shared_key, stale, fence, planned, local](SiblingSet* reply) {
      // The local replica is admitted only while the planned placement holds.
      EpochGate::Ticket ticket;
      Status s;
      if (ep == local && fence) s = fence->Admit(*planned, shared_key->partition, &ticket);
      if (s.ok()) s = ep->Read(*shared_key, reply);
      if (s.Is(Status::Code::kStaleEpoch)) stale->store(true);
      return s;
    };
  };
  // Remote reads ride with the other reads to their peer when every remote
  // target can (no thread waits on them; one that is full runs on the
  // executor instead). Otherwise they are sent from this thread and their
  // replies polled for here, unless some target cannot (then all go through
  // the executor).
  bool coalesced = true, pipelined = true;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (static_cast<int>(i) == local_target) continue;
    coalesced = coalesced && targets[i]->ReadsAsync();
    pipelined = pipelined && targets[i]->CanStartRead();
  }
  std::function<std::unique_ptr<PendingRead>(ReplicaEndpoint*)> send;
  std::function<bool(ReplicaEndpoint*, size_t)> async;
  if (coalesced) {
    async = [&call, shared_key, stale](ReplicaEndpoint* ep, size_t slot) {
      auto done = call.Completion(slot);
      return ep->ReadAsync(shared_key, [stale, done = std::move(done)](Status s, SiblingSet* reply) {
        if (s.Is(Status::Code::kStaleEpoch)) stale->store(true);
        done(s, reply);
      });
    };
  } else if (pipelined) {
    send = [&](ReplicaEndpoint* ep) { return std::make_unique<StaleNoting>(ep->StartRead(*shared_key), stale); };
  }
  StartTargets(call, targets, 0, first_round, local_target, make_read, send, async);
  // The others only when one asked failed or is slow (speculative retry).
  if (first_round < targets.size() &&
      !call.WaitForQuorum(std::min(deadline, clock_->Now() + options_.read_speculate_after))) {
    ++counters_->speculative_reads;
    StartTargets(call, targets, first_round, targets.size(), local_target, make_read, send, async);
  }
  auto result = call.Wait(deadline);
  *stale_out = stale->load();
  out.quorum = {needed, result.succeeded};
  if (result.result == QuorumCall<SiblingSet>::Result::kFailed) {
    out.status =
        Status::QuorumFailed(Describe(out.quorum, "read answered by") + "; first error: " + result.first_error);
    return out;
  }
  if (result.result == QuorumCall<SiblingSet>::Result::kTimedOut) {
    out.status = Status::TimedOut(Describe(out.quorum, "read answered by") + " within " +
                                  std::to_string(options_.request_timeout.count()) + " ms");
    return out;
  }
  SiblingSet merged;
  for (const auto& reply : result.replies)
    if (reply) merged.Merge(*reply);
  out.status = Status::OK();
  out.found = merged.HasLive();
  out.values = merged.LiveValues();
  out.context = EncodeContext(merged.Context());
  return out;
}


QueryOutcome Coordinator::Query(const QueryRequest& request) {
  ++counters_->queries;
  RequestTimer timer(clock_, &counters_->query_us);
  QueryOutcome out;
  for (int attempt = 0;; ++attempt) {
    auto view = membership_->Current();
    bool stale = false;
    out = QueryInternal(request, view, &stale);
    if (!stale || attempt + 1 >= kMaxEpochRetries || !NewerView(*view)) break;
  }
  Count(out.status);
  return out;
}

QueryOutcome Coordinator::QueryInternal(const QueryRequest& request, const std::shared_ptr<const ClusterView>& view,
                                        bool* stale_out) {
  *stale_out = false;
  QueryOutcome out;
  if (!(out.status = ValidateKey(request.pk, request.start_sk)).ok()) return out;
  if (request.sk_prefix.size() > kMaxSkBytes) {
    out.status = Status::InvalidArgument("sk_prefix is longer than " + std::to_string(kMaxSkBytes) + " bytes");
    return out;
  }
  if (request.limit < 0 || request.limit > kMaxQueryLimit) {
    out.status = Status::InvalidArgument("limit=" + std::to_string(request.limit) + " is outside 0.." +
                                         std::to_string(kMaxQueryLimit) + " (0 means " +
                                         std::to_string(kDefaultQueryLimit) + ")");
    return out;
  }
  const size_t limit = request.limit == 0 ? kDefaultQueryLimit : static_cast<size_t>(request.limit);
  Placement place = Place(view, options_.self_id, request.pk, false);
  const uint32_t n = static_cast<uint32_t>(place.members.size());
  if (!(out.status = ValidateQuorum(request.r, "r", n)).ok()) return out;
  auto stale = std::make_shared<std::atomic<bool>>(false);
  DataPathFence* fence = fence_;
  ReplicaEndpoint* local = place.self_index >= 0 ? &endpoints_->Endpoint(*view, place.members[place.self_index])
                                                 : nullptr;
  const int needed = request.r == 0 ? static_cast<int>(std::min(options_.default_r, n)) : request.r;
  const bool asc = request.ascending;
  const auto deadline = clock_->Now() + options_.request_timeout;

  // A cursor into the pk, advanced round by round: replicas may answer with
  // different items (tombstones, missed writes), so only items up to the
  // earliest point where some replica stopped are known to be complete.
  std::string cursor = request.start_sk;
  bool cursor_exclusive = false;
  for (;;) {
    std::vector<ReplicaEndpoint*> targets;
    int local_target = -1;
    for (size_t i = 0; i < n; ++i) {
      ReplicaEndpoint* ep = &endpoints_->Endpoint(*place.view, place.members[i]);
      if (static_cast<int>(i) == place.self_index) local_target = static_cast<int>(targets.size());
      if (static_cast<int>(i) == place.self_index || ep->LikelyAlive()) targets.push_back(ep);
    }
    out.quorum = {needed, static_cast<int>(targets.size())};
    if (static_cast<int>(targets.size()) < needed) {
      out.status = Status::Unavailable(Describe(out.quorum, "replicas alive:"));
      out.items.clear();
      return out;
    }
    auto scan = std::make_shared<DataStore::ScanRequest>();
    scan->partition = place.partition;
    scan->pk = request.pk;
    scan->sk_prefix = request.sk_prefix;
    scan->start_sk = cursor;
    scan->start_exclusive = cursor_exclusive;
    scan->limit = limit + 1;
    scan->ascending = asc;
    QuorumCall<ScanReply> call(needed, executor_, clock_);
    // Read repair of this round once every replica answered, late ones
    // included; it needs the merged items too, whichever comes last runs it.
    auto repair = std::make_shared<RoundRepair>();
    repair->partition = place.partition;
    repair->pk = request.pk;
    repair->targets = targets;
    repair->ascending = asc;
    call.OnSettled([this, repair](const std::vector<std::optional<ScanReply>>& replies) {
      std::unique_lock<std::mutex> lock(repair->mu);
      repair->replies = replies;
      repair->have_replies = true;
      if (!repair->have_merged) return;
      lock.unlock();
      RepairRound(*repair);
    });
    StartTargets(call, targets, 0, targets.size(), local_target,
                 [scan, stale, fence, view, local](ReplicaEndpoint* ep) -> QuorumCall<ScanReply>::Call {
                   return [ep, scan, stale, fence, view, local](ScanReply* reply) {
                     EpochGate::Ticket ticket;
                     Status s;
                     if (ep == local && fence) s = fence->Admit(*view, scan->partition, &ticket);
                     if (s.ok()) s = ep->Scan(*scan, &reply->items, &reply->more);
                     if (s.Is(Status::Code::kStaleEpoch)) stale->store(true);
                     return s;
                   };
                 });
    auto result = call.Wait(deadline);
    *stale_out = *stale_out || stale->load();
    out.quorum = {needed, result.succeeded};
    if (result.result != QuorumCall<ScanReply>::Result::kQuorum) {
      out.items.clear();
      out.status = result.result == QuorumCall<ScanReply>::Result::kFailed
                       ? Status::QuorumFailed(Describe(out.quorum, "query answered by") +
                                              "; first error: " + result.first_error)
                       : Status::TimedOut(Describe(out.quorum, "query answered by") + " within " +
                                          std::to_string(options_.request_timeout.count()) + " ms");
      return out;
    }

    // Where the complete part of this round ends (inclusive), if any replica stopped early.
    std::optional<std::string> boundary;
    for (const auto& reply : result.replies) {
      if (!reply || !reply->more || reply->items.empty()) continue;
      const std::string& last = reply->items.back().sk;
      if (!boundary || (asc ? last < *boundary : last > *boundary)) boundary = last;
    }
    std::map<std::string, SiblingSet> merged;
    for (const auto& reply : result.replies) {
      if (!reply) continue;
      for (const auto& item : reply->items) {
        if (boundary && (asc ? item.sk > *boundary : item.sk < *boundary)) continue;
        merged[item.sk].Merge(item.siblings);
      }
    }
    {
      std::unique_lock<std::mutex> lock(repair->mu);
      repair->merged = merged;
      repair->have_merged = true;
      if (repair->have_replies) {
        lock.unlock();
        executor_->Submit([this, repair] { RepairRound(*repair); });  // off the client's path
      }
    }

    auto emit = [&](const std::string& sk, const SiblingSet& siblings) -> bool {
      // Returns false once the page is full and `sk` became the next start.
      if (out.items.size() == limit) {
        // "" cannot be a next start (it means the end); in descending order
        // the empty sk is the last item there is, so it joins this page.
        if (!(sk.empty() && !asc)) {
          out.next_start_sk = sk;
          return false;
        }
      }
      if (siblings.HasLive())
        out.items.push_back({sk, siblings.LiveValues(), EncodeContext(siblings.Context())});
      return true;
    };
    bool full = false;
    if (asc) {
      for (auto it = merged.begin(); it != merged.end() && !full; ++it) full = !emit(it->first, it->second);
    } else {
      for (auto it = merged.rbegin(); it != merged.rend() && !full; ++it) full = !emit(it->first, it->second);
    }
    if (full || !boundary) {
      out.status = Status::OK();
      return out;
    }
    if (clock_->Now() >= deadline) {
      out.items.clear();
      out.status = Status::TimedOut("query did not finish within " +
                                    std::to_string(options_.request_timeout.count()) + " ms");
      return out;
    }
    cursor = *boundary;
    cursor_exclusive = true;
  }
}

void Coordinator::RepairRound(const RoundRepair& round) {
  static const SiblingSet kAbsent;
  for (const auto& [sk, set] : round.merged) {
    std::vector<const SiblingSet*> answered(round.targets.size(), nullptr);
    for (size_t i = 0; i < round.replies.size() && i < round.targets.size(); ++i) {
      const auto& reply = round.replies[i];
      if (!reply) continue;
      // A replica that stopped at its limit says nothing past its last item.
      if (reply->more) {
        if (reply->items.empty()) continue;
        const std::string& last = reply->items.back().sk;
        if (round.ascending ? sk > last : sk < last) continue;
      }
      answered[i] = &kAbsent;
      for (const auto& item : reply->items)
        if (item.sk == sk) answered[i] = &item.siblings;
    }
    // Late replies may know more than the quorum did.
    SiblingSet full = set;
    for (const SiblingSet* a : answered)
      if (a) full.Merge(*a);
    RepairKey(ItemKey{round.partition, round.pk, sk}, round.targets, answered, full);
  }
}

}  // namespace monju
