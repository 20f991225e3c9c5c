// HintDelivery: replays stored hints to their owners once they are alive again.
//
// Contract
// - Per owner, hints go out oldest first (HintStore sequence order), in
//   batches of at most max_batch. A hint is removed from the store only after
//   the owner acknowledged the batch holding it; on any error the whole batch
//   stays and is sent again later. Owners merge by clock, so a repeat is
//   harmless (a crash between Deliver and Remove re-delivers).
// - Only owners the target reports alive are sent to. An owner whose Deliver
//   failed is not tried again before its backoff elapses (backoff_initial,
//   doubling on each further failure up to backoff_max, reset by a success).
// - All owners together get at most max_hints_per_second (a token bucket
//   holding one second's worth, starting full). Owners take turns: a pass
//   that runs out of budget resumes with the next owner.
// - Hints older than ttl (by WallClock, against Hint::created_unix_ms) are
//   dropped and counted, whether or not the owner is alive: anti-entropy
//   repairs what they carried. Hints are stored in creation order, so expiry
//   stops at an owner's first unexpired hint.
// - Memory is bounded: at most max_batch hints of one owner are loaded at once.
//
// Backoff and rate are measured on the injected Clock, so tests drive them
// with a fake one; only the background thread's idle wait uses real time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "hintstore.h"

namespace monju {

// How the worker reaches owners; implemented by the node over Thrift, by
// fakes in tests. Called from the delivery thread only (or from RunOnce's
// caller), one call at a time.
class HintTarget {
 public:
  virtual ~HintTarget() = default;
  // True when this node's failure detector currently sees `owner` as alive
  // (not suspect or down).
  virtual bool OwnerAlive(const std::string& owner) = 0;
  // Applies the versions at the owner (merge by clock, so a repeat is
  // harmless). OK only when the owner durably applied every hint of the
  // batch; any error means none may be deleted.
  virtual Status Deliver(const std::string& owner, const std::vector<Hint>& batch) = 0;
};

struct DeliveryOptions {
  size_t max_batch = 64;                           // hints per Deliver call (at least 1)
  double max_hints_per_second = 5000;              // token bucket over all owners; must be > 0
  std::chrono::milliseconds ttl{3 * 3600 * 1000};  // older hints are dropped, even while the owner is down
  std::chrono::milliseconds backoff_initial{200};  // after an owner's first failed Deliver
  std::chrono::milliseconds backoff_max{10000};    // doubling stops here
  std::chrono::milliseconds idle_interval{100};    // how often the background thread looks again
};

struct DeliveryStats {
  uint64_t delivered = 0;       // hints acknowledged by their owner and removed
  uint64_t expired = 0;         // hints dropped for being older than the ttl
  uint64_t failed_batches = 0;  // Deliver calls that returned an error
};

class HintDelivery {
 public:
  // Does not own its arguments; they must outlive it.
  HintDelivery(HintStore* store, HintTarget* target, const Clock* clock, const WallClock* wall,
               DeliveryOptions options);
  // Stop().
  ~HintDelivery();
  HintDelivery(const HintDelivery&) = delete;
  HintDelivery& operator=(const HintDelivery&) = delete;

  // One pass over every owner with pending hints: drops expired hints
  // (counted), then, for owners that are alive and not backing off, delivers
  // oldest-first in batches while the rate budget lasts. Deterministic given
  // the clocks and the target; tests call it directly. Errors are logged and
  // retried on a later pass. Thread-safe: concurrent calls run one at a time.
  void RunOnce();

  // Starts the background thread: RunOnce, then wait idle_interval or until
  // Notify(); never busy-loops. Does nothing if already started or stopped.
  void Start();
  // Idempotent and thread-safe; returns after the thread exited. A RunOnce in
  // progress stops after its current store or target call; later RunOnce and
  // Start calls do nothing.
  void Stop();
  // A hint was added or an owner came back: the thread looks again now
  // instead of at the end of its idle wait. Cheap; thread-safe.
  void Notify();

  // Thread-safe.
  DeliveryStats stats() const;

 private:
  using Duration = Clock::TimePoint::duration;

  struct OwnerBackoff {
    Duration delay{0};  // the current backoff
    Clock::TimePoint retry_at;
    uint32_t failures = 0;     // in a row
  };

  // Drops the owner's expired hints; false when the store failed.
  bool ExpireOwner(const std::string& owner);
  // Delivers the owner's hints while the budget lasts, counting them in
  // *sent; false when it stopped for lack of budget.
  bool DeliverToOwner(const std::string& owner, size_t* sent);
  void RecordFailure(const std::string& owner, const Status& why, const char* what);
  void RecordSuccess(const std::string& owner);
  void RefillTokens(Clock::TimePoint now);
  void Loop();

  HintStore* const store_;
  HintTarget* const target_;
  const Clock* const clock_;
  const WallClock* const wall_;
  const DeliveryOptions options_;
  const double bucket_capacity_;

  // State of passes; guarded by run_mu_ (RunOnce runs one at a time).
  std::mutex run_mu_;
  double tokens_;
  Clock::TimePoint tokens_at_;
  std::string resume_at_;  // the next pass starts with the first owner >= this
  std::map<std::string, OwnerBackoff> backoff_;

  std::atomic<uint64_t> delivered_{0}, expired_{0}, failed_batches_{0};

  // The background thread.
  std::mutex thread_mu_;  // serializes Start and Stop
  std::thread thread_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool notified_ = false;               // guarded by wake_mu_
  std::atomic<bool> stopping_{false};
};

}  // namespace monju
