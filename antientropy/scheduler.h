// AntiEntropyScheduler: runs exchanges of every partition this node
// replicates with every co-owner, in turn, in the background; and on demand
// (`monju repair`).
//
// Contract
// - Background: `max_concurrent` worker threads. Each (partition, co-owner)
//   pair is exchanged at most once per `interval` (after a failed exchange,
//   again after `retry_after`), the pair exchanged least recently first; pairs
//   whose peer this node does not see alive are skipped until it is. After a
//   start every pair is due at once (a node that was down is repaired first
//   thing). interval 0: no background exchanges.
// - Load: at most `max_concurrent` exchanges run at once, background and
//   manual together, each one call at a time; all of them share one byte
//   budget (`bytes_per_second`, 0 = unlimited), waited out between calls.
//   An exchange therefore holds at most one of this node's threads and one of
//   the peer's request threads, and never a database transaction between
//   calls.
// - Pause: SetPaused(true) stops background exchanges at their next call and
//   starts no new ones until SetPaused(false). Manual runs go on (they are an
//   explicit request). Not persisted: a restart resumes.
// - Verification: before exchanging a partition whose tree was last checked
//   more than `verify_interval` ago, the tree is rebuilt from the items'
//   digests (PartitionTrees::Rebuild) and a difference is counted and logged
//   (trees_rebuilt). RunNow() checks every partition it covers first.
// - RunNow(partition, peer): the given partition (or every one replicated
//   here) with the given co-owner (or every one), one after another in the
//   caller's thread; returns a report of each exchange. Errors:
//   InvalidArgument when the partition is not replicated here or the peer is
//   not a co-owner of it (of any partition, without one); ShuttingDown after
//   Stop().
// - Counters (stats()) cover every exchange this node initiated, background
//   and manual; oldest_partition_age is the longest any replicated partition
//   has gone without a successful exchange with all its co-owners (counted
//   from the scheduler's start when never).
//
// Cost: picking the next exchange is O(log pairs + peers): due pairs wait in
// a queue per peer, ordered by last success, and the others by due time.
// The pairs are listed again (OwnedPartitions, CoOwners) only when the
// directory's LayoutId() changes. (Until 2026-12-07 every pick scanned every
// pair: a pass over all of them was quadratic, and with 65,536 partitions
// could not keep up with its interval.)
//
// Time for intervals and ages comes from the injected Clock; waiting (idle,
// rate limit) is real time on condition variables that Stop() interrupts.
// Thread safety: every method may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "exchange.h"
#include "partition_trees.h"
#include "throttle.h"

namespace monju {

// Who replicates what and how to reach them: implemented by the node over
// the current view and its failure detectors; faked in tests.
class ExchangeDirectory {
 public:
  virtual ~ExchangeDirectory() = default;
  // Partitions this node replicates, ascending.
  virtual std::vector<uint32_t> OwnedPartitions() = 0;
  // The other replicas of a partition (node ids), in preference-list order.
  virtual std::vector<std::string> CoOwners(uint32_t partition) = 0;
  // True when this node sees the peer alive.
  virtual bool PeerAlive(const std::string& peer) = 0;
  // Changes whenever OwnedPartitions() or CoOwners() may answer differently
  // (a new view), so that the scheduler asks them again only then. Cheap.
  virtual uint64_t LayoutId() = 0;
  // The peer's side of an exchange, nullptr when it is not a member. Owned by
  // the directory, valid while the scheduler runs, callable from any thread.
  virtual ExchangePeer* Peer(const std::string& peer) = 0;
};

struct SchedulerOptions {
  std::chrono::milliseconds interval{600'000};     // per pair; 0: no background exchanges
  std::chrono::milliseconds retry_after{30'000};   // after a failed exchange (at most interval)
  std::chrono::milliseconds verify_interval{std::chrono::hours(24)};
  uint32_t max_concurrent = 1;                     // at least 1
  uint64_t bytes_per_second = 4 << 20;             // 0: unlimited
  ExchangeLimits limits;
};

struct ExchangeReport {
  uint32_t partition = 0;
  std::string peer;
  ExchangeStats stats;
  std::chrono::milliseconds elapsed{0};
};

struct RepairReport {
  std::vector<ExchangeReport> exchanges;
  std::chrono::milliseconds elapsed{0};
  uint64_t trees_rebuilt = 0;  // trees found inconsistent by the check before
};

struct SchedulerStats {
  uint64_t exchanges = 0;            // run, background and manual
  uint64_t exchanges_failed = 0;
  uint64_t partitions_different = 0; // exchanges whose roots differed
  uint64_t leaves_different = 0;
  uint64_t keys_different = 0;
  uint64_t keys_sent = 0, keys_received = 0;
  uint64_t versions_sent = 0, versions_received = 0;
  uint64_t bytes_sent = 0, bytes_received = 0;
  uint64_t withheld = 0;             // reapable tombstones not sent to an empty replica
  uint64_t exchange_ms_total = 0, exchange_ms_max = 0, exchange_ms_last = 0;
  uint64_t trees_rebuilt = 0;        // trees found inconsistent with the items' digests
  int64_t oldest_partition_age_ms = 0;
  uint64_t partitions_never_exchanged = 0;
  uint32_t running = 0;
  bool paused = false;
};

class AntiEntropyScheduler {
 public:
  // None of the pointers is owned; all must outlive the scheduler. `format`
  // is the local tree format (LocalExchangePeer::format()).
  AntiEntropyScheduler(ExchangePeer* local, uint32_t format, PartitionTrees* trees, ExchangeDirectory* directory,
                       const Clock* clock, SchedulerOptions options);
  ~AntiEntropyScheduler();  // Stop()
  AntiEntropyScheduler(const AntiEntropyScheduler&) = delete;
  AntiEntropyScheduler& operator=(const AntiEntropyScheduler&) = delete;

  // Starts the background workers (none when interval is 0). Once only.
  void Start();
  // Cancels running exchanges at their next call, joins the workers.
  // Idempotent; later RunNow() and RunNextDue() calls do nothing.
  void Stop();

  // Returns the previous setting.
  bool SetPaused(bool paused);
  bool paused() const { return paused_.load(); }

  StatusOr<RepairReport> RunNow(std::optional<uint32_t> partition, const std::string& peer);

  // Runs the most overdue background exchange in the caller's thread, as a
  // worker would; false when none is due (or paused, or stopped).
  // Deterministic with a fake clock; tests call it directly.
  bool RunNextDue();

  SchedulerStats stats() const;

 private:
  using PairKey = std::pair<uint32_t, std::string>;
  // Where a pair waits for its next background exchange.
  enum class Queue { kNone, kWaiting, kDue };
  struct PairState {
    bool attempted = false, succeeded = false, failed_last = false, running = false;
    bool planned = false;  // in the current layout
    uint32_t rank = 0;     // the peer's place among the partition's co-owners
    Clock::TimePoint last_attempt, last_success;
    Queue queue = Queue::kNone;
    Clock::TimePoint queued_at;  // its key there: due time (kWaiting) or SuccessKey() (kDue)
    Clock::TimePoint DueAt(const SchedulerOptions& o) const {
      return last_attempt + (failed_last ? o.retry_after : o.interval);
    }
    // Never succeeded sorts first.
    Clock::TimePoint SuccessKey() const { return succeeded ? last_success : Clock::TimePoint::min(); }
  };
  // (partition, co-owner rank) within one peer's due queue, by last success.
  using DueEntry = std::tuple<Clock::TimePoint, uint32_t, uint32_t>;
  using Plan = std::vector<std::pair<uint32_t, std::vector<std::string>>>;  // partition, co-owners
  class Control;

  // Picks and marks running the next due pair; false when none. *wait: how
  // long until one may be due (idle sleep).
  bool PickDue(PairKey* pick, Clock::TimePoint::duration* wait);
  // Lists the pairs again when the directory's layout changed (mu_ not held).
  void RefreshLayout();
  // Takes the pair out of its queue and, unless it runs, puts it back where
  // its state says (under mu_).
  void Requeue(const PairKey& key, PairState& st);
  void Dequeue(const PairKey& key, PairState& st);
  // Runs one exchange in a concurrency slot and records it.
  ExchangeReport RunPair(uint32_t partition, const std::string& peer, bool manual);
  bool AcquireSlot();
  void ReleaseSlot();
  void CheckTree(uint32_t partition, bool force, uint64_t* rebuilt);
  void Record(const ExchangeReport& report, bool manual);
  void WorkerLoop();
  // Sleeps up to `d` of real time unless stopping (or, with `wake_on_notify`, notified).
  void Sleep(Clock::TimePoint::duration d);

  ExchangePeer* const local_;
  const uint32_t format_;
  PartitionTrees* const trees_;
  ExchangeDirectory* const directory_;
  const Clock* const clock_;
  const SchedulerOptions options_;
  ByteThrottle throttle_;
  const Clock::TimePoint started_;

  mutable std::mutex mu_;  // guards everything below, and the counters
  std::condition_variable cv_;
  std::map<PairKey, PairState> pairs_;  // every pair ever planned or run here
  std::optional<uint64_t> layout_id_;
  std::set<std::pair<Clock::TimePoint, PairKey>> waiting_;  // by due time
  std::map<std::string, std::set<DueEntry>> due_;           // by peer
  std::map<uint32_t, Clock::TimePoint> verified_at_;
  uint32_t running_ = 0;
  bool stopping_ = false;
  bool started_workers_ = false;
  SchedulerStats counters_;
  std::vector<std::thread> workers_;

  std::atomic<bool> paused_{false};
  std::atomic<bool> stop_flag_{false};
};

}  // namespace monju
