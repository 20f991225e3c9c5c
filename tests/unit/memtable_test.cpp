// MemTable: snapshot reads, ordered iteration both ways against a model,
// one writer with concurrent readers, sizes and metadata.
#include "storage/memtable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.h"

namespace monju {
namespace {

using namespace std::string_literals;
using test_support::Printable;
using test_support::TestSeed;
using Found = MemTable::Found;


// Get's answer as (found, value); the value is "untouched" unless kValue.
std::pair<Found, std::string> Lookup(const MemTable& t, std::string_view key, uint64_t snapshot) {
  std::string_view v = "untouched";
  const Found f = t.Get(key, snapshot, &v);
  return {f, std::string(v)};
}

std::pair<Found, std::string> Val(std::string v) { return {Found::kValue, std::move(v)}; }
const std::pair<Found, std::string> kAbsent{Found::kAbsent, "untouched"};
const std::pair<Found, std::string> kErased{Found::kErased, "untouched"};

TEST(MemTableTest, GetSeesNewestEntryAtOrBelowSnapshot) {
  MemTable t;
  t.Add(2, "apple", "a2");
  t.Add(5, "apple", "a5");
  t.Add(7, "apple", std::nullopt);
  t.Add(9, "apple", "a9");
  t.Add(4, "banana", "b4");

  EXPECT_EQ(Lookup(t, "apple", 0), kAbsent);
  EXPECT_EQ(Lookup(t, "apple", 1), kAbsent);
  EXPECT_EQ(Lookup(t, "apple", 2), Val("a2"));
  EXPECT_EQ(Lookup(t, "apple", 4), Val("a2"));
  EXPECT_EQ(Lookup(t, "apple", 5), Val("a5"));
  EXPECT_EQ(Lookup(t, "apple", 6), Val("a5"));
  EXPECT_EQ(Lookup(t, "apple", 7), kErased);
  EXPECT_EQ(Lookup(t, "apple", 8), kErased);
  EXPECT_EQ(Lookup(t, "apple", 9), Val("a9"));
  EXPECT_EQ(Lookup(t, "apple", MemTable::kLatest), Val("a9"));
  EXPECT_EQ(Lookup(t, "banana", 3), kAbsent);
  EXPECT_EQ(Lookup(t, "banana", 4), Val("b4"));
  EXPECT_EQ(Lookup(t, "banana", MemTable::kLatest), Val("b4"));
  EXPECT_EQ(Lookup(t, "cherry", MemTable::kLatest), kAbsent);
  EXPECT_EQ(Lookup(t, "appl", MemTable::kLatest), kAbsent);
  EXPECT_EQ(Lookup(t, "apple0", MemTable::kLatest), kAbsent);
  EXPECT_EQ(Lookup(t, "", MemTable::kLatest), kAbsent);
}

TEST(MemTableTest, PrefixKeysEmptyValuesAndBinaryKeys) {
  MemTable t;
  const std::string zero = "a\0"s, zero_zero = "a\0\0"s, ff = "a\xff"s, nul = "\0"s, high = "\xff\xff"s;
  t.Add(1, "ab", "ab1");
  t.Add(2, "a", "a2");
  t.Add(3, "abc", "");  // an empty value is a value, not an erasure
  t.Add(4, zero, "zero4");
  t.Add(5, ff, "ff5");
  t.Add(6, zero_zero, "zz6");
  t.Add(7, nul, "nul7");
  t.Add(8, high, "high8");
  t.Add(9, "a", std::nullopt);
  t.Add(10, "ab", "");

  EXPECT_EQ(Lookup(t, "a", 8), Val("a2"));
  EXPECT_EQ(Lookup(t, "a", 9), kErased);
  EXPECT_EQ(Lookup(t, "ab", 9), Val("ab1"));
  EXPECT_EQ(Lookup(t, "ab", 10), Val(""));
  EXPECT_EQ(Lookup(t, "abc", 3), Val(""));
  EXPECT_EQ(Lookup(t, "abc", 2), kAbsent);
  EXPECT_EQ(Lookup(t, zero, 10), Val("zero4"));
  EXPECT_EQ(Lookup(t, zero_zero, 10), Val("zz6"));
  EXPECT_EQ(Lookup(t, zero_zero, 5), kAbsent);
  EXPECT_EQ(Lookup(t, ff, 10), Val("ff5"));
  EXPECT_EQ(Lookup(t, nul, 10), Val("nul7"));
  EXPECT_EQ(Lookup(t, high, 10), Val("high8"));
  EXPECT_EQ(Lookup(t, "\xff"s, 10), kAbsent);
  EXPECT_EQ(Lookup(t, "a\0\0\0"s, 10), kAbsent);

  // Bytewise order, a prefix first, 0xff above everything else.
  const std::vector<std::string> want = {nul, "a", zero, zero_zero, "ab", "abc", ff, high};
  MemTable::Iterator it(&t, MemTable::kLatest);
  std::vector<std::string> got;
  for (it.SeekToFirst(); it.Valid(); it.Next()) got.emplace_back(it.key());
  EXPECT_EQ(got, want);
  got.clear();
  for (it.SeekToLast(); it.Valid(); it.Prev()) got.emplace_back(it.key());
  EXPECT_EQ(got, std::vector<std::string>(want.rbegin(), want.rend()));

  it.SeekGE("a");
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), "a");
  EXPECT_TRUE(it.erased());
  EXPECT_EQ(it.value(), "");
  EXPECT_EQ(it.seq(), 9u);
  it.Next();
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), zero);
  it.SeekLT(zero);
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), "a");
  it.SeekLE("a");  // an exact match, erased entries included
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), "a");
  EXPECT_TRUE(it.erased());
  it.Prev();
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), nul);
  it.SeekLE("ab\x01"s);
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), "ab");
  EXPECT_FALSE(it.erased());
  EXPECT_EQ(it.value(), "");
  it.SeekGE("\xff\xff\xff"s);
  EXPECT_FALSE(it.Valid());
  it.SeekLT(nul);
  EXPECT_FALSE(it.Valid());
  it.SeekLE(""s);
  EXPECT_FALSE(it.Valid());

  // At snapshot 2 only "ab"@1 and "a"@2 are visible.
  MemTable::Iterator old(&t, 2);
  got.clear();
  for (old.SeekToFirst(); old.Valid(); old.Next()) got.emplace_back(old.key());
  EXPECT_EQ(got, (std::vector<std::string>{"a", "ab"}));
  old.SeekLE(high);
  ASSERT_TRUE(old.Valid());
  EXPECT_EQ(old.key(), "ab");
  EXPECT_EQ(old.value(), "ab1");
  EXPECT_EQ(old.seq(), 1u);
}

// The model: key -> its entries by seq (nullopt: erased).
using Model = std::map<std::string, std::map<uint64_t, std::optional<std::string>>>;
struct Visible {
  uint64_t seq;
  std::optional<std::string> value;
};

std::map<std::string, Visible> VisibleAt(const Model& model, uint64_t snapshot) {
  std::map<std::string, Visible> out;
  for (const auto& [key, entries] : model) {
    auto it = entries.upper_bound(snapshot);
    if (it == entries.begin()) continue;
    --it;
    out.emplace(key, Visible{it->first, it->second});
  }
  return out;
}

// Empty string when the iterator's position matches the model's (`want`
// == end() means "not valid"), else what differs.
std::string Compare(const MemTable::Iterator& it, const std::map<std::string, Visible>& vis,
                    std::map<std::string, Visible>::const_iterator want) {
  if (want == vis.end()) return it.Valid() ? "valid at " + Printable(it.key()) + ", expected the end" : "";
  if (!it.Valid()) return "not valid, expected " + Printable(want->first);
  if (it.key() != want->first) return "at " + Printable(it.key()) + ", expected " + Printable(want->first);
  if (it.seq() != want->second.seq)
    return Printable(it.key()) + " seq " + std::to_string(it.seq()) + ", expected " + std::to_string(want->second.seq);
  if (it.erased() != !want->second.value) return Printable(it.key()) + " erased() is wrong";
  if (it.value() != want->second.value.value_or(""))
    return Printable(it.key()) + " value " + Printable(it.value()) + ", expected " +
           Printable(want->second.value.value_or(""));
  return "";
}

std::string RandomKey(std::mt19937_64& rng, size_t max_len) {
  static const char kAlphabet[] = {'\0', 'a', 'b', '\xff'};
  std::string key(rng() % (max_len + 1), 'x');
  for (char& c : key) c = kAlphabet[rng() % 4];
  return key;
}

TEST(MemTableTest, RandomizedAgainstModel) {
  std::mt19937_64 rng(TestSeed(20250101));
  MemTable t;
  Model model;
  // Keys of 0..3 bytes over {00, 'a', 'b', ff}: many are prefixes of others.
  constexpr uint64_t kAdds = 1500;
  for (uint64_t seq = 1; seq <= kAdds; ++seq) {
    const std::string key = RandomKey(rng, 3);
    std::optional<std::string> value;
    if (rng() % 4 != 0) value = "v" + std::to_string(seq) + std::string(rng() % 3, '.');
    if (rng() % 10 == 0) value = "";
    t.Add(seq, key, value ? std::optional<std::string_view>(*value) : std::nullopt);
    model[key][seq] = value;
  }
  EXPECT_EQ(t.entries(), kAdds);
  EXPECT_EQ(t.max_seq(), kAdds);

  std::vector<uint64_t> snapshots = {0, 1, 2, 3, kAdds / 2, kAdds - 1, kAdds, kAdds + 5, MemTable::kLatest};
  for (int i = 0; i < 40; ++i) snapshots.push_back(rng() % (kAdds + 1));
  for (const uint64_t snap : snapshots) {
    SCOPED_TRACE("snapshot " + std::to_string(snap));
    const auto vis = VisibleAt(model, snap);

    // Get for every key that has entries, and for some that have none.
    for (const auto& [key, entries] : model) {
      auto want = vis.find(key);
      const auto got = Lookup(t, key, snap);
      if (want == vis.end()) {
        EXPECT_EQ(got, kAbsent) << Printable(key);
      } else if (!want->second.value) {
        EXPECT_EQ(got, kErased) << Printable(key);
      } else {
        EXPECT_EQ(got, Val(*want->second.value)) << Printable(key);
      }
    }
    EXPECT_EQ(Lookup(t, "c", snap), kAbsent);
    EXPECT_EQ(Lookup(t, "abab", snap), kAbsent);

    MemTable::Iterator it(&t, snap);
    // Full walks both ways.
    auto want = vis.begin();
    for (it.SeekToFirst(); it.Valid() && want != vis.end(); it.Next(), ++want) {
      const std::string diff = Compare(it, vis, want);
      ASSERT_EQ(diff, "") << "forward walk";
    }
    ASSERT_EQ(Compare(it, vis, want), "") << "forward walk end";
    auto rwant = vis.rbegin();
    for (it.SeekToLast(); it.Valid() && rwant != vis.rend(); it.Prev(), ++rwant) {
      ASSERT_EQ(Compare(it, vis, std::prev(rwant.base())), "") << "backward walk";
    }
    ASSERT_EQ(rwant, vis.rend()) << "backward walk ended early";
    ASSERT_FALSE(it.Valid()) << "backward walk went past the first key";

    // Seeks (targets may or may not be keys; up to 4 bytes) and a few steps.
    for (int s = 0; s < 60; ++s) {
      const std::string target = RandomKey(rng, 4);
      const int op = int(rng() % 3);
      const int steps = int(rng() % 5);
      SCOPED_TRACE("op " + std::to_string(op) + " target " + Printable(target));
      if (op == 0) {
        auto w = vis.lower_bound(target);
        it.SeekGE(target);
        for (int k = 0;; ++k) {
          ASSERT_EQ(Compare(it, vis, w), "") << "SeekGE then " << k << " Next()";
          if (k == steps || w == vis.end()) break;
          it.Next();
          ++w;
        }
      } else {
        // SeekLE: last key <= target; SeekLT: last key < target.
        auto upper = op == 1 ? vis.upper_bound(target) : vis.lower_bound(target);
        auto w = upper == vis.begin() ? vis.end() : std::prev(upper);
        if (op == 1) {
          it.SeekLE(target);
        } else {
          it.SeekLT(target);
        }
        for (int k = 0;; ++k) {
          ASSERT_EQ(Compare(it, vis, w), "") << (op == 1 ? "SeekLE" : "SeekLT") << " then " << k << " Prev()";
          if (k == steps || w == vis.end()) break;
          it.Prev();
          w = w == vis.begin() ? vis.end() : std::prev(w);
        }
      }
    }
  }
}

// Writer: seq n puts key (n*37 mod kKeys), erased when n % 11 == 0, else
// value "v<n>" padded to a length that varies with n.
constexpr uint64_t kKeys = 500;
std::string ConcKey(uint64_t seq) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "key%05llu", static_cast<unsigned long long>(seq * 37 % kKeys));
  return buf;
}
bool ConcErased(uint64_t seq) { return seq % 11 == 0; }
std::string ConcValue(uint64_t seq) { return "v" + std::to_string(seq) + std::string(seq % 13, '#'); }

TEST(MemTableTest, OneWriterConcurrentReaders) {
  constexpr uint64_t kAdds = 20000;
  MemTable t;
  std::atomic<uint64_t> published{0};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> passes{0};
  std::mutex error_mu;
  std::string first_error;
  auto fail = [&](const std::string& what) {
    if (errors.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> g(error_mu);
      first_error = what;
    }
  };

  std::atomic<int> started{0};
  std::atomic<uint64_t> reader_passes[3] = {0, 0, 0};
  auto reader = [&](int id) {
    std::mt19937_64 rng(id);
    started.fetch_add(1);
    for (bool last_pass = false; !last_pass;) {
      last_pass = done.load(std::memory_order_acquire);
      const uint64_t snap = published.load(std::memory_order_acquire);
      // Each key's newest seq at the snapshot: every key appears once in
      // any kKeys consecutive seqs.
      std::map<std::string, uint64_t> want;
      for (uint64_t s = snap; s >= 1 && s + kKeys > snap; --s) want.emplace(ConcKey(s), s);
      const std::string where = "reader " + std::to_string(id) + " snapshot " + std::to_string(snap);

      MemTable::Iterator it(&t, snap);
      const bool forward = rng() % 2 == 0;
      std::map<std::string, uint64_t> seen;
      std::string prev_key;
      bool first = true;
      for (forward ? it.SeekToFirst() : it.SeekToLast(); it.Valid(); forward ? it.Next() : it.Prev()) {
        const std::string key(it.key());
        if (!first && (forward ? key <= prev_key : key >= prev_key)) fail(where + ": out of order at " + key);
        if (it.seq() > snap) fail(where + ": sees seq " + std::to_string(it.seq()));
        if (it.erased() != ConcErased(it.seq()) || (!it.erased() && it.value() != ConcValue(it.seq())))
          fail(where + ": wrong entry for seq " + std::to_string(it.seq()));
        seen.emplace(key, it.seq());
        prev_key = key;
        first = false;
      }
      if (seen != want)
        fail(where + ": saw " + std::to_string(seen.size()) + " keys, expected " + std::to_string(want.size()));
      // A point lookup too.
      if (snap > 0) {
        const uint64_t s = 1 + rng() % snap;
        const uint64_t newest = want.at(ConcKey(s));
        std::string_view v;
        const Found f = t.Get(ConcKey(s), snap, &v);
        if (f != (ConcErased(newest) ? Found::kErased : Found::kValue) ||
            (f == Found::kValue && v != ConcValue(newest)))
          fail(where + ": Get(" + ConcKey(s) + ") is wrong");
      }
      passes.fetch_add(1);
      reader_passes[id].fetch_add(1);
    }
  };

  std::thread r1(reader, 1), r2(reader, 2);
  while (started.load() < 2) std::this_thread::yield();  // readers overlap the writes
  for (uint64_t seq = 1; seq <= kAdds; ++seq) {
    const std::string value = ConcValue(seq);
    t.Add(seq, ConcKey(seq), ConcErased(seq) ? std::nullopt : std::optional<std::string_view>(value));
    published.store(seq, std::memory_order_release);
    if (seq % 500 == 0) {
      // Let each reader finish a pass begun after this point, so that
      // passes at every stage of the table overlap the writes (no sleeps).
      const uint64_t p1 = reader_passes[1].load(), p2 = reader_passes[2].load();
      while (reader_passes[1].load() < p1 + 2 || reader_passes[2].load() < p2 + 2) std::this_thread::yield();
    }
  }
  done.store(true, std::memory_order_release);
  r1.join();
  r2.join();
  EXPECT_EQ(errors.load(), 0u) << first_error;
  EXPECT_GE(passes.load(), 2u);
  std::cout << "[ info     ] reader passes: " << passes.load() << "\n";
  EXPECT_EQ(t.entries(), kAdds);
  EXPECT_EQ(t.max_seq(), kAdds);
}

// An index of 16 slots takes 8 keys; the other 92 are found by the list,
// for Get at every snapshot and in order, and a held key's new entries
// (indexed or not) go in front of its chain.
TEST(MemTableTest, KeysPastTheIndexAreFoundByTheList) {
  MemTable t(16);
  uint64_t seq = 0;
  for (int round = 0; round < 3; ++round)
    for (int k = 0; k < 100; ++k) {
      const std::string key = "k" + std::to_string(1000 + k);
      t.Add(++seq, key, key + "@" + std::to_string(round));
    }
  EXPECT_EQ(t.entries(), 300u);
  std::string_view v;
  for (int k = 0; k < 100; ++k) {
    const std::string key = "k" + std::to_string(1000 + k);
    ASSERT_EQ(t.Get(key, MemTable::kLatest, &v), MemTable::Found::kValue) << key;
    EXPECT_EQ(v, key + "@2");
    ASSERT_EQ(t.Get(key, 100, &v), MemTable::Found::kValue) << key;  // the first round only
    EXPECT_EQ(v, key + "@0");
    EXPECT_EQ(t.Get(key, uint64_t(k), &v), MemTable::Found::kAbsent) << key << " before it was added";
  }
  EXPECT_EQ(t.Get("k0999", MemTable::kLatest, &v), MemTable::Found::kAbsent);
  MemTable::Iterator it(&t, 200);
  int n = 0;
  for (it.SeekToFirst(); it.Valid(); it.Next(), ++n) {
    const std::string key = "k" + std::to_string(1000 + n);
    ASSERT_EQ(it.key(), key);
    EXPECT_EQ(it.value(), key + "@1");
  }
  EXPECT_EQ(n, 100);
}

TEST(MemTableTest, SizesAndCounts) {
  MemTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.entries(), 0u);
  EXPECT_EQ(t.max_seq(), 0u);
  size_t before = t.bytes();
  t.Add(3, "k1", "value-one");
  EXPECT_FALSE(t.empty());
  EXPECT_EQ(t.entries(), 1u);
  EXPECT_EQ(t.max_seq(), 3u);
  EXPECT_GT(t.bytes(), before);
  // An entry accounts at least for its key and value.
  before = t.bytes();
  const std::string big(10000, 'x');
  t.Add(4, "k2", big);
  EXPECT_GE(t.bytes(), before + big.size() + 2);
  before = t.bytes();
  t.Add(5, "k1", std::nullopt);
  EXPECT_GT(t.bytes(), before);
  EXPECT_EQ(t.entries(), 3u);
  EXPECT_EQ(t.max_seq(), 5u);
  // A value bigger than an arena block.
  const std::string huge(1 << 20, 'h');
  before = t.bytes();
  t.Add(6, "k3", huge);
  EXPECT_GE(t.bytes(), before + huge.size());
  EXPECT_EQ(Lookup(t, "k3", 6), Val(huge));
  EXPECT_EQ(Lookup(t, "k2", 6), Val(big));
  EXPECT_EQ(t.entries(), 4u);
  EXPECT_EQ(t.max_seq(), 6u);
}

TEST(MemTableTest, MetasAtSnapshots) {
  MemTable t;
  std::string v;
  EXPECT_FALSE(t.GetMeta("m", MemTable::kLatest, &v));
  t.PutMeta(2, "m", "m2");
  EXPECT_FALSE(t.empty());  // metadata alone makes it non-empty
  EXPECT_EQ(t.entries(), 0u);
  EXPECT_EQ(t.max_seq(), 2u);
  t.PutMeta(4, "other", "o4");
  t.PutMeta(6, "m", "m6");
  t.PutMeta(9, "m", "m9");

  EXPECT_FALSE(t.GetMeta("m", 1, &v));
  ASSERT_TRUE(t.GetMeta("m", 2, &v));
  EXPECT_EQ(v, "m2");
  ASSERT_TRUE(t.GetMeta("m", 5, &v));
  EXPECT_EQ(v, "m2");
  ASSERT_TRUE(t.GetMeta("m", 6, &v));
  EXPECT_EQ(v, "m6");
  ASSERT_TRUE(t.GetMeta("m", 8, &v));
  EXPECT_EQ(v, "m6");
  ASSERT_TRUE(t.GetMeta("m", MemTable::kLatest, &v));
  EXPECT_EQ(v, "m9");
  EXPECT_FALSE(t.GetMeta("other", 3, &v));
  ASSERT_TRUE(t.GetMeta("other", 4, &v));
  EXPECT_EQ(v, "o4");
  EXPECT_FALSE(t.GetMeta("missing", MemTable::kLatest, &v));
  EXPECT_EQ(t.max_seq(), 9u);

  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(t.Metas(), (Pairs{{"m", "m9"}, {"other", "o4"}}));

  // Metas do not show up as entries, and entries do not show up as metas.
  t.Add(10, "m", "entry");
  EXPECT_EQ(t.Metas(), (Pairs{{"m", "m9"}, {"other", "o4"}}));
  ASSERT_TRUE(t.GetMeta("m", MemTable::kLatest, &v));
  EXPECT_EQ(v, "m9");
  EXPECT_EQ(Lookup(t, "other", MemTable::kLatest), kAbsent);
  EXPECT_EQ(t.max_seq(), 10u);
}

}  // namespace
}  // namespace monju
