// TombstoneReaper: erases tombstones once no replica can need them.
//
// A delete leaves a tombstone so that a replica which missed the delete cannot
// bring the key back: merged with the tombstone, its old value is superseded.
// A tombstone is reaped only when every owner of the key holds it (or a newer
// version) and a grace period has passed since the delete. Then no owner holds
// anything the tombstone deleted, so nothing can resurrect it through read
// repair, hints (their TTL is at most the grace period) or anti-entropy.
//
// The reaper walks the local store a page per pass, resuming where the last
// pass stopped and wrapping around at the end. For each local record that is
// tombstones only and old enough it reads every owner's copy and, when the
// rule holds, erases the record through Replica::ReapIfUnchanged() with the
// bytes it examined, so a version that lands meanwhile survives.
//
// Thread safety: every method may be called from any thread. Passes never
// overlap: RunOnce() waits for one already running.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clock/causal.h"
#include "common/clock.h"
#include "common/status.h"
#include "replica.h"

namespace monju {

// How the reaper asks the key's owners (all N, this node included) for their
// copies. Implemented by the node over Thrift; by fakes in tests. Called from
// the reaper's thread only.
class OwnerReader {
 public:
  virtual ~OwnerReader() = default;
  // False when this node is not currently an owner of the key's partition
  // (the reaper skips the key: its owners reap it).
  virtual bool IsOwner(const ItemKey& key) = 0;
  // Every owner's sibling set for the key (empty set = absent). Any error (an
  // owner down or not answering) means not safe: the key is left for later.
  virtual Status ReadAllOwners(const ItemKey& key, std::vector<SiblingSet>* out) = 0;
};

struct ReaperOptions {
  // How long after the delete a tombstone is kept at the least. Must exceed
  // the hint TTL and cover the clock skew between nodes.
  std::chrono::milliseconds grace{std::chrono::hours(6)};
  size_t items_per_pass = 1000;      // local items examined per pass
  size_t max_checks_per_pass = 100;  // owner reads per pass (network load)
  std::chrono::milliseconds interval{10000};  // pause between background passes
};

struct ReaperStats {
  uint64_t reaped = 0;   // tombstone records erased
  uint64_t checked = 0;  // candidates whose owners were asked
  uint64_t blocked = 0;  // checked, but an owner lacked the tombstone or did not answer
};

class TombstoneReaper {
 public:
  // None of the pointers is owned; all must outlive the reaper.
  TombstoneReaper(Replica* replica, OwnerReader* owners, const WallClock* wall, ReaperOptions options);
  ~TombstoneReaper();  // Stop()
  TombstoneReaper(const TombstoneReaper&) = delete;
  TombstoneReaper& operator=(const TombstoneReaper&) = delete;

  // One pass. Examines the next items_per_pass items from where the last pass
  // stopped (wrapping around at the end); for each local record that is
  // tombstones only and whose latest delete is older than grace, asks the
  // owners and reaps it when SafeToReap(). At most max_checks_per_pass
  // candidates are checked; the rest of the page carries over to the next
  // pass, which scans nothing new until they are done. Deterministic; tests
  // call it directly.
  void RunOnce();

  // A background thread running RunOnce() every interval until Stop().
  // Start() after Start() does nothing; Stop() is idempotent.
  void Start();
  void Stop();

  ReaperStats stats() const;

  // The rule. True when `local` is tombstones only, its latest delete is at
  // least `grace` old at `now_ms` (an unknown delete time, 0, counts as old),
  // and every owner's set either covers local's context (holds the tombstones
  // or something newer) or is empty. An empty owner already reaped the key or
  // never held it: it holds nothing the tombstone deleted, so nothing can come
  // back from it, and a partially reaped key must not keep its tombstone
  // forever elsewhere. False when `owners` is empty.
  static bool SafeToReap(const SiblingSet& local, const std::vector<SiblingSet>& owners, int64_t now_ms,
                         std::chrono::milliseconds grace);

 private:
  // A local record that looked reapable when its page was scanned.
  struct Candidate {
    ItemKey key;
    std::string record;  // the bytes seen: reaped only if still identical
    SiblingSet siblings;
  };

  // Scans the next page from cursor_ into backlog_.
  void ScanPage();
  bool OldEnough(const SiblingSet& siblings, int64_t now_ms) const;
  // Checks and maybe reaps one candidate. Returns true when an owner read
  // was spent on it.
  bool Examine(const Candidate& c, uint64_t* reaped);

  Replica* const replica_;
  OwnerReader* const owners_;
  const WallClock* const wall_;
  const ReaperOptions options_;

  std::mutex pass_mu_;  // one pass at a time; guards cursor_ and backlog_
  std::string cursor_;  // ScanAll cursor of the next page; "" = the start
  std::deque<Candidate> backlog_;

  std::atomic<uint64_t> reaped_{0}, checked_{0}, blocked_{0};

  std::mutex lifecycle_mu_;  // serialises Start() and Stop()
  // Checked between owner checks, so Stop() waits for one check at most.
  bool Stopping();
  std::mutex thread_mu_;     // guards stopping_ and thread_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace monju
