#include "storage/data_store.h"
#include "common/recent_histogram.h"

#include <absl/synchronization/blocking_counter.h>
#include <absl/synchronization/mutex.h>
#include <lmdb.h>
#include <pthread.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>

#include "common/fixed_codec.h"
#include "storage/bucket.h"
#include "storage/layered_cursor.h"
#include "storage/memtable.h"
#include "common/thread_name.h"

namespace monju {
namespace {

constexpr size_t kKeyHeader = 4 + 16;  // partition + pk hash
// Meta key naming the digest function whose digests the items carry.
constexpr char kDigestIndexMeta[] = "digest_index";
constexpr uint64_t kBytesDigestSeed = 0x6d6f6e6a752d6264;
constexpr size_t kReindexItemsPerTxn = 10000;
// Meta key holding the last write-ahead log record LMDB holds (u64).
constexpr char kLogSeqMeta[] = "log_seq";
// Entry kinds of a log record's payload.
constexpr uint32_t kLogPut = 1, kLogErase = 2, kLogMeta = 3;
// A memtable is flushed at this size at the least (a nearly full map).
constexpr size_t kMinMemtableBytes = 64 << 10;
// Entries per LMDB transaction of a flush: LMDB caps a transaction's dirty
// pages (131,072), and a small update may dirty a leaf page each.
constexpr size_t kFlushEntriesPerTxn = 16384;
// The write-ahead log reserves its files ahead in chunks of the memtable size, at most this.
constexpr uint64_t kMaxLogReserveBytes = 64u << 20;

void HashLength(XXH3_state_t* state, size_t n) {
  const uint32_t len = static_cast<uint32_t>(n);
  unsigned char b[4] = {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
  XXH3_64bits_update(state, b, sizeof b);
}

// An items key's first bytes: partition, then the key hash (the top half of
// the pk hash), both big-endian, so a key-hash range is a key range.
std::string HashRangeStart(uint32_t partition, uint64_t key_hash) {
  std::string k(4 + 8, '\0');
  for (int i = 0; i < 4; ++i) k[i] = char((partition >> (24 - 8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i) k[4 + i] = char((key_hash >> (56 - 8 * i)) & 0xff);
  return k;
}

// The key hash of an items key (at least kKeyHeader bytes).
uint64_t KeyHashOf(std::string_view key) {
  uint64_t h = 0;
  for (size_t i = 4; i < 12; ++i) h = (h << 8) | uint8_t(key[i]);
  return h;
}

bool SamePartition(std::string_view key, std::string_view prefix) {
  return key.size() >= kKeyHeader && key.compare(0, 4, prefix, 0, 4) == 0;
}

std::string KeyHeader(uint32_t partition, std::string_view pk) {
  std::string k(kKeyHeader, '\0');
  for (int i = 0; i < 4; ++i) k[i] = char((partition >> (24 - 8 * i)) & 0xff);
  XXH128_hash_t h = XXH3_128bits(pk.data(), pk.size());
  for (int i = 0; i < 8; ++i) k[4 + i] = char((h.high64 >> (56 - 8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i) k[12 + i] = char((h.low64 >> (56 - 8 * i)) & 0xff);
  return k;
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// The smallest string greater than every string starting with `prefix`;
// nullopt when there is none (prefix is all 0xff bytes).
std::optional<std::string> PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && uint8_t(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::nullopt;
  end.back() = char(uint8_t(end.back()) + 1);
  return end;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// Read-only transaction that always ends.
class ReadTxn {
 public:
  explicit ReadTxn(MDB_env* env) { rc_ = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_); }
  ~ReadTxn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  int rc() const { return rc_; }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_;
};

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &cur_); }
  ~Cursor() {
    if (cur_) mdb_cursor_close(cur_);
  }
  int rc() const { return rc_; }
  MDB_cursor* get() const { return cur_; }

 private:
  MDB_cursor* cur_ = nullptr;
  int rc_;
};

}  // namespace

uint64_t BytesDigest(std::string_view pk, std::string_view sk, std::string_view record) {
  XXH3_state_t state;
  XXH3_64bits_reset_withSeed(&state, kBytesDigestSeed);
  HashLength(&state, pk.size());
  XXH3_64bits_update(&state, pk.data(), pk.size());
  HashLength(&state, sk.size());
  XXH3_64bits_update(&state, sk.data(), sk.size());
  XXH3_64bits_update(&state, record.data(), record.size());
  const uint64_t d = XXH3_64bits_digest(&state);
  return d ? d : 1;
}

uint64_t DataStore::KeyHash(std::string_view pk) { return XXH3_128bits(pk.data(), pk.size()).high64; }

// Items keys order by pk hash (high, then low half), then by truncated sk;
// a bucket orders by (sk, pk). Truncation keeps sk order, so together: pk
// hash, sk, pk.
bool DataStore::StorageOrderLess(std::string_view pk_a, std::string_view sk_a, std::string_view pk_b,
                                 std::string_view sk_b) {
  if (pk_a == pk_b) return sk_a < sk_b;
  const XXH128_hash_t a = XXH3_128bits(pk_a.data(), pk_a.size()), b = XXH3_128bits(pk_b.data(), pk_b.size());
  if (a.high64 != b.high64) return a.high64 < b.high64;
  if (a.low64 != b.low64) return a.low64 < b.low64;
  if (sk_a != sk_b) return sk_a < sk_b;
  return pk_a < pk_b;
}

class DataStore::Impl {
  class Caller;

 public:
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    if (writer_.joinable()) writer_.join();  // it commits what was queued first
    {
      std::lock_guard<std::mutex> lock(flush_mu_);
      flush_stop_ = true;
    }
    flush_cv_.notify_all();
    if (flusher_.joinable()) flusher_.join();
    if (env_ && log_) FlushLeftovers();
    if (env_) mdb_env_close(env_);
  }

  Status Open(const StorageOptions& options) {
    options_ = options;
    std::error_code ec;
    std::filesystem::create_directories(options.path, ec);
    if (ec) return Status::IOError("cannot create " + options.path + ": " + ec.message());
    int rc = mdb_env_create(&env_);
    if (rc) return LmdbError("mdb_env_create", rc);
    mdb_env_set_maxdbs(env_, 4);
    rc = mdb_env_set_maxreaders(env_, std::max<uint32_t>(options.max_readers, 16));
    if (rc) return LmdbError("mdb_env_set_maxreaders", rc);
    rc = mdb_env_set_mapsize(env_, options.map_size_bytes);
    if (rc) return LmdbError("mdb_env_set_mapsize", rc);
    rc = mdb_env_open(env_, options.path.c_str(), MDB_NOTLS, 0644);
    if (rc) return LmdbError(("mdb_env_open " + options.path).c_str(), rc);
    max_key_ = static_cast<size_t>(mdb_env_get_maxkeysize(env_));
    if (max_key_ <= kKeyHeader + 16) return Status::IOError("LMDB key size limit too small");

    MDB_txn* txn;
    rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc) return LmdbError("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, "items", MDB_CREATE, &items_)) || (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta_))) {
      mdb_txn_abort(txn);
      return LmdbError("mdb_dbi_open", rc);
    }
    // A store from before digests moved into the items has a separate index
    // of them; its pages go back to the free list, and in the same
    // transaction the meta stops naming a digest, so that the items get
    // theirs written in below (v2 buckets) even if this start is cut short.
    MDB_dbi old_index;
    rc = mdb_dbi_open(txn, "digests", 0, &old_index);
    if (rc == 0) rc = mdb_drop(txn, old_index, 1);
    if (rc == 0) {
      MDB_val mk = Val(kDigestIndexMeta), mv = Val("");
      rc = mdb_put(txn, meta_, &mk, &mv, 0);
      if (rc == 0) spdlog::info("dropping the separate digest index of an older store (items carry digests now)");
    }
    if (rc && rc != MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      return LmdbError("dropping the old digest index", rc);
    }
    rc = mdb_txn_commit(txn);
    if (rc) return LmdbError("mdb_txn_commit", rc);
    digest_ = options.digest ? options.digest : &BytesDigest;

    Status s = Recover();
    if (!s.ok()) return s;
    std::string indexed;
    s = GetMeta(kDigestIndexMeta, &indexed);
    if (!s.ok() && !s.Is(Status::Code::kNotFound)) return s;
    if (indexed != options.digest_name) {
      if (imm_)
        return Status::NoSpace("the items need new digests (" + options.digest_name +
                               "), but the write-ahead log could not be flushed into LMDB first: " +
                               flush_error_.ToString());
      s = Reindex();
      if (!s.ok()) return s;
    }
    UpdateFlushThreshold();
    writer_ = std::thread([this] { WriterLoop(); });
    NameThread(writer_, "store-writer");
    flusher_ = std::thread([this] { FlusherLoop(); });
    NameThread(flusher_, "store-flusher");
    return Status::OK();
  }

  // Replays the log records LMDB does not hold yet and flushes them, then
  // starts a fresh log file. When that flush fails, they stay readable as
  // the memtable being flushed, and writes are refused until a retry works.
  Status Recover() {
    // A file is reserved a memtable's worth at a time (capped): a memtable's
    // log usually fits one reserve.
    auto log = WriteAheadLog::Open(options_.path, options_.log_files,
                                   std::min<uint64_t>(options_.memtable_bytes, kMaxLogReserveBytes));
    if (!log.ok()) return log.status();
    log_ = std::move(log.value());
    uint64_t flushed = 0;
    std::string bytes;
    Status s = GetMeta(kLogSeqMeta, &bytes);
    if (s.ok()) {
      size_t pos = 0;
      if (!fixed::GetU64(bytes, pos, flushed)) return Status::Corruption("the store's log position does not decode");
    } else if (!s.Is(Status::Code::kNotFound)) {
      return s;
    }
    auto replayed = NewMemTable();
    uint64_t last = flushed;
    s = log_->Replay(
        flushed, [&](uint64_t seq, std::string_view payload) { return Load(seq, payload, replayed.get()); }, &last);
    if (!s.ok()) return s;
    last_seq_ = last;
    published_.store(last);
    active_ = NewMemTable();
    if (!replayed->empty()) {
      spdlog::info("write-ahead log: {} records ({} entries) after the last flush replayed", last - flushed,
                   replayed->entries());
      s = Flush(*replayed);
      if (!s.ok()) {
        spdlog::error("write-ahead log: the replayed records could not be flushed into LMDB ({}); they stay in "
                      "memory and in the log, and writes are refused until a flush succeeds",
                      s.ToString());
        imm_ = std::move(replayed);
        flush_error_ = s;
        ++stats_.flush_failures;
        return log_->StartFile(last + 1);
      }
    }
    // LMDB holds every record now: a log file that stays behind only costs
    // a replay of records it skips.
    s = log_->Reset();
    if (!s.ok()) spdlog::warn("write-ahead log: {} (its records are in LMDB)", s.ToString());
    return log_->StartFile(last + 1);
  }

  // Rewrites every item's digest with the configured function, a bounded
  // number of items per write transaction; the function is named in the meta
  // in the last one, so a crash midway starts over at the next Open(). Runs
  // before the writer, on LMDB alone (Recover() flushed the log).
  Status Reindex() {
    const auto started = std::chrono::steady_clock::now();
    MDB_txn* txn;
    int rc;
    std::string resume;
    bool done = false;
    uint64_t items = 0;
    for (bool first = true; !done; first = false) {
      rc = mdb_txn_begin(env_, nullptr, 0, &txn);
      if (rc) return LmdbError("mdb_txn_begin", rc);
      Status s;
      if (first) {
        // Until the last transaction names the function, the items' digests
        // are a mix: a crash midway must redo the walk whatever name the next
        // Open() is given.
        MDB_val mk = Val(kDigestIndexMeta), mv = Val("");
        rc = mdb_put(txn, meta_, &mk, &mv, 0);
        if (rc) s = LmdbError("mdb_put meta", rc);
      }
      if (s.ok()) s = ReindexSome(txn, &resume, &done, &items);
      if (s.ok() && done) {
        MDB_val mk = Val(kDigestIndexMeta), mv = Val(options_.digest_name);
        rc = mdb_put(txn, meta_, &mk, &mv, 0);
        if (rc) s = LmdbError("mdb_put meta", rc);
      }
      if (!s.ok()) {
        mdb_txn_abort(txn);
        return s;
      }
      rc = mdb_txn_commit(txn);
      if (rc) return LmdbError("mdb_txn_commit", rc);
    }
    reindexed_ = items;
    if (items > 0)
      spdlog::info("digests ({}) computed for {} items in {} ms", options_.digest_name, items,
                   std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                       .count());
    return Status::OK();
  }

  // Re-digests the items after `*resume` ("" = from the start) until about
  // kReindexItemsPerTxn are done or the end (*done).
  Status ReindexSome(MDB_txn* txn, std::string* resume, bool* done, uint64_t* items) {
    Cursor cur(txn, items_);
    if (cur.rc()) return LmdbError("mdb_cursor_open", cur.rc());
    MDB_val mk, mv;
    int rc;
    if (resume->empty()) {
      rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_FIRST);
    } else {
      mk = Val(*resume);
      rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
      if (rc == 0 && View(mk) == *resume) rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT);
    }
    size_t n = 0;
    for (; rc == 0; rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT)) {
      const std::string_view key = View(mk);
      if (key.size() < kKeyHeader) continue;
      uint32_t partition = 0;
      for (int i = 0; i < 4; ++i) partition = (partition << 8) | uint8_t(key[i]);
      auto bucket = Bucket::Decode(View(mv));
      if (!bucket.ok()) {
        spdlog::warn("digests: skipping an undecodable bucket of partition {}", partition);
        continue;
      }
      Bucket redigested;
      for (const Bucket::Entry& e : bucket->entries()) {
        redigested.Upsert(e.pk, e.sk, e.record, digest_(e.pk, e.sk, e.record));
        ++n;
      }
      // LMDB leaves the cursor on the replaced item (MDB_CURRENT with another
      // size is a delete and an insert), so MDB_NEXT goes on from it; the key
      // is copied first since the put may move the page it points into.
      const std::string key_copy(key);
      const std::string encoded = redigested.Encode();
      MDB_val put_key = Val(key_copy), put_value = Val(encoded);
      rc = mdb_cursor_put(cur.get(), &put_key, &put_value, MDB_CURRENT);
      if (rc) return LmdbError("mdb_cursor_put", rc);
      if (n >= kReindexItemsPerTxn) {
        resume->assign(key_copy);
        *items += n;
        return Status::OK();
      }
    }
    if (rc != MDB_NOTFOUND) return LmdbError("mdb_cursor_get", rc);
    *items += n;
    *done = true;
    return Status::OK();
  }

  size_t max_exact_sk() const { return max_key_ - kKeyHeader; }

  std::string BucketKey(uint32_t partition, std::string_view pk, std::string_view sk) const {
    std::string k = KeyHeader(partition, pk);
    k.append(sk.substr(0, std::min(sk.size(), max_exact_sk())));
    return k;
  }

  Status Get(const ItemKey& key, std::string* record) const {
    Snapshot snap(*this);
    if (snap.rc()) return LmdbError("mdb_txn_begin", snap.rc());
    std::string k = BucketKey(key.partition, key.pk, key.sk);
    std::string_view bytes;
    auto found = LayeredGet(snap.layers(), snap.seq(), snap.txn(), items_, k, &bytes);
    if (!found.ok()) return found.status();
    if (!found.value()) return Status::NotFound("no such item");
    auto bucket = Bucket::Decode(bytes);
    if (!bucket.ok()) return bucket.status();
    const Bucket::Entry* e = bucket->Find(key.pk, key.sk);
    if (!e) return Status::NotFound("no such item");
    *record = e->record;
    return Status::OK();
  }

  Status Apply(const ItemKey& key, Mutator mutate) {
    std::vector<std::pair<ItemKey, Mutator>> ops;
    ops.emplace_back(key, std::move(mutate));
    return ApplyBatch(std::move(ops)).front();
  }

  std::vector<Status> ApplyBatch(std::vector<std::pair<ItemKey, Mutator>> ops) {
    if (ops.empty()) return {};
    auto caller = std::make_shared<Caller>(ops.size());
    Status s = Queue(std::move(ops), caller);
    if (!s.ok()) return std::vector<Status>(caller->size(), s);
    return caller->Wait();
  }

  void ApplyBatchAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done) {
    QueueAsync(std::move(ops), std::move(done), /*wait_for_room=*/true);
  }

  bool TryApplyBatchAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done) {
    return QueueAsync(std::move(ops), std::move(done), /*wait_for_room=*/false);
  }

  // Queue() for a caller that does not wait. Waiting for room, an error
  // (closing) fails every op through `done` and this returns true; without
  // waiting, false (and `done` is dropped uncalled).
  bool QueueAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done, bool wait_for_room) {
    if (ops.empty()) {
      done({});
      return true;
    }
    auto caller = std::make_shared<Caller>(ops.size(), std::move(done));
    Status s = Queue(std::move(ops), caller, wait_for_room);
    if (s.ok()) return true;
    if (!wait_for_room) return false;
    caller->FailAll(s);
    return true;
  }

  // Queues every op for the writer at once (they share commits), waiting
  // for room first (or, without `wait_for_room`, Unavailable when there is
  // none). ShuttingDown when the store is closing. Nothing is queued on error.
  Status Queue(std::vector<std::pair<ItemKey, Mutator>> ops, const std::shared_ptr<Caller>& caller,
               bool wait_for_room = true) {
    std::vector<std::shared_ptr<PendingOp>> pending;
    pending.reserve(ops.size());
    const auto called = std::chrono::steady_clock::now();
    for (size_t i = 0; i < ops.size(); ++i) {
      auto op = std::make_shared<PendingOp>();
      op->queued = called;
      op->key = std::move(ops[i].first);
      op->mutate = std::move(ops[i].second);
      op->caller = caller;
      op->index = i;
      pending.push_back(std::move(op));
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (wait_for_room) {
        space_cv_.wait(lock, [&] { return stopping_ || queue_.size() < options_.max_pending_ops; });
      } else if (!stopping_ && queue_.size() >= options_.max_pending_ops) {
        return Status::Unavailable("the store's write queue is full");
      }
      if (stopping_) return Status::ShuttingDown("store is closing");
      // All at once: the writer takes them into the same commit(s).
      for (auto& op : pending) queue_.push_back(std::move(op));
    }
    work_cv_.notify_one();
    return Status::OK();
  }

  Status Scan(const ScanRequest& req, std::vector<ScanItem>* out, bool* more) const {
    out->clear();
    *more = false;
    if (req.limit == 0) return Status::OK();
    Snapshot snap(*this);
    if (snap.rc()) return LmdbError("mdb_txn_begin", snap.rc());
    LayeredCursor cur(snap.layers(), snap.seq(), snap.txn(), items_);

    const std::string header = KeyHeader(req.partition, req.pk);
    const std::string_view prefix = req.sk_prefix;
    // The bound the scan starts from, in sk terms.
    std::string bound;
    bool bound_exclusive = req.start_exclusive;
    bool unbounded = false;  // descending from the top of the pk
    if (req.ascending) {
      if (req.start_sk < prefix) {
        bound = std::string(prefix);
        bound_exclusive = false;
      } else {
        bound = req.start_sk;
      }
    } else if (req.start_sk.empty() && !req.start_exclusive) {
      unbounded = true;
    } else {
      bound = req.start_sk;
    }
    if (!req.ascending && !prefix.empty()) {
      // Never start a descending scan above the prefix range.
      std::optional<std::string> end = PrefixEnd(prefix);
      if (end && (unbounded || bound >= *end)) {
        bound = *end;
        bound_exclusive = true;
        unbounded = false;
      }
    }

    // Position on the first bucket to look at.
    if (req.ascending) {
      cur.SeekGE(BucketKey(req.partition, req.pk, bound));
    } else if (unbounded) {
      // The pk's last bucket: the last key below the header incremented as a number.
      std::string k = header;
      int i = static_cast<int>(k.size()) - 1;
      while (i >= 0 && uint8_t(k[i]) == 0xff) k[i--] = 0;
      if (i < 0) {
        cur.SeekToLast();
      } else {
        k[i] = char(uint8_t(k[i]) + 1);
        cur.SeekLT(k);
      }
    } else {
      // The last bucket whose key is <= the bound's bucket key.
      cur.SeekLE(BucketKey(req.partition, req.pk, bound));
    }

    for (; cur.Valid(); req.ascending ? cur.Next() : cur.Prev()) {
      if (!StartsWith(cur.key(), header)) break;
      // Read in place: only the items kept are copied, once.
      auto bucket = Bucket::DecodeViews(cur.value());
      if (!bucket.ok()) return bucket.status();
      const auto& entries = bucket.value();
      const size_t n = entries.size();
      for (size_t j = 0; j < n; ++j) {
        const Bucket::EntryView& e = entries[req.ascending ? j : n - 1 - j];
        if (e.pk != req.pk) continue;
        const std::string_view sk = e.sk;
        if (!unbounded) {
          int c = sk.compare(bound);
          if (req.ascending ? (c < 0 || (c == 0 && bound_exclusive)) : (c > 0 || (c == 0 && bound_exclusive)))
            continue;
        }
        if (!StartsWith(sk, prefix)) {
          // Past the prefix range in the scan direction: done.
          if (req.ascending ? sk > prefix : sk < prefix) return Status::OK();
          continue;
        }
        if (out->size() == req.limit) {
          *more = true;
          return Status::OK();
        }
        out->push_back({std::string(sk), std::string(e.record)});
      }
    }
    return cur.status();
  }

  Status ScanAll(const std::string& cursor, size_t limit, std::vector<RawItem>* out, std::string* next) const {
    out->clear();
    *next = cursor;
    Snapshot snap(*this);
    if (snap.rc()) return LmdbError("mdb_txn_begin", snap.rc());
    LayeredCursor cur(snap.layers(), snap.seq(), snap.txn(), items_);

    // The cursor is the key of the last bucket returned; every real key is
    // at least a header long, so "" cannot be one.
    if (cursor.empty()) {
      cur.SeekToFirst();
    } else {
      cur.SeekGE(cursor);
      if (cur.Valid() && cur.key() == cursor) cur.Next();
    }
    for (; cur.Valid(); cur.Next()) {
      const std::string_view key = cur.key();
      next->assign(key);
      if (key.size() < kKeyHeader) return Status::Corruption("item key shorter than its header");
      auto bucket = Bucket::Decode(cur.value());
      if (!bucket.ok()) {
        cur.Next();
        if (!cur.Valid() && cur.status().ok()) next->clear();
        return bucket.status();
      }
      uint32_t partition = 0;
      for (int i = 0; i < 4; ++i) partition = (partition << 8) | uint8_t(key[i]);
      for (const Bucket::Entry& e : bucket->entries()) out->push_back({partition, e.pk, e.sk, e.record});
      if (out->size() >= limit) {
        // Look one ahead so that a walk ending on a full page says so now
        // (an error here is the next call's to report).
        cur.Next();
        if (!cur.Valid() && cur.status().ok()) next->clear();
        return Status::OK();
      }
    }
    if (!cur.status().ok()) {
      *next = cursor;
      out->clear();
      return cur.status();
    }
    next->clear();
    return Status::OK();
  }

  uint64_t EntryDigest(const Bucket::Entry& e) const { return e.digest ? e.digest : digest_(e.pk, e.sk, e.record); }

  Status ScanDigests(uint32_t partition, uint64_t from, uint64_t to, const DigestEntry* after, size_t limit,
                     std::vector<DigestEntry>* out, bool* more) const {
    out->clear();
    *more = false;
    // Where `after` sits comes from its pk, not from the key hash it claims
    // (a peer's word), so a page never starts below `from`.
    const uint64_t after_hash = after ? DataStore::KeyHash(after->pk) : 0;
    if (after && after_hash > from) from = after_hash;
    if (from > to) return Status::OK();
    Snapshot snap(*this);
    if (snap.rc()) return LmdbError("mdb_txn_begin", snap.rc());
    LayeredCursor cur(snap.layers(), snap.seq(), snap.txn(), items_);
    // Resume in the bucket `after` sits in, or at the start of the range.
    std::string start = HashRangeStart(partition, from);
    std::string resume_bucket;
    if (after && after_hash >= from) {
      resume_bucket = BucketKey(partition, after->pk, after->sk);
      start = resume_bucket;
    }
    limit = std::max<size_t>(limit, 1);
    for (cur.SeekGE(start); cur.Valid(); cur.Next()) {
      const std::string_view key = cur.key();
      if (!SamePartition(key, start)) break;
      const uint64_t hash = KeyHashOf(key);
      if (hash > to) break;
      if (out->size() >= limit) {
        *more = true;
        break;
      }
      auto bucket = Bucket::Decode(cur.value());
      if (!bucket.ok()) return bucket.status();
      const bool resuming = !resume_bucket.empty() && key == resume_bucket;
      for (const Bucket::Entry& e : bucket->entries()) {
        // Entries of a bucket are sorted by (sk, pk): skip through `after`.
        if (resuming && std::tie(e.sk, e.pk) <= std::tie(after->sk, after->pk)) continue;
        if (out->size() >= limit) {
          *more = true;  // a shared bucket split across pages
          return Status::OK();
        }
        out->push_back({e.pk, e.sk, hash, EntryDigest(e)});
      }
    }
    return cur.status();
  }

  Status ForEachDigest(uint32_t partition, const std::function<void(uint64_t, uint64_t)>& fn,
                       uint64_t* snapshot_txn) const {
    Snapshot snap(*this);
    if (snap.rc()) return LmdbError("mdb_txn_begin", snap.rc());
    *snapshot_txn = snap.seq();
    LayeredCursor cur(snap.layers(), snap.seq(), snap.txn(), items_);
    const std::string start = HashRangeStart(partition, 0);
    for (cur.SeekGE(start); cur.Valid(); cur.Next()) {
      const std::string_view key = cur.key();
      if (!SamePartition(key, start)) break;
      auto bucket = Bucket::Decode(cur.value());
      if (!bucket.ok()) return bucket.status();
      const uint64_t hash = KeyHashOf(key);
      for (const Bucket::Entry& e : bucket->entries()) fn(hash, EntryDigest(e));
    }
    return cur.status();
  }

  StatusOr<uint64_t> SetCommitListener(CommitListener* listener) {
    auto done = std::make_shared<std::promise<StatusOr<uint64_t>>>();
    auto result = done->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status::ShuttingDown("store is closing");
      // Runs on the writer thread between two commits.
      control_.push_back([this, listener, done] {
        listener_ = listener;
        done->set_value(published_.load(std::memory_order_acquire));
      });
    }
    work_cv_.notify_one();
    return result.get();
  }

  Status GetMeta(std::string_view key, std::string* value) const {
    Snapshot snap(*this);
    if (snap.rc()) return LmdbError("mdb_txn_begin", snap.rc());
    for (const MemTable* m : snap.layers())
      if (m->GetMeta(key, snap.seq(), value)) return Status::OK();
    MDB_val mk = Val(key), mv;
    int rc = mdb_get(snap.txn(), meta_, &mk, &mv);
    if (rc == MDB_NOTFOUND) return Status::NotFound("no such meta key");
    if (rc) return LmdbError("mdb_get", rc);
    value->assign(View(mv));
    return Status::OK();
  }

  Status PutMeta(std::string_view key, std::string_view value) {
    // Goes through the writer and the log, as any write.
    auto op = std::make_shared<PendingOp>();
    op->meta_key = std::string(key);
    op->meta_value = std::string(value);
    op->is_meta = true;
    op->queued = std::chrono::steady_clock::now();
    op->caller = std::make_shared<Caller>(1);
    auto caller = op->caller;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status::ShuttingDown("store is closing");
      queue_.push_back(std::move(op));
    }
    work_cv_.notify_one();
    return caller->Wait().front();
  }

  Stats stats() const {
    Stats s;
    {
      absl::MutexLock lock(&stats_mu_);
      s = stats_;
      const auto now = std::chrono::steady_clock::now();
      s.commit_us = histograms_.commit_us.total();
      s.batch_ops = histograms_.batch_ops.total();
      s.apply_wait_us = histograms_.apply_wait_us.total();
      s.recent_commit_us = histograms_.commit_us.Recent(now);
      s.recent_batch_ops = histograms_.batch_ops.Recent(now);
      s.recent_apply_wait_us = histograms_.apply_wait_us.Recent(now);
    }
    s.reindexed = reindexed_.load();
    {
      std::lock_guard<std::mutex> lock(layers_mu_);
      s.memtable_bytes = (active_ ? active_->bytes() : 0) + (imm_ ? imm_->bytes() : 0);
    }
    s.log_bytes = log_ ? log_->bytes() : 0;
    return s;
  }

 private:
  // One Apply(), ApplyBatch() or PutMeta() call, waiting for all its ops at
  // once. Not a std::promise per op (setting one costs a futex wake even when
  // nobody waits, through its call_once), nor a condition variable (after a
  // wait glibc takes its mutex back marked contended, so the caller's unlock
  // costs another futex wake): a BlockingCounter wakes the caller once.
  class Caller {
   public:
    // Waited on with Wait().
    explicit Caller(size_t ops) : results_(ops), remaining_(static_cast<int>(ops)), left_(ops) {}
    // Completed through `done` instead.
    Caller(size_t ops, BatchDone done) : results_(ops), remaining_(0), left_(ops), done_(std::move(done)) {}
    size_t size() const { return results_.size(); }
    // On the writer thread, once per op; the last op of the call wakes the
    // caller (or runs `done`). The op that calls this still holds the Caller.
    void Finish(size_t index, const Status& status) {
      results_[index] = status;
      if (!done_) {
        remaining_.DecrementCount();
      } else if (--left_ == 0) {
        try {
          done_(std::move(results_));
        } catch (const std::exception& e) {
          // The writer goes on with its batch: one caller's failure is its own.
          spdlog::error("a store caller's completion failed: {}", e.what());
        }
      }
    }
    // Nothing was queued: every op fails with `status`, on this thread.
    void FailAll(const Status& status) {
      for (size_t i = 0; i < results_.size(); ++i) Finish(i, status);
    }
    // Once, by the caller (not with `done`).
    std::vector<Status> Wait() {
      remaining_.Wait();
      return std::move(results_);
    }

   private:
    std::vector<Status> results_;  // slot i written only by op i's Finish
    absl::BlockingCounter remaining_;
    size_t left_;  // with done_: ops not finished (writer thread only)
    BatchDone done_;
  };
  struct PendingOp {
    ItemKey key;
    Mutator mutate;
    bool is_meta = false;
    std::string meta_key, meta_value;
    std::shared_ptr<Caller> caller;
    size_t index = 0;  // in the caller's ops
    std::chrono::steady_clock::time_point queued;  // for apply_wait_us
  };
  using Batch = std::vector<std::shared_ptr<PendingOp>>;

  // What a reader sees: the commits through seq(), in the memtables (newest
  // first) over one LMDB read transaction. Taken under layers_mu_, so that a
  // memtable is in the list exactly until LMDB holds what it held: a
  // memtable is set aside and dropped under that lock, and the flush that
  // lets it go commits before the drop.
  class Snapshot {
   public:
    explicit Snapshot(const Impl& store) {
      std::lock_guard<std::mutex> lock(store.layers_mu_);
      active_ = store.active_;
      imm_ = store.imm_;
      seq_ = store.published_.load(std::memory_order_acquire);
      rc_ = mdb_txn_begin(store.env_, nullptr, MDB_RDONLY, &txn_);
      if (rc_) txn_ = nullptr;
      if (active_) layers_.push_back(active_.get());
      if (imm_) layers_.push_back(imm_.get());
    }
    ~Snapshot() {
      if (txn_) mdb_txn_abort(txn_);
    }
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;
    int rc() const { return rc_; }
    MDB_txn* txn() const { return txn_; }
    uint64_t seq() const { return seq_; }
    const std::vector<const MemTable*>& layers() const { return layers_; }

   private:
    std::shared_ptr<MemTable> active_, imm_;
    std::vector<const MemTable*> layers_;
    uint64_t seq_ = 0;
    MDB_txn* txn_ = nullptr;
    int rc_ = 0;
  };

  void WriterLoop() {
    for (;;) {
      Batch batch;
      std::deque<std::function<void()>> control;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !control_.empty(); });
        control.swap(control_);
        if (queue_.empty() && control.empty() && stopping_) return;
        while (!queue_.empty() && batch.size() < options_.max_batch_ops) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      for (auto& fn : control) fn();
      if (batch.empty()) continue;
      space_cv_.notify_all();
      std::vector<Status> results(batch.size());
      std::vector<DigestChange> changes;
      const auto began = std::chrono::steady_clock::now();
      Status s = Commit(batch, &results, &changes);
      if (s.ok()) {
        const auto durable = std::chrono::steady_clock::now();
        {
          absl::MutexLock lock(&stats_mu_);  // one snapshot sees counts and histograms agree
          ++stats_.commits;
          stats_.applied += batch.size();
          histograms_.commit_us.Record(MicrosOf(durable - began), durable);
          histograms_.batch_ops.Record(batch.size(), durable);
          for (const auto& op : batch) histograms_.apply_wait_us.Record(MicrosOf(durable - op->queued), durable);
        }
        // Before any waiter returns: once Apply() returns, listeners know.
        if (listener_) listener_->OnCommit(published_.load(std::memory_order_relaxed), changes);
      }
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->caller->Finish(batch[i]->index, s.ok() ? results[i] : s);
      if (s.ok()) MaybeSetAside();
    }
  }

  // Why writes are refused now, or OK: a flush that failed for want of
  // space (nothing can be written until one succeeds), or one that keeps
  // failing while the next memtable is full too.
  Status Refusal() {
    std::lock_guard<std::mutex> lock(flush_mu_);
    const bool backed_up = active_->bytes() >= 2 * flush_threshold_.load();
    if (!set_aside_error_.ok() && backed_up)
      return Status::IOError("the store takes no writes until it can start a new write-ahead log file: " +
                             set_aside_error_.message());
    if (flush_error_.ok()) return Status::OK();
    const bool full = flush_error_.Is(Status::Code::kNoSpace);
    if (!full && !backed_up) return Status::OK();
    const std::string why = "the store takes no writes until its memtable can be flushed into LMDB: " +
                            flush_error_.message();
    return full ? Status::NoSpace(why) : Status::IOError(why);
  }

  // The batch as one commit: each op's new record, all appended to the log
  // as one record and synced, then added to the active memtable and
  // published. An op whose stored bucket does not decode fails alone
  // (nothing is written for it); anything else fails the whole batch, and
  // then nothing of it was written. *changes: the batch's digest changes.
  Status Commit(const Batch& batch, std::vector<Status>* results, std::vector<DigestChange>* changes) {
    Status refused = Refusal();
    if (!refused.ok()) return refused;
    // The writer sees every commit (all are published by now).
    std::vector<const MemTable*> layers{active_.get()};
    std::shared_ptr<MemTable> imm;
    {
      std::lock_guard<std::mutex> lock(layers_mu_);
      imm = imm_;
    }
    if (imm) layers.push_back(imm.get());
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    // Each LMDB key's bucket after this batch (nullopt: erased); a later op
    // on the same key sees the earlier's.
    std::map<std::string, std::optional<std::string>> written;
    std::vector<std::pair<std::string, std::string>> metas;
    for (size_t i = 0; i < batch.size(); ++i) {
      const PendingOp& op = *batch[i];
      if (op.is_meta) {
        metas.emplace_back(op.meta_key, op.meta_value);
        continue;
      }
      bool op_only = false;
      Status s = Stage(op, layers, txn.get(), &written, &op_only, changes);
      if (op_only) {
        (*results)[i] = s;
      } else if (!s.ok()) {
        changes->clear();
        return s;
      }
    }
    if (written.empty() && metas.empty()) return Status::OK();  // nothing changed: nothing to log
    std::string payload;
    for (const auto& [key, bucket] : written) {
      fixed::PutU32(payload, bucket ? kLogPut : kLogErase);
      fixed::PutBytes(payload, key);
      if (bucket) fixed::PutBytes(payload, *bucket);
    }
    for (const auto& [key, value] : metas) {
      fixed::PutU32(payload, kLogMeta);
      fixed::PutBytes(payload, key);
      fixed::PutBytes(payload, value);
    }
    const uint64_t seq = last_seq_ + 1;
    Status s = log_->Append(seq, payload);
    if (!s.ok()) {
      changes->clear();
      return s;
    }
    last_seq_ = seq;
    for (const auto& [key, bucket] : written)
      active_->Add(seq, key, bucket ? std::optional<std::string_view>(*bucket) : std::nullopt);
    for (auto& [key, value] : metas) active_->PutMeta(seq, std::move(key), std::move(value));
    published_.store(seq, std::memory_order_release);
    return Status::OK();
  }

  // One op of a batch: its key's current bucket (from this batch, the
  // memtables or LMDB), mutated, into *written. `op_only`: the error
  // concerns this op alone.
  Status Stage(const PendingOp& op, const std::vector<const MemTable*>& layers, MDB_txn* txn,
               std::map<std::string, std::optional<std::string>>* written, bool* op_only,
               std::vector<DigestChange>* changes) {
    std::string k = BucketKey(op.key.partition, op.key.pk, op.key.sk);
    Bucket bucket;
    std::string_view bytes;
    bool present;
    auto staged = written->find(k);
    if (staged != written->end()) {
      present = staged->second.has_value();
      if (present) bytes = *staged->second;
    } else {
      auto found = LayeredGet(layers, MemTable::kLatest, txn, items_, k, &bytes);
      if (!found.ok()) return found.status();
      present = found.value();
    }
    if (present) {
      auto decoded = Bucket::Decode(bytes);
      if (!decoded.ok()) {
        *op_only = true;
        return decoded.status();
      }
      bucket = std::move(decoded.value());
    }
    const Bucket::Entry* current = bucket.Find(op.key.pk, op.key.sk);
    std::optional<std::string> now = current ? std::optional<std::string>(current->record) : std::nullopt;
    std::optional<std::string> next = op.mutate(now);
    if (!next) return Status::OK();
    const uint64_t before = current ? EntryDigest(*current) : 0;
    const uint64_t digest = next->empty() ? 0 : digest_(op.key.pk, op.key.sk, *next);
    if (next->empty()) {
      if (!current) return Status::OK();
      bucket.Erase(op.key.pk, op.key.sk);
    } else {
      bucket.Upsert(op.key.pk, op.key.sk, std::move(*next), digest);
    }
    if (before != digest) changes->push_back({op.key.partition, KeyHashOf(k), before, digest});
    std::optional<std::string> encoded;
    if (!bucket.empty()) encoded = bucket.Encode();
    if (staged != written->end()) {
      staged->second = std::move(encoded);
    } else {
      written->emplace(std::move(k), std::move(encoded));
    }
    return Status::OK();
  }

  // Sets the active memtable aside for the flusher once it is full, in a
  // log file of its own. If the one set aside before is still being
  // flushed, the active one fills on to twice the size, then the writer
  // waits for that flush (unless it is failing: then writes are refused).
  void MaybeSetAside() {
    const size_t threshold = flush_threshold_.load();
    if (!ActiveFull(threshold)) return;
    std::unique_lock<std::mutex> lock(flush_mu_);
    if (HasImm()) {
      if (active_->bytes() < 2 * threshold) return;
      flush_cv_.wait(lock, [&] { return !HasImm() || flush_stop_ || !flush_error_.ok(); });
      if (HasImm()) return;
    }
    Status s = log_->StartFile(last_seq_ + 1);
    set_aside_error_ = s;
    if (!s.ok()) {
      // The memtable and the current file go on (Refusal() stops writes if
      // this lasts); tried again after the next commit.
      spdlog::warn("write-ahead log: cannot start a new file ({}); flushing later", s.ToString());
      return;
    }
    {
      // Under flush_mu_ too: the flusher checks for a memtable and waits
      // under it, so the notification cannot fall between the two.
      std::lock_guard<std::mutex> layers(layers_mu_);
      imm_ = std::move(active_);
      active_ = NewMemTable();
    }
    lock.unlock();
    flush_cv_.notify_all();
  }

  // The active memtable holds enough to flush: its bytes, or its entries
  // counted as the LMDB pages a flush may dirty (one leaf each, copied on
  // write) when the map has little room.
  bool ActiveFull(size_t threshold) const {
    return active_->bytes() >= threshold || active_->entries() >= flush_entries_.load();
  }

  // A memtable whose key index has room for the keys a full one holds
  // (an entry takes at least 128 bytes; the index takes keys to half its slots).
  std::shared_ptr<MemTable> NewMemTable() const {
    return std::make_shared<MemTable>(std::max<size_t>(options_.memtable_bytes / 64, 1024));
  }

  bool HasImm() const {
    std::lock_guard<std::mutex> lock(layers_mu_);
    return imm_ != nullptr;
  }

  // Flushes each memtable set aside, retrying a failed flush with back-off.
  void FlusherLoop() {
    std::chrono::milliseconds backoff{0};
    for (;;) {
      std::shared_ptr<MemTable> imm;
      {
        std::unique_lock<std::mutex> lock(flush_mu_);
        if (backoff.count() > 0) flush_cv_.wait_for(lock, backoff, [&] { return flush_stop_; });
        flush_cv_.wait(lock, [&] { return flush_stop_ || HasImm(); });
        if (flush_stop_) return;  // the destructor flushes what is left
      }
      {
        std::lock_guard<std::mutex> lock(layers_mu_);
        imm = imm_;
      }
      const auto began = std::chrono::steady_clock::now();
      Status s = Flush(*imm);
      if (s.ok()) {
        {
          std::lock_guard<std::mutex> lock(layers_mu_);
          imm_.reset();
        }
        log_->DropThrough(imm->max_seq());
        UpdateFlushThreshold();
        {
          absl::MutexLock lock(&stats_mu_);
          ++stats_.flushes;
        }
        spdlog::debug("memtable of {} bytes ({} entries) flushed into LMDB in {} ms", imm->bytes(), imm->entries(),
                      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began)
                          .count());
        backoff = std::chrono::milliseconds(0);
      } else {
        {
          absl::MutexLock lock(&stats_mu_);
          ++stats_.flush_failures;
        }
        backoff = std::clamp(backoff * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(10000));
        if (backoff.count() >= 10000 || flush_error_.ok())
          spdlog::error("flushing a memtable into LMDB failed: {}; retrying in {} ms", s.ToString(), backoff.count());
      }
      {
        std::lock_guard<std::mutex> lock(flush_mu_);
        flush_error_ = s;
      }
      flush_cv_.notify_all();
    }
  }

  // Writes the memtable's newest entry of every key (and its meta) into
  // LMDB in fsync'd transactions of at most kFlushEntriesPerTxn entries (a
  // transaction's dirty pages are bounded); only the last records the last
  // log record the memtable covers. A flush cut short leaves LMDB with some
  // of the memtable's newer values and the old log position: readers see
  // the memtable over them anyway, and a replay rewrites the same values.
  Status Flush(const MemTable& mem) {
    MemTable::Iterator it(&mem, MemTable::kLatest);
    it.SeekToFirst();
    for (;;) {
      MDB_txn* txn;
      int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
      if (rc) return LmdbError("mdb_txn_begin", rc);
      auto fail = [&](const char* what) {
        mdb_txn_abort(txn);
        return LmdbError(what, rc);
      };
      for (size_t n = 0; it.Valid() && n < kFlushEntriesPerTxn; it.Next(), ++n) {
        MDB_val mk = Val(it.key());
        if (it.erased()) {
          rc = mdb_del(txn, items_, &mk, nullptr);
          if (rc && rc != MDB_NOTFOUND) return fail("mdb_del");
        } else {
          MDB_val mv = Val(it.value());
          rc = mdb_put(txn, items_, &mk, &mv, 0);
          if (rc) return fail("mdb_put");
        }
      }
      const bool last = !it.Valid();
      if (last) {
        for (const auto& [key, value] : mem.Metas()) {
          MDB_val mk = Val(key), mv = Val(value);
          rc = mdb_put(txn, meta_, &mk, &mv, 0);
          if (rc) return fail("mdb_put meta");
        }
        std::string seq;
        fixed::PutU64(seq, mem.max_seq());
        MDB_val mk = Val(kLogSeqMeta), mv = Val(seq);
        rc = mdb_put(txn, meta_, &mk, &mv, 0);
        if (rc) return fail("mdb_put meta");
      }
      rc = mdb_txn_commit(txn);  // fsyncs
      if (rc) return LmdbError("mdb_txn_commit", rc);
      if (last) return Status::OK();
    }
  }

  // At close: flushes what the memtables hold, so that the next Open()
  // replays nothing; what cannot be flushed stays in the log.
  void FlushLeftovers() {
    if (imm_) {
      Status s = Flush(*imm_);
      if (!s.ok()) {
        spdlog::warn("closing the store: a memtable could not be flushed ({}); the log keeps it", s.ToString());
        return;
      }
      log_->DropThrough(imm_->max_seq());
      imm_.reset();
    }
    if (active_ && !active_->empty()) {
      Status s = Flush(*active_);
      if (!s.ok()) {
        spdlog::warn("closing the store: the memtable could not be flushed ({}); the log keeps it", s.ToString());
        return;
      }
    }
    Status s = log_->Reset();
    if (!s.ok()) spdlog::warn("closing the store: {}", s.ToString());
  }

  // memtable_bytes, or a quarter of the map's unused space when that is
  // less (but at least kMinMemtableBytes), so that the memtables fit in the
  // map when flushed.
  void UpdateFlushThreshold() {
    MDB_envinfo info;
    MDB_stat stat;
    size_t threshold = options_.memtable_bytes;
    size_t entries = SIZE_MAX;
    if (mdb_env_info(env_, &info) == 0 && mdb_env_stat(env_, &stat) == 0) {
      const uint64_t used = (uint64_t(info.me_last_pgno) + 1) * stat.ms_psize;
      const uint64_t unused = info.me_mapsize > used ? info.me_mapsize - used : 0;
      threshold = std::min<uint64_t>(threshold, std::max<uint64_t>(unused / 4, kMinMemtableBytes));
      // Each entry may dirty a leaf page and its copy: two pages.
      entries = std::max<uint64_t>(unused / 4 / (2 * stat.ms_psize), 16);
    }
    flush_threshold_.store(std::max<size_t>(threshold, 1));
    flush_entries_.store(entries);
  }

  // One log record back into `into` (replay).
  static Status Load(uint64_t seq, std::string_view payload, MemTable* into) {
    size_t pos = 0;
    while (pos < payload.size()) {
      uint32_t kind;
      std::string key, value;
      if (!fixed::GetU32(payload, pos, kind) || !fixed::GetBytes(payload, pos, key))
        return Status::Corruption("write-ahead log record " + std::to_string(seq) + " does not decode");
      if (kind == kLogPut || kind == kLogMeta) {
        if (!fixed::GetBytes(payload, pos, value))
          return Status::Corruption("write-ahead log record " + std::to_string(seq) + " does not decode");
      } else if (kind != kLogErase) {
        return Status::Corruption("write-ahead log record " + std::to_string(seq) + " has an unknown entry kind " +
                                  std::to_string(kind));
      }
      if (kind == kLogMeta) {
        into->PutMeta(seq, std::move(key), std::move(value));
      } else {
        into->Add(seq, key, kind == kLogPut ? std::optional<std::string_view>(value) : std::nullopt);
      }
    }
    return Status::OK();
  }

  StorageOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi items_ = 0, meta_ = 0;
  size_t max_key_ = 0;
  RecordDigestFn digest_ = &BytesDigest;
  CommitListener* listener_ = nullptr;  // writer thread only
  std::unique_ptr<WriteAheadLog> log_;

  // The memtables: active_ takes commits (the writer adds to it; only the
  // writer replaces it), imm_ is being flushed. Replaced under layers_mu_.
  mutable std::mutex layers_mu_;
  std::shared_ptr<MemTable> active_, imm_;
  std::atomic<uint64_t> published_{0};  // the last commit readers see
  uint64_t last_seq_ = 0;               // the last commit logged (writer thread)

  std::mutex mu_;
  std::condition_variable work_cv_, space_cv_;
  std::deque<std::shared_ptr<PendingOp>> queue_;
  std::deque<std::function<void()>> control_;  // run by the writer between commits
  bool stopping_ = false;
  std::thread writer_;

  std::mutex flush_mu_;  // before layers_mu_ when both are held
  std::condition_variable flush_cv_;
  bool flush_stop_ = false;
  Status flush_error_;  // the last flush's outcome
  Status set_aside_error_;  // the last attempt to start a new log file (writer thread; read under flush_mu_)
  std::atomic<size_t> flush_threshold_{kMinMemtableBytes};
  std::atomic<size_t> flush_entries_{SIZE_MAX};  // entries that also make a memtable full
  std::thread flusher_;

  std::atomic<uint64_t> reindexed_{0};
  mutable absl::Mutex stats_mu_;
  Stats stats_;  // counters since Open() (reindexed apart); its histograms stay empty
  struct {
    TotalAndRecentHistogram commit_us, batch_ops, apply_wait_us;
  } histograms_;  // under stats_mu_, copied into stats()
};

StatusOr<std::unique_ptr<DataStore>> DataStore::Open(const StorageOptions& options) {
  auto impl = std::make_unique<Impl>();
  Status s = impl->Open(options);
  if (!s.ok()) return s;
  return std::unique_ptr<DataStore>(new DataStore(std::move(impl)));
}

DataStore::DataStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataStore::~DataStore() = default;
Status DataStore::Get(const ItemKey& key, std::string* record) const { return impl_->Get(key, record); }
Status DataStore::Apply(const ItemKey& key, Mutator mutate) { return impl_->Apply(key, std::move(mutate)); }
Status DataStore::Scan(const ScanRequest& r, std::vector<ScanItem>* out, bool* more) const {
  return impl_->Scan(r, out, more);
}
void DataStore::ApplyBatchAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done) {
  impl_->ApplyBatchAsync(std::move(ops), std::move(done));
}
bool DataStore::TryApplyBatchAsync(std::vector<std::pair<ItemKey, Mutator>> ops, BatchDone done) {
  return impl_->TryApplyBatchAsync(std::move(ops), std::move(done));
}
std::vector<Status> DataStore::ApplyBatch(std::vector<std::pair<ItemKey, Mutator>> ops) {
  return impl_->ApplyBatch(std::move(ops));
}
Status DataStore::ScanAll(const std::string& cursor, size_t limit, std::vector<RawItem>* out,
                          std::string* next) const {
  return impl_->ScanAll(cursor, limit, out, next);
}
Status DataStore::ScanDigests(uint32_t partition, uint64_t from, uint64_t to, const DigestEntry* after, size_t limit,
                              std::vector<DigestEntry>* out, bool* more) const {
  return impl_->ScanDigests(partition, from, to, after, limit, out, more);
}
Status DataStore::ForEachDigest(uint32_t partition, const std::function<void(uint64_t, uint64_t)>& fn,
                                uint64_t* snapshot_txn) const {
  return impl_->ForEachDigest(partition, fn, snapshot_txn);
}
StatusOr<uint64_t> DataStore::SetCommitListener(CommitListener* listener) {
  return impl_->SetCommitListener(listener);
}
Status DataStore::GetMeta(std::string_view key, std::string* value) const { return impl_->GetMeta(key, value); }
Status DataStore::PutMeta(std::string_view key, std::string_view value) { return impl_->PutMeta(key, value); }
DataStore::Stats DataStore::stats() const { return impl_->stats(); }
size_t DataStore::max_exact_sk() const { return impl_->max_exact_sk(); }

}  // namespace monju
