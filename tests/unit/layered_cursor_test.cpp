// LayeredCursor and LayeredGet: memtables (newest first, at a snapshot)
// over a real LMDB database, against a std::map model.
#include "storage/layered_cursor.h"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "storage/memtable.h"
#include "test_support.h"

namespace monju {
namespace {

using namespace std::string_literals;
using test_support::TempDir;
using test_support::Printable;
using test_support::TestSeed;
using Model = std::map<std::string, std::string>;


MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

class LayeredCursorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(mdb_env_create(&env_), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env_, 4), 0);
    ASSERT_EQ(mdb_env_set_mapsize(env_, 64ull << 20), 0);
    ASSERT_EQ(mdb_env_open(env_, dir_.path().c_str(), MDB_NOSYNC, 0644), 0);
    MDB_txn* txn;
    ASSERT_EQ(mdb_txn_begin(env_, nullptr, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "items", MDB_CREATE, &dbi_), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
  }
  void TearDown() override {
    EndRead();
    if (env_) mdb_env_close(env_);
  }

  // Replaces the database's contents with `items`.
  void Load(const Model& items) {
    EndRead();
    MDB_txn* txn;
    ASSERT_EQ(mdb_txn_begin(env_, nullptr, 0, &txn), 0);
    ASSERT_EQ(mdb_drop(txn, dbi_, 0), 0);
    for (const auto& [k, v] : items) {
      MDB_val key = Val(k), val = Val(v);
      ASSERT_EQ(mdb_put(txn, dbi_, &key, &val, 0), 0) << Printable(k);
    }
    ASSERT_EQ(mdb_txn_commit(txn), 0);
  }
  // A read transaction for the cursor (kept until the next Load()).
  MDB_txn* Read() {
    if (!read_) {
      EXPECT_EQ(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_), 0);
    }
    return read_;
  }
  void EndRead() {
    if (read_) mdb_txn_abort(read_);
    read_ = nullptr;
  }

  // The walks and seeks of a cursor over `layers` at `snapshot`, and
  // LayeredGet of `probes`, against `want`.
  void Check(const std::vector<const MemTable*>& layers, uint64_t snapshot, const Model& want,
             const std::vector<std::string>& targets, const std::vector<std::string>& probes, std::mt19937_64* rng);

  TempDir dir_{"monju-layered"};
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* read_ = nullptr;
};

// Empty when the cursor is where `want` is (end(): not valid).
std::string Diff(const LayeredCursor& c, const Model& model, Model::const_iterator want) {
  if (!c.status().ok()) return "status " + c.status().ToString();
  if (want == model.end()) return c.Valid() ? "valid at " + Printable(c.key()) + ", expected the end" : "";
  if (!c.Valid()) return "not valid, expected " + Printable(want->first);
  if (c.key() != want->first) return "at " + Printable(c.key()) + ", expected " + Printable(want->first);
  if (c.value() != want->second)
    return Printable(c.key()) + " value " + Printable(c.value()) + ", expected " + Printable(want->second);
  return "";
}

Model::const_iterator Before(const Model& m, Model::const_iterator it) {
  return it == m.begin() ? m.end() : std::prev(it);
}

void LayeredCursorTest::Check(const std::vector<const MemTable*>& layers, uint64_t snapshot, const Model& want,
                              const std::vector<std::string>& targets, const std::vector<std::string>& probes,
                              std::mt19937_64* rng) {
  MDB_txn* txn = Read();
  LayeredCursor c(layers, snapshot, txn, dbi_);
  ASSERT_TRUE(c.status().ok()) << c.status().ToString();

  auto w = want.begin();
  for (c.SeekToFirst(); c.Valid() && w != want.end(); c.Next(), ++w) ASSERT_EQ(Diff(c, want, w), "") << "forward walk";
  ASSERT_EQ(Diff(c, want, want.end()), "") << "forward walk end";
  ASSERT_EQ(w, want.end()) << "forward walk ended early, at " << Printable(w->first);

  auto r = want.rbegin();
  for (c.SeekToLast(); c.Valid() && r != want.rend(); c.Prev(), ++r)
    ASSERT_EQ(Diff(c, want, std::prev(r.base())), "") << "backward walk";
  ASSERT_EQ(Diff(c, want, want.end()), "") << "backward walk end";
  ASSERT_EQ(r, want.rend()) << "backward walk ended early, at " << Printable(r->first);

  for (const std::string& target : targets) {
    const int steps = int((*rng)() % 4);
    for (int op = 0; op < 3; ++op) {
      SCOPED_TRACE("target " + Printable(target) + " op " + std::to_string(op));
      if (op == 0) {
        auto at = want.lower_bound(target);
        c.SeekGE(target);
        for (int k = 0;; ++k) {
          ASSERT_EQ(Diff(c, want, at), "") << "SeekGE then " << k << " Next()";
          if (k == steps || at == want.end()) break;
          c.Next();
          ++at;
        }
      } else {
        auto at = Before(want, op == 1 ? want.upper_bound(target) : want.lower_bound(target));
        op == 1 ? c.SeekLE(target) : c.SeekLT(target);
        for (int k = 0;; ++k) {
          ASSERT_EQ(Diff(c, want, at), "") << (op == 1 ? "SeekLE" : "SeekLT") << " then " << k << " Prev()";
          if (k == steps || at == want.end()) break;
          c.Prev();
          at = Before(want, at);
        }
      }
    }
  }

  for (const std::string& key : probes) {
    std::string_view value = "untouched";
    auto got = LayeredGet(layers, snapshot, txn, dbi_, key, &value);
    ASSERT_TRUE(got.ok()) << Printable(key) << ": " << got.status().ToString();
    auto it = want.find(key);
    EXPECT_EQ(got.value(), it != want.end()) << "LayeredGet " << Printable(key);
    if (it != want.end() && got.value()) {
      EXPECT_EQ(value, it->second) << "LayeredGet " << Printable(key);
    }
  }
}

std::string RandomKey(std::mt19937_64& rng, size_t min_len, size_t max_len) {
  static const char kAlphabet[] = {'\0', 'a', 'b', '\xff'};
  std::string key(min_len + rng() % (max_len - min_len + 1), 'x');
  for (char& c : key) c = kAlphabet[rng() % 4];
  return key;
}

// A memtable's entries, as added.
struct Entries {
  std::vector<std::tuple<uint64_t, std::string, std::optional<std::string>>> list;
  void AddTo(MemTable* t) const {
    for (const auto& [seq, key, value] : list)
      t->Add(seq, key, value ? std::optional<std::string_view>(*value) : std::nullopt);
  }
  // Applies each key's newest entry at or below `snapshot` to `model`.
  void Apply(uint64_t snapshot, Model* model) const {
    std::map<std::string, std::pair<uint64_t, std::optional<std::string>>> newest;
    for (const auto& [seq, key, value] : list) {
      if (seq > snapshot) continue;
      auto& slot = newest[key];
      if (seq >= slot.first) slot = {seq, value};
    }
    for (const auto& [key, entry] : newest) {
      if (entry.second) {
        (*model)[key] = *entry.second;
      } else {
        model->erase(key);
      }
    }
  }
};

TEST_F(LayeredCursorTest, RandomizedAgainstModel) {
  std::mt19937_64 rng(TestSeed(424242));
  for (int round = 0; round < 25; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Keys of 1..3 bytes over {00, 'a', 'b', ff}: prefixes of each other, binary.
    Model lmdb;
    const int lmdb_keys = round == 0 ? 0 : int(rng() % 40);
    for (int i = 0; i < lmdb_keys; ++i) {
      const std::string k = RandomKey(rng, 1, 3);
      lmdb[k] = "lmdb:" + Printable(k) + std::string(rng() % 3, '+');
    }
    Load(lmdb);

    Entries imm_entries, active_entries;
    uint64_t seq = 0;
    const int imm_adds = int(rng() % 60), active_adds = int(rng() % 60);
    const int erase_pct = int(10 + rng() % 60);  // some rounds erase a lot
    for (Entries* e : {&imm_entries, &active_entries}) {
      const int adds = e == &imm_entries ? imm_adds : active_adds;
      for (int i = 0; i < adds; ++i) {
        // Half the time an LMDB key, so that layers overlap.
        std::string key = !lmdb.empty() && rng() % 2 ? std::next(lmdb.begin(), long(rng() % lmdb.size()))->first
                                                     : RandomKey(rng, 1, 3);
        std::optional<std::string> value;
        if (int(rng() % 100) >= erase_pct) value = "s" + std::to_string(seq + 1) + (rng() % 5 ? "" : "\0x"s);
        e->list.emplace_back(++seq, std::move(key), std::move(value));
      }
    }
    MemTable imm, active;
    imm_entries.AddTo(&imm);
    active_entries.AddTo(&active);
    const std::vector<const MemTable*> layers = {&active, &imm};

    std::vector<uint64_t> snapshots = {0, uint64_t(imm_adds), seq, MemTable::kLatest};
    for (int i = 0; i < 4; ++i) snapshots.push_back(rng() % (seq + 1));
    for (const uint64_t snap : snapshots) {
      SCOPED_TRACE("snapshot " + std::to_string(snap));
      Model want = lmdb;
      imm_entries.Apply(snap, &want);
      active_entries.Apply(snap, &want);
      std::vector<std::string> targets = {""};
      for (int i = 0; i < 25; ++i) targets.push_back(RandomKey(rng, 0, 4));
      if (!want.empty()) targets.push_back(std::next(want.begin(), long(rng() % want.size()))->first);
      std::vector<std::string> probes;
      for (const auto& [k, v] : lmdb) probes.push_back(k);
      for (const Entries* e : {&imm_entries, &active_entries})
        for (const auto& entry : e->list) probes.push_back(std::get<1>(entry));
      for (int i = 0; i < 10; ++i) probes.push_back(RandomKey(rng, 1, 4));
      ASSERT_NO_FATAL_FAILURE(Check(layers, snap, want, targets, probes, &rng));
    }
  }
}

TEST_F(LayeredCursorTest, EmptyLmdbOnlyMemtables) {
  Load({});
  MemTable imm, active;
  imm.Add(1, "b", "imm-b");
  imm.Add(2, "d", "imm-d");
  imm.Add(3, "f", std::nullopt);
  active.Add(4, "a", "act-a");
  active.Add(5, "d", std::nullopt);
  active.Add(6, "f", "act-f");
  std::mt19937_64 rng(1);
  const std::vector<std::string> targets = {"", "a", "b", "c", "d", "e", "f", "g", "\xff"s, "\0"s};
  const std::vector<std::string> probes = {"a", "b", "c", "d", "e", "f"};
  const std::vector<const MemTable*> layers = {&active, &imm};
  ASSERT_NO_FATAL_FAILURE(Check(layers, MemTable::kLatest, {{"a", "act-a"}, {"b", "imm-b"}, {"f", "act-f"}}, targets,
                                probes, &rng));
  ASSERT_NO_FATAL_FAILURE(Check(layers, 4, {{"a", "act-a"}, {"b", "imm-b"}, {"d", "imm-d"}}, targets, probes, &rng));
  ASSERT_NO_FATAL_FAILURE(Check(layers, 0, {}, targets, probes, &rng));
  ASSERT_NO_FATAL_FAILURE(Check({}, MemTable::kLatest, {}, targets, probes, &rng));  // no layers, empty LMDB
}

TEST_F(LayeredCursorTest, ErasedInNewestLayerHidesOlderMemtableAndLmdb) {
  Load({{"a", "lmdb-a"}, {"k", "lmdb-k"}, {"z", "lmdb-z"}});
  MemTable imm, active;
  imm.Add(1, "k", "imm-k");
  active.Add(2, "k", std::nullopt);
  const std::vector<const MemTable*> layers = {&active, &imm};
  std::mt19937_64 rng(2);
  const std::vector<std::string> targets = {"", "a", "j", "k", "k\0"s, "l", "z", "zz"};
  const std::vector<std::string> probes = {"a", "k", "z"};
  ASSERT_NO_FATAL_FAILURE(Check(layers, 2, {{"a", "lmdb-a"}, {"z", "lmdb-z"}}, targets, probes, &rng));
  ASSERT_NO_FATAL_FAILURE(
      Check(layers, 1, {{"a", "lmdb-a"}, {"k", "imm-k"}, {"z", "lmdb-z"}}, targets, probes, &rng));
  ASSERT_NO_FATAL_FAILURE(
      Check(layers, 0, {{"a", "lmdb-a"}, {"k", "lmdb-k"}, {"z", "lmdb-z"}}, targets, probes, &rng));

  // The same by hand, stepping onto and over the erased key both ways.
  LayeredCursor c(layers, MemTable::kLatest, Read(), dbi_);
  c.SeekGE("k");
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "z");
  c.SeekLE("k");
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "a");
  EXPECT_EQ(c.value(), "lmdb-a");
  c.SeekToFirst();
  c.Next();
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "z");
  c.SeekToLast();
  c.Prev();
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "a");
  std::string_view v = "untouched";
  auto got = LayeredGet(layers, MemTable::kLatest, Read(), dbi_, "k", &v);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got.value());
  // Erased in the older memtable, put again in the newer one.
  MemTable imm2, active2;
  imm2.Add(1, "a", std::nullopt);
  active2.Add(2, "a", "act-a");
  ASSERT_NO_FATAL_FAILURE(Check({&active2, &imm2}, 2, {{"a", "act-a"}, {"k", "lmdb-k"}, {"z", "lmdb-z"}}, targets,
                                probes, &rng));
  ASSERT_NO_FATAL_FAILURE(Check({&active2, &imm2}, 1, {{"k", "lmdb-k"}, {"z", "lmdb-z"}}, targets, probes, &rng));
}

TEST_F(LayeredCursorTest, LongRunsOfErasedKeys) {
  // Every LMDB key but the first and last erased in one layer or the other,
  // so that each step skips many keys in every source.
  Model lmdb;
  for (int i = 0; i < 200; ++i) {
    char k[8];
    std::snprintf(k, sizeof k, "k%03d", i);
    lmdb[k] = "v" + std::to_string(i);
  }
  Load(lmdb);
  MemTable imm, active;
  uint64_t seq = 0;
  for (int i = 1; i < 199; ++i) {
    char k[8];
    std::snprintf(k, sizeof k, "k%03d", i);
    (i % 2 ? imm : active).Add(++seq, k, std::nullopt);
  }
  std::mt19937_64 rng(3);
  const std::vector<std::string> targets = {"", "k", "k000", "k050", "k100x", "k199", "k2", "z"};
  const std::vector<std::string> probes = {"k000", "k001", "k002", "k100", "k198", "k199"};
  ASSERT_NO_FATAL_FAILURE(
      Check({&active, &imm}, MemTable::kLatest, {{"k000", "v0"}, {"k199", "v199"}}, targets, probes, &rng));
}

TEST_F(LayeredCursorTest, SeeksBeforeAndAfterEverything) {
  Load({{"b", "lmdb-b"}, {"c", "lmdb-c"}});
  MemTable active;
  active.Add(1, "d", "act-d");
  active.Add(2, "bb", "act-bb");
  const std::vector<const MemTable*> layers = {&active};
  LayeredCursor c(layers, MemTable::kLatest, Read(), dbi_);

  for (const std::string& before : {""s, "\0"s, "a"s, "b"s}) {
    c.SeekLT(before);
    EXPECT_FALSE(c.Valid()) << "SeekLT " << Printable(before);
  }
  for (const std::string& before : {""s, "\0"s, "a"s, "az"s}) {
    c.SeekLE(before);
    EXPECT_FALSE(c.Valid()) << "SeekLE " << Printable(before);
  }
  c.SeekLE("b");
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "b");
  c.Prev();
  EXPECT_FALSE(c.Valid());

  for (const std::string& after : {"e"s, "d\0"s, "\xff"s, "\xff\xff\xff"s}) {
    c.SeekLT(after);
    ASSERT_TRUE(c.Valid()) << "SeekLT " << Printable(after);
    EXPECT_EQ(c.key(), "d");
    EXPECT_EQ(c.value(), "act-d");
    c.SeekLE(after);
    ASSERT_TRUE(c.Valid()) << "SeekLE " << Printable(after);
    EXPECT_EQ(c.key(), "d");
    c.SeekGE(after);
    EXPECT_FALSE(c.Valid()) << "SeekGE " << Printable(after);
  }
  c.SeekLT("d");
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "c");
  c.Prev();
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "bb");
  EXPECT_EQ(c.value(), "act-bb");

  c.SeekGE("");
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.key(), "b");
  EXPECT_EQ(c.value(), "lmdb-b");
  std::vector<std::string> keys;
  for (; c.Valid(); c.Next()) keys.emplace_back(c.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"b", "bb", "c", "d"}));
  EXPECT_TRUE(c.status().ok());
}

}  // namespace
}  // namespace monju
