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
#include <mutex>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>

#include "storage/bucket.h"

namespace monju {
namespace {

constexpr size_t kKeyHeader = 4 + 16;  // partition + pk hash
// Meta key naming the digest function whose digests the items carry.
constexpr char kDigestIndexMeta[] = "digest_index";
constexpr uint64_t kBytesDigestSeed = 0x6d6f6e6a752d6264;
constexpr size_t kReindexItemsPerTxn = 10000;

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

Status LmdbError(const char* what, int rc) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL || rc == ENOSPC) return Status::NoSpace(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND) return Status::Corruption(msg);
  return Status::IOError(msg);
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
 public:
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
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
    std::string indexed;
    Status s = GetMeta(kDigestIndexMeta, &indexed);
    if (!s.ok() && !s.Is(Status::Code::kNotFound)) return s;
    if (indexed != options.digest_name) {
      s = Reindex();
      if (!s.ok()) return s;
    }
    writer_ = std::thread([this] { WriterLoop(); });
    pthread_setname_np(writer_.native_handle(), "store-writer");  // for profiles
    return Status::OK();
  }

  // Rewrites every item's digest with the configured function, a bounded
  // number of items per write transaction; the function is named in the meta
  // in the last one, so a crash midway starts over at the next Open(). Runs
  // before the writer.
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
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    std::string k = BucketKey(key.partition, key.pk, key.sk);
    MDB_val mk = Val(k), mv;
    int rc = mdb_get(txn.get(), items_, &mk, &mv);
    if (rc == MDB_NOTFOUND) return Status::NotFound("no such item");
    if (rc) return LmdbError("mdb_get", rc);
    auto bucket = Bucket::Decode(View(mv));
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
      space_cv_.wait(lock, [&] { return stopping_ || queue_.size() < options_.max_pending_ops; });
      if (stopping_) return std::vector<Status>(ops.size(), Status::ShuttingDown("store is closing"));
      // All at once: the writer takes them into the same transaction(s).
      for (auto& op : pending) queue_.push_back(std::move(op));
    }
    work_cv_.notify_one();
    return caller->Wait();
  }

  Status Scan(const ScanRequest& req, std::vector<ScanItem>* out, bool* more) const {
    out->clear();
    *more = false;
    if (req.limit == 0) return Status::OK();
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    Cursor cur(txn.get(), items_);
    if (cur.rc()) return LmdbError("mdb_cursor_open", cur.rc());

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

    // Position the cursor on the first bucket to look at.
    MDB_val mk, mv;
    int rc;
    if (req.ascending) {
      std::string k = BucketKey(req.partition, req.pk, bound);
      mk = Val(k);
      rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
    } else {
      // Last bucket whose key is <= the bound's bucket key (or the pk's last).
      std::string k = unbounded ? header : BucketKey(req.partition, req.pk, bound);
      if (unbounded) {
        // Just past every key of this pk: the header incremented as a number.
        int i = static_cast<int>(k.size()) - 1;
        while (i >= 0 && uint8_t(k[i]) == 0xff) k[i--] = 0;
        if (i < 0) {
          rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_LAST);
        } else {
          k[i] = char(uint8_t(k[i]) + 1);
          mk = Val(k);
          rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
          rc = rc == MDB_NOTFOUND ? mdb_cursor_get(cur.get(), &mk, &mv, MDB_LAST)
                                  : mdb_cursor_get(cur.get(), &mk, &mv, MDB_PREV);
        }
      } else {
        mk = Val(k);
        rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
          rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_LAST);
        } else if (rc == 0 && View(mk) != k) {
          rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_PREV);
        }
      }
    }

    const MDB_cursor_op step = req.ascending ? MDB_NEXT : MDB_PREV;
    for (; rc == 0; rc = mdb_cursor_get(cur.get(), &mk, &mv, step)) {
      if (!StartsWith(View(mk), header)) break;
      auto bucket = Bucket::Decode(View(mv));
      if (!bucket.ok()) return bucket.status();
      const auto& entries = bucket->entries();
      const size_t n = entries.size();
      for (size_t j = 0; j < n; ++j) {
        const Bucket::Entry& e = entries[req.ascending ? j : n - 1 - j];
        if (e.pk != req.pk) continue;
        const std::string& sk = e.sk;
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
        out->push_back({sk, e.record});
      }
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("mdb_cursor_get", rc);
    return Status::OK();
  }

  Status ScanAll(const std::string& cursor, size_t limit, std::vector<RawItem>* out, std::string* next) const {
    out->clear();
    *next = cursor;
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    Cursor cur(txn.get(), items_);
    if (cur.rc()) return LmdbError("mdb_cursor_open", cur.rc());

    // The cursor is the LMDB key of the last bucket returned; every real key
    // is at least a header long, so "" cannot be one.
    MDB_val mk, mv;
    int rc;
    if (cursor.empty()) {
      rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_FIRST);
    } else {
      mk = Val(cursor);
      rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
      if (rc == 0 && View(mk) == cursor) rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT)) {
      const std::string_view key = View(mk);
      next->assign(key);
      if (key.size() < kKeyHeader) return Status::Corruption("item key shorter than its header");
      auto bucket = Bucket::Decode(View(mv));
      if (!bucket.ok()) {
        if (mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT) == MDB_NOTFOUND) next->clear();
        return bucket.status();
      }
      uint32_t partition = 0;
      for (int i = 0; i < 4; ++i) partition = (partition << 8) | uint8_t(key[i]);
      for (const Bucket::Entry& e : bucket->entries()) out->push_back({partition, e.pk, e.sk, e.record});
      if (out->size() >= limit) {
        // Look one ahead so that a walk ending on a full page says so now
        // (an error here is the next call's to report).
        if (mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT) == MDB_NOTFOUND) next->clear();
        return Status::OK();
      }
    }
    if (rc != MDB_NOTFOUND) {
      *next = cursor;
      out->clear();
      return LmdbError("mdb_cursor_get", rc);
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
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    Cursor cur(txn.get(), items_);
    if (cur.rc()) return LmdbError("mdb_cursor_open", cur.rc());
    // Resume in the bucket `after` sits in, or at the start of the range.
    std::string start = HashRangeStart(partition, from);
    std::string resume_bucket;
    if (after && after_hash >= from) {
      resume_bucket = BucketKey(partition, after->pk, after->sk);
      start = resume_bucket;
    }
    limit = std::max<size_t>(limit, 1);
    MDB_val mk = Val(start), mv;
    int rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT)) {
      const std::string_view key = View(mk);
      if (!SamePartition(key, start)) break;
      const uint64_t hash = KeyHashOf(key);
      if (hash > to) break;
      if (out->size() >= limit) {
        *more = true;
        break;
      }
      auto bucket = Bucket::Decode(View(mv));
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
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("mdb_cursor_get", rc);
    return Status::OK();
  }

  Status ForEachDigest(uint32_t partition, const std::function<void(uint64_t, uint64_t)>& fn,
                       uint64_t* snapshot_txn) const {
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    *snapshot_txn = mdb_txn_id(txn.get());
    Cursor cur(txn.get(), items_);
    if (cur.rc()) return LmdbError("mdb_cursor_open", cur.rc());
    const std::string start = HashRangeStart(partition, 0);
    MDB_val mk = Val(start), mv;
    int rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur.get(), &mk, &mv, MDB_NEXT)) {
      const std::string_view key = View(mk);
      if (!SamePartition(key, start)) break;
      auto bucket = Bucket::Decode(View(mv));
      if (!bucket.ok()) return bucket.status();
      const uint64_t hash = KeyHashOf(key);
      for (const Bucket::Entry& e : bucket->entries()) fn(hash, EntryDigest(e));
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("mdb_cursor_get", rc);
    return Status::OK();
  }

  StatusOr<uint64_t> SetCommitListener(CommitListener* listener) {
    auto done = std::make_shared<std::promise<StatusOr<uint64_t>>>();
    auto result = done->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status::ShuttingDown("store is closing");
      // Runs on the writer thread between two commits.
      control_.push_back([this, listener, done] {
        ReadTxn txn(env_);
        if (txn.rc()) {
          done->set_value(LmdbError("mdb_txn_begin", txn.rc()));
          return;
        }
        listener_ = listener;
        done->set_value(static_cast<uint64_t>(mdb_txn_id(txn.get())));
      });
    }
    work_cv_.notify_one();
    return result.get();
  }

  Status GetMeta(std::string_view key, std::string* value) const {
    ReadTxn txn(env_);
    if (txn.rc()) return LmdbError("mdb_txn_begin", txn.rc());
    MDB_val mk = Val(key), mv;
    int rc = mdb_get(txn.get(), meta_, &mk, &mv);
    if (rc == MDB_NOTFOUND) return Status::NotFound("no such meta key");
    if (rc) return LmdbError("mdb_get", rc);
    value->assign(View(mv));
    return Status::OK();
  }

  Status PutMeta(std::string_view key, std::string_view value) {
    // Goes through the writer so it never races a batch for the write lock.
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
    absl::MutexLock lock(&stats_mu_);
    Stats s = stats_;
    const auto now = std::chrono::steady_clock::now();
    s.commit_us = histograms_.commit_us.total();
    s.batch_ops = histograms_.batch_ops.total();
    s.apply_wait_us = histograms_.apply_wait_us.total();
    s.recent_commit_us = histograms_.commit_us.Recent(now);
    s.recent_batch_ops = histograms_.batch_ops.Recent(now);
    s.recent_apply_wait_us = histograms_.apply_wait_us.Recent(now);
    s.reindexed = reindexed_.load();
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
    explicit Caller(size_t ops) : results_(ops), remaining_(static_cast<int>(ops)) {}
    // On the writer thread, once per op; the last op of the call wakes the
    // caller. The op that calls this still holds the Caller.
    void Finish(size_t index, const Status& status) {
      results_[index] = status;
      remaining_.DecrementCount();
    }
    // Once, by the caller.
    std::vector<Status> Wait() {
      remaining_.Wait();
      return std::move(results_);
    }

   private:
    std::vector<Status> results_;  // slot i written only by op i's Finish
    absl::BlockingCounter remaining_;
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
      uint64_t txn_id = 0;
      const auto began = std::chrono::steady_clock::now();
      Status s = CommitBatch(batch, &results, &changes, &txn_id);
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
        if (listener_) listener_->OnCommit(txn_id, changes);
      }
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->caller->Finish(batch[i]->index, s.ok() ? results[i] : s);
    }
  }

  // One write transaction for the whole batch. An op whose stored bucket does
  // not decode fails alone (nothing was written for it); an LMDB error fails
  // the whole batch, since the transaction cannot continue. *changes: the
  // digest changes of the batch, valid when it committed as *txn_id.
  Status CommitBatch(const Batch& batch, std::vector<Status>* results, std::vector<DigestChange>* changes,
                     uint64_t* txn_id) {
    MDB_txn* txn;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc) return LmdbError("mdb_txn_begin", rc);
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& op = *batch[i];
      bool op_only = false;
      Status s = op.is_meta ? PutMetaIn(txn, op) : ApplyIn(txn, op, &op_only, changes);
      if (op_only) {
        (*results)[i] = s;
      } else if (!s.ok()) {
        mdb_txn_abort(txn);
        changes->clear();
        return s;
      }
    }
    rc = mdb_txn_commit(txn);  // fsyncs: durable on success
    if (rc) {
      changes->clear();
      return LmdbError("mdb_txn_commit", rc);
    }
    // The id readers now see. A transaction that wrote nothing does not
    // consume one (LMDB reuses it), so it is read back rather than taken
    // from the transaction.
    MDB_envinfo info;
    mdb_env_info(env_, &info);
    *txn_id = info.me_last_txnid;
    return Status::OK();
  }

  Status PutMetaIn(MDB_txn* txn, const PendingOp& op) {
    MDB_val mk = Val(op.meta_key), mv = Val(op.meta_value);
    int rc = mdb_put(txn, meta_, &mk, &mv, 0);
    return rc ? LmdbError("mdb_put meta", rc) : Status::OK();
  }

  // `op_only`: the error concerns this op alone; the transaction is intact.
  Status ApplyIn(MDB_txn* txn, const PendingOp& op, bool* op_only, std::vector<DigestChange>* changes) {
    std::string k = BucketKey(op.key.partition, op.key.pk, op.key.sk);
    MDB_val mk = Val(k), mv;
    Bucket bucket;
    int rc = mdb_get(txn, items_, &mk, &mv);
    if (rc == 0) {
      auto decoded = Bucket::Decode(View(mv));
      if (!decoded.ok()) {
        *op_only = true;
        return decoded.status();
      }
      bucket = std::move(decoded.value());
    } else if (rc != MDB_NOTFOUND) {
      return LmdbError("mdb_get", rc);
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
    if (bucket.empty()) {
      rc = mdb_del(txn, items_, &mk, nullptr);
      if (rc && rc != MDB_NOTFOUND) return LmdbError("mdb_del", rc);
    } else {
      std::string encoded = bucket.Encode();
      MDB_val out = Val(encoded);
      rc = mdb_put(txn, items_, &mk, &out, 0);
      if (rc) return LmdbError("mdb_put", rc);
    }
    if (before != digest) changes->push_back({op.key.partition, KeyHashOf(k), before, digest});
    return Status::OK();
  }

  StorageOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi items_ = 0, meta_ = 0;
  size_t max_key_ = 0;
  RecordDigestFn digest_ = &BytesDigest;
  CommitListener* listener_ = nullptr;  // writer thread only

  std::mutex mu_;
  std::condition_variable work_cv_, space_cv_;
  std::deque<std::shared_ptr<PendingOp>> queue_;
  std::deque<std::function<void()>> control_;  // run by the writer between commits
  bool stopping_ = false;
  std::thread writer_;
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
