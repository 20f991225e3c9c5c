// Replica: this node's copy of the keys it holds, merged by causality.
//
// Contract
// - Apply() merges one version into the key's sibling set (superseded versions
//   are dropped, concurrent ones kept) and returns once it is durable. Applying
//   the same version again, or versions in any order, gives the same state.
// - Read()/Scan() return sibling sets as stored, tombstones included: callers
//   merge answers from several replicas, and a tombstone must be able to hide
//   an older value held elsewhere.
// - PrepareWrite() issues the dot for a write this node coordinates. Dots are
//   (actor, counter) with actor "<node id>/<incarnation>". A new, empty store
//   draws a random incarnation (a wiped node must not reissue the dots its
//   earlier life issued), and every start after an unclean shutdown bumps it
//   (a dot issued but not made durable before a crash is never issued again
//   with different content). A clean restart keeps the actor, so clocks do not
//   grow with routine restarts.
// - ReapIfUnchanged() erases a key's record (a reaped tombstone). Counters of
//   this node's actor that the record held are never issued again for any
//   key: a durable floor, raised before the erase, keeps PrepareWrite() above
//   them. Otherwise a recreated key would reuse dots that another owner's
//   not-yet-reaped tombstone already covers, and that tombstone would
//   silently swallow the new write.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <array>
#include <functional>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clock/causal.h"
#include "storage/data_store.h"

namespace monju {

struct ScannedItem {
  std::string sk;
  SiblingSet siblings;
};

class Replica {
 public:
  // Takes ownership of the store. Reads the incarnation and the clean-shutdown
  // marker, bumps the incarnation after an unclean stop, and clears the marker
  // (durably) before returning. Errors: those of the store.
  // `seed` picks the incarnation of a new store; pass a random value (tests
  // pass a fixed one).
  static StatusOr<std::unique_ptr<Replica>> Open(std::string node_id, std::unique_ptr<DataStore> store,
                                                 uint64_t seed);
  ~Replica();

  // Durable merge; NoSpace when the store is full, Corruption when the stored
  // record does not decode (the record is left untouched).
  Status Apply(const ItemKey& key, const Version& version);
  // Apply() of each item, sharing group commits (one or few fsyncs for the
  // lot). Returns once all are durable: one status per item, in order, each
  // meaning what Apply()'s would.
  std::vector<Status> ApplyBatch(const std::vector<std::pair<ItemKey, Version>>& items);
  // Apply() and ApplyBatch() without waiting: `done` gets what they would
  // return, once, on the store's writer thread when the items are durable
  // (or failed), or on this thread if the store is closing. It must be
  // quick and must not call into the store (DataStore::BatchDone).
  void ApplyAsync(const ItemKey& key, const Version& version, std::function<void(Status)> done);
  // ApplyAsync() that never waits for room in the store's queue: false, with
  // `done` never called and nothing written, when the queue is full or the
  // store is closing (DataStore::TryApplyBatchAsync).
  bool TryApplyAsync(const ItemKey& key, const Version& version, std::function<void(Status)> done);
  void ApplyBatchAsync(std::vector<std::pair<ItemKey, Version>> items,
                       std::function<void(std::vector<Status>)> done);
  // Erases the item only if its stored record is still byte-identical to
  // `expected_record` (as ReadEncoded()/ScanAll() gave it), so that a version
  // that arrived since the caller decided to erase survives. True when it was
  // erased; false when the record differs or is absent. Durable on return.
  // Errors: Corruption when `expected_record` does not decode (nothing is
  // erased), and those of the store.
  StatusOr<bool> ReapIfUnchanged(const ItemKey& key, const std::string& expected_record);
  // ReapIfUnchanged() of many items (records this node no longer owns after
  // a membership change), sharing group commits; the durable floor covers
  // them all first. Returns how many were erased. Records that do not decode
  // are left alone.
  StatusOr<size_t> EraseIfUnchanged(const std::vector<std::pair<ItemKey, std::string>>& items);
  // Empty set when absent.
  Status Read(const ItemKey& key, SiblingSet* out) const;
  Status Scan(const DataStore::ScanRequest& request, std::vector<ScannedItem>* out, bool* more) const;
  // The same, as stored: each record is an encoded SiblingSet (src/clock/
  // codec.h), ready to send to a peer without decoding. Read gives "" when absent.
  Status ReadEncoded(const ItemKey& key, std::string* record) const;
  Status ScanEncoded(const DataStore::ScanRequest& request, std::vector<DataStore::ScanItem>* out,
                     bool* more) const;
  // Every item of every partition, records as stored: DataStore::ScanAll().
  Status ScanAll(const std::string& cursor, size_t limit, std::vector<RawItem>* out, std::string* next) const;

  // A new version of `key` written through this node with the client's
  // context. Its dot is above every counter of this actor that the local
  // copy, the context or any write still in flight has used for this key.
  // Call FinishWrite() once the local Apply() of it has returned.
  // replace_local: the version also supersedes every version the local copy
  // holds now (an overwrite needing no context from the client).
  StatusOr<Version> PrepareWrite(const ItemKey& key, const CausalContext& context, bool tombstone,
                                 std::string value, bool replace_local = false);
  void FinishWrite(const ItemKey& key, const Dot& dot, bool applied_locally);

  // Records a clean shutdown (call after all writes have finished). Not
  // recorded while a dot whose local apply failed is still reserved, so the
  // next start takes a new actor rather than forget the reservation.
  Status MarkCleanShutdown();

  const std::string& actor() const { return actor_; }
  uint64_t incarnation() const { return incarnation_; }
  DataStore& store() { return *store_; }

 private:
  Replica(std::string node_id, std::unique_ptr<DataStore> store);
  static std::string InflightKey(const ItemKey& key);
  static std::string ActorName(const std::string& node_id, uint64_t incarnation);
  // Raises reap_floor_ to `counter` durably (no-op when already there).
  Status RaiseReapFloor(uint64_t counter);
  // ApplyBatchAsync() (waiting for room in the store's queue) or, without
  // `wait_for_room`, TryApplyAsync()'s refusal: false when not queued.
  bool QueueMerges(std::vector<std::pair<ItemKey, Version>> items, std::function<void(std::vector<Status>)> done,
                   bool wait_for_room);

  std::string node_id_;
  std::string actor_;
  uint64_t incarnation_ = 0;
  std::unique_ptr<DataStore> store_;

  // Every counter of actor_ held by a reaped record is at most this. Raised
  // (durably, under reap_floor_mu_) before the erase it covers.
  std::atomic<uint64_t> reap_floor_{0};
  std::mutex reap_floor_mu_;

  // Highest counter issued per key whose local apply has not finished. The
  // local read and the issue happen under the key's stripe lock, so a read
  // never misses a write whose in-flight entry is already gone.
  struct Stripe {
    std::mutex mu;
    std::unordered_map<std::string, uint64_t> inflight;
  };
  static constexpr size_t kStripes = 64;
  Stripe& StripeFor(const std::string& inflight_key);
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace monju
