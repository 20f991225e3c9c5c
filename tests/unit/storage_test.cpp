// DataStore (src/storage/data_store.h) on real LMDB files in a fresh temp dir.
//
// Randomized tests use a fixed default seed and print it; set
// MONJU_TEST_SEED=<n> to run them with another one.
#include "test_support.h"
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <latch>
#include <random>
#include <set>
#include <string>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "common/fixed_codec.h"
#include "storage/bucket.h"
#include "storage/data_store.h"

namespace monju {
namespace {

using monju::test_support::TempDir;
using monju::test_support::TestSeed;

using namespace std::string_literals;



// Every test runs twice: with the default memtable (writes stay in memory
// and the log until close) and with one of 4 KiB, so that memtables are set
// aside and flushed into LMDB every few writes, in the middle of each test.
class StorageTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { Open(); }

  StorageOptions Options(uint64_t map_size = 64ull << 20) const {
    StorageOptions opts;
    opts.path = dir_.path() + "/data";
    opts.map_size_bytes = map_size;
    opts.memtable_bytes = GetParam();
    return opts;
  }

  void Open(uint64_t map_size = 64ull << 20) {
    store_.reset();
    auto s = DataStore::Open(Options(map_size));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s.value());
  }

  Status Put(uint32_t partition, const std::string& pk, const std::string& sk, const std::string& record) {
    return store_->Apply({partition, pk, sk}, [record](const std::optional<std::string>&) { return record; });
  }
  // Writes many items from several threads at once, so group commit makes
  // them one fsync per batch instead of one each.
  void PutAll(const std::vector<std::tuple<uint32_t, std::string, std::string, std::string>>& items) {
    constexpr size_t kWriters = 16;
    std::atomic<size_t> next{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> writers;
    for (size_t w = 0; w < kWriters; ++w)
      writers.emplace_back([&] {
        for (size_t i; (i = next++) < items.size();) {
          const auto& [partition, pk, sk, record] = items[i];
          if (!Put(partition, pk, sk, record).ok()) failures++;
        }
      });
    for (auto& t : writers) t.join();
    ASSERT_EQ(failures.load(), 0);
  }
  Status Erase(uint32_t partition, const std::string& pk, const std::string& sk) {
    return store_->Apply({partition, pk, sk}, [](const std::optional<std::string>&) { return std::string(); });
  }
  // The record, or "<NotFound>" / the error.
  std::string Get(uint32_t partition, const std::string& pk, const std::string& sk) {
    std::string record;
    Status s = store_->Get({partition, pk, sk}, &record);
    if (s.Is(Status::Code::kNotFound)) return "<NotFound>";
    if (!s.ok()) return "<" + s.ToString() + ">";
    return record;
  }

  struct ScanResult {
    std::vector<std::string> sks;
    std::vector<std::string> records;
    bool more = false;
  };
  ScanResult Scan(const DataStore::ScanRequest& req) {
    std::vector<DataStore::ScanItem> items;
    ScanResult r;
    Status s = store_->Scan(req, &items, &r.more);
    EXPECT_TRUE(s.ok()) << s.ToString();
    for (auto& it : items) {
      r.sks.push_back(it.sk);
      r.records.push_back(it.record);
    }
    return r;
  }
  static DataStore::ScanRequest Req(uint32_t partition, const std::string& pk, bool ascending = true,
                                    size_t limit = 1000) {
    DataStore::ScanRequest r;
    r.partition = partition;
    r.pk = pk;
    r.ascending = ascending;
    r.limit = limit;
    return r;
  }
  // Every sk of the pk by paging `page` at a time with exclusive starts.
  std::vector<std::string> PageThrough(uint32_t partition, const std::string& pk, bool ascending, size_t page,
                                       const std::string& prefix = "") {
    std::vector<std::string> all;
    DataStore::ScanRequest req = Req(partition, pk, ascending, page);
    req.sk_prefix = prefix;
    for (int guard = 0; guard < 10000; ++guard) {
      ScanResult r = Scan(req);
      EXPECT_LE(r.sks.size(), page);
      all.insert(all.end(), r.sks.begin(), r.sks.end());
      if (!r.more) return all;
      EXPECT_EQ(r.sks.size(), page) << "a page with more=true must be full";
      if (r.sks.empty()) break;
      req.start_sk = r.sks.back();
      req.start_exclusive = true;
    }
    ADD_FAILURE() << "paging did not terminate";
    return all;
  }

  // Closes the store, writes an undecodable bucket straight into LMDB under
  // the documented layout (partition BE + XXH3-128(pk) high, low BE + sk),
  // and reopens.
  void PlantGarbageBucket(uint32_t partition, const std::string& pk, const std::string& sk) {
    PlantRawBucket(partition, pk, sk, "\xff\xff\xff\xff garbage");
    Open();
  }

  // Closes the store and writes `bucket` as the LMDB value of (pk, sk) under
  // the documented layout; with `old_index`, also a `digests` database as
  // stores from before digests moved into the items had. Does not reopen.
  void PlantRawBucket(uint32_t partition, const std::string& pk, const std::string& sk, std::string bucket,
                      bool old_index = false) {
    store_.reset();  // LMDB must not be open twice in one process
    std::string key(20, '\0');
    for (int i = 0; i < 4; ++i) key[i] = char((partition >> (24 - 8 * i)) & 0xff);
    XXH128_hash_t h = XXH3_128bits(pk.data(), pk.size());
    for (int i = 0; i < 8; ++i) key[4 + i] = char((h.high64 >> (56 - 8 * i)) & 0xff);
    for (int i = 0; i < 8; ++i) key[12 + i] = char((h.low64 >> (56 - 8 * i)) & 0xff);
    key += sk;
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_mapsize(env, 64ull << 20);
    ASSERT_EQ(mdb_env_open(env, (dir_.path() + "/data").c_str(), 0, 0644), 0);
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, "items", 0, &dbi), 0);
    MDB_val k{key.size(), key.data()};
    MDB_val v{bucket.size(), bucket.data()};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    if (old_index) {
      MDB_dbi index;
      ASSERT_EQ(mdb_dbi_open(txn, "digests", MDB_CREATE, &index), 0);
      std::string ik(12, '\x01'), iv = "whatever";
      MDB_val ikv{ik.size(), ik.data()}, ivv{iv.size(), iv.data()};
      ASSERT_EQ(mdb_put(txn, index, &ikv, &ivv, 0), 0);
    }
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }

  // Whether the LMDB environment holds a database of that name (store closed).
  bool HasDatabase(const char* name) {
    store_.reset();
    MDB_env* env = nullptr;
    EXPECT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    EXPECT_EQ(mdb_env_open(env, (dir_.path() + "/data").c_str(), 0, 0644), 0);
    MDB_txn* txn = nullptr;
    EXPECT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
    MDB_dbi dbi;
    const bool found = mdb_dbi_open(txn, name, 0, &dbi) == 0;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return found;
  }

  // Puts items "item1000", "item1001", ... of partition 1, pk "pk", valued
  // `value` plus their number, until one is refused (*last) or 2000 are in;
  // returns how many were acknowledged.
  int FillUntilRefused(const std::string& value, Status* last) {
    int written = 0;
    for (; written < 2000; ++written) {
      *last = Put(1, "pk", "item" + std::to_string(1000 + written), value + std::to_string(written));
      if (!last->ok()) break;
    }
    return written;
  }

  // Every item, by walking ScanAll() `page` at a time.
  std::vector<RawItem> WalkAll(size_t page, size_t* pages = nullptr) {
    std::vector<RawItem> all;
    std::string cursor;
    for (int guard = 0; guard < 100000; ++guard) {
      std::vector<RawItem> out;
      std::string next = "untouched";
      Status s = store_->ScanAll(cursor, page, &out, &next);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return all;
      if (pages) ++*pages;
      all.insert(all.end(), out.begin(), out.end());
      if (next.empty()) return all;
      EXPECT_FALSE(out.empty()) << "a page that is not the last must hold items";
      EXPECT_NE(next, cursor) << "no progress";
      cursor = next;
    }
    ADD_FAILURE() << "ScanAll walk did not terminate";
    return all;
  }

  TempDir dir_;
  std::unique_ptr<DataStore> store_;
};

using Item = std::tuple<uint32_t, std::string, std::string, std::string>;

std::vector<Item> AsTuples(const std::vector<RawItem>& items) {
  std::vector<Item> out;
  for (const auto& i : items) out.emplace_back(i.partition, i.pk, i.sk, i.record);
  return out;
}

std::vector<std::string> Reversed(std::vector<std::string> v) {
  std::reverse(v.begin(), v.end());
  return v;
}

// ---------------------------------------------------------------------------
// Get / Apply

TEST_P(StorageTest, ApplyGetEraseAndUnchanged) {
  EXPECT_EQ(Get(1, "pk", "sk"), "<NotFound>");
  ASSERT_TRUE(Put(1, "pk", "sk", "v1").ok());
  EXPECT_EQ(Get(1, "pk", "sk"), "v1");
  EXPECT_EQ(Get(2, "pk", "sk"), "<NotFound>");   // other partition
  EXPECT_EQ(Get(1, "pk2", "sk"), "<NotFound>");  // other pk
  EXPECT_EQ(Get(1, "pk", "sk2"), "<NotFound>");  // other sk

  // The mutator sees the current record; nullopt leaves it unchanged.
  std::optional<std::string> seen;
  bool called = false;
  ASSERT_TRUE(store_
                  ->Apply({1, "pk", "sk"},
                          [&](const std::optional<std::string>& cur) -> std::optional<std::string> {
                            called = true;
                            seen = cur;
                            return std::nullopt;
                          })
                  .ok());
  EXPECT_TRUE(called);
  EXPECT_EQ(seen, std::optional<std::string>("v1"));
  EXPECT_EQ(Get(1, "pk", "sk"), "v1");

  // "" erases.
  ASSERT_TRUE(Erase(1, "pk", "sk").ok());
  EXPECT_EQ(Get(1, "pk", "sk"), "<NotFound>");
  seen = "x";
  ASSERT_TRUE(store_
                  ->Apply({1, "pk", "sk"},
                          [&](const std::optional<std::string>& cur) -> std::optional<std::string> {
                            seen = cur;
                            return std::nullopt;
                          })
                  .ok());
  EXPECT_EQ(seen, std::nullopt);                      // absent after the erase
  ASSERT_TRUE(Erase(1, "pk", "never-written").ok());  // erasing nothing is fine
  EXPECT_EQ(Get(1, "pk", "never-written"), "<NotFound>");
  EXPECT_TRUE(Scan(Req(1, "pk")).sks.empty());
}

TEST_P(StorageTest, MutatorReadModifyWriteSeesPreviousApply) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        store_
            ->Apply({0, "counter", ""},
                    [](const std::optional<std::string>& cur) { return std::to_string(cur ? std::stoi(*cur) + 1 : 1); })
            .ok());
  }
  EXPECT_EQ(Get(0, "counter", ""), "5");
}

TEST_P(StorageTest, BinaryKeysAndRecordsRoundTrip) {
  const std::vector<std::string> pks = {"a:b/c d", "\0"s, "\xff\xfe"s, "user 1", "x"};
  const std::vector<std::string> sks = {"", "\0"s, "\0\0"s, "\x01", "a\0b"s, "\xff", "\xff\xff", "z z:/"};
  std::vector<std::tuple<uint32_t, std::string, std::string, std::string>> items;
  for (const auto& pk : pks)
    for (const auto& sk : sks) items.emplace_back(3, pk, sk, "rec\0"s + pk + "|" + sk);
  PutAll(items);
  for (const auto& pk : pks)
    for (const auto& sk : sks) EXPECT_EQ(Get(3, pk, sk), "rec\0"s + pk + "|" + sk);
  EXPECT_EQ(Get(3, "\0\0"s, ""), "<NotFound>");
  EXPECT_EQ(Get(3, "", ""), "<NotFound>");
}

// ---------------------------------------------------------------------------
// Scan

TEST_P(StorageTest, ScanReturnsSkOrderBothDirections) {
  std::vector<std::string> sks = {"",  "\0"s, "\0\0"s, "\x01", "a",    "a\0"s, "ab",      "abc",
                                  "b", "ba",  "\x7f",  "\x80", "\xfe", "\xff", "\xff\xff"};
  std::vector<std::string> shuffled = sks;
  std::mt19937_64 rng(TestSeed(5));
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (const auto& sk : shuffled) ASSERT_TRUE(Put(9, "pk", sk, "r:" + sk).ok());
  std::sort(sks.begin(), sks.end());  // byte order (std::string compares as unsigned char)

  ScanResult up = Scan(Req(9, "pk"));
  EXPECT_EQ(up.sks, sks);
  EXPECT_FALSE(up.more);
  for (size_t i = 0; i < up.sks.size(); ++i) EXPECT_EQ(up.records[i], "r:" + up.sks[i]);
  ScanResult down = Scan(Req(9, "pk", false));
  EXPECT_EQ(down.sks, Reversed(sks));
  EXPECT_FALSE(down.more);
}

class ScanFixture : public StorageTest {
 protected:
  void SetUp() override {
    StorageTest::SetUp();
    for (const auto& sk : sks_) ASSERT_TRUE(Put(4, "pk", sk, "r").ok());
  }
  ScanResult From(const std::string& start, bool exclusive, bool ascending, const std::string& prefix = "",
                  size_t limit = 1000) {
    DataStore::ScanRequest r = Req(4, "pk", ascending, limit);
    r.start_sk = start;
    r.start_exclusive = exclusive;
    r.sk_prefix = prefix;
    return Scan(r);
  }
  using V = std::vector<std::string>;
  const V sks_ = {"a", "a1", "a2", "a3", "b", "b1", "b2", "c"};
};

TEST_P(ScanFixture, Prefix) {
  EXPECT_EQ(From("", false, true, "a").sks, (V{"a", "a1", "a2", "a3"}));
  EXPECT_EQ(From("", false, false, "a").sks, (V{"a3", "a2", "a1", "a"}));
  EXPECT_EQ(From("", false, true, "b").sks, (V{"b", "b1", "b2"}));
  EXPECT_EQ(From("", false, false, "b").sks, (V{"b2", "b1", "b"}));
  EXPECT_EQ(From("", false, true, "b1").sks, (V{"b1"}));
  EXPECT_EQ(From("", false, true, "c").sks, (V{"c"}));
  EXPECT_EQ(From("", false, false, "c").sks, (V{"c"}));
  EXPECT_TRUE(From("", false, true, "d").sks.empty());
  EXPECT_TRUE(From("", false, false, "d").sks.empty());
  EXPECT_TRUE(From("", false, true, "a4").sks.empty());
  EXPECT_TRUE(From("", false, false, "0").sks.empty());
}

TEST_P(ScanFixture, StartInclusiveExclusive) {
  EXPECT_EQ(From("b", false, true).sks, (V{"b", "b1", "b2", "c"}));
  EXPECT_EQ(From("b", true, true).sks, (V{"b1", "b2", "c"}));
  EXPECT_EQ(From("b", false, false).sks, (V{"b", "a3", "a2", "a1", "a"}));
  EXPECT_EQ(From("b", true, false).sks, (V{"a3", "a2", "a1", "a"}));
  // A start between items.
  EXPECT_EQ(From("a25", false, true).sks, (V{"a3", "b", "b1", "b2", "c"}));
  EXPECT_EQ(From("a25", true, false).sks, (V{"a2", "a1", "a"}));
  // Starts beyond either end.
  EXPECT_TRUE(From("d", false, true).sks.empty());
  EXPECT_EQ(From("d", false, false).sks, Reversed(sks_));
  EXPECT_EQ(From("0", false, true).sks, sks_);
  EXPECT_TRUE(From("0", false, false).sks.empty());
  EXPECT_TRUE(From("c", true, true).sks.empty());
  EXPECT_TRUE(From("a", true, false).sks.empty());
}

TEST_P(ScanFixture, StartCombinedWithPrefix) {
  EXPECT_EQ(From("a1", true, true, "a").sks, (V{"a2", "a3"}));
  EXPECT_EQ(From("a2", false, false, "a").sks, (V{"a2", "a1", "a"}));
  EXPECT_EQ(From("0", false, true, "b").sks, (V{"b", "b1", "b2"}));   // start below the prefix
  EXPECT_EQ(From("z", false, false, "b").sks, (V{"b2", "b1", "b"}));  // start above the prefix
  EXPECT_TRUE(From("z", false, true, "b").sks.empty());
  EXPECT_TRUE(From("0", false, false, "b").sks.empty());
}

TEST_P(ScanFixture, LimitAndMore) {
  ScanResult r = From("", false, true, "", 3);
  EXPECT_EQ(r.sks, (V{"a", "a1", "a2"}));
  EXPECT_TRUE(r.more);
  r = From("", false, false, "", 3);
  EXPECT_EQ(r.sks, (V{"c", "b2", "b1"}));
  EXPECT_TRUE(r.more);
  r = From("", false, true, "", sks_.size());
  EXPECT_EQ(r.sks, sks_);
  EXPECT_FALSE(r.more);  // exactly all: nothing further
  r = From("", false, true, "a", 4);
  EXPECT_EQ(r.sks.size(), 4u);
  EXPECT_FALSE(r.more);  // "b" follows but does not match the prefix
  r = From("", false, true, "a", 3);
  EXPECT_TRUE(r.more);
  r = From("", false, true, "", 0);
  EXPECT_TRUE(r.sks.empty());
  EXPECT_FALSE(r.more);

  for (size_t page : {1u, 2u, 3u, 7u, 8u, 9u}) {
    SCOPED_TRACE("page " + std::to_string(page));
    EXPECT_EQ(PageThrough(4, "pk", true, page), sks_);
    EXPECT_EQ(PageThrough(4, "pk", false, page), Reversed(sks_));
    EXPECT_EQ(PageThrough(4, "pk", true, page, "a"), (V{"a", "a1", "a2", "a3"}));
    EXPECT_EQ(PageThrough(4, "pk", false, page, "b"), (V{"b2", "b1", "b"}));
  }
}

// Many pks in one partition number (and the same pks in the neighbouring
// partitions): a scan sees exactly its own pk's items.
TEST_P(StorageTest, ScanNeverLeaksOtherPksOrPartitions) {
  std::vector<std::string> pks = {"user", "user1", "use", "u", "user:1", "user/1", "user 1", "", "\0"s, "\xff"s};
  for (int i = 0; i < 40; ++i) pks.push_back("pk" + std::to_string(i));
  std::vector<std::tuple<uint32_t, std::string, std::string, std::string>> items;
  for (uint32_t partition : {6u, 7u, 8u, 0xffffffffu})
    for (const auto& pk : pks)
      for (int j = 0; j < 5; ++j)
        items.emplace_back(partition, pk, "s" + std::to_string(j), std::to_string(partition) + "/" + pk);
  PutAll(items);

  for (const auto& pk : pks) {
    for (uint32_t partition : {7u, 0xffffffffu}) {
      for (bool ascending : {true, false}) {
        ScanResult r = Scan(Req(partition, pk, ascending));
        std::vector<std::string> expected = {"s0", "s1", "s2", "s3", "s4"};
        if (!ascending) std::reverse(expected.begin(), expected.end());
        ASSERT_EQ(r.sks, expected) << "pk '" << pk << "' partition " << partition;
        for (const auto& rec : r.records) ASSERT_EQ(rec, std::to_string(partition) + "/" + pk);
        ASSERT_FALSE(r.more);

        // Bounded starts land next to other pks' keys: the neighbours must
        // neither end the scan early nor leak into it.
        DataStore::ScanRequest req = Req(partition, pk, ascending);
        for (const auto& [start, exclusive] : std::vector<std::pair<std::string, bool>>{
                 {"s9", false}, {"s4", true}, {"s2", false}, {"s2", true}, {"a", false}, {"s", true}}) {
          req.start_sk = start;
          req.start_exclusive = exclusive;
          std::vector<std::string> want;
          for (const auto& sk : expected) {
            int c = sk.compare(start);
            if (ascending ? (c > 0 || (c == 0 && !exclusive)) : (c < 0 || (c == 0 && !exclusive))) want.push_back(sk);
          }
          ASSERT_EQ(Scan(req).sks, want) << "pk '" << pk << "' partition " << partition << " start " << start
                                         << (exclusive ? " (exclusive)" : "");
        }
        req.start_sk.clear();
        req.start_exclusive = false;
        req.sk_prefix = "s3";
        ASSERT_EQ(Scan(req).sks, std::vector<std::string>{"s3"}) << "pk '" << pk << "'";
        ASSERT_EQ(PageThrough(partition, pk, ascending, 2), expected) << "pk '" << pk << "'";
      }
    }
  }
  EXPECT_TRUE(Scan(Req(5, "user")).sks.empty());
  EXPECT_TRUE(Scan(Req(7, "nobody")).sks.empty());
  EXPECT_TRUE(Scan(Req(7, "nobody", false)).sks.empty());
}

// sks longer than max_exact_sk() share buckets when their first bytes match;
// bucket order plus in-bucket order must still be sk order.
TEST_P(StorageTest, LongSksSortAndRoundTrip) {
  const size_t exact = store_->max_exact_sk();
  std::cout << "[ measured ] max_exact_sk = " << exact << "\n";
  ASSERT_GT(exact, 100u);
  ASSERT_LT(exact, 600u);  // so that a 600-byte common prefix forces sharing

  std::mt19937_64 rng(TestSeed(77));
  const std::string common(600, 'k');
  std::vector<std::string> sks;
  for (int i = 0; i < 40; ++i) {
    std::string sk = common;
    for (int j = 0; j < 424; ++j) sk += char(rng() % 4 == 0 ? 0 : rng());  // 1024 bytes, some '\0'
    sks.push_back(sk);
  }
  sks.push_back(common);                       // a prefix of all of them
  sks.push_back(common.substr(0, exact));      // exactly the limit
  sks.push_back(common.substr(0, exact + 1));  // one past
  sks.push_back(common.substr(0, exact - 1) + "\xff");
  sks.push_back(common.substr(0, exact) + "\0"s);
  sks.push_back(common + "\xff\xff");
  sks.push_back("short");
  sks.push_back(std::string(1024, '\xff'));
  std::vector<std::string> shuffled = sks;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (size_t i = 0; i < shuffled.size(); ++i) ASSERT_TRUE(Put(2, "pk", shuffled[i], "rec-" + shuffled[i]).ok());
  std::sort(sks.begin(), sks.end());

  for (const auto& sk : sks) ASSERT_EQ(Get(2, "pk", sk), "rec-" + sk);
  EXPECT_EQ(Get(2, "pk", common + "x"), "<NotFound>");
  EXPECT_EQ(Scan(Req(2, "pk")).sks, sks);
  EXPECT_EQ(Scan(Req(2, "pk", false)).sks, Reversed(sks));
  for (size_t page : {1u, 3u, 16u}) {
    EXPECT_EQ(PageThrough(2, "pk", true, page), sks) << page;
    EXPECT_EQ(PageThrough(2, "pk", false, page), Reversed(sks)) << page;
  }

  // Starts and prefixes that fall inside a shared bucket.
  const std::string mid = sks[sks.size() / 2];
  ASSERT_GT(mid.size(), exact);
  DataStore::ScanRequest req = Req(2, "pk");
  req.start_sk = mid;
  std::vector<std::string> tail(sks.begin() + sks.size() / 2, sks.end());
  EXPECT_EQ(Scan(req).sks, tail);
  req.start_exclusive = true;
  EXPECT_EQ(Scan(req).sks, std::vector<std::string>(tail.begin() + 1, tail.end()));
  req.ascending = false;
  std::vector<std::string> head(sks.begin(), sks.begin() + sks.size() / 2);
  EXPECT_EQ(Scan(req).sks, Reversed(head));
  req.start_exclusive = false;
  head.push_back(mid);
  EXPECT_EQ(Scan(req).sks, Reversed(head));

  const std::string long_prefix = mid.substr(0, 700);
  std::vector<std::string> with_prefix;
  for (const auto& sk : sks)
    if (sk.compare(0, long_prefix.size(), long_prefix) == 0) with_prefix.push_back(sk);
  ASSERT_FALSE(with_prefix.empty());
  DataStore::ScanRequest preq = Req(2, "pk");
  preq.sk_prefix = long_prefix;
  EXPECT_EQ(Scan(preq).sks, with_prefix);
  preq.ascending = false;
  EXPECT_EQ(Scan(preq).sks, Reversed(with_prefix));

  // Erasing one member of a shared bucket keeps the others.
  ASSERT_TRUE(Erase(2, "pk", mid).ok());
  EXPECT_EQ(Get(2, "pk", mid), "<NotFound>");
  std::vector<std::string> remaining = sks;
  remaining.erase(std::find(remaining.begin(), remaining.end(), mid));
  EXPECT_EQ(Scan(Req(2, "pk")).sks, remaining);
  for (const auto& sk : remaining) ASSERT_EQ(Get(2, "pk", sk), "rec-" + sk);
}

TEST_P(StorageTest, ReopenKeepsData) {
  ASSERT_TRUE(Put(1, "pk", "a", "1").ok());
  ASSERT_TRUE(Put(1, "pk", "b", "2").ok());
  ASSERT_TRUE(Put(1, "pk", "c", "3").ok());
  ASSERT_TRUE(Erase(1, "pk", "b").ok());
  ASSERT_TRUE(store_->PutMeta("incarnation", "7").ok());
  Open();
  EXPECT_EQ(Get(1, "pk", "a"), "1");
  EXPECT_EQ(Get(1, "pk", "b"), "<NotFound>");
  EXPECT_EQ(Get(1, "pk", "c"), "3");
  EXPECT_EQ(Scan(Req(1, "pk")).sks, (std::vector<std::string>{"a", "c"}));
  std::string meta;
  ASSERT_TRUE(store_->GetMeta("incarnation", &meta).ok());
  EXPECT_EQ(meta, "7");
}

// ---------------------------------------------------------------------------
// Write-ahead log and memtables

namespace wal {

// The write-ahead log files in a store's directory.
size_t LogFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind("wal-", 0) == 0) ++n;
  return n;
}

// Log files whose writes fail while `fail` holds a status (tests of a full
// or failing disk under the log).
class FailingLogFile final : public LogFile {
 public:
  FailingLogFile(std::unique_ptr<LogFile> inner, std::shared_ptr<Status> fail)
      : inner_(std::move(inner)), fail_(std::move(fail)) {}
  Status Write(uint64_t offset, std::string_view data) override {
    if (!fail_->ok()) return *fail_;
    return inner_->Write(offset, data);
  }
  Status Sync() override { return inner_->Sync(); }
  Status Truncate(uint64_t size) override { return inner_->Truncate(size); }

 private:
  std::unique_ptr<LogFile> inner_;
  std::shared_ptr<Status> fail_;
};

}  // namespace wal

// Writes pass through the memtable into LMDB: with a small memtable the
// flusher runs during the writes, their log files go once flushed, and a
// clean close leaves no log at all; everything reads back the same before
// and after.
TEST_P(StorageTest, FlushedWritesLeaveTheLogAndCloseLeavesNone) {
  std::vector<std::tuple<uint32_t, std::string, std::string, std::string>> items;
  for (int i = 0; i < 600; ++i)
    items.emplace_back(i % 5, "pk" + std::to_string(i % 13), "s" + std::to_string(i), "record " + std::to_string(i));
  PutAll(items);
  for (int i = 0; i < 600; i += 3) ASSERT_TRUE(Erase(i % 5, "pk" + std::to_string(i % 13), "s" + std::to_string(i)).ok());
  const DataStore::Stats stats = store_->stats();
  const std::string dir = dir_.path() + "/data";
  if (GetParam() < (1u << 20)) {
    EXPECT_GT(stats.flushes, 3u) << "a 4 KiB memtable is flushed many times over 800 writes";
  } else {
    EXPECT_EQ(stats.flushes, 0u);
    EXPECT_GT(stats.memtable_bytes, 600u * 20) << "every write is still in the memtable";
  }
  EXPECT_GE(wal::LogFiles(dir), 1u);
  EXPECT_LE(wal::LogFiles(dir), 3u) << "flushed log files are deleted";
  const std::vector<RawItem> before = WalkAll(97);
  ASSERT_EQ(before.size(), 400u);
  store_.reset();
  EXPECT_EQ(wal::LogFiles(dir), 0u) << "a clean close flushes everything into LMDB";
  Open();
  EXPECT_EQ(AsTuples(WalkAll(1000)), AsTuples(before));
  EXPECT_EQ(store_->stats().memtable_bytes, 0u);
}

// A memtable of more entries than one flush transaction takes (16,384) is
// flushed in several, the last recording the log position: all of it is in
// LMDB after a close, and nothing is replayed twice into a wrong state.
TEST_P(StorageTest, ALargeMemtableFlushesInSeveralTransactions) {
  std::vector<std::tuple<uint32_t, std::string, std::string, std::string>> items;
  for (int i = 0; i < 17000; ++i) items.emplace_back(i % 7, "pk" + std::to_string(i % 101), "s" + std::to_string(i), "v");
  PutAll(items);
  store_.reset();
  EXPECT_EQ(wal::LogFiles(dir_.path() + "/data"), 0u);
  Open();
  EXPECT_EQ(WalkAll(5000).size(), 17000u);
  EXPECT_EQ(Get(16999 % 7, "pk" + std::to_string(16999 % 101), "s16999"), "v");
}

// A batch applied while readers scan, with flushes in between: a reader
// sees all of a commit or none of it, whichever layer holds it.
TEST_P(StorageTest, ReadersSeeWholeCommitsAcrossFlushes) {
  constexpr int kRounds = 300;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      std::vector<DataStore::ScanItem> items;
      bool more = false;
      Status s = store_->Scan(Req(7, "pair"), &items, &more);
      if (!s.ok() || (items.size() != 0 && items.size() != 2) ||
          (items.size() == 2 && items[0].record != items[1].record))
        ++bad;
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
    const std::string v = std::to_string(i) + std::string(100, 'x');
    ops.emplace_back(ItemKey{7, "pair", "a"}, [v](const std::optional<std::string>&) { return v; });
    ops.emplace_back(ItemKey{7, "pair", "b"}, [v](const std::optional<std::string>&) { return v; });
    for (const Status& s : store_->ApplyBatch(std::move(ops))) ASSERT_TRUE(s.ok()) << s.ToString();
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0) << "a reader saw half a commit";
  if (GetParam() < (1u << 20)) {
    EXPECT_GT(store_->stats().flushes, 5u);
  }
}

// kill -9 in the middle of writing: every write whose Apply() returned is
// there after the restart (replayed from the log), and the store works on.
// The writes run in a forked child, which the test kills at a random point.
TEST_P(StorageTest, KilledProcessKeepsEveryAcknowledgedWrite) {
  const uint64_t seed = TestSeed(20261207);
  std::mt19937_64 rng(seed);
  const int kill_after = 200 + int(rng() % 400);
  store_.reset();  // the child opens it; no thread of ours runs across the fork
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(acks[0]);
    auto opened = DataStore::Open(Options());
    if (!opened.ok()) _exit(3);
    auto store = std::move(opened.value());
    for (int i = 0;; ++i) {
      const std::string sk = "k" + std::to_string(i % 700);
      Status s = store->Apply({uint32_t(i % 3), "pk", sk},
                              [i](const std::optional<std::string>&) { return "v" + std::to_string(i); });
      if (!s.ok()) _exit(4);
      if (write(acks[1], &i, sizeof i) != sizeof i) _exit(5);
    }
  }
  close(acks[1]);
  std::map<std::tuple<uint32_t, std::string>, std::string> acked;  // (partition, sk) -> last acknowledged value
  int last = -1;
  for (int i; read(acks[0], &i, sizeof i) == sizeof i;) {
    acked[{uint32_t(i % 3), "k" + std::to_string(i % 700)}] = "v" + std::to_string(i);
    last = i;
    if (i == kill_after) kill(child, SIGKILL);
  }
  close(acks[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended by itself: status " << status;
  ASSERT_GE(last, kill_after);
  std::cout << "[ measured ] killed after " << last + 1 << " acknowledged writes; "
            << wal::LogFiles(dir_.path() + "/data") << " log files left\n";
  Open();
  // The write in flight at the kill may or may not have landed; everything
  // acknowledged has, with the last value acknowledged or the one after it.
  const std::tuple<uint32_t, std::string> in_flight{uint32_t((last + 1) % 3), "k" + std::to_string((last + 1) % 700)};
  for (const auto& [key, value] : acked) {
    const auto& [partition, sk] = key;
    const std::string got = Get(partition, "pk", sk);
    if (key == in_flight && got == "v" + std::to_string(last + 1)) continue;
    ASSERT_EQ(got, value) << sk << " in partition " << partition;
  }
  ASSERT_TRUE(Put(0, "pk", "after", "restart").ok());
  Open();
  EXPECT_EQ(Get(0, "pk", "after"), "restart");
  EXPECT_EQ(wal::LogFiles(dir_.path() + "/data"), 1u) << "the replayed log was flushed and deleted";
}

// A write the log cannot take (disk full) fails whole, leaves nothing
// behind, and does not stop the writes after it once there is room again.
TEST_P(StorageTest, LogWriteFailureRefusesTheBatchAndLeavesNothing) {
  auto fail = std::make_shared<Status>();
  store_.reset();
  StorageOptions opts = Options();
  opts.log_files = [fail](const std::string& path) -> StatusOr<std::unique_ptr<LogFile>> {
    auto inner = OpenPosixLogFile(path);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<LogFile>(new wal::FailingLogFile(std::move(inner.value()), fail));
  };
  auto opened = DataStore::Open(opts);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  store_ = std::move(opened.value());
  ASSERT_TRUE(Put(1, "pk", "before", "b").ok());
  *fail = Status::NoSpace("write: No space left on device");
  std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
  ops.emplace_back(ItemKey{1, "pk", "x"}, [](const std::optional<std::string>&) { return "X"s; });
  ops.emplace_back(ItemKey{1, "pk", "before"}, [](const std::optional<std::string>&) { return std::string(); });
  for (const Status& s : store_->ApplyBatch(std::move(ops))) EXPECT_EQ(s.code(), Status::Code::kNoSpace) << s.ToString();
  EXPECT_EQ(Get(1, "pk", "x"), "<NotFound>");
  EXPECT_EQ(Get(1, "pk", "before"), "b");
  *fail = Status::OK();
  ASSERT_TRUE(Put(1, "pk", "after", "a").ok());
  store_.reset();
  auto reopened = DataStore::Open(opts);
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(reopened.value());
  EXPECT_EQ(Get(1, "pk", "x"), "<NotFound>");
  EXPECT_EQ(Get(1, "pk", "before"), "b");
  EXPECT_EQ(Get(1, "pk", "after"), "a");
}

// A store that filled its map refuses writes but keeps what it
// acknowledged, also across a restart with the same map (the log keeps it);
// given a larger map, the flush goes through and writes work again.
TEST_P(StorageTest, FullMapKeepsAcknowledgedWritesUntilThereIsRoom) {
  Open(1 << 20);
  const std::string value(3000, 'v');
  Status last;
  const int written = FillUntilRefused(value, &last);
  ASSERT_EQ(last.code(), Status::Code::kNoSpace) << last.ToString();
  EXPECT_NE(last.message().find("MDB_MAP_FULL"), std::string::npos) << last.message();
  Open(1 << 20);  // same size: what could not be flushed is replayed into memory again
  for (int i = 0; i < written; ++i)
    ASSERT_EQ(Get(1, "pk", "item" + std::to_string(1000 + i)), value + std::to_string(i)) << i;
  EXPECT_EQ(Put(1, "pk", "another", value).code(), Status::Code::kNoSpace);
  Open(64 << 20);
  for (int i = 0; i < written; ++i)
    ASSERT_EQ(Get(1, "pk", "item" + std::to_string(1000 + i)), value + std::to_string(i)) << i;
  ASSERT_TRUE(Put(1, "pk", "another", value).ok());
  EXPECT_EQ(PageThrough(1, "pk", true, 100).size(), size_t(written) + 1);
  EXPECT_EQ(wal::LogFiles(dir_.path() + "/data"), 1u);
}

TEST_P(StorageTest, MetaGetPut) {
  std::string v = "untouched";
  EXPECT_TRUE(store_->GetMeta("missing", &v).Is(Status::Code::kNotFound));
  EXPECT_EQ(v, "untouched");
  ASSERT_TRUE(store_->PutMeta("k", "v1").ok());
  ASSERT_TRUE(store_->GetMeta("k", &v).ok());
  EXPECT_EQ(v, "v1");
  ASSERT_TRUE(store_->PutMeta("k", "\0v2\xff"s).ok());
  ASSERT_TRUE(store_->GetMeta("k", &v).ok());
  EXPECT_EQ(v, "\0v2\xff"s);
  // Meta keys are not items.
  EXPECT_EQ(Get(0, "k", ""), "<NotFound>");
  EXPECT_TRUE(Scan(Req(0, "k")).sks.empty());
}

TEST_P(StorageTest, OpenFailsOnAFile) {
  const std::string file = dir_.path() + "/not-a-dir";
  std::ofstream(file) << "x";
  StorageOptions opts;
  opts.path = file;
  auto s = DataStore::Open(opts);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::Code::kIOError) << s.status().ToString();
}

// 64 threads x 50 Apply calls at once: every write lands, and the writer
// grouped them (fewer commits than applies).
TEST_P(StorageTest, GroupCommitUnderConcurrency) {
  constexpr int kThreads = 64, kPerThread = 50;
  const DataStore::Stats before = store_->stats();
  std::latch start(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        const std::string sk = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!Put(uint32_t(t % 4), "pk" + std::to_string(t % 8), sk, sk).ok()) failures++;
        // Every other call also bumps one shared counter: a read-modify-write
        // that loses updates unless mutators run one at a time.
        if (i % 2 == 0) {
          Status s = store_->Apply({0, "shared", "counter"}, [](const std::optional<std::string>& cur) {
            return std::to_string(cur ? std::stoi(*cur) + 1 : 1);
          });
          if (!s.ok()) failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);

  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) {
      const std::string sk = "t" + std::to_string(t) + "-" + std::to_string(i);
      ASSERT_EQ(Get(uint32_t(t % 4), "pk" + std::to_string(t % 8), sk), sk);
    }
  EXPECT_EQ(Get(0, "shared", "counter"), std::to_string(kThreads * kPerThread / 2));

  const DataStore::Stats after = store_->stats();
  const uint64_t applied = after.applied - before.applied;
  const uint64_t commits = after.commits - before.commits;
  std::cout << "[ measured ] " << applied << " applies in " << commits << " commits\n";
  EXPECT_EQ(applied, uint64_t(kThreads * kPerThread * 3 / 2));
  EXPECT_LT(commits, applied);
  EXPECT_GT(commits, 0u);
}

// Readers run beside the writer and never miss a write that was durable
// before they began: the replica issues dots from such reads, so a stale
// read could reuse a dot. (Reads must not be required to be monotonic
// between themselves: LMDB 0.9.24 lets a read that starts while a commit
// publishes its meta page see that commit's state slightly early, and the
// next read then shows the state just before it. Reproduced with plain
// LMDB, with and without MDB_NOTLS.)
TEST_P(StorageTest, ReadsNeverMissADurableWrite) {
  constexpr int kWriters = 4, kBumps = 100;
  std::atomic<int> writers_left{kWriters};
  std::atomic<int> durable_floor{0};  // highest value whose Apply has returned
  std::mutex failures_mu;
  std::vector<std::string> failures;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(failures_mu);
    failures.push_back(std::move(what));
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w)
    threads.emplace_back([&] {
      for (int i = 0; i < kBumps; ++i) {
        int written = 0;
        Status s = store_->Apply({0, "pk", "counter"}, [&written](const std::optional<std::string>& cur) {
          written = cur ? std::stoi(*cur) + 1 : 1;
          return std::to_string(written);
        });
        if (!s.ok()) {
          fail("apply: " + s.ToString());
          continue;
        }
        int floor = durable_floor.load();
        while (floor < written && !durable_floor.compare_exchange_weak(floor, written)) {
        }
      }
      writers_left--;
    });
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&] {
      while (writers_left.load() > 0) {
        const int floor = durable_floor.load();
        std::string record;
        Status s = store_->Get({0, "pk", "counter"}, &record);
        if (s.Is(Status::Code::kNotFound)) {
          if (floor > 0) fail("get found nothing after " + std::to_string(floor) + " was durable");
          continue;
        }
        if (!s.ok()) {
          fail("get: " + s.ToString());
          continue;
        }
        const int now = std::stoi(record);
        if (now < floor || now > kWriters * kBumps)
          fail("get saw " + std::to_string(now) + " after " + std::to_string(floor) + " was durable");
        std::vector<DataStore::ScanItem> items;
        bool more;
        s = store_->Scan(Req(0, "pk"), &items, &more);
        if (!s.ok()) {
          fail("scan: " + s.ToString());
        } else if (items.size() != 1) {
          fail("scan returned " + std::to_string(items.size()) + " items");
        } else if (std::stoi(items[0].record) < floor) {
          fail("scan saw " + items[0].record + " after " + std::to_string(floor) + " was durable");
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_THAT(failures, ::testing::IsEmpty());
  EXPECT_EQ(Get(0, "pk", "counter"), std::to_string(kWriters * kBumps));
}

// A full map refuses writes with NoSpace and keeps serving reads.
TEST_P(StorageTest, MapFullReturnsNoSpaceAndReadsStillWork) {
  Open(1 << 20);  // 1 MiB
  const std::string value(3000, 'v');
  Status last;
  const int written = FillUntilRefused(value, &last);
  std::cout << "[ measured ] " << written << " items of 3000 bytes fit in a 1 MiB map\n";
  ASSERT_FALSE(last.ok()) << "the map never filled";
  EXPECT_EQ(last.code(), Status::Code::kNoSpace) << last.ToString();
  ASSERT_GT(written, 10);

  // The failed write left nothing behind; earlier writes are all readable.
  EXPECT_EQ(Get(1, "pk", "item" + std::to_string(1000 + written)), "<NotFound>");
  for (int i = 0; i < written; ++i)
    ASSERT_EQ(Get(1, "pk", "item" + std::to_string(1000 + i)), value + std::to_string(i)) << i;
  std::vector<std::string> listed = PageThrough(1, "pk", true, 100);
  ASSERT_EQ(listed.size(), size_t(written));
  EXPECT_EQ(listed.front(), "item1000");
  // Still full: another write fails the same way.
  EXPECT_EQ(Put(1, "pk", "another", value).code(), Status::Code::kNoSpace);
}

// The documented layout: key = partition (4 bytes BE) + XXH3-128(pk) (high
// then low, BE) + sk; value = bucket. A record that does not decode is
// Corruption for Get, Scan and Apply, and Apply leaves it untouched.
TEST_P(StorageTest, UndecodableBucketIsCorruption) {
  ASSERT_TRUE(Put(5, "pk", "good", "fine").ok());
  PlantGarbageBucket(5, "pk", "bad");
  EXPECT_EQ(Get(5, "pk", "good"), "fine");  // the layout assumption holds
  std::string record;
  EXPECT_EQ(store_->Get({5, "pk", "bad"}, &record).code(), Status::Code::kCorruption);
  std::vector<DataStore::ScanItem> items;
  bool more;
  EXPECT_EQ(store_->Scan(Req(5, "pk"), &items, &more).code(), Status::Code::kCorruption);
  bool called = false;
  Status s = store_->Apply({5, "pk", "bad"}, [&](const std::optional<std::string>&) -> std::optional<std::string> {
    called = true;
    return "overwrite";
  });
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_FALSE(called);
  EXPECT_EQ(store_->Get({5, "pk", "bad"}, &record).code(), Status::Code::kCorruption);
}

// The commit histograms: one sample per commit (its time and its ops) and
// one per op (its wait, which covers its commit).
TEST_P(StorageTest, CommitHistogramsCountEveryCommitAndOp) {
  std::vector<std::tuple<uint32_t, std::string, std::string, std::string>> items;
  for (int i = 0; i < 300; ++i) items.emplace_back(i % 4, "pk", "s" + std::to_string(i), "v");
  PutAll(items);
  ASSERT_TRUE(store_->PutMeta("m", "x").ok());
  const DataStore::Stats s = store_->stats();
  EXPECT_EQ(s.commit_us.count(), s.commits);
  EXPECT_EQ(s.batch_ops.count(), s.commits);
  EXPECT_EQ(s.apply_wait_us.count(), s.applied);
  EXPECT_EQ(s.applied, 301u);
  EXPECT_DOUBLE_EQ(s.batch_ops.mean() * double(s.batch_ops.count()), double(s.applied));
  EXPECT_LE(s.batch_ops.max(), 512u);
  EXPECT_GE(s.apply_wait_us.min(), s.commit_us.min()) << "an op waits at least for its own commit";
  // All within the last minute, so the recent windows hold every sample.
  EXPECT_EQ(s.recent_commit_us.count(), s.commits);
  EXPECT_EQ(s.recent_batch_ops.count(), s.commits);
  EXPECT_EQ(s.recent_apply_wait_us.count(), s.applied);
  EXPECT_EQ(s.recent_commit_us.max(), s.commit_us.max());
}

// ---------------------------------------------------------------------------
// ApplyBatch

// One batch: every op lands, ops on one item run in order, and the whole
// batch costs one commit (one fsync) rather than one per op.
TEST_P(StorageTest, ApplyBatchIsDurableInOneCommit) {
  ASSERT_TRUE(Put(1, "pk", "erase-me", "old").ok());
  ASSERT_TRUE(Put(1, "pk", "keep-me", "kept").ok());
  const DataStore::Stats before = store_->stats();

  std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
  for (int i = 0; i < 64; ++i) {
    const std::string sk = "item" + std::to_string(i);
    ops.emplace_back(ItemKey{uint32_t(i % 3), "pk", sk}, [sk](const std::optional<std::string>&) { return sk; });
  }
  for (int i = 0; i < 3; ++i)  // a read-modify-write: each sees the one before
    ops.emplace_back(ItemKey{1, "pk", "counter"}, [](const std::optional<std::string>& cur) {
      return std::to_string(cur ? std::stoi(*cur) + 1 : 1);
    });
  ops.emplace_back(ItemKey{1, "pk", "erase-me"}, [](const std::optional<std::string>&) { return std::string(); });
  ops.emplace_back(ItemKey{1, "pk", "keep-me"},
                   [](const std::optional<std::string>&) -> std::optional<std::string> { return std::nullopt; });
  const size_t n = ops.size();
  std::vector<Status> results = store_->ApplyBatch(std::move(ops));
  ASSERT_EQ(results.size(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].ToString();

  const DataStore::Stats after = store_->stats();
  EXPECT_EQ(after.commits - before.commits, 1u);
  EXPECT_EQ(after.applied - before.applied, n);

  Open();  // durable: still there after a reopen
  for (int i = 0; i < 64; ++i) {
    const std::string sk = "item" + std::to_string(i);
    ASSERT_EQ(Get(uint32_t(i % 3), "pk", sk), sk);
  }
  EXPECT_EQ(Get(1, "pk", "counter"), "3");
  EXPECT_EQ(Get(1, "pk", "erase-me"), "<NotFound>");
  EXPECT_EQ(Get(1, "pk", "keep-me"), "kept");

  EXPECT_TRUE(store_->ApplyBatch({}).empty());
}

// TryApplyBatchAsync never waits: with the writer held inside a mutator and
// the queue at max_pending_ops it refuses (nothing queued, `done` never
// called); once there is room it queues, and `done` reports the durable write.
TEST_P(StorageTest, TryApplyBatchAsyncRefusesInsteadOfWaitingForRoom) {
  store_.reset();
  StorageOptions opts = Options();
  opts.max_pending_ops = 2;
  auto opened = DataStore::Open(opts);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  store_ = std::move(opened.value());

  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<std::vector<Status>> held_done;
  store_->ApplyBatchAsync({{ItemKey{1, "pk", "held"},
                            [&entered, released](const std::optional<std::string>&) -> std::optional<std::string> {
                              entered.set_value();
                              released.wait();  // the writer stays in this commit
                              return "held";
                            }}},
                          [&held_done](std::vector<Status> r) { held_done.set_value(std::move(r)); });
  entered.get_future().wait();
  // Two more ops fill the queue behind the held commit.
  std::promise<std::vector<Status>> queued_done;
  std::vector<std::pair<ItemKey, DataStore::Mutator>> two;
  for (const char* sk : {"q1", "q2"})
    two.emplace_back(ItemKey{1, "pk", sk}, [sk](const std::optional<std::string>&) { return std::string(sk); });
  store_->ApplyBatchAsync(std::move(two), [&queued_done](std::vector<Status> r) { queued_done.set_value(std::move(r)); });

  std::atomic<int> refused_done_calls{0};
  const bool taken = store_->TryApplyBatchAsync(
      {{ItemKey{1, "pk", "refused"}, [](const std::optional<std::string>&) { return std::string("refused"); }}},
      [&refused_done_calls](std::vector<Status>) { ++refused_done_calls; });
  EXPECT_FALSE(taken);

  release.set_value();
  for (const Status& s : held_done.get_future().get()) EXPECT_TRUE(s.ok()) << s.ToString();
  for (const Status& s : queued_done.get_future().get()) EXPECT_TRUE(s.ok()) << s.ToString();

  std::promise<std::vector<Status>> later_done;
  ASSERT_TRUE(store_->TryApplyBatchAsync(
      {{ItemKey{1, "pk", "later"}, [](const std::optional<std::string>&) { return std::string("later"); }}},
      [&later_done](std::vector<Status> r) { later_done.set_value(std::move(r)); }));
  const std::vector<Status> later = later_done.get_future().get();
  ASSERT_EQ(later.size(), 1u);
  EXPECT_TRUE(later[0].ok()) << later[0].ToString();

  Open();  // durable, and the refused op was never written
  EXPECT_EQ(Get(1, "pk", "held"), "held");
  EXPECT_EQ(Get(1, "pk", "q2"), "q2");
  EXPECT_EQ(Get(1, "pk", "later"), "later");
  EXPECT_EQ(Get(1, "pk", "refused"), "<NotFound>");
  EXPECT_EQ(refused_done_calls.load(), 0);
  bool empty_done = false;
  EXPECT_TRUE(store_->TryApplyBatchAsync({}, [&empty_done](std::vector<Status> r) { empty_done = r.empty(); }));
  EXPECT_TRUE(empty_done);
}

// As with Apply(), an item whose bucket does not decode fails alone; the
// rest of the batch commits.
TEST_P(StorageTest, ApplyBatchCorruptRecordFailsOnlyItsOwnOp) {
  PlantGarbageBucket(5, "pk", "bad");
  bool bad_called = false;
  std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
  ops.emplace_back(ItemKey{5, "pk", "a"}, [](const std::optional<std::string>&) { return "A"s; });
  ops.emplace_back(ItemKey{5, "pk", "bad"}, [&](const std::optional<std::string>&) {
    bad_called = true;
    return "overwrite"s;
  });
  ops.emplace_back(ItemKey{5, "pk", "z"}, [](const std::optional<std::string>&) { return "Z"s; });
  std::vector<Status> results = store_->ApplyBatch(std::move(ops));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_EQ(results[1].code(), Status::Code::kCorruption) << results[1].ToString();
  EXPECT_TRUE(results[2].ok()) << results[2].ToString();
  EXPECT_FALSE(bad_called);
  Open();
  EXPECT_EQ(Get(5, "pk", "a"), "A");
  EXPECT_EQ(Get(5, "pk", "z"), "Z");
  std::string record;
  EXPECT_EQ(store_->Get({5, "pk", "bad"}, &record).code(), Status::Code::kCorruption);
}

// Batches from many threads at once all land.
TEST_P(StorageTest, ConcurrentApplyBatches) {
  constexpr int kThreads = 8, kBatches = 10, kPerBatch = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
        for (int i = 0; i < kPerBatch; ++i) {
          const std::string sk = std::to_string(t) + "/" + std::to_string(b) + "/" + std::to_string(i);
          ops.emplace_back(ItemKey{uint32_t(t), "pk", sk}, [sk](const std::optional<std::string>&) { return sk; });
        }
        for (const Status& s : store_->ApplyBatch(std::move(ops)))
          if (!s.ok()) failures++;
      }
    });
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(WalkAll(1000).size(), size_t(kThreads * kBatches * kPerBatch));
}

// ---------------------------------------------------------------------------
// ScanAll

TEST_P(StorageTest, ScanAllOfEmptyStore) {
  ASSERT_TRUE(store_->PutMeta("incarnation", "1").ok());  // meta is not an item
  std::vector<RawItem> out = {RawItem{1, "stale", "", ""}};
  std::string next = "stale";
  ASSERT_TRUE(store_->ScanAll("", 10, &out, &next).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(next, "");
}

// Items of several partitions, many pks, and long sks that share buckets:
// every page size visits each item exactly once, in the same order, with
// partitions ascending and each pk's items together in sk order.
TEST_P(StorageTest, ScanAllVisitsEveryItemOnceAcrossPages) {
  const size_t exact = store_->max_exact_sk();
  ASSERT_LT(exact, 600u);
  const std::string common(600, 'k');  // sks beyond `exact` bytes that match share a bucket
  std::vector<Item> items;
  for (uint32_t partition : {0u, 1u, 7u, 0xffffffffu})
    for (int p = 0; p < 6; ++p) {
      const std::string pk = "pk" + std::to_string(p);
      for (int j = 0; j < 4; ++j) {
        const std::string sk = "s" + std::to_string(j);
        items.emplace_back(partition, pk, sk, std::to_string(partition) + "/" + pk + "/" + sk);
      }
    }
  for (const std::string& tail : {""s, "a"s, "b"s, "c"s, "d\0e"s})  // five items in one bucket
    items.emplace_back(7u, "shared", common + tail, "shared" + tail);
  items.emplace_back(7u, "shared", "x", "alone");
  PutAll(items);
  std::vector<Item> want = items;
  std::sort(want.begin(), want.end());

  std::vector<Item> first;
  for (size_t page : {1u, 2u, 3u, 5u, 7u, 1000u}) {
    SCOPED_TRACE("page " + std::to_string(page));
    size_t pages = 0;
    std::vector<Item> walked = AsTuples(WalkAll(page, &pages));
    ASSERT_EQ(walked.size(), items.size());
    std::vector<Item> sorted = walked;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted, want);  // each exactly once
    if (first.empty()) first = walked;
    ASSERT_EQ(walked, first);  // one storage order whatever the page size
    // Whole buckets: a page exceeds `page` by at most a shared bucket's extra entries.
    EXPECT_GE(pages, (items.size() - 4) / page);
    EXPECT_LE(pages, items.size() / page + 2);

    for (size_t i = 1; i < walked.size(); ++i) {
      const auto& [pa, pka, ska, ra] = walked[i - 1];
      const auto& [pb, pkb, skb, rb] = walked[i];
      ASSERT_LE(pa, pb) << "partitions out of order at " << i;
      if (pa == pb && pka == pkb) {
        ASSERT_LT(ska, skb) << "sks out of order at " << i;
      }
    }
    // Each (partition, pk) forms one contiguous run.
    std::set<std::pair<uint32_t, std::string>> finished;
    for (size_t i = 0; i < walked.size(); ++i) {
      std::pair<uint32_t, std::string> group{std::get<0>(walked[i]), std::get<1>(walked[i])};
      if (i > 0 && std::make_pair(std::get<0>(walked[i - 1]), std::get<1>(walked[i - 1])) != group) {
        ASSERT_TRUE(finished.insert({std::get<0>(walked[i - 1]), std::get<1>(walked[i - 1])}).second);
      }
      ASSERT_FALSE(finished.count(group)) << "pk " << group.second << " split at " << i;
    }
  }

  // A page never splits the shared bucket: asking for 1 item at its start
  // returns all five.
  std::string cursor;
  std::vector<RawItem> out;
  std::string next;
  bool saw_shared = false;
  for (int guard = 0; guard < 1000 && !saw_shared; ++guard) {
    ASSERT_TRUE(store_->ScanAll(cursor, 1, &out, &next).ok());
    ASSERT_FALSE(out.empty());
    if (out[0].pk == "shared" && out[0].sk.size() >= exact) {
      saw_shared = true;
      EXPECT_EQ(out.size(), 5u);
    } else {
      EXPECT_EQ(out.size(), 1u);
    }
    if (next.empty()) break;
    cursor = next;
  }
  EXPECT_TRUE(saw_shared);
}

// Items written or erased between pages: those present throughout are seen
// exactly once, even when the cursor's own item is gone.
TEST_P(StorageTest, ScanAllContinuesAcrossChanges) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put(2, "pk", "s" + std::to_string(i), "r").ok());
  std::vector<RawItem> out;
  std::string next;
  ASSERT_TRUE(store_->ScanAll("", 3, &out, &next).ok());
  ASSERT_EQ(out.size(), 3u);
  ASSERT_FALSE(next.empty());
  std::set<std::string> seen;
  for (const auto& item : out) seen.insert(item.sk);
  ASSERT_TRUE(Erase(2, "pk", out.back().sk).ok());  // the cursor's item
  std::string cursor = next;
  for (int guard = 0; guard < 100 && !cursor.empty(); ++guard) {
    ASSERT_TRUE(store_->ScanAll(cursor, 3, &out, &cursor).ok());
    for (const auto& item : out) ASSERT_TRUE(seen.insert(item.sk).second) << "seen twice: " << item.sk;
  }
  EXPECT_TRUE(cursor.empty());
  EXPECT_EQ(seen.size(), 10u);

  // Reading exactly to the end says so on the last page, not one page later.
  ASSERT_TRUE(store_->ScanAll("", 9, &out, &next).ok());  // 9 items remain
  EXPECT_EQ(out.size(), 9u);
  EXPECT_EQ(next, "");
}

// A bucket that does not decode is Corruption, but the walk can step past it.
TEST_P(StorageTest, ScanAllStepsPastAnUndecodableBucket) {
  ASSERT_TRUE(Put(5, "pk", "a", "A").ok());
  ASSERT_TRUE(Put(5, "pk", "z", "Z").ok());
  PlantGarbageBucket(5, "pk", "m");  // sorts between a and z
  std::vector<std::string> seen;
  std::string cursor;
  int corruptions = 0;
  for (int guard = 0; guard < 10; ++guard) {
    std::vector<RawItem> out;
    std::string next;
    Status s = store_->ScanAll(cursor, 100, &out, &next);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
      ++corruptions;
    }
    for (const auto& item : out) seen.push_back(item.sk);
    if (next.empty()) break;
    cursor = next;
  }
  EXPECT_EQ(corruptions, 1);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "z"}));
}

// ---------------------------------------------------------------------------
// Digest index and commit listener (anti-entropy's view of the store)

namespace digests {

// Records every commit the store reports.
class RecordingListener final : public CommitListener {
 public:
  void OnCommit(uint64_t txn, const std::vector<DigestChange>& changes) override {
    std::lock_guard<std::mutex> lock(mu);
    txns.push_back(txn);
    changed.push_back(!changes.empty());
    all.insert(all.end(), changes.begin(), changes.end());
  }
  std::mutex mu;
  std::vector<uint64_t> txns;
  std::vector<bool> changed;
  std::vector<DigestChange> all;
};

using Index = std::map<std::tuple<uint32_t, std::string, std::string>, std::pair<uint64_t, uint64_t>>;

// The digests as ScanDigests lists them, partition by partition, paging
// `page` at a time (resuming after the last entry, also inside one pk).
Index ListIndex(DataStore& store, uint32_t partitions, size_t page) {
  Index out;
  for (uint32_t p = 0; p < partitions; ++p) {
    std::optional<DigestEntry> after;
    for (int guard = 0; guard < 100000; ++guard) {
      std::vector<DigestEntry> entries;
      bool more = false;
      Status s = store.ScanDigests(p, 0, UINT64_MAX, after ? &*after : nullptr, page, &entries, &more);
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_LE(entries.size(), std::max<size_t>(page, 1));
      uint64_t last = after ? after->key_hash : 0;
      const DigestEntry* previous = after ? &*after : nullptr;
      for (const auto& e : entries) {
        EXPECT_GE(e.key_hash, last) << "not in key-hash order";
        last = e.key_hash;
        if (previous) {
          EXPECT_TRUE(DataStore::StorageOrderLess(previous->pk, previous->sk, e.pk, e.sk))
              << "not in the storage order StorageOrderLess states: " << previous->pk << "/" << previous->sk
              << " then " << e.pk << "/" << e.sk;
        }
        previous = &e;
        EXPECT_EQ(e.key_hash, DataStore::KeyHash(e.pk));
        EXPECT_TRUE(out.emplace(std::make_tuple(p, e.pk, e.sk), std::make_pair(e.key_hash, e.digest)).second)
            << "listed twice";
      }
      if (!more) break;
      EXPECT_FALSE(entries.empty());
      if (entries.empty()) break;
      after = entries.back();
    }
  }
  return out;
}

// What the index must hold: every item with BytesDigest of its record.
Index Expected(const std::vector<RawItem>& items) {
  Index out;
  for (const auto& i : items)
    out[{i.partition, i.pk, i.sk}] = {DataStore::KeyHash(i.pk), BytesDigest(i.pk, i.sk, i.record)};
  return out;
}

}  // namespace digests

// After random puts, overwrites and erases, the index lists exactly the items
// with their digests, and replaying the reported changes gives the index.
TEST_P(StorageTest, DigestIndexFollowsEveryWriteAndListenerSeesEachChange) {
  using namespace digests;
  RecordingListener listener;
  auto installed = store_->SetCommitListener(&listener);
  ASSERT_TRUE(installed.ok()) << installed.status().ToString();
  std::mt19937_64 rng(TestSeed(20240611));
  constexpr uint32_t kPartitions = 4;
  for (int i = 0; i < 600; ++i) {
    const uint32_t p = rng() % kPartitions;
    const std::string pk = "pk" + std::to_string(rng() % 7);
    const std::string sk = "sk" + std::to_string(rng() % 40);
    if (rng() % 4 == 0) {
      ASSERT_TRUE(Erase(p, pk, sk).ok());
    } else {
      ASSERT_TRUE(Put(p, pk, sk, "v" + std::to_string(rng() % 5)).ok());  // same bytes again: no change
    }
  }
  ASSERT_TRUE(store_->SetCommitListener(nullptr).ok());
  const Index expected = Expected(WalkAll(1000));
  EXPECT_EQ(ListIndex(*store_, kPartitions, 1000), expected);
  EXPECT_EQ(ListIndex(*store_, kPartitions, 3), expected) << "paging changes what is listed";

  // Replay, as a Merkle leaf does: per (partition, key hash), the sum of
  // after - before over the changes is the sum of the digests now held.
  std::map<std::pair<uint32_t, uint64_t>, uint64_t> replay;
  for (const auto& c : listener.all) {
    EXPECT_NE(c.before, c.after) << "a change that changes nothing was reported";
    replay[{c.partition, c.key_hash}] += c.after - c.before;
  }
  std::erase_if(replay, [](const auto& kv) { return kv.second == 0; });
  std::map<std::pair<uint32_t, uint64_t>, uint64_t> want;
  for (const auto& [key, hd] : expected) want[{std::get<0>(key), hd.first}] += hd.second;
  EXPECT_EQ(replay, want);
  // Ids never go back, and a commit that changed something has a new one.
  for (size_t i = 1; i < listener.txns.size(); ++i) {
    EXPECT_GE(listener.txns[i], listener.txns[i - 1]);
    if (listener.changed[i]) {
      EXPECT_GT(listener.txns[i], listener.txns[i - 1]) << "commit " << i;
    }
  }
  ASSERT_FALSE(listener.txns.empty());
  EXPECT_GT(listener.txns.front(), installed.value());
}

// The id SetCommitListener returns is the snapshot a read right after sees,
// and each commit's id is what a read after it sees.
TEST_P(StorageTest, CommitListenerIdsMatchReadSnapshots) {
  using namespace digests;
  ASSERT_TRUE(Put(3, "pk", "a", "1").ok());
  RecordingListener listener;
  auto last = store_->SetCommitListener(&listener);
  ASSERT_TRUE(last.ok());
  uint64_t snapshot = 0;
  ASSERT_TRUE(store_->ForEachDigest(3, [](uint64_t, uint64_t) {}, &snapshot).ok());
  EXPECT_EQ(snapshot, last.value());
  ASSERT_TRUE(Put(3, "pk", "b", "2").ok());
  int seen = 0;
  ASSERT_TRUE(store_->ForEachDigest(3, [&](uint64_t, uint64_t) { ++seen; }, &snapshot).ok());
  EXPECT_EQ(seen, 2);
  ASSERT_EQ(listener.txns.size(), 1u);
  EXPECT_EQ(listener.txns.back(), snapshot);
  ASSERT_EQ(listener.all.size(), 1u);
  EXPECT_EQ(listener.all[0].before, 0u);
  EXPECT_EQ(listener.all[0].after, BytesDigest("pk", "b", "2"));
  // A meta write is a commit too (no changes).
  ASSERT_TRUE(store_->PutMeta("m", "x").ok());
  EXPECT_EQ(listener.txns.size(), 2u);
  EXPECT_EQ(listener.all.size(), 1u);
  ASSERT_TRUE(store_->SetCommitListener(nullptr).ok());
}

// A batch that fails (map full) writes nothing and reports nothing.
TEST_P(StorageTest, FailedCommitReportsNoChange) {
  using namespace digests;
  Open(1 << 20);
  RecordingListener listener;
  ASSERT_TRUE(store_->SetCommitListener(&listener).ok());
  const std::string value(3000, 'v');
  Status last;
  for (int i = 0; i < 2000 && last.ok(); ++i) last = Put(1, "pk", "item" + std::to_string(i), value);
  ASSERT_EQ(last.code(), Status::Code::kNoSpace);
  ASSERT_TRUE(store_->SetCommitListener(nullptr).ok());
  const Index expected = Expected(WalkAll(100000));
  EXPECT_EQ(ListIndex(*store_, 2, 100), expected);
  EXPECT_EQ(listener.all.size(), expected.size()) << "a change of the failed batch was reported";
}

// Key-hash ranges: only entries inside [from, to] of that partition.
TEST_P(StorageTest, ScanDigestsKeepsToItsRange) {
  using namespace digests;
  for (uint32_t p : {0u, 1u, 2u})
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(Put(p, "pk" + std::to_string(i % 5), "s" + std::to_string(i), "r").ok());
  const Index all = ListIndex(*store_, 3, 1000);
  const uint64_t lo = uint64_t(1) << 62, hi = uint64_t(3) << 62;
  std::vector<DigestEntry> entries;
  bool more = true;
  ASSERT_TRUE(store_->ScanDigests(1, lo, hi, nullptr, 1000, &entries, &more).ok());
  EXPECT_FALSE(more);
  size_t want = 0;
  for (const auto& [key, hd] : all)
    if (std::get<0>(key) == 1 && hd.first >= lo && hd.first <= hi) ++want;
  EXPECT_EQ(entries.size(), want);
  for (const auto& e : entries) {
    EXPECT_GE(e.key_hash, lo);
    EXPECT_LE(e.key_hash, hi);
    EXPECT_EQ(all.count({1, e.pk, e.sk}), 1u);
  }
  ASSERT_TRUE(store_->ScanDigests(1, hi, lo, nullptr, 1000, &entries, &more).ok());
  EXPECT_TRUE(entries.empty());
}

// One pk's rows share a key hash, and a page may end inside them: listing
// one row at a time gives every row once, in sk order (a pk's rows are
// contiguous in storage), and resuming past the last row of the range ends it.
TEST_P(StorageTest, ScanDigestsPagesThroughTheRowsOfOnePk) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(Put(2, "wide", "row" + std::to_string(100 + i), "r").ok());
  ASSERT_TRUE(Put(2, "other", "x", "r").ok());
  const uint64_t h = DataStore::KeyHash("wide");
  std::vector<std::string> rows;
  std::optional<DigestEntry> after;
  for (int guard = 0; guard < 100; ++guard) {
    std::vector<DigestEntry> page;
    bool more = false;
    ASSERT_TRUE(store_->ScanDigests(2, h, h, after ? &*after : nullptr, 1, &page, &more).ok());
    ASSERT_LE(page.size(), 1u);
    for (const auto& e : page) {
      EXPECT_EQ(e.pk, "wide");
      EXPECT_EQ(e.key_hash, h);
      EXPECT_EQ(e.digest, BytesDigest("wide", e.sk, "r"));
      rows.push_back(e.sk);
    }
    if (!more) break;
    after = page.back();
  }
  ASSERT_EQ(rows.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(rows[i], "row" + std::to_string(100 + i));
}

// Rows whose sks share their first max_exact_sk() bytes share one bucket; a
// page may end inside it, and the entry a page ended on may be gone before
// the next page: the rows present throughout are each listed once, in order.
TEST_P(StorageTest, ScanDigestsResumesInsideASharedBucketAndPastADeletedEntry) {
  const std::string stem(store_->max_exact_sk(), 'x');
  for (char c : std::string("abcdefg")) ASSERT_TRUE(Put(1, "wide", stem + c, "r").ok());
  const uint64_t h = DataStore::KeyHash("wide");
  std::vector<std::string> rows;
  std::optional<DigestEntry> after;
  for (int guard = 0; guard < 20; ++guard) {
    std::vector<DigestEntry> page;
    bool more = false;
    ASSERT_TRUE(store_->ScanDigests(1, h, h, after ? &*after : nullptr, 2, &page, &more).ok());
    ASSERT_LE(page.size(), 2u);
    for (const auto& e : page) rows.push_back(e.sk.substr(stem.size()));
    if (!more) break;
    after = page.back();
    if (after->sk == stem + "d") {
      ASSERT_TRUE(Erase(1, "wide", after->sk).ok());  // gone before the next page
    }
  }
  EXPECT_EQ(rows, (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"}));
  // A claimed key hash is not trusted: `after` is placed by its pk.
  DigestEntry lying{"wide", stem + "b", 0, 0};
  std::vector<DigestEntry> page;
  bool more = false;
  ASSERT_TRUE(store_->ScanDigests(1, h, h, &lying, 10, &page, &more).ok());
  ASSERT_EQ(page.size(), 4u);  // c, e, f, g
  EXPECT_EQ(page.front().sk, stem + "c");
}

// A store from before digests moved into the items: its buckets have no
// digests (v1) and it has a separate `digests` database. Open() drops that
// database; digests of v1 items are computed when read, a write reports the
// right `before`, and the rewritten bucket carries the digest from then on.
TEST_P(StorageTest, StoreFromBeforeDigestsInItemsStillWorks) {
  using namespace digests;
  ASSERT_TRUE(Put(4, "pk", "new", "n").ok());  // creates the store, names the digest
  std::string v1;
  fixed::PutU32(v1, 1);
  fixed::PutBytes(v1, "pk");
  fixed::PutBytes(v1, "old");
  fixed::PutBytes(v1, "record");
  PlantRawBucket(4, "pk", "old", v1, /*old_index=*/true);
  ASSERT_TRUE(HasDatabase("digests"));
  Open();
  EXPECT_EQ(Get(4, "pk", "old"), "record");
  EXPECT_EQ(store_->stats().reindexed, 2u) << "an older store has its digests written into the items once";
  Index listed = ListIndex(*store_, 5, 10);
  EXPECT_EQ(listed.at({4, "pk", "old"}).second, BytesDigest("pk", "old", "record"));
  EXPECT_EQ(listed.at({4, "pk", "new"}).second, BytesDigest("pk", "new", "n"));
  RecordingListener listener;
  ASSERT_TRUE(store_->SetCommitListener(&listener).ok());
  ASSERT_TRUE(Put(4, "pk", "old", "record2").ok());
  ASSERT_TRUE(store_->SetCommitListener(nullptr).ok());
  ASSERT_EQ(listener.all.size(), 1u);
  EXPECT_EQ(listener.all[0].before, BytesDigest("pk", "old", "record"));
  EXPECT_EQ(listener.all[0].after, BytesDigest("pk", "old", "record2"));
  EXPECT_FALSE(HasDatabase("digests"));
  Open();
  EXPECT_EQ(Get(4, "pk", "old"), "record2");
  EXPECT_EQ(store_->stats().reindexed, 0u);
  EXPECT_EQ(ListIndex(*store_, 5, 10), Expected(WalkAll(100)));
  // The digests are stored, not computed: under the same name, another
  // function changes nothing that is listed.
  store_.reset();
  StorageOptions opts = Options();
  opts.digest = [](std::string_view, std::string_view, std::string_view) -> uint64_t { return 7; };
  auto reopened = DataStore::Open(opts);
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(reopened.value());
  EXPECT_EQ(ListIndex(*store_, 5, 10), Expected(WalkAll(100)));
}

// A store indexed with another digest (or none, as before the index existed)
// is re-indexed at open, once.
TEST_P(StorageTest, ReopenWithAnotherDigestRebuildsTheIndex) {
  using namespace digests;
  // More items than one re-digest transaction takes (10,000), some of them
  // large enough for LMDB's overflow pages.
  constexpr int kItems = 10300;
  std::vector<std::tuple<uint32_t, std::string, std::string, std::string>> items;
  for (int i = 0; i < kItems; ++i)
    items.emplace_back(i % 3, "pk" + std::to_string(i % 11), "s" + std::to_string(i),
                       i % 500 == 0 ? std::string(6000, 'L') : "r" + std::to_string(i));
  PutAll(items);
  EXPECT_EQ(store_->stats().reindexed, 0u);
  store_.reset();
  StorageOptions opts = Options();
  opts.digest_name = "test-length";
  opts.digest = [](std::string_view pk, std::string_view sk, std::string_view record) -> uint64_t {
    return 1 + pk.size() * 1000003 + sk.size() * 1009 + record.size();
  };
  auto reopened = DataStore::Open(opts);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  store_ = std::move(reopened.value());
  EXPECT_EQ(store_->stats().reindexed, uint64_t(kItems));
  const Index listed = ListIndex(*store_, 3, 500);
  ASSERT_EQ(listed.size(), size_t(kItems));
  const std::vector<RawItem> all = WalkAll(1000);
  ASSERT_EQ(all.size(), size_t(kItems));
  for (const auto& item : all)
    EXPECT_EQ(listed.at({item.partition, item.pk, item.sk}).second, opts.digest(item.pk, item.sk, item.record));
  // Same name again: nothing to rebuild.
  store_.reset();
  reopened = DataStore::Open(opts);
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(reopened.value());
  EXPECT_EQ(store_->stats().reindexed, 0u);
}

std::string MemtableName(const ::testing::TestParamInfo<size_t>& info) {
  return info.param >= (1u << 20) ? "DefaultMemtable" : "FlushEveryFewWrites";
}
INSTANTIATE_TEST_SUITE_P(Memtables, StorageTest, ::testing::Values(StorageOptions{}.memtable_bytes, 4096),
                         MemtableName);
INSTANTIATE_TEST_SUITE_P(Memtables, ScanFixture, ::testing::Values(StorageOptions{}.memtable_bytes, 4096),
                         MemtableName);

// A scan reads buckets in place (DecodeViews): the same entries as Decode,
// and the same refusals of malformed bytes.
TEST(BucketTest, ViewsDecodeTheSameEntriesAndRefuseTheSameBytes) {
  Bucket b;
  b.Upsert("pk", "b", std::string("two\0bytes", 9), 2);
  b.Upsert("pk", "a", "one", 1);
  b.Upsert("other", "a", "", 3);
  const std::string bytes = b.Encode();
  auto copies = Bucket::Decode(bytes);
  auto views = Bucket::DecodeViews(bytes);
  ASSERT_TRUE(copies.ok() && views.ok());
  ASSERT_EQ(views->size(), copies->entries().size());
  for (size_t i = 0; i < views->size(); ++i) {
    const auto& v = views.value()[i];
    const auto& c = copies->entries()[i];
    EXPECT_EQ(v.pk, c.pk);
    EXPECT_EQ(v.sk, c.sk);
    EXPECT_EQ(v.record, c.record);
    EXPECT_GE(v.record.data(), bytes.data());  // in place
    EXPECT_LE(v.record.data() + v.record.size(), bytes.data() + bytes.size());
  }
  EXPECT_EQ(views.value()[2].record, std::string_view("two\0bytes", 9));
  for (const std::string& bad : {bytes.substr(0, bytes.size() - 1), bytes + "x", std::string("\xff\xff\xff"),
                                 bytes.substr(0, 4)}) {
    EXPECT_TRUE(Bucket::Decode(bad).status().Is(Status::Code::kCorruption));
    EXPECT_TRUE(Bucket::DecodeViews(bad).status().Is(Status::Code::kCorruption)) << bad.size() << " bytes";
  }
}

}  // namespace
}  // namespace monju
