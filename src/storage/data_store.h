// DataStore: the node's item store, one LMDB environment in DATA/data.
//
// It stores an opaque record per item (pk, sk) of a partition; it knows
// nothing of clocks (the replica encodes siblings into records).
//
// Layout. LMDB keys are partition (4 bytes, big-endian) + XXH3-128 of pk
// (16 bytes) + sk truncated to fit LMDB's key limit. One partition is one
// contiguous range and one pk is one contiguous range in sk order. Each LMDB
// value is a bucket of (pk, sk, record) entries sorted by sk: nearly always one
// entry; several only when sks share their first ~490 bytes or pk hashes
// collide. Truncation is monotone, so bucket order plus in-bucket order is sk
// order, and any pk and sk bytes work.
//
// Durability. Apply() returns only after an fsync'd LMDB commit. Concurrent
// Apply() calls are grouped into one write transaction by a single writer
// thread (group commit), so durability costs one fsync per batch, not per write.
//
// Thread safety: all methods may be called from any thread concurrently.
// Reads use short read-only transactions and never wait for the writer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace monju {

struct StorageOptions {
  std::string path;                        // directory; created if missing
  uint64_t map_size_bytes = 16ull << 30;   // LMDB map size: the store's size cap
  size_t max_batch_ops = 512;              // group commit: ops per transaction
  uint32_t max_pending_ops = 65536;        // writers beyond this wait (back-pressure)
  uint32_t max_readers = 126;              // threads that may read at once (LMDB reader slots)
};

struct ItemKey {
  uint32_t partition = 0;
  std::string pk;
  std::string sk;
};

// One item as ScanAll() finds it.
struct RawItem {
  uint32_t partition = 0;
  std::string pk, sk, record;
};

class DataStore {
 public:
  // Given the item's current record (nullopt when absent), returns the record
  // to store, std::nullopt to leave the item unchanged, or "" to erase it.
  // Runs on the writer thread inside the write transaction: it must be quick,
  // must not block, and must not call back into the store.
  using Mutator = std::function<std::optional<std::string>(const std::optional<std::string>& current)>;

  struct ScanRequest {
    uint32_t partition = 0;
    std::string pk;
    std::string sk_prefix;       // only sks starting with this
    std::string start_sk;        // "" means the first item in the direction
    bool start_exclusive = false;
    size_t limit = 100;
    bool ascending = true;
  };
  struct ScanItem {
    std::string sk;
    std::string record;
  };
  struct Stats {
    uint64_t commits = 0;      // write transactions committed
    uint64_t applied = 0;      // Apply() calls that committed
  };

  // Opens or creates the store. Errors: IOError (path not usable, LMDB open failed).
  static StatusOr<std::unique_ptr<DataStore>> Open(const StorageOptions& options);
  // Finishes queued writes, stops the writer thread, closes the environment.
  ~DataStore();
  DataStore(const DataStore&) = delete;
  DataStore& operator=(const DataStore&) = delete;

  // NotFound when the item is absent; Corruption when a bucket does not decode.
  Status Get(const ItemKey& key, std::string* record) const;

  // Applies `mutate` to the item and returns once durable. Errors: NoSpace
  // (map or disk full; nothing of the batch was written), IOError,
  // ShuttingDown. Blocks the caller; never call from the writer thread.
  Status Apply(const ItemKey& key, Mutator mutate);

  // Apply() of every op, queued with the writer at once so that they share
  // group commits (usually one fsync for all). Returns once all are durable:
  // one status per op, in order, each meaning what Apply()'s would. Ops on
  // the same item run in the given order. May exceed max_pending_ops by the
  // size of the batch.
  std::vector<Status> ApplyBatch(std::vector<std::pair<ItemKey, Mutator>> ops);

  // Items of one pk in sk order (or reverse), at most `limit`. `more` is set
  // when further matching items exist.
  Status Scan(const ScanRequest& request, std::vector<ScanItem>* out, bool* more) const;

  // Every item of every partition, page by page, for background work
  // (tombstone reaping, anti-entropy). Items come in storage order (partition,
  // pk hash, sk) strictly after `cursor` ("" = from the start), at most about
  // `limit` (whole buckets only, so a page can exceed it by the few entries of
  // a shared bucket; at least one bucket per call). *next is the opaque cursor
  // to continue from, "" when the end was reached. Each call is one short read
  // transaction; none is held across calls, so items written or erased during
  // a walk may or may not be seen, while items present throughout are seen
  // exactly once.
  // Corruption when a bucket does not decode: *out holds the items before it
  // and *next skips it, so a walk can log and go on. Other errors leave *next
  // at `cursor`.
  Status ScanAll(const std::string& cursor, size_t limit, std::vector<RawItem>* out, std::string* next) const;

  // Small node-local metadata (incarnation, shutdown marker). Put is durable.
  Status GetMeta(std::string_view key, std::string* value) const;
  Status PutMeta(std::string_view key, std::string_view value);

  Stats stats() const;
  // Longest sk stored without sharing a bucket (derived from LMDB's key limit).
  size_t max_exact_sk() const;

 private:
  class Impl;
  explicit DataStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monju
