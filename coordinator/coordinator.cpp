#include "coordinator.h"

#include <spdlog/spdlog.h>

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

#include <absl/synchronization/notification.h>

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
  std::atomic<uint64_t> writes_with_fallback{0}, writes_hinted{0}, read_repairs{0}, read_repairs_dropped{0}, speculative_reads{0};
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
  WriteRun(WritePlan p, LiveRuns* live) : plan(std::move(p)), counted(live) {}
  absl::Mutex mu;  // not std::mutex: see Clock::WaitUntil
  absl::CondVar cv;
  WritePlan plan;
  std::shared_ptr<const ClusterView> view;
  std::shared_ptr<const ItemKey> key;
  std::shared_ptr<const Version> version;
  uint32_t self = 0;
  std::string first_error;
  bool stale = false;  // a replica refused: planned under a stale epoch
  std::shared_ptr<WriteRequest> request;  // reset once the outcome is given
  bool finished = false;                  // the outcome is decided
  bool local_pending = false;             // this node's own apply is under way
  TimerQueue::Id deadline_timer = 0, handoff_timer = 0;
  LiveRuns::Counted counted;
};

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
      counters_(std::make_unique<Counters>()),
      timers_(std::make_unique<TimerQueue>(clock, "coord-timers")) {}

Coordinator::~Coordinator() {
  // Replies still due (a store's commit, a fan-out task, a deadline) call
  // back into this coordinator: they end by the request deadline, unless a
  // disk or a peer call is stuck. Waiting longer beats freeing what they use.
  while (!live_runs_.AwaitNone(clock_, options_.request_timeout + std::chrono::seconds(5)))
    spdlog::error("coordinator: {} requests still running at shutdown past their deadline (a store commit or a "
                  "peer call is stuck); waiting for them",
                  live_runs_.count());
}

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
  s.read_repairs_dropped = counters_->read_repairs_dropped;
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

}  // namespace

namespace {
// Runs an asynchronous request and waits for its outcome (the blocking API).
template <typename Outcome, typename Start>
Outcome AwaitOutcome(Start&& start) {
  struct Slot {
    absl::Notification ready;
    Outcome out;
  };
  auto slot = std::make_shared<Slot>();
  start([slot](Outcome out) {
    slot->out = std::move(out);
    slot->ready.Notify();
  });
  slot->ready.WaitForNotification();
  return std::move(slot->out);
}
}  // namespace

WriteOutcome Coordinator::Put(const std::string& pk, const std::string& sk, std::string value,
                              const std::string& context, int32_t w) {
  return AwaitOutcome<WriteOutcome>([&](WriteDone done) { PutAsync(pk, sk, std::move(value), context, w, done); });
}

WriteOutcome Coordinator::Overwrite(const std::string& pk, const std::string& sk, std::string value, int32_t w) {
  return AwaitOutcome<WriteOutcome>([&](WriteDone done) { OverwriteAsync(pk, sk, std::move(value), w, done); });
}

WriteOutcome Coordinator::Remove(const std::string& pk, const std::string& sk, const std::string& context,
                                 int32_t w) {
  return AwaitOutcome<WriteOutcome>([&](WriteDone done) { RemoveAsync(pk, sk, context, w, done); });
}

ReadOutcome Coordinator::Get(const std::string& pk, const std::string& sk, int32_t r) {
  return AwaitOutcome<ReadOutcome>([&](ReadDone done) { GetAsync(pk, sk, r, done); });
}

void Coordinator::PutAsync(const std::string& pk, const std::string& sk, std::string value,
                           const std::string& context, int32_t w, WriteDone done) {
  PutValue(pk, sk, std::move(value), context, w, false, std::move(done));
}

void Coordinator::OverwriteAsync(const std::string& pk, const std::string& sk, std::string value, int32_t w,
                                 WriteDone done) {
  PutValue(pk, sk, std::move(value), std::string(), w, true, std::move(done));
}

template <typename Outcome>
std::function<void(Outcome)> Coordinator::Counted(SharedHistogram* histogram, std::function<void(Outcome)> done) {
  // The time from arrival to outcome, failures included, and the outcome's
  // counter, recorded before the caller hears of it.
  return [this, histogram, start = clock_->Now(), done = std::move(done)](Outcome out) {
    const Clock::TimePoint end = clock_->Now();
    histogram->Record(MicrosOf(end - start), end);
    Count(out.status);
    done(std::move(out));
  };
}

void Coordinator::PutValue(const std::string& pk, const std::string& sk, std::string value,
                           const std::string& context, int32_t w, bool replace_local, WriteDone done) {
  ++counters_->puts;
  done = Counted<WriteOutcome>(&counters_->put_us, std::move(done));
  if (value.size() > options_.max_value_bytes) {
    WriteOutcome out;
    out.status = Status::InvalidArgument("value is " + std::to_string(value.size()) + " bytes; the limit is " +
                                         std::to_string(options_.max_value_bytes));
    done(std::move(out));
    return;
  }
  Write(pk, sk, false, std::move(value), context, w, replace_local, std::move(done));
}

void Coordinator::RemoveAsync(const std::string& pk, const std::string& sk, const std::string& context, int32_t w,
                              WriteDone done) {
  ++counters_->removes;
  Write(pk, sk, true, std::string(), context, w, false, Counted<WriteOutcome>(&counters_->remove_us, std::move(done)));
}

// One client write across its attempts (a stale epoch plans it again).
struct Coordinator::WriteRequest {
  WriteDone done;
  std::string pk;
  Placement place;
  int base_needed = 0;
  int needed = 0;
  int attempt = 0;
  Clock::TimePoint deadline;
  std::shared_ptr<const ItemKey> key;
  std::shared_ptr<const Version> version;
};

void Coordinator::Write(const std::string& pk, const std::string& sk, bool tombstone, std::string value,
                        const std::string& context, int32_t w, bool replace_local, WriteDone done) {
  WriteOutcome out;
  auto fail = [&] { done(std::move(out)); };
  if (!(out.status = ValidateKey(pk, sk)).ok()) return fail();
  if (context.size() > kMaxContextBytes) {
    out.status = Status::InvalidArgument("context is larger than " + std::to_string(kMaxContextBytes) + " bytes");
    return fail();
  }
  auto ctx = DecodeContext(context);
  if (!ctx.ok()) {
    out.status = Status::InvalidArgument("context is malformed: pass back the bytes a read or write returned");
    return fail();
  }
  Placement place = Place(membership_->Current(), options_.self_id, pk, true);
  const uint32_t n = static_cast<uint32_t>(place.view->ReadOwners(place.partition).size());
  if (!(out.status = ValidateQuorum(w, "w", n)).ok()) return fail();
  const int base_needed = w == 0 ? static_cast<int>(std::min(options_.default_w, n)) : w;
  if (place.self_index < 0 || !local_) {
    // The caller saw this node as an owner under an earlier view.
    out.status = Status::NotOwner("this node is not a replica of the key (its membership view changed); "
                                  "nothing was written: retry the write");
    return fail();
  }
  const int needed = base_needed + static_cast<int>(place.pending);
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
      return fail();
    }
  }

  auto request = std::make_shared<WriteRequest>();
  request->deadline = clock_->Now() + options_.request_timeout;
  ItemKey key{place.partition, pk, sk};
  auto version = local_->PrepareWrite(key, ctx.value(), tombstone, std::move(value), replace_local);
  if (!version.ok()) {
    out.status = version.status().Is(Status::Code::kInvalidArgument)
                     ? version.status()
                     : Status::QuorumFailed("local replica could not prepare the write: " +
                                            version.status().ToString());
    out.quorum = {needed, 0};
    return fail();
  }
  if (tombstone) version.value().deleted_unix_ms = wall_->UnixMillis();
  request->done = std::move(done);
  request->pk = pk;
  request->place = std::move(place);
  request->base_needed = base_needed;
  request->needed = needed;
  request->key = std::make_shared<const ItemKey>(std::move(key));
  request->version = std::make_shared<const Version>(std::move(version.value()));
  StartWrite(request);
}

void Coordinator::StartWrite(const std::shared_ptr<WriteRequest>& request) {
  const Placement& place = request->place;
  const uint32_t self = place.members[place.self_index];
  const auto view = place.view;
  auto alive = [this, view, self](uint32_t member) {
    return member == self || endpoints_->Endpoint(*view, member).LikelyAlive();
  };
  auto run = std::make_shared<WriteRun>(WritePlan(place.members, view->WriteFallbacks(place.partition), self,
                                                  request->needed, options_.sloppy_quorum, alive),
                                        &live_runs_);
  run->view = view;
  run->self = self;
  run->key = request->key;
  run->version = request->version;
  run->request = request;
  std::vector<WritePlan::Action> first;
  {
    absl::MutexLock lock(&run->mu);
    first = run->plan.Start();
    // Timers first: the actions may end the run at once. Both times are
    // taken before either is set, the earlier set first, so that the timer
    // thread, once it waits, waits for the right one.
    const Clock::TimePoint handoff_at = clock_->Now() + options_.handoff_after;
    if (handoff_at < request->deadline) run->handoff_timer = timers_->Add(handoff_at, [this, run] { Handoff(run); });
    run->deadline_timer = timers_->Add(request->deadline, [this, run] { WriteDeadline(run); });
  }
  Execute(run, first);
}

void Coordinator::Execute(const std::shared_ptr<WriteRun>& run, const std::vector<WritePlan::Action>& actions) {
  // An action that could not even start fails at once.
  auto refuse = [this, &run](const WritePlan::Action& action, bool local, const std::string& why) {
    if (action.kind == WritePlan::Kind::kApply && local) {
      local_->FinishWrite(*run->key, run->version->dot, false);
      absl::MutexLock lock(&run->mu);
      run->local_pending = false;
    }
    Completed(run, action, Status::Unavailable(why));
  };
  std::optional<WritePlan::Action> here;  // the local apply, started last
  for (const auto& action : actions)
    if (action.member == run->self && action.kind == WritePlan::Kind::kApply) here = action;
  if (here) {
    // Pending from now: a remote ack completing the plan must not end the
    // run before this node's own apply has even started.
    absl::MutexLock lock(&run->mu);
    run->local_pending = true;
  }
  bool overloaded = false;
  for (const auto& action : actions) {
    const bool local = action.member == run->self;
    if (local && action.kind == WritePlan::Kind::kApply) continue;  // `here`, below
    ReplicaEndpoint* ep = &endpoints_->Endpoint(*run->view, action.member);
    auto complete = [this, run, action](const Status& s) { Completed(run, action, s); };
    // A peer's apply rides with the other writes to that peer (no thread
    // waits for it) when its endpoint can.
    if (!local && action.kind == WritePlan::Kind::kApply && ep->ApplyAsync(run->key, run->version, complete))
      continue;
    auto task = [run, action, local, ep, replica = local_, complete] {
      Status s;
      if (action.kind == WritePlan::Kind::kApply) {
        s = ep->Apply(*run->key, *run->version);
        if (local) replica->FinishWrite(*run->key, run->version->dot, s.ok());
      } else {
        s = ep->ApplyHinted(run->view->members()[action.owner].id, *run->key, *run->version);
      }
      complete(s);
    };
    if (executor_->Submit(std::move(task))) continue;
    overloaded = true;
    refuse(action, local, executor_->RefusalReason());
  }
  if (!here) return;
  // An overloaded node does no partial work: its own apply is refused too.
  if (overloaded) return refuse(*here, true, executor_->RefusalReason());
  // Admitted only while the planned placement holds; the ticket is held
  // until the apply is durable.
  auto ticket = std::make_shared<EpochGate::Ticket>();
  if (fence_) {
    Status s = fence_->Admit(*run->view, run->key->partition, ticket.get());
    if (!s.ok()) {
      local_->FinishWrite(*run->key, run->version->dot, false);
      {
        absl::MutexLock lock(&run->mu);
        run->local_pending = false;
      }
      return Completed(run, *here, s);
    }
  }
  local_->ApplyAsync(*run->key, *run->version, [this, run, action = *here, ticket](Status s) {
    local_->FinishWrite(*run->key, run->version->dot, s.ok());
    ticket->Release();
    {
      absl::MutexLock lock(&run->mu);
      run->local_pending = false;
    }
    Completed(run, action, s);
  });
}

void Coordinator::Completed(const std::shared_ptr<WriteRun>& run, const WritePlan::Action& action, const Status& s) {
  std::vector<WritePlan::Action> next;
  bool finish = false;
  {
    absl::MutexLock lock(&run->mu);
    if (s.ok()) {
      next = run->plan.OnSuccess(action);
    } else {
      if (run->first_error.empty()) run->first_error = s.ToString();
      if (s.Is(Status::Code::kStaleEpoch)) run->stale = true;
      next = run->plan.OnFailure(action);
    }
    // This node's own apply is waited for too (it is nearly always among
    // the first to end anyway): a write this node acknowledged is in its
    // replica, for the reads it coordinates next.
    if (!run->finished && run->plan.Done() && !run->local_pending) finish = run->finished = true;
  }
  if (!next.empty()) Execute(run, next);
  if (finish) FinishWrite(run);
}

void Coordinator::Handoff(const std::shared_ptr<WriteRun>& run) {
  std::vector<WritePlan::Action> more;
  {
    absl::MutexLock lock(&run->mu);
    run->handoff_timer = 0;
    if (run->finished) return;
    more = run->plan.OnHandoffDeadline();
  }
  Execute(run, more);
}

void Coordinator::WriteDeadline(const std::shared_ptr<WriteRun>& run) {
  {
    absl::MutexLock lock(&run->mu);
    run->deadline_timer = 0;
    if (run->finished) return;
    run->finished = true;
  }
  FinishWrite(run);
}

void Coordinator::FinishWrite(const std::shared_ptr<WriteRun>& run) {
  const std::shared_ptr<WriteRequest> request = run->request;
  const auto& view = run->view;
  WriteOutcome out;
  bool retry = false;
  {
    absl::MutexLock lock(&run->mu);
    if (run->deadline_timer) timers_->Cancel(run->deadline_timer);
    if (run->handoff_timer) timers_->Cancel(run->handoff_timer);
    run->deadline_timer = run->handoff_timer = 0;
    const auto& plan = run->plan;
    out.quorum = {request->needed, plan.acked_slots()};
    for (uint32_t m : plan.acked_members()) out.acked_by.push_back(view->members()[m].id);
    for (uint32_t m : plan.hinted_owners()) out.hinted_for.push_back(view->members()[m].id);
    out.used_fallback = plan.used_fallback();
    switch (plan.result()) {
      case WritePlan::Result::kMet:
        out.status = Status::OK();
        out.context = EncodeContext(run->version->FullContext());
        if (out.used_fallback) ++counters_->writes_with_fallback;
        if (!out.hinted_for.empty()) ++counters_->writes_hinted;
        break;
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
    retry = !out.status.ok() && run->stale && request->attempt + 1 < kMaxEpochRetries && NewerView(*view) &&
            clock_->Now() < request->deadline;
  }
  run->request.reset();  // the request outlives its run only through a retry
  if (!retry) return request->done(std::move(out));
  // On the executor: this may be a store's writer thread (the local apply
  // ended last), which must not queue into its own store.
  auto again = [this, request, out]() mutable { RetryWrite(request, std::move(out)); };
  if (!executor_->Submit(again)) request->done(std::move(out));
}

void Coordinator::RetryWrite(const std::shared_ptr<WriteRequest>& request, WriteOutcome out) {
  Placement next = Place(membership_->Current(), options_.self_id, request->pk, true);
  if (next.self_index < 0) {
    out.status = Status::TimedOut("the key's owners changed during the write and this node is no longer one of "
                                  "them; outcome unknown: " + out.status.message());
    return request->done(std::move(out));
  }
  ++request->attempt;
  request->place = std::move(next);
  request->needed = std::min(request->base_needed, static_cast<int>(request->place.view->ReadOwners(
                                                       request->place.partition).size())) +
                    static_cast<int>(request->place.pending);
  StartWrite(request);
}

// One client get across its attempts.
struct Coordinator::ReadRequest {
  ReadDone done;
  std::string pk, sk;
  int32_t r = 0;
  int attempt = 0;
};

// One attempt of a get: its view, its targets (this node's at
// local_target), the first round (targets [0, first_round) asked at once),
// and the answers.
struct Coordinator::ReadRun {
  explicit ReadRun(LiveRuns* live) : counted(live) {}
  absl::Mutex mu;
  std::shared_ptr<ReadRequest> request;  // reset once the outcome is given
  std::shared_ptr<const ClusterView> view;
  std::shared_ptr<const ItemKey> key;
  std::vector<ReplicaEndpoint*> targets;
  int local_target = -1;
  size_t first_round = 0;
  int needed = 0;
  Clock::TimePoint deadline;
  std::vector<std::optional<SiblingSet>> replies;  // by target
  int succeeded = 0, failed = 0, pending = 0;
  std::string first_error;
  bool stale = false;
  bool rest_asked = false;
  int asking = 0;         // Ask() calls under way
  bool finished = false;  // the outcome is decided
  bool repaired = false;  // read repair ran (every asked replica answered)
  TimerQueue::Id deadline_timer = 0, speculate_timer = 0;
  LiveRuns::Counted counted;
};

void Coordinator::GetAsync(const std::string& pk, const std::string& sk, int32_t r, ReadDone done) {
  ++counters_->gets;
  auto request = std::make_shared<ReadRequest>();
  request->done = Counted<ReadOutcome>(&counters_->get_us, std::move(done));
  request->pk = pk;
  request->sk = sk;
  request->r = r;
  StartRead(request, membership_->Current());
}

void Coordinator::StartRead(const std::shared_ptr<ReadRequest>& request, std::shared_ptr<const ClusterView> view) {
  ReadOutcome out;
  auto fail = [&] { request->done(std::move(out)); };
  if (!(out.status = ValidateKey(request->pk, request->sk)).ok()) return fail();
  Placement place = Place(std::move(view), options_.self_id, request->pk, false);
  const uint32_t n = static_cast<uint32_t>(place.members.size());
  if (!(out.status = ValidateQuorum(request->r, "r", n)).ok()) return fail();
  const int needed = request->r == 0 ? static_cast<int>(std::min(options_.default_r, n)) : request->r;
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
    return fail();
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
  auto run = std::make_shared<ReadRun>(&live_runs_);
  {
    absl::MutexLock lock(&run->mu);
    run->request = request;
    run->view = place.view;
    run->key = std::make_shared<const ItemKey>(ItemKey{place.partition, request->pk, request->sk});
    run->targets = std::move(targets);
    run->local_target = local_target;
    run->first_round = first_round;
    run->needed = needed;
    const Clock::TimePoint now = clock_->Now();
    run->deadline = now + options_.request_timeout;
    run->replies.assign(run->targets.size(), std::nullopt);
    run->pending = static_cast<int>(first_round);
    // The others only when one asked fails or is slow (speculative retry).
    // As for writes: the earlier timer is set first, from the same now.
    if (first_round < run->targets.size())
      run->speculate_timer = timers_->Add(std::min(run->deadline, now + options_.read_speculate_after),
                                          [this, run] { Speculate(run); });
    run->deadline_timer = timers_->Add(run->deadline, [this, run] { ReadDeadline(run); });
  }
  Ask(run, 0, first_round);
}

void Coordinator::Ask(const std::shared_ptr<ReadRun>& run, size_t begin, size_t end) {
  // The remote reads go out first; this node's own runs last, here. Until
  // then, answers do not fail the read (Settle).
  const int local = run->local_target;
  {
    absl::MutexLock lock(&run->mu);
    ++run->asking;
  }
  for (size_t i = begin; i < end; ++i) {
    if (static_cast<int>(i) == local) continue;
    ReplicaEndpoint* ep = run->targets[i];
    // A remote read rides with the other reads to its peer when it can (no
    // thread waits for it); otherwise, or when that is full, it runs on the
    // executor.
    if (ep->ReadsAsync() && ep->ReadAsync(run->key, [this, run, i](Status s, SiblingSet* reply) {
          Answered(run, i, s, reply);
        }))
      continue;
    const bool queued = executor_->Submit([this, run, i, ep] {
      SiblingSet reply;
      Status s;
      try {
        s = ep->Read(*run->key, &reply);
      } catch (const std::exception& e) {
        s = Status::IOError(std::string("replica call failed: ") + e.what());
      }
      Answered(run, i, s, &reply);
    });
    if (!queued) Answered(run, i, Status::Unavailable(executor_->RefusalReason()), nullptr);
  }
  if (local >= static_cast<int>(begin) && local < static_cast<int>(end)) {
    // Admitted only while the planned placement holds.
    EpochGate::Ticket ticket;
    Status s;
    if (fence_) s = fence_->Admit(*run->view, run->key->partition, &ticket);
    SiblingSet reply;
    if (s.ok()) s = run->targets[local]->Read(*run->key, &reply);
    ticket.Release();
    Answered(run, static_cast<size_t>(local), s, &reply);
  }
  {
    absl::MutexLock lock(&run->mu);
    --run->asking;
  }
  Settle(run);
}

void Coordinator::Answered(const std::shared_ptr<ReadRun>& run, size_t target, const Status& s, SiblingSet* reply) {
  {
    absl::MutexLock lock(&run->mu);
    --run->pending;
    if (s.ok() && reply) {
      ++run->succeeded;
      run->replies[target] = std::move(*reply);
    } else {
      ++run->failed;
      const Status why = s.ok() ? Status::IOError("a replica call reported success without a reply") : s;
      if (run->first_error.empty()) run->first_error = why.ToString();
      if (why.Is(Status::Code::kStaleEpoch)) run->stale = true;
    }
  }
  Settle(run);
}

void Coordinator::Settle(const std::shared_ptr<ReadRun>& run) {
  bool finish = false, ask_rest = false, repair = false;
  ReadDecision decision;
  {
    absl::MutexLock lock(&run->mu);
    if (!run->finished) {
      if (run->succeeded >= run->needed) {
        finish = run->finished = true;
      } else if (run->succeeded + run->pending < run->needed && run->asking == 0) {
        // Too few left (once this node's own answer is in, so that the
        // outcome counts it): ask the others now, or fail once nobody is left.
        if (!run->rest_asked && run->first_round < run->targets.size()) {
          ask_rest = run->rest_asked = true;
          run->pending += static_cast<int>(run->targets.size() - run->first_round);
        } else {
          finish = run->finished = true;
        }
      }
    }
    if (finish) decision = DecideLocked(*run);
    repair = run->finished && run->pending == 0 && !run->repaired;
    if (repair) run->repaired = true;
  }
  if (ask_rest) {
    ++counters_->speculative_reads;
    Ask(run, run->first_round, run->targets.size());
  }
  if (finish) FinishRead(std::move(decision));
  if (repair) RepairRead(run);
}

void Coordinator::Speculate(const std::shared_ptr<ReadRun>& run) {
  {
    absl::MutexLock lock(&run->mu);
    run->speculate_timer = 0;
    if (run->finished || run->rest_asked) return;
    run->rest_asked = true;
    run->pending += static_cast<int>(run->targets.size() - run->first_round);
  }
  ++counters_->speculative_reads;
  Ask(run, run->first_round, run->targets.size());
}

void Coordinator::ReadDeadline(const std::shared_ptr<ReadRun>& run) {
  ReadDecision decision;
  {
    absl::MutexLock lock(&run->mu);
    run->deadline_timer = 0;
    if (run->finished) return;
    run->finished = true;
    decision = DecideLocked(*run);
  }
  FinishRead(std::move(decision));
}

Coordinator::ReadDecision Coordinator::DecideLocked(ReadRun& run) {
  ReadDecision d;
  if (run.deadline_timer) timers_->Cancel(run.deadline_timer);
  if (run.speculate_timer) timers_->Cancel(run.speculate_timer);
  run.deadline_timer = run.speculate_timer = 0;
  d.request = std::move(run.request);
  ReadOutcome& out = d.out;
  out.quorum = {run.needed, run.succeeded};
  if (run.succeeded >= run.needed) {
    // The replies in by now (late ones only feed read repair).
    SiblingSet merged;
    for (const auto& reply : run.replies)
      if (reply) merged.Merge(*reply);
    out.status = Status::OK();
    out.found = merged.HasLive();
    out.values = merged.LiveValues();
    out.context = EncodeContext(merged.Context());
  } else if (run.succeeded + run.pending < run.needed) {
    out.status = Status::QuorumFailed(Describe(out.quorum, "read answered by") + "; first error: " + run.first_error);
  } else {
    out.status = Status::TimedOut(Describe(out.quorum, "read answered by") + " within " +
                                  std::to_string(options_.request_timeout.count()) + " ms");
  }
  // A replica is at a newer epoch (this node has caught up): read again
  // from that epoch's owners rather than trust a mixed answer.
  d.retry = run.stale && d.request->attempt + 1 < kMaxEpochRetries && NewerView(*run.view);
  return d;
}

void Coordinator::FinishRead(ReadDecision decision) {
  if (decision.retry) {
    // On the executor, not on the thread of the answer (or the timer's).
    ++decision.request->attempt;
    auto request = decision.request;
    if (executor_->Submit([this, request] { StartRead(request, membership_->Current()); })) return;
  }
  decision.request->done(std::move(decision.out));
}

void Coordinator::RepairRead(const std::shared_ptr<ReadRun>& run) {
  // Once every replica asked has answered or failed; targets never asked
  // have no reply and get nothing.
  std::vector<ReplicaEndpoint*> targets;
  std::vector<std::optional<SiblingSet>> replies;
  std::shared_ptr<const ItemKey> key;
  {
    absl::MutexLock lock(&run->mu);
    targets = run->targets;
    replies = std::move(run->replies);
    key = run->key;
  }
  SiblingSet merged;
  std::vector<const SiblingSet*> answered(targets.size(), nullptr);
  for (size_t i = 0; i < replies.size() && i < targets.size(); ++i) {
    if (!replies[i]) continue;
    answered[i] = &*replies[i];
    merged.Merge(*replies[i]);
  }
  RepairKey(*key, targets, answered, merged);
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
    if (!send.target->AppliesAsync()) {
      rest.push_back(std::move(send));
      continue;
    }
    auto version = std::make_shared<const Version>(std::move(send.version));
    // Counted as a live run: the outcome may come on the store's writer
    // thread after the read is over, and must not outlive the coordinator.
    auto live = std::make_shared<LiveRuns::Counted>(&live_runs_);
    const bool taken = send.target->ApplyAsync(shared_key, version, [counters, live](Status s) {
      ++(s.ok() ? counters->read_repairs : counters->read_repairs_dropped);
    });
    // Refused because it is full: not handed to a thread that would wait.
    if (!taken) ++counters->read_repairs_dropped;
  }
  if (rest.empty()) return;
  // Dropped when the executor is full: repair is best effort.
  const size_t pending = rest.size();
  if (!executor_->Submit([this, key, rest = std::move(rest)] {
        for (const Send& send : rest)
          ++(send.target->Apply(key, send.version).ok() ? counters_->read_repairs : counters_->read_repairs_dropped);
      }))
    counters_->read_repairs_dropped += pending;
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
    call.OnSettled([this, repair](std::vector<std::optional<ScanReply>> replies) {
      std::unique_lock<std::mutex> lock(repair->mu);
      repair->replies = std::move(replies);
      repair->have_replies = true;
      if (!repair->have_merged) return;
      const bool small = repair->merged.size() <= kRepairInlineItems;
      lock.unlock();
      // A late reply may come on the links' poller, which serves every
      // link: a big page's repair is decided on the executor instead.
      if (small || !executor_->Submit([this, repair] { RepairRoundGuarded(*repair); })) RepairRoundGuarded(*repair);
    });
    auto blocking_scan = [scan, stale, fence, view, local](ReplicaEndpoint* ep) -> QuorumCall<ScanReply>::Call {
      return [ep, scan, stale, fence, view, local](ScanReply* reply) {
        EpochGate::Ticket ticket;
        Status s;
        if (ep == local && fence) s = fence->Admit(*view, scan->partition, &ticket);
        if (s.ok()) s = ep->Scan(*scan, &reply->items, &reply->more);
        if (s.Is(Status::Code::kStaleEpoch)) stale->store(true);
        return s;
      };
    };
    // Remote scans go out from this thread when their endpoint can send
    // them without blocking (no fan-out thread hop), else on the executor;
    // the local one runs here, last.
    std::vector<size_t> slots;
    for (size_t i = 0; i < targets.size(); ++i) slots.push_back(call.AddSlot());
    for (size_t i = 0; i < targets.size(); ++i) {
      if (static_cast<int>(i) == local_target) continue;
      auto record = call.Completion(slots[i]);
      auto done = [record, stale](Status s, std::vector<ScannedItem>* items, bool more) {
        if (s.Is(Status::Code::kStaleEpoch)) stale->store(true);
        if (!s.ok()) return record(s, nullptr);
        ScanReply reply{std::move(*items), more};
        record(s, &reply);
      };
      if (!targets[i]->ScanAsync(scan, std::move(done))) call.Launch(slots[i], blocking_scan(targets[i]));
    }
    if (local_target >= 0) call.RunHere(slots[local_target], blocking_scan(targets[local_target]));
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
    {
      // The round's items go to its read repair (the page has copies).
      std::unique_lock<std::mutex> lock(repair->mu);
      repair->merged = std::move(merged);
      repair->in_merged.assign(targets.size(), false);
      for (size_t i = 0; i < result.replies.size() && i < targets.size(); ++i)
        repair->in_merged[i] = result.replies[i].has_value();
      repair->have_merged = true;
      if (repair->have_replies) {
        // Here: deciding costs about what the merge above did, and a hand-off
        // to the executor cost every query a thread switch (the sends that
        // a repair needs leave this thread anyway, see RepairKey).
        lock.unlock();
        RepairRoundGuarded(*repair);
      }
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

void Coordinator::RepairRoundGuarded(RoundRepair& round) {
  try {
    RepairRound(round);
  } catch (const std::exception& e) {
    spdlog::warn("a query's read repair failed: {}", e.what());  // best effort
  }
}

void Coordinator::RepairRound(RoundRepair& round) {
  static const SiblingSet kAbsent;
  const size_t n = std::min(round.replies.size(), round.targets.size());
  // A replica's items come in scan order, so each reply is walked once,
  // alongside the merged items (in ascending order).
  std::vector<size_t> walked(n, 0);
  std::vector<const SiblingSet*> answered(round.targets.size());
  for (auto& [sk, full] : round.merged) {
    std::fill(answered.begin(), answered.end(), nullptr);
    for (size_t i = 0; i < n; ++i) {
      const auto& reply = round.replies[i];
      if (!reply) continue;
      const auto& items = reply->items;
      // A replica that stopped at its limit says nothing past its last item.
      if (reply->more) {
        if (items.empty()) continue;
        const std::string& last = items.back().sk;
        if (round.ascending ? sk > last : sk < last) continue;
      }
      answered[i] = &kAbsent;
      auto item = [&](size_t j) -> const ScannedItem& {
        return round.ascending ? items[j] : items[items.size() - 1 - j];
      };
      size_t& j = walked[i];
      while (j < items.size() && item(j).sk < sk) ++j;
      if (j < items.size() && item(j).sk == sk) answered[i] = &item(j).siblings;
    }
    // Late replies may know more than the quorum did (the others are in).
    for (size_t i = 0; i < n; ++i)
      if (answered[i] && (i >= round.in_merged.size() || !round.in_merged[i])) full.Merge(*answered[i]);
    RepairKey(ItemKey{round.partition, round.pk, sk}, round.targets, answered, full);
  }
}

}  // namespace monju
