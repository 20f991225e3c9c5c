// Coordinator: runs one client request against the key's N replicas.
//
// Contract
// - Every request goes to all N replicas of the key's partition in parallel
//   (never one after another). A peer's part goes through ApplyAsync() /
//   ReadAsync() when its endpoint takes them (no thread waits for it), else
//   on the executor. Gets and writes hold no thread while replicas answer
//   (the *Async methods; the blocking ones wait on them): the local apply
//   is queued with the replica's store, the local read runs on the calling
//   thread once the peers' reads are out, and a timer thread of the
//   coordinator's (TimerQueue, on the injected clock) keeps the deadlines.
//   The answer comes as soon as W writes (or R reads) have acknowledged, a
//   write's also only once this node's own apply has ended (unless the
//   deadline comes first: W acknowledgements are still success), within
//   the request deadline. Partial success is never reported as success.
// - Writes use a sloppy quorum (write_plan.h): an owner that is down, fails,
//   or is silent for `handoff_after` gets a hint on a fallback node, which
//   counts toward W (strict mode: only owners count). The outcome names who
//   acknowledged and which owners get the write by handoff.
// - Reads go to the owners only, except that an owner beyond the R needed is
//   not asked while it is max_spare_reads_in_flight replies behind on this
//   node's reads. Once every asked replica has answered (after
//   the client got its answer), replicas whose answer lacked a version of the
//   merged result get it (read repair).
// - Errors: InvalidArgument (bad input, nothing sent), Unavailable (fewer
//   replicas believed alive than needed, nothing sent), QuorumFailed (replicas
//   answered but too few acknowledged), TimedOut (the deadline passed first).
//   `needed` and `got` say how many were needed and how many were alive or
//   acknowledged.
// - Writes need a dot from a replica of the key. When this node is not one,
//   IsOwner() is false and the caller forwards the write to an owner
//   (Put/Remove then return InvalidArgument).
// - Reads merge the replies by clock. A key whose surviving siblings are all
//   tombstones reads as not found, with the context still returned.
// - Membership changes (Raft-managed clusters): writes go to the partition's
//   WriteOwners and need W + PendingOwners acknowledgements; reads go to its
//   ReadOwners (membership.h). With a fence (set_fence), the local replica's
//   part of a request is admitted only while the planned view's placement
//   still holds, and a request that a replica refused as planned under a
//   stale epoch is planned again under the newer view this node then has (at
//   most kMaxEpochRetries times; the same version, so writes stay idempotent).
//
// Thread safety: all methods may be called concurrently. The coordinator does
// not own the endpoints, executor, clock, membership or local replica; they
// must outlive it. Destruction waits (up to the request timeout and 5 s)
// for requests still running, whose replica calls complete into it: stop
// the servers and the executor first.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clock/causal.h"
#include "common/clock.h"
#include "common/latency_histogram.h"
#include "common/shared_histogram.h"
#include "common/timer_queue.h"
#include "data_path_fence.h"
#include "common/status.h"
#include "membership.h"
#include "replica.h"
#include "storage/data_store.h"
#include "write_plan.h"

namespace monju {

// How the coordinator reaches one replica. Calls block until answered or
// until the endpoint's own timeout; they may run on any thread.
class ReplicaEndpoint {
 public:
  virtual ~ReplicaEndpoint() = default;
  virtual Status Apply(const ItemKey& key, const Version& version) = 0;
  // Apply() without holding the calling thread: `done` gets the outcome
  // exactly once, on another thread, and must be quick. False when the
  // endpoint does not do this or cannot take more now: `done` is then never
  // called, and the caller uses Apply() (or, for work it may drop, as read
  // repair, drops it when AppliesAsync() says the endpoint is only full).
  // True when ApplyAsync() takes applies (it may still refuse one when full).
  virtual bool AppliesAsync() const { return false; }
  virtual bool ApplyAsync(std::shared_ptr<const ItemKey> /*key*/, std::shared_ptr<const Version> /*version*/,
                          std::function<void(Status)> /*done*/) {
    return false;
  }
  // Stores the version durably as a hint for `owner` (a node id), for later
  // delivery. NoSpace when the replica's hint caps are reached.
  virtual Status ApplyHinted(const std::string& owner, const ItemKey& key, const Version& version) = 0;
  virtual Status Read(const ItemKey& key, SiblingSet* out) = 0;
  // True when ReadAsync() takes reads (it may still refuse one when full).
  virtual bool ReadsAsync() const { return false; }
  // Read() without holding the calling thread, as ApplyAsync(): `done` gets
  // the outcome and, when OK, the siblings (it may move from them).
  virtual bool ReadAsync(std::shared_ptr<const ItemKey> /*key*/, std::function<void(Status, SiblingSet*)> /*done*/) {
    return false;
  }
  virtual Status Scan(const DataStore::ScanRequest& request, std::vector<ScannedItem>* out, bool* more) = 0;
  // Scan() without holding the calling thread, as ApplyAsync(): `done` gets
  // the outcome and, when OK, the items (it may move from them) and whether
  // more follow. False when the endpoint does not do this or has no idle
  // way to send it now: the caller then uses Scan().
  virtual bool ScanAsync(std::shared_ptr<const DataStore::ScanRequest> /*request*/,
                         std::function<void(Status, std::vector<ScannedItem>*, bool more)> /*done*/) {
    return false;
  }
  // False while the peer is known to be down: the coordinator does not count it.
  virtual bool LikelyAlive() const = 0;
  // Reads this node gave the replica (ReadAsync) whose replies have not
  // come yet: how far behind on this node's reads it is.
  virtual size_t ReadsInFlight() const { return 0; }
};

// Endpoints by member index of a view (the local one included).
class EndpointDirectory {
 public:
  virtual ~EndpointDirectory() = default;
  virtual ReplicaEndpoint& Endpoint(const ClusterView& view, uint32_t member_index) = 0;
};

// Runs fan-out calls on other threads (tests may run quick tasks inline).
class Executor {
 public:
  virtual ~Executor() = default;
  // False when the executor is overloaded or stopping: the task will not run.
  virtual bool Submit(std::function<void()> task) = 0;
  // Why a Submit() was refused, for the caller's error.
  virtual std::string RefusalReason() const { return "node overloaded: fan-out queue full"; }
  // True once the executor is shutting down: a task may then answer at once
  // instead of starting work whose answer nobody will read.
  virtual bool Stopping() const { return false; }
};

enum class ReadFanout { kAll, kQuorum };

struct CoordinatorOptions {
  std::string self_id;
  uint32_t default_r = 2;
  uint32_t default_w = 2;
  std::chrono::milliseconds request_timeout{2000};
  uint64_t max_value_bytes = 1 << 20;
  bool sloppy_quorum = true;
  std::chrono::milliseconds handoff_after{300};
  // Which replicas a get asks: every live one (so each read repairs them
  // all), or R of them, this node's own first, and the others only when one
  // asked fails or has not answered within read_speculate_after.
  ReadFanout read_fanout = ReadFanout::kAll;
  std::chrono::milliseconds read_speculate_after{10};
  // A replica beyond the R a get needs is not asked while this many of this
  // node's reads to it are unanswered: without it, the slowest replica's
  // backlog of replies nobody waits for grows without bound (with R of N
  // answering, nothing slows the clients down to its pace).
  size_t max_spare_reads_in_flight = 32;
};

// Counters since start; read with stats().
struct CoordinatorStats {
  uint64_t puts = 0, gets = 0, removes = 0, queries = 0;
  uint64_t unavailable = 0, quorum_failed = 0, timed_out = 0, invalid = 0;
  uint64_t writes_with_fallback = 0;  // a fallback's hint counted toward W
  uint64_t writes_hinted = 0;         // some owner gets the write by handoff
  uint64_t read_repairs = 0;          // versions sent to stale replicas
  uint64_t read_repairs_dropped = 0;  // repairs not applied: refused (a full queue), or failed
  uint64_t speculative_reads = 0;     // gets that asked more than R replicas
  uint64_t spare_reads_skipped = 0;   // replicas beyond R not asked: too far behind
  // Time from a request's arrival at the coordinator to its outcome (µs),
  // failures included, since the start; and of the last 1-2 minutes
  // (RecentHistogram).
  LatencyHistogram put_us, get_us, remove_us, query_us;
  LatencyHistogram recent_put_us, recent_get_us, recent_remove_us, recent_query_us;
};

struct QuorumCount {
  int needed = 0;
  int got = 0;  // alive (Unavailable) or acknowledged (QuorumFailed)
};

struct WriteOutcome {
  Status status;
  QuorumCount quorum;
  std::string context;  // encoded; covers exactly the version written
  std::vector<std::string> acked_by;    // node ids, owners and fallbacks
  bool used_fallback = false;           // a fallback's hint counted toward W
  std::vector<std::string> hinted_for;  // owners that get the write by handoff
};

struct ReadOutcome {
  Status status;
  QuorumCount quorum;
  bool found = false;
  std::vector<std::string> values;
  std::string context;
};

struct QueryItem {
  std::string sk;
  std::vector<std::string> values;
  std::string context;
};

struct QueryOutcome {
  Status status;
  QuorumCount quorum;
  std::vector<QueryItem> items;
  std::string next_start_sk;
};

struct QueryRequest {
  std::string pk;
  std::string sk_prefix;
  std::string start_sk;
  int32_t limit = 0;  // 0: 100; > 1000 invalid
  bool ascending = true;
  int32_t r = 0;
};

class Coordinator {
 public:
  // `local` may be null on a node that holds no data (tests); then the node
  // never coordinates writes itself.
  // `clock` times the request deadline and the handoff wait (all waiting
  // goes through it); `wall` stamps tombstones with their delete time (for
  // reaping).
  Coordinator(CoordinatorOptions options, const Membership* membership, Replica* local,
              EndpointDirectory* endpoints, Executor* executor, const Clock* clock, const WallClock* wall);
  ~Coordinator();

  // True when this node is a replica of pk's partition in the current view.
  bool IsOwner(const std::string& pk) const;

  // The requests below block the calling thread until the outcome; their
  // *Async forms do not: `done` gets the outcome once, on whichever thread
  // completes the request (the calling one when it fails before anything is
  // sent or the local replica answers last, a store's writer or a fan-out
  // thread when a replica's answer completes it, or the coordinator's timer
  // thread at the deadline). `done` must be quick; it may send a reply.
  using WriteDone = std::function<void(WriteOutcome)>;
  using ReadDone = std::function<void(ReadOutcome)>;

  // w == 0 means the default. context: bytes from a previous read or write.
  WriteOutcome Put(const std::string& pk, const std::string& sk, std::string value, const std::string& context,
                   int32_t w);
  WriteOutcome Remove(const std::string& pk, const std::string& sk, const std::string& context, int32_t w);
  // A put whose version supersedes every version this node's replica holds
  // for the key when the write is prepared, with no context from the client
  // (one round trip instead of a get and a put). Versions this replica has
  // not seen yet (written concurrently through other nodes) stay siblings.
  WriteOutcome Overwrite(const std::string& pk, const std::string& sk, std::string value, int32_t w);
  ReadOutcome Get(const std::string& pk, const std::string& sk, int32_t r);
  QueryOutcome Query(const QueryRequest& request);

  void PutAsync(const std::string& pk, const std::string& sk, std::string value, const std::string& context,
                int32_t w, WriteDone done);
  void OverwriteAsync(const std::string& pk, const std::string& sk, std::string value, int32_t w, WriteDone done);
  void RemoveAsync(const std::string& pk, const std::string& sk, const std::string& context, int32_t w,
                   WriteDone done);
  void GetAsync(const std::string& pk, const std::string& sk, int32_t r, ReadDone done);

  // Validation shared with the network layer: InvalidArgument naming the field.
  static Status ValidateKey(const std::string& pk, const std::string& sk);
  Status ValidateQuorum(int32_t value, const char* name, uint32_t replicas) const;

  CoordinatorStats stats() const;

  // Raft-managed membership only; set before serving. Not owned.
  void set_fence(DataPathFence* fence) { fence_ = fence; }
  static constexpr int kMaxEpochRetries = 3;

 private:
  struct Counters;
  struct WriteRequest;
  struct WriteRun;
  struct ReadRequest;
  struct ReadRun;
  // A get's outcome, decided under its run's lock, given out after.
  struct ReadDecision {
    std::shared_ptr<ReadRequest> request;
    ReadOutcome out;
    bool retry = false;  // planned under a stale epoch: read again from the newer one
  };
  // `done` wrapped so that the outcome is timed into `histogram` and counted.
  template <typename Outcome>
  std::function<void(Outcome)> Counted(SharedHistogram* histogram, std::function<void(Outcome)> done);
  void Write(const std::string& pk, const std::string& sk, bool tombstone, std::string value,
             const std::string& context, int32_t w, bool replace_local, WriteDone done);
  // Put and Overwrite: the value's size check, then Write().
  void PutValue(const std::string& pk, const std::string& sk, std::string value, const std::string& context,
                int32_t w, bool replace_local, WriteDone done);
  // One attempt of a prepared write under the request's placement: plan,
  // send, and the timers of its handoff and deadline.
  void StartWrite(const std::shared_ptr<WriteRequest>& request);
  // Starts plan actions: peers' applies coalesced or on the executor, this
  // node's own apply last, in the background.
  void Execute(const std::shared_ptr<WriteRun>& run, const std::vector<WritePlan::Action>& actions);
  // An action ended: the plan decides what follows, and whether the run is done.
  void Completed(const std::shared_ptr<WriteRun>& run, const WritePlan::Action& action, const Status& s);
  void Handoff(const std::shared_ptr<WriteRun>& run);
  void WriteDeadline(const std::shared_ptr<WriteRun>& run);
  // Once per run: the outcome to the caller, or another attempt.
  void FinishWrite(const std::shared_ptr<WriteRun>& run);
  // The attempt after a stale one (`out`, given if none can start).
  void RetryWrite(const std::shared_ptr<WriteRequest>& request, WriteOutcome out);
  void StartRead(const std::shared_ptr<ReadRequest>& request, std::shared_ptr<const ClusterView> view);
  // Asks targets [begin, end) of the run, the remote ones first.
  void Ask(const std::shared_ptr<ReadRun>& run, size_t begin, size_t end);
  void Answered(const std::shared_ptr<ReadRun>& run, size_t target, const Status& s, SiblingSet* reply);
  // Decides the run once it can: quorum, the others to ask, or failure.
  void Settle(const std::shared_ptr<ReadRun>& run);
  void Speculate(const std::shared_ptr<ReadRun>& run);
  void ReadDeadline(const std::shared_ptr<ReadRun>& run);
  ReadDecision DecideLocked(ReadRun& run);
  void FinishRead(ReadDecision decision);
  void RepairRead(const std::shared_ptr<ReadRun>& run);
  void Count(const Status& s);
  // Sends each replica the merged versions its reply lacked, on the executor.
  void RepairKey(const ItemKey& key, const std::vector<ReplicaEndpoint*>& targets,
                 const std::vector<const SiblingSet*>& replies, const SiblingSet& merged);
  struct ScanReply {
    std::vector<ScannedItem> items;
    bool more = false;
  };
  // One query round's read repair: every reply (late ones included) and the
  // round's merged items, whichever arrives last triggers it.
  struct RoundRepair {
    std::mutex mu;
    uint32_t partition = 0;
    std::string pk;
    bool ascending = true;
    std::vector<ReplicaEndpoint*> targets;
    std::vector<std::optional<ScanReply>> replies;
    std::map<std::string, SiblingSet> merged;
    std::vector<bool> in_merged;  // by target: its reply is already in `merged`
    bool have_replies = false, have_merged = false;
  };
  // Decides a query round's repairs on the thread that has the last of its
  // replies and merged items (a round of more than kRepairInlineItems items
  // with a late reply: on the executor); the sends go off it (RepairKey).
  // Merges the late replies into round.merged.
  void RepairRound(RoundRepair& round);
  // RepairRound(), logging what it throws (repair is best effort).
  void RepairRoundGuarded(RoundRepair& round);
  static constexpr size_t kRepairInlineItems = 100;
  // *stale is set when a replica refused the request as planned under a stale epoch.
  QueryOutcome QueryInternal(const QueryRequest& request, const std::shared_ptr<const ClusterView>& view,
                             bool* stale);
  // True when a stale refusal may be retried: a newer view is installed.
  bool NewerView(const ClusterView& planned) const;

  CoordinatorOptions options_;
  const Membership* membership_;
  Replica* local_;
  EndpointDirectory* endpoints_;
  Executor* executor_;
  const Clock* clock_;
  const WallClock* wall_;
  // Runs of requests (objects that completions of replica calls point back
  // into), so that destruction waits for them.
  class LiveRuns {
   public:
    class Counted {
     public:
      explicit Counted(LiveRuns* live) : live_(live) {
        absl::MutexLock lock(&live_->mu_);
        ++live_->count_;
      }
      ~Counted() {
        absl::MutexLock lock(&live_->mu_);
        --live_->count_;
      }
      Counted(const Counted&) = delete;
      Counted& operator=(const Counted&) = delete;

     private:
      LiveRuns* live_;
    };
    // True once no run lives; false after `wait` on `clock`.
    bool AwaitNone(const Clock* clock, std::chrono::milliseconds wait) {
      const auto until = clock->Now() + wait;
      absl::MutexLock lock(&mu_);
      while (count_ > 0) {
        if (clock->Now() >= until) return false;
        // Woken by the clock only: the last run's end is rare (shutdown).
        clock->WaitUntil(cv_, mu_, std::min(until, clock->Now() + std::chrono::milliseconds(10)));
      }
      return true;
    }

    int64_t count() {
      absl::MutexLock lock(&mu_);
      return count_;
    }

   private:
    absl::Mutex mu_;
    absl::CondVar cv_;
    int64_t count_ = 0;
  };

  std::unique_ptr<Counters> counters_;
  DataPathFence* fence_ = nullptr;
  LiveRuns live_runs_;
  // Deadlines and handoff and speculation delays of requests in flight;
  // destroyed first, so that no timer fires into a half-destroyed coordinator.
  std::unique_ptr<TimerQueue> timers_;
};

}  // namespace monju
