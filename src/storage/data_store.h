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
// Durability. Apply() returns only once its write is durable. A single
// writer thread groups concurrent Apply() calls into one commit (group
// commit): the commit's changes are appended to a write-ahead log as one
// record and fdatasync'd, then become visible to readers, so durability
// costs one small sequential write and one flush per batch, not per write.
//
// Write-ahead log. Committed changes live in an in-memory table (memtable.h)
// over LMDB until a flusher thread writes them into LMDB in one large
// transaction (fsync'd as LMDB always does) and deletes the log files that
// held them. A memtable is set aside for flushing once it holds
// StorageOptions::memtable_bytes (less when the map is nearly full); the
// next one fills meanwhile, and writers wait only if that one fills too
// before the flush ends. Reads see the memtables and LMDB as one snapshot.
// At Open(), log records LMDB does not hold yet (a crash, or a flush cut
// short) are replayed and flushed before serving. LMDB itself is only ever
// written by whole fsync'd transactions, so a power cut can lose neither it
// nor an acknowledged write. When a flush fails (map or disk full), the
// flushed-to-be changes stay readable in memory and in the log, every write
// fails with the flush's error (NoSpace) until a retry succeeds, and the
// flush is retried with back-off; a restart replays them again.
//
// Digests. Every item also has a 64-bit digest (StorageOptions::digest of pk,
// sk and record; never 0), stored in its bucket beside the record, so it
// changes in the same write as the item, crash or not, and costs no page of
// its own. Its key hash, KeyHash(pk), is the top half of the pk hash that
// leads the item's LMDB key, so a key-hash range is one contiguous range of
// items: anti-entropy builds its Merkle trees from the items and lists the
// digests of a tree leaf (a key-hash range) by a range scan. All items of a
// pk share a key hash. A store opened with a digest of another name, or from
// before digests were stored (Open() drops its separate `digests` index),
// has every item re-digested at Open(), once.
//
// Commit listener. After every commit the writer thread reports each item
// change as (partition, key hash, digest before, digest after) with the
// commit's sequence number, before any Apply() of that commit returns. The
// listener therefore sees every durable change exactly once and in commit
// order; a failed batch reports nothing.
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

#include "common/latency_histogram.h"
#include "common/status.h"
#include "storage/write_ahead_log.h"

namespace monju {

// The digest of one item: equal on two replicas exactly when they hold the
// same content for the key. Must be deterministic, never 0 (0 means absent),
// and quick (it runs on the writer thread for every write).
using RecordDigestFn = uint64_t (*)(std::string_view pk, std::string_view sk, std::string_view record);

// XXH3 of the key and the record bytes: the default digest.
uint64_t BytesDigest(std::string_view pk, std::string_view sk, std::string_view record);

struct StorageOptions {
  std::string path;                        // directory; created if missing
  uint64_t map_size_bytes = 16ull << 30;   // LMDB map size: the store's size cap
  size_t max_batch_ops = 512;              // group commit: ops per transaction
  uint32_t max_pending_ops = 65536;        // writers beyond this wait (back-pressure)
  uint32_t max_readers = 126;              // threads that may read at once (LMDB reader slots)
  // The items' digest function and its name; a store digested under another
  // name is re-digested at Open(). Every replica of a cluster must use the same.
  RecordDigestFn digest = &BytesDigest;
  std::string digest_name = "bytes-v1";
  // A memtable this large (bytes held) is flushed to LMDB; at most two are
  // held. Clamped to a quarter of the map's unused space.
  size_t memtable_bytes = 32u << 20;
  // Opens the write-ahead log's files (null: POSIX files). For fault
  // injection in tests.
  LogFileFactory log_files = nullptr;
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

// One durable change of one item, as the commit listener sees it.
struct DigestChange {
  uint32_t partition = 0;
  uint64_t key_hash = 0;  // DataStore::KeyHash(pk)
  uint64_t before = 0;    // digest before the commit; 0 when the item was absent
  uint64_t after = 0;     // digest after; 0 when the item is now absent
};

// Told about every commit; see "Commit listener" above.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  // On the writer thread, after each commit, before the Apply() calls it
  // holds return; also for commits that changed no item (changes empty).
  // `txn` is the sequence number of the last commit once this one is done:
  // it never decreases (also across restarts), grows with every commit that
  // changed something, and is what a read snapshot taken now reports
  // (ForEachDigest). Must be quick,
  // must not block on anything that waits for a write, and must not call
  // into the store.
  virtual void OnCommit(uint64_t txn, const std::vector<DigestChange>& changes) = 0;
};

// One item as anti-entropy sees it.
struct DigestEntry {
  std::string pk, sk;
  uint64_t key_hash = 0;
  uint64_t digest = 0;
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
    uint64_t commits = 0;      // group commits (each one log record when it changed anything)
    uint64_t applied = 0;      // Apply() calls that committed
    uint64_t flushes = 0;      // memtables written into LMDB
    uint64_t flush_failures = 0;  // flush attempts that failed (retried)
    uint64_t memtable_bytes = 0;  // held in memtables now
    uint64_t log_bytes = 0;       // in write-ahead log files now
    uint64_t reindexed = 0;    // items Open() re-digested (another digest function, or an older store)
    // Since Open(), per group commit: its time (begin to durable, µs) and
    // its ops; per committed op: from its queueing to its
    // commit being durable (µs), what Apply() waits. The recent_ ones hold
    // the last 1-2 minutes' (RecentHistogram).
    LatencyHistogram commit_us, batch_ops, apply_wait_us;
    LatencyHistogram recent_commit_us, recent_batch_ops, recent_apply_wait_us;
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

  // Called once with every op's outcome (what ApplyBatch() would return),
  // on the writer thread once the ops are durable or have failed, or on the
  // calling thread when the store is closing. It must be quick, must not
  // block on anything that waits for a write, and must not call into the
  // store; it may hand the outcome on (complete a request, send a reply).
  using BatchDone = std::function<void(std::vector<Status>)>;

  // ApplyBatch() without waiting: the caller's thread is free once the ops
  // are queued (it may still wait for room in the queue, as ApplyBatch()
  // does). `done` gets the outcome.
  void ApplyBatchAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done);
  // ApplyBatchAsync() that never waits: false, with `done` never called and
  // nothing queued, when the queue has no room for the ops (max_pending_ops)
  // or the store is closing. For work that may be dropped (read repair) on
  // threads that must not stall behind the disk.
  bool TryApplyBatchAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done);

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

  // Where an item sits in the Merkle trees and in storage order: the top 64
  // bits of XXH3-128 of the pk. The same on every node and for every sk.
  static uint64_t KeyHash(std::string_view pk);
  // Storage order (what ScanDigests lists in) between two items: pk hash,
  // then sk, then pk. Hashes only when the pks differ.
  static bool StorageOrderLess(std::string_view pk_a, std::string_view sk_a, std::string_view pk_b,
                               std::string_view sk_b);

  // Installs `listener` (nullptr removes it) between two commits and returns
  // the sequence number of the last commit before it: every later commit
  // is reported to it. The listener must outlive its installation.
  // ShuttingDown when the store is closing.
  StatusOr<uint64_t> SetCommitListener(CommitListener* listener);

  // Items of one partition with from <= key_hash <= to, in storage order
  // (StorageOrderLess), at most `limit` (at least 1). `after`, when set, is the last
  // entry of the previous page (its pk, sk and key hash; the digest is not
  // read): the page starts just past it, at `from` at the earliest. *more
  // when items of the range remain after the page. One short read
  // transaction; items written between pages may or may not be seen, items
  // present throughout are seen exactly once. Corruption when a bucket does
  // not decode.
  Status ScanDigests(uint32_t partition, uint64_t from, uint64_t to, const DigestEntry* after, size_t limit,
                     std::vector<DigestEntry>* out, bool* more) const;
  // Calls fn(key_hash, digest) for every item of the partition, all
  // from one read snapshot, whose sequence number goes to *snapshot_txn (the
  // last commit it includes). fn must be quick; it runs inside the read
  // transaction.
  Status ForEachDigest(uint32_t partition, const std::function<void(uint64_t key_hash, uint64_t digest)>& fn,
                       uint64_t* snapshot_txn) const;

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
