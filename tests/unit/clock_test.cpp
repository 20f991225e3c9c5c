// Dotted version vectors (src/clock/causal.h) and their byte encodings
// (src/clock/codec.h).
//
// Randomized tests use a fixed default seed and print it; set
// MONJU_TEST_SEED=<n> to run them with another one.
#include "test_support.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "clock/causal.h"
#include "clock/clock_digest.h"
#include "clock/codec.h"

namespace monju {
namespace {

using monju::test_support::TestSeed;


Dot D(const std::string& actor, uint64_t counter) { return Dot{actor, counter}; }

CausalContext Ctx(std::initializer_list<Dot> dots) {
  CausalContext c;
  for (const auto& d : dots) c.Add(d);
  return c;
}

// Context holding actor's counters 1..n.
CausalContext Upto(const std::string& actor, uint64_t n) {
  CausalContext c;
  for (uint64_t i = 1; i <= n; ++i) c.Add(D(actor, i));
  return c;
}

Version V(Dot dot, CausalContext past, std::string value) {
  Version v;
  v.dot = std::move(dot);
  v.past = std::move(past);
  v.value = std::move(value);
  return v;
}

Version Tomb(Dot dot, CausalContext past) {
  Version v;
  v.dot = std::move(dot);
  v.past = std::move(past);
  v.tombstone = true;
  return v;
}

std::vector<Dot> DotsOf(const SiblingSet& s) {
  std::vector<Dot> out;
  for (const auto& v : s.versions()) out.push_back(v.dot);
  return out;
}

SiblingSet Apply(std::initializer_list<Version> versions) {
  SiblingSet s;
  for (const auto& v : versions) s.Add(v);
  return s;
}

// ---------------------------------------------------------------------------
// CausalContext

TEST(CausalContextTest, EmptyContainsNothing) {
  CausalContext c;
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.Contains(D("a", 1)));
  EXPECT_EQ(c.MaxCounter("a"), 0u);
  EXPECT_TRUE(c.Covers(CausalContext()));
  EXPECT_FALSE(c.Covers(Ctx({D("a", 1)})));
}

TEST(CausalContextTest, AddInOrderBuildsContiguousBase) {
  CausalContext c = Upto("a", 3);
  ASSERT_EQ(c.entries().size(), 1u);
  const auto& e = c.entries().at("a");
  EXPECT_EQ(e.base, 3u);
  EXPECT_TRUE(e.cloud.empty());
  for (uint64_t i = 1; i <= 3; ++i) EXPECT_TRUE(c.Contains(D("a", i))) << i;
  EXPECT_FALSE(c.Contains(D("a", 4)));
  EXPECT_FALSE(c.Contains(D("b", 1)));
  EXPECT_EQ(c.MaxCounter("a"), 3u);
}

TEST(CausalContextTest, OutOfOrderAddKeepsGapUntilFilled) {
  CausalContext c;
  c.Add(D("a", 3));
  c.Add(D("a", 1));
  EXPECT_EQ(c.entries().at("a").base, 1u);
  EXPECT_EQ(c.entries().at("a").cloud, (std::set<uint64_t>{3}));
  EXPECT_TRUE(c.Contains(D("a", 1)));
  EXPECT_FALSE(c.Contains(D("a", 2)));  // the gap
  EXPECT_TRUE(c.Contains(D("a", 3)));
  EXPECT_EQ(c.MaxCounter("a"), 3u);

  c.Add(D("a", 2));  // fills the gap: the cloud compacts into the base
  EXPECT_EQ(c.entries().at("a").base, 3u);
  EXPECT_TRUE(c.entries().at("a").cloud.empty());
}

TEST(CausalContextTest, AddIsIdempotentAndIgnoresCounterZero) {
  CausalContext c = Ctx({D("a", 1), D("a", 5)});
  CausalContext before = c;
  c.Add(D("a", 1));
  c.Add(D("a", 5));
  EXPECT_EQ(c, before);
  c.Add(D("a", 0));
  c.Add(D("z", 0));
  EXPECT_EQ(c, before);
  EXPECT_FALSE(c.Contains(D("z", 0)));
}

TEST(CausalContextTest, MergeCompactsCloudIntoBase) {
  // mine: a = 1..2; theirs: a = {3, 5}. The union is 1..3 plus {5}.
  CausalContext mine = Upto("a", 2);
  CausalContext theirs = Ctx({D("a", 3), D("a", 5)});
  ASSERT_EQ(theirs.entries().at("a").base, 0u);
  mine.Merge(theirs);
  EXPECT_EQ(mine.entries().at("a").base, 3u);
  EXPECT_EQ(mine.entries().at("a").cloud, (std::set<uint64_t>{5}));

  // A base that swallows part of the cloud, then meets the rest.
  CausalContext x = Ctx({D("a", 1), D("a", 3), D("a", 7)});
  x.Merge(Upto("a", 5));
  EXPECT_EQ(x.entries().at("a").base, 5u);
  EXPECT_EQ(x.entries().at("a").cloud, (std::set<uint64_t>{7}));
  x.Merge(Upto("a", 6));
  EXPECT_EQ(x.entries().at("a").base, 7u);
  EXPECT_TRUE(x.entries().at("a").cloud.empty());
}

TEST(CausalContextTest, MergeUnionsActors) {
  CausalContext a = Ctx({D("a", 1), D("b", 2)});
  CausalContext b = Ctx({D("c", 1), D("b", 1)});
  a.Merge(b);
  EXPECT_TRUE(a.Contains(D("a", 1)));
  EXPECT_TRUE(a.Contains(D("b", 1)));
  EXPECT_TRUE(a.Contains(D("b", 2)));
  EXPECT_TRUE(a.Contains(D("c", 1)));
  EXPECT_FALSE(a.Contains(D("c", 2)));
  EXPECT_EQ(a.entries().at("b").base, 2u);
}

TEST(CausalContextTest, CoversIsExactSetInclusion) {
  CausalContext big = Upto("a", 5);
  big.Add(D("b", 2));
  EXPECT_TRUE(big.Covers(big));
  EXPECT_TRUE(big.Covers(Upto("a", 5)));
  EXPECT_TRUE(big.Covers(Ctx({D("a", 2), D("a", 4), D("b", 2)})));
  EXPECT_FALSE(big.Covers(Ctx({D("b", 1)})));  // b:1 is not in big
  EXPECT_FALSE(big.Covers(Upto("a", 6)));
  EXPECT_FALSE(big.Covers(Ctx({D("c", 1)})));  // unknown actor
  EXPECT_FALSE(Upto("a", 4).Covers(big));

  // The gap case: {1..29, 31} does not cover 1..30, though its max is 31.
  CausalContext gap = Upto("a", 29);
  gap.Add(D("a", 31));
  EXPECT_EQ(gap.MaxCounter("a"), 31u);
  EXPECT_FALSE(gap.Covers(Upto("a", 30)));
  EXPECT_TRUE(gap.Covers(Ctx({D("a", 31)})));
  EXPECT_TRUE(Upto("a", 31).Covers(gap));
}

TEST(CausalContextTest, SetEntryNormalises) {
  CausalContext c;
  CausalContext::Entry e;
  e.base = 3;
  e.cloud = {1, 2, 3, 4, 6};
  c.SetEntry("a", e);
  EXPECT_EQ(c.entries().at("a").base, 4u);
  EXPECT_EQ(c.entries().at("a").cloud, (std::set<uint64_t>{6}));
  EXPECT_EQ(c, Ctx({D("a", 1), D("a", 2), D("a", 3), D("a", 4), D("a", 6)}));
  c.SetEntry("a", CausalContext::Entry{});
  EXPECT_TRUE(c.empty());
}

// Contexts are a canonical form: the same dot set gives equal contexts,
// whatever order the dots arrived in or how they were merged.
TEST(CausalContextTest, RandomizedCanonicalFormAndMergeLaws) {
  std::mt19937_64 rng(TestSeed(20240601));
  const std::vector<std::string> actors = {"a", "b", "c/1"};
  auto random_dots = [&] {
    std::vector<Dot> dots;
    int n = int(rng() % 30);
    for (int i = 0; i < n; ++i) dots.push_back(D(actors[rng() % actors.size()], 1 + rng() % 20));
    return dots;
  };
  for (int round = 0; round < 500; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<Dot> xs = random_dots(), ys = random_dots();
    CausalContext x, y, x_shuffled;
    for (const auto& d : xs) x.Add(d);
    for (const auto& d : ys) y.Add(d);
    std::shuffle(xs.begin(), xs.end(), rng);
    for (const auto& d : xs) x_shuffled.Add(d);
    ASSERT_EQ(x, x_shuffled);

    CausalContext xy = x, yx = y, direct = x;
    xy.Merge(y);
    yx.Merge(x);
    for (const auto& d : ys) direct.Add(d);
    ASSERT_EQ(xy, yx);      // commutative
    ASSERT_EQ(xy, direct);  // Merge == Add of every dot
    CausalContext again = xy;
    again.Merge(y);
    ASSERT_EQ(again, xy);  // idempotent
    ASSERT_TRUE(xy.Covers(x));
    ASSERT_TRUE(xy.Covers(y));
    ASSERT_EQ(x.Covers(y), [&] {
      for (const auto& d : ys)
        if (!x.Contains(d)) return false;
      return true;
    }());
    for (const auto& a : actors)
      for (uint64_t c = 1; c <= 21; ++c)
        ASSERT_EQ(xy.Contains(D(a, c)), x.Contains(D(a, c)) || y.Contains(D(a, c))) << a << ":" << c;
    // Normal form: no cloud counter at or next to the base.
    for (const auto& [actor, e] : xy.entries()) {
      ASSERT_TRUE(e.base > 0 || !e.cloud.empty()) << actor;
      if (!e.cloud.empty()) {
        ASSERT_GT(*e.cloud.begin(), e.base + 1) << actor;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Compare

TEST(CompareTest, DominanceConcurrencyEquality) {
  Version a1 = V(D("a", 1), {}, "x");
  Version b1 = V(D("b", 1), a1.FullContext(), "y");  // written after reading a1
  Version c1 = V(D("c", 1), {}, "z");

  EXPECT_EQ(Compare(a1, b1), Order::kBefore);
  EXPECT_EQ(Compare(b1, a1), Order::kAfter);
  EXPECT_EQ(Compare(a1, c1), Order::kConcurrent);
  EXPECT_EQ(Compare(c1, a1), Order::kConcurrent);
  EXPECT_EQ(Compare(b1, c1), Order::kConcurrent);
  EXPECT_EQ(Compare(a1, a1), Order::kEqual);

  // Same actor, empty contexts: different dots are concurrent.
  Version a2 = V(D("a", 2), {}, "w");
  EXPECT_EQ(Compare(a1, a2), Order::kConcurrent);
  // Same actor, a2 saw a1.
  Version a2_after = V(D("a", 2), a1.FullContext(), "w");
  EXPECT_EQ(Compare(a1, a2_after), Order::kBefore);
  EXPECT_EQ(Compare(a2_after, a1), Order::kAfter);
}

TEST(VersionTest, FullContextIsPastPlusOwnDot) {
  Version v = V(D("b", 4), Ctx({D("a", 1), D("a", 2)}), "x");
  CausalContext full = v.FullContext();
  EXPECT_TRUE(full.Contains(D("b", 4)));
  EXPECT_TRUE(full.Contains(D("a", 2)));
  EXPECT_FALSE(full.Contains(D("b", 3)));
  EXPECT_FALSE(v.past.Contains(D("b", 4)));
}

// ---------------------------------------------------------------------------
// SiblingSet

TEST(SiblingSetTest, SupersededVersionIsDroppedEitherOrder) {
  Version v1 = V(D("a", 1), {}, "one");
  Version v2 = V(D("a", 2), v1.FullContext(), "two");

  SiblingSet s;
  EXPECT_TRUE(s.Add(v1));
  EXPECT_TRUE(s.Add(v2));
  EXPECT_EQ(DotsOf(s), (std::vector<Dot>{D("a", 2)}));
  EXPECT_EQ(s.LiveValues(), (std::vector<std::string>{"two"}));

  // The old version arriving late changes nothing.
  EXPECT_FALSE(s.Add(v1));
  EXPECT_EQ(DotsOf(s), (std::vector<Dot>{D("a", 2)}));

  SiblingSet reversed;
  EXPECT_TRUE(reversed.Add(v2));
  EXPECT_FALSE(reversed.Add(v1));
  EXPECT_EQ(reversed, s);
}

TEST(SiblingSetTest, ConcurrentVersionsAreKeptInDotOrder) {
  Version b = V(D("b", 1), {}, "from-b");
  Version a = V(D("a", 1), {}, "from-a");
  SiblingSet s;
  EXPECT_TRUE(s.Add(b));
  EXPECT_TRUE(s.Add(a));
  EXPECT_EQ(DotsOf(s), (std::vector<Dot>{D("a", 1), D("b", 1)}));
  EXPECT_EQ(s.LiveValues(), (std::vector<std::string>{"from-a", "from-b"}));
  EXPECT_TRUE(s.HasLive());
}

TEST(SiblingSetTest, ReplayingTheSameVersionIsIdempotent) {
  Version a = V(D("a", 1), {}, "x");
  Version b = V(D("b", 1), {}, "y");
  SiblingSet s = Apply({a, b});
  SiblingSet before = s;
  EXPECT_FALSE(s.Add(a));
  EXPECT_FALSE(s.Add(b));
  EXPECT_FALSE(s.Merge(before));
  EXPECT_EQ(s, before);
  EXPECT_EQ(s.size(), 2u);
}

TEST(SiblingSetTest, ContextIsJoinOfFullContexts) {
  Version a = V(D("a", 3), Upto("a", 2), "x");
  Version b = V(D("b", 1), Ctx({D("c", 4)}), "y");
  SiblingSet s = Apply({a, b});
  CausalContext ctx = s.Context();
  CausalContext expected = Upto("a", 3);
  expected.Add(D("b", 1));
  expected.Add(D("c", 4));
  EXPECT_EQ(ctx, expected);
  EXPECT_EQ(s.MaxCounter("a"), 3u);
  EXPECT_EQ(s.MaxCounter("c"), 4u);  // from a sibling's past
  EXPECT_EQ(s.MaxCounter("d"), 0u);
}

// (a) A write carrying a read's context supersedes exactly what the read saw.
TEST(SiblingSetTest, WriteWithReadContextSupersedesExactlyWhatWasRead) {
  Version a1 = V(D("a", 1), {}, "a1");
  Version b1 = V(D("b", 1), {}, "b1");
  Version c1 = V(D("c", 1), {}, "c1");  // written concurrently, not seen by the reader

  SiblingSet replica1 = Apply({a1, b1});
  CausalContext read_ctx = replica1.Context();
  Version w = V(D("a", 2), read_ctx, "w");

  SiblingSet all = Apply({a1, b1, c1, w});
  EXPECT_EQ(DotsOf(all), (std::vector<Dot>{D("a", 2), D("c", 1)}));
  EXPECT_EQ(all.LiveValues(), (std::vector<std::string>{"w", "c1"}));
  SiblingSet reverse = Apply({w, c1, b1, a1});
  EXPECT_EQ(reverse, all);
}

// (a) The gap case: actor A issued dots 30 and 31 concurrently, a replica got
// only 31. A context read from that replica must not cover 30.
TEST(SiblingSetTest, ReadContextDoesNotCoverUnseenEarlierDotOfSameActor) {
  CausalContext common = Upto("A", 29);
  Version v30 = V(D("A", 30), common, "thirty");
  Version v31 = V(D("A", 31), common, "thirty-one");
  ASSERT_EQ(Compare(v30, v31), Order::kConcurrent);

  SiblingSet partial = Apply({V(D("A", 29), Upto("A", 28), "old"), v31});
  ASSERT_EQ(DotsOf(partial), (std::vector<Dot>{D("A", 31)}));
  CausalContext read_ctx = partial.Context();
  EXPECT_EQ(read_ctx.MaxCounter("A"), 31u);  // a max-counter vector would say "30 seen"
  EXPECT_TRUE(read_ctx.Contains(D("A", 31)));
  EXPECT_FALSE(read_ctx.Contains(D("A", 30)));

  Version w = V(D("B", 1), read_ctx, "overwrite");
  SiblingSet full = Apply({v30, v31, w});
  EXPECT_EQ(DotsOf(full), (std::vector<Dot>{D("A", 30), D("B", 1)}));
  EXPECT_EQ(full.LiveValues(), (std::vector<std::string>{"thirty", "overwrite"}));
  EXPECT_EQ(Apply({w, v31, v30}), full);
  EXPECT_EQ(Apply({v31, w, v30}), full);
}

// (b) Truly concurrent writes are all kept.
TEST(SiblingSetTest, BlindWritesAreAllKeptAsSiblings) {
  // Empty contexts, including two writes through the same actor.
  SiblingSet s = Apply({V(D("a", 1), {}, "1"), V(D("b", 1), {}, "2"), V(D("a", 2), {}, "3"), V(D("c", 1), {}, "4")});
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(s.LiveValues(), (std::vector<std::string>{"1", "3", "2", "4"}));
}

TEST(SiblingSetTest, WritesWithTheSameStaleContextAreSiblings) {
  Version base = V(D("a", 1), {}, "base");
  CausalContext stale = base.FullContext();
  Version w1 = V(D("a", 2), stale, "w1");
  Version w2 = V(D("b", 1), stale, "w2");
  Version w3 = V(D("a", 3), stale, "w3");
  SiblingSet s = Apply({base, w1, w2, w3});
  EXPECT_EQ(DotsOf(s), (std::vector<Dot>{D("a", 2), D("a", 3), D("b", 1)}));
  EXPECT_EQ(Apply({w3, w2, w1, base}), s);
}

// (c) Sequential writes through different coordinators: no false siblings.
TEST(SiblingSetTest, SequentialWritesThroughDifferentCoordinatorsLeaveOneVersion) {
  SiblingSet replica;
  std::vector<Version> history;
  CausalContext client_ctx;  // the client starts with nothing
  const std::vector<std::string> coordinators = {"A", "B", "C", "A", "C", "B"};
  std::map<std::string, uint64_t> counters;
  for (size_t i = 0; i < coordinators.size(); ++i) {
    const std::string& actor = coordinators[i];
    Version v = V(D(actor, ++counters[actor]), client_ctx, "v" + std::to_string(i));
    history.push_back(v);
    replica.Add(v);
    ASSERT_EQ(replica.size(), 1u) << "false sibling after write " << i;
    EXPECT_EQ(replica.LiveValues(), (std::vector<std::string>{v.value}));
    client_ctx = replica.Context();  // the client reads before the next write
  }
  // Another replica receiving the history backwards ends the same.
  SiblingSet other;
  for (auto it = history.rbegin(); it != history.rend(); ++it) other.Add(*it);
  EXPECT_EQ(other, replica);
}

TEST(SiblingSetTest, TombstoneOnlySetHasNoLiveValues) {
  Version v = V(D("a", 1), {}, "x");
  Version t = Tomb(D("b", 1), v.FullContext());
  SiblingSet s = Apply({v, t});
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.size(), 1u);
  EXPECT_FALSE(s.HasLive());
  EXPECT_TRUE(s.LiveValues().empty());
  EXPECT_TRUE(s.Context().Contains(D("a", 1)));
  EXPECT_TRUE(s.Context().Contains(D("b", 1)));

  // A value written concurrently with the delete survives it.
  Version concurrent = V(D("c", 1), {}, "y");
  s.Add(concurrent);
  EXPECT_TRUE(s.HasLive());
  EXPECT_EQ(s.LiveValues(), (std::vector<std::string>{"y"}));

  // A write after reading the tombstone replaces it.
  Version after = V(D("a", 2), Apply({t}).Context(), "z");
  SiblingSet s2 = Apply({t, after});
  EXPECT_EQ(DotsOf(s2), (std::vector<Dot>{D("a", 2)}));
  EXPECT_TRUE(s2.HasLive());
}

TEST(SiblingSetTest, AllTombstonesAndLatestDeleteMs) {
  SiblingSet empty;
  EXPECT_FALSE(empty.AllTombstones());  // absent is not deleted
  EXPECT_EQ(empty.LatestDeleteMs(), 0);

  Version live = V(D("a", 1), {}, "x");
  Version t1 = Tomb(D("b", 1), {});
  t1.deleted_unix_ms = 5000;
  Version t2 = Tomb(D("c", 1), {});
  t2.deleted_unix_ms = 7000;
  Version unknown = Tomb(D("d", 1), {});  // time 0: unknown

  SiblingSet tombs = Apply({t1, unknown});
  EXPECT_TRUE(tombs.AllTombstones());
  EXPECT_EQ(tombs.LatestDeleteMs(), 5000);
  tombs.Add(t2);
  EXPECT_EQ(tombs.LatestDeleteMs(), 7000);
  EXPECT_EQ(Apply({unknown}).LatestDeleteMs(), 0);

  SiblingSet mixed = Apply({live, t2});
  EXPECT_FALSE(mixed.AllTombstones());
  EXPECT_EQ(mixed.LatestDeleteMs(), 7000);  // tombstones only; the live sibling has no delete time
  EXPECT_FALSE(Apply({live}).AllTombstones());
  EXPECT_EQ(Apply({live}).LatestDeleteMs(), 0);
}

TEST(SiblingSetTest, ConstructorAndMergeAreAdd) {
  Version a1 = V(D("a", 1), {}, "a1");
  Version b1 = V(D("b", 1), a1.FullContext(), "b1");
  Version c1 = V(D("c", 1), {}, "c1");
  SiblingSet built({a1, c1, b1});
  EXPECT_EQ(DotsOf(built), (std::vector<Dot>{D("b", 1), D("c", 1)}));
  SiblingSet left = Apply({a1, c1});
  SiblingSet right = Apply({b1});
  EXPECT_TRUE(left.Merge(right));
  EXPECT_EQ(left, built);
  EXPECT_FALSE(left.Merge(right));
}

// A random causal history: coordinators (actors) write versions whose context
// comes from reading a random subset of the versions written so far, as a
// client reading one replica would. The final state must be the versions no
// other version's past contains, whatever the delivery order.
struct History {
  std::vector<Version> versions;
};

History RandomHistory(std::mt19937_64& rng, int writes) {
  static const std::vector<std::string> actors = {"n1", "n2", "n3", "n4/1"};
  History h;
  std::map<std::string, uint64_t> counters;
  for (int i = 0; i < writes; ++i) {
    SiblingSet seen;  // what the client read: a random subset of what exists
    for (const auto& v : h.versions)
      if (rng() % 3 == 0) seen.Add(v);
    const std::string& actor = actors[rng() % actors.size()];
    Version v;
    v.dot = D(actor, ++counters[actor]);
    v.past = (rng() % 8 == 0) ? CausalContext() : seen.Context();
    v.tombstone = rng() % 6 == 0;
    if (!v.tombstone) v.value = "v" + std::to_string(i);
    h.versions.push_back(std::move(v));
  }
  return h;
}

TEST(SiblingSetTest, RandomizedOrderIndependence) {
  std::mt19937_64 rng(TestSeed(7));
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    History h = RandomHistory(rng, 1 + int(rng() % 25));

    // Expected: every version no other version's past contains.
    std::vector<Dot> expected;
    for (const auto& v : h.versions) {
      bool superseded = false;
      for (const auto& w : h.versions) superseded |= w.past.Contains(v.dot);
      if (!superseded) expected.push_back(v.dot);
    }
    std::sort(expected.begin(), expected.end());

    SiblingSet first;
    for (int perm = 0; perm < 6; ++perm) {
      std::vector<Version> order = h.versions;
      std::shuffle(order.begin(), order.end(), rng);
      SiblingSet s;
      for (const auto& v : order) s.Add(v);
      // Replaying everything again (duplicates) changes nothing.
      for (const auto& v : order) ASSERT_FALSE(s.Add(v));
      ASSERT_EQ(DotsOf(s), expected);
      if (perm == 0) first = s;
      ASSERT_EQ(s, first);
    }
    // Anti-entropy: two replicas holding disjoint halves, merged, agree too.
    SiblingSet left, right;
    for (size_t i = 0; i < h.versions.size(); ++i) (i % 2 ? left : right).Add(h.versions[i]);
    left.Merge(right);
    ASSERT_EQ(left, first);
  }
}

// ---------------------------------------------------------------------------
// Codec

Version SampleVersion() {
  CausalContext past = Upto("n1", 7);
  past.Add(D("n1", 9));
  past.Add(D("n1", 300));
  past.Add(D("n2/3", 1ull << 40));
  return V(D("n2/3", (1ull << 40) + 1), past, std::string("bin\0\xff value", 11));
}

SiblingSet SampleSiblings() {
  SiblingSet s;
  s.Add(SampleVersion());
  Version deleted = Tomb(D("n3", 2), Upto("n3", 1));
  deleted.deleted_unix_ms = 1'700'000'000'123;
  s.Add(deleted);
  s.Add(V(D("n4", 1), {}, ""));  // an empty (non-tombstone) value
  return s;
}

TEST(CodecTest, ContextRoundTrip) {
  CausalContext empty;
  EXPECT_EQ(EncodeContext(empty), "");
  auto decoded_empty = DecodeContext("");
  ASSERT_TRUE(decoded_empty.ok());
  EXPECT_TRUE(decoded_empty->empty());

  CausalContext c = SampleVersion().past;
  std::string bytes = EncodeContext(c);
  auto decoded = DecodeContext(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded.value(), c);
  EXPECT_FALSE(decoded->Contains(D("n1", 8)));
  EXPECT_TRUE(decoded->Contains(D("n1", 300)));
  EXPECT_EQ(EncodeContext(decoded.value()), bytes);  // canonical
}

TEST(CodecTest, VersionRoundTrip) {
  Version v = SampleVersion();
  auto decoded = DecodeVersion(EncodeVersion(v));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded.value(), v);
  EXPECT_EQ(decoded->value.size(), 11u);

  Version t = Tomb(D("x", 1), {});
  auto dt = DecodeVersion(EncodeVersion(t));
  ASSERT_TRUE(dt.ok());
  EXPECT_TRUE(dt->tombstone);
  EXPECT_EQ(dt.value(), t);
}

TEST(CodecTest, TombstoneDeleteTimeRoundTrips) {
  for (int64_t ms : {int64_t(0), int64_t(1), int64_t(1'800'000'000'000), INT64_MAX}) {
    SCOPED_TRACE(ms);
    Version t = Tomb(D("x", 3), Upto("y", 2));
    t.deleted_unix_ms = ms;
    auto decoded = DecodeVersion(EncodeVersion(t));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded.value(), t);
    auto set = DecodeSiblings(EncodeSiblings(SiblingSet({t})));
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    EXPECT_EQ(set->LatestDeleteMs(), ms);
  }
  // A negative time is no time.
  Version negative = Tomb(D("x", 1), {});
  negative.deleted_unix_ms = -5;
  auto decoded = DecodeVersion(EncodeVersion(negative));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->deleted_unix_ms, 0);
  // A live version never carries one.
  Version live = V(D("x", 1), {}, "v");
  live.deleted_unix_ms = 1234;
  decoded = DecodeVersion(EncodeVersion(live));
  ASSERT_TRUE(decoded.ok());
  EXPECT_FALSE(decoded->tombstone);
  EXPECT_EQ(decoded->deleted_unix_ms, 0);
}

// Records written before delete times existed mark tombstones with flags 1
// and no time; they still decode (time 0, unknown) and re-encode with flags 2.
TEST(CodecTest, TombstoneWithoutTimeStillDecodes) {
  using namespace std::string_literals;
  // format 1, actor "a", counter 1, flags 1, empty ctx, empty value
  const std::string old_version = "\x01\x01"
                                  "a\x01\x01\x00\x00"s;
  auto v = DecodeVersion(old_version);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->tombstone);
  EXPECT_EQ(v->deleted_unix_ms, 0);
  EXPECT_EQ(EncodeVersion(v.value()), "\x01\x01"
                                      "a\x01\x02\x00\x00\x00"s);
  auto again = DecodeVersion(EncodeVersion(v.value()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), v.value());

  // The same inside a sibling set, next to a timed tombstone.
  const std::string old_set = "\x01\x02"
                              "\x01"
                              "a\x01\x01\x00\x00"
                              "\x01"
                              "b\x01\x02\xe8\x07\x00\x00"s;  // time 1000
  auto s = DecodeSiblings(old_set);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_TRUE(s->AllTombstones());
  EXPECT_EQ(s->versions()[0].deleted_unix_ms, 0);
  EXPECT_EQ(s->versions()[1].deleted_unix_ms, 1000);
  EXPECT_EQ(s->LatestDeleteMs(), 1000);
}

TEST(CodecTest, SiblingsRoundTrip) {
  EXPECT_EQ(EncodeSiblings(SiblingSet()), "");
  auto empty = DecodeSiblings("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  SiblingSet s = SampleSiblings();
  ASSERT_EQ(s.size(), 3u);
  auto decoded = DecodeSiblings(EncodeSiblings(s));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded.value(), s);
  EXPECT_EQ(decoded->LiveValues(), s.LiveValues());
  EXPECT_EQ(decoded->Context(), s.Context());
}

TEST(CodecTest, RandomizedRoundTrip) {
  std::mt19937_64 rng(TestSeed(99));
  for (int round = 0; round < 300; ++round) {
    History h = RandomHistory(rng, 1 + int(rng() % 12));
    SiblingSet s;
    for (const auto& v : h.versions) s.Add(v);
    auto ds = DecodeSiblings(EncodeSiblings(s));
    ASSERT_TRUE(ds.ok()) << "round " << round;
    ASSERT_EQ(ds.value(), s) << "round " << round;
    auto dc = DecodeContext(EncodeContext(s.Context()));
    ASSERT_TRUE(dc.ok()) << "round " << round;
    ASSERT_EQ(dc.value(), s.Context()) << "round " << round;
  }
}

// Every strict prefix of a valid encoding is rejected (the empty prefix of a
// context or sibling set is the valid empty value), as is any trailing byte.
TEST(CodecTest, TruncatedAndTrailingBytesAreCorruption) {
  const std::string ctx = EncodeContext(SampleVersion().past);
  const std::string ver = EncodeVersion(SampleVersion());
  const std::string sib = EncodeSiblings(SampleSiblings());
  for (size_t n = 1; n < ctx.size(); ++n) {
    auto r = DecodeContext(std::string_view(ctx).substr(0, n));
    ASSERT_FALSE(r.ok()) << "context prefix " << n;
    ASSERT_EQ(r.status().code(), Status::Code::kCorruption);
  }
  for (size_t n = 0; n < ver.size(); ++n) {
    auto r = DecodeVersion(std::string_view(ver).substr(0, n));
    ASSERT_FALSE(r.ok()) << "version prefix " << n;
    ASSERT_EQ(r.status().code(), Status::Code::kCorruption);
  }
  for (size_t n = 1; n < sib.size(); ++n) {
    auto r = DecodeSiblings(std::string_view(sib).substr(0, n));
    ASSERT_FALSE(r.ok()) << "siblings prefix " << n;
    ASSERT_EQ(r.status().code(), Status::Code::kCorruption);
  }
  EXPECT_EQ(DecodeContext(ctx + 'x').status().code(), Status::Code::kCorruption);
  EXPECT_EQ(DecodeVersion(ver + '\0').status().code(), Status::Code::kCorruption);
  EXPECT_EQ(DecodeSiblings(sib + '\0').status().code(), Status::Code::kCorruption);
}

TEST(CodecTest, MalformedFieldsAreCorruption) {
  auto corrupt_ctx = [](const std::string& b) { return DecodeContext(b).status().code() == Status::Code::kCorruption; };
  auto corrupt_ver = [](const std::string& b) { return DecodeVersion(b).status().code() == Status::Code::kCorruption; };
  auto corrupt_sib = [](const std::string& b) {
    return DecodeSiblings(b).status().code() == Status::Code::kCorruption;
  };
  using namespace std::string_literals;

  // Sanity: the hand-built minimal encodings below are valid.
  // context: format 1, 1 actor, "a", base 2, 0 cloud
  ASSERT_TRUE(DecodeContext("\x01\x01\x01"
                            "a\x02\x00"s)
                  .ok());
  // version: format 1, actor "a", counter 1, flags 0, empty ctx, value "v"
  ASSERT_TRUE(DecodeVersion("\x01\x01"
                            "a\x01\x00\x00\x01v"s)
                  .ok());

  EXPECT_TRUE(
      corrupt_ctx("\x02\x01\x01"
                  "a\x02\x00"s));                     // unknown format
  EXPECT_TRUE(corrupt_ctx("\x01\x01\x00\x02\x00"s));  // empty actor
  EXPECT_TRUE(
      corrupt_ctx("\x01\x01\x01"
                  "a\x02\x01\x00"s));                     // cloud delta 0
  EXPECT_TRUE(corrupt_ctx("\x01\xff\xff\xff\xff\x0f"s));  // too many actors
  EXPECT_TRUE(
      corrupt_ctx("\x01\x01\x01"
                  "a\x02\xff\xff\xff\x7f"s));  // huge cloud count
  EXPECT_TRUE(
      corrupt_ctx("\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"
                  "a"s));  // huge actor length
  EXPECT_TRUE(
      corrupt_ctx("\x01\x01\x01"
                  "a"s +
                  std::string(11, '\xff')));  // varint too long
  // cloud deltas overflowing 64 bits
  EXPECT_TRUE(
      corrupt_ctx("\x01\x01\x01"
                  "a\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"s));

  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x00\x00\x00\x01v"s));  // counter 0
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x03\x00\x01v"s));  // unknown flags
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\xff\x00\x01v"s));  // unknown flags
  // Sanity: a timed tombstone (time 1000).
  ASSERT_TRUE(DecodeVersion("\x01\x01"
                            "a\x01\x02\xe8\x07\x00\x00"s)
                  .ok());
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x02\xe8\x07\x00\x01v"s));  // timed tombstone with a value
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x02"s));  // time missing
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x02\xe8"s));  // time cut short
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x02\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01\x00\x00"s));  // time 2^63: beyond int64
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x02" + std::string(11, '\xff') + "\x00\x00"s));  // time varint too long
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x00\x05\x00\x01v"s));  // a live version followed by a time
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x01\x00\x01v"s));  // tombstone with a value
  EXPECT_TRUE(
      corrupt_ver("\x01\x01"
                  "a\x01\x00\x00\xff\xff\xff\xff\x0f"
                  "v"s));  // value longer than input

  EXPECT_TRUE(corrupt_sib("\x01"s));  // no count
  EXPECT_TRUE(
      corrupt_sib("\x01\x02\x01"
                  "a\x01\x00\x00\x01v"s));                // says 2, holds 1
  EXPECT_TRUE(corrupt_sib("\x01\xff\xff\xff\xff\x0f"s));  // absurd count
  EXPECT_TRUE(corrupt_sib("\x01\xff\xff\x03"s));          // large count, no data
}

// Random and mutated inputs: decoding returns OK or Corruption, never crashes,
// and whatever decodes re-encodes to something that decodes to the same value.
TEST(CodecTest, FuzzedInputsNeverCrash) {
  std::mt19937_64 rng(TestSeed(12345));
  const std::vector<std::string> seeds = {EncodeContext(SampleVersion().past), EncodeVersion(SampleVersion()),
                                          EncodeSiblings(SampleSiblings())};
  int decoded_ok = 0;
  for (int i = 0; i < 6000; ++i) {
    std::string input;
    switch (i % 3) {
      case 0: {  // pure random bytes
        input.resize(rng() % 48);
        for (auto& ch : input) ch = char(rng());
        break;
      }
      case 1: {  // random bytes behind a valid format byte
        input.resize(1 + rng() % 48);
        for (auto& ch : input) ch = char(rng());
        input[0] = '\x01';
        break;
      }
      default: {  // a valid encoding with a few bytes flipped, cut or extended
        input = seeds[rng() % seeds.size()];
        int flips = 1 + int(rng() % 4);
        for (int f = 0; f < flips; ++f) input[rng() % input.size()] ^= char(1 + rng() % 255);
        if (rng() % 4 == 0) input.resize(rng() % (input.size() + 1));
        if (rng() % 4 == 0) input += char(rng());
        break;
      }
    }
    SCOPED_TRACE("input " + std::to_string(i));
    auto c = DecodeContext(input);
    if (c.ok()) {
      ++decoded_ok;
      auto again = DecodeContext(EncodeContext(c.value()));
      ASSERT_TRUE(again.ok());
      ASSERT_EQ(again.value(), c.value());
    } else {
      ASSERT_EQ(c.status().code(), Status::Code::kCorruption);
    }
    auto v = DecodeVersion(input);
    if (v.ok()) {
      ++decoded_ok;
      auto again = DecodeVersion(EncodeVersion(v.value()));
      ASSERT_TRUE(again.ok());
      ASSERT_EQ(again.value(), v.value());
    } else {
      ASSERT_EQ(v.status().code(), Status::Code::kCorruption);
    }
    auto s = DecodeSiblings(input);
    if (s.ok()) {
      ++decoded_ok;
      auto again = DecodeSiblings(EncodeSiblings(s.value()));
      ASSERT_TRUE(again.ok());
      ASSERT_EQ(again.value(), s.value());
    } else {
      ASSERT_EQ(s.status().code(), Status::Code::kCorruption);
    }
  }
  std::cout << "[ fuzz     ] " << decoded_ok << " of 18000 decodes succeeded\n";
}

// ---------------------------------------------------------------------------
// Anti-entropy digests (src/clock/clock_digest.h)

std::string Record(std::initializer_list<Version> versions) { return EncodeSiblings(SiblingSet(versions)); }

TEST(ClockDigestTest, DecodeDotsListsTheStoredDots) {
  const std::string record = Record({V(D("a/1", 3), Upto("a/1", 2), std::string(5000, 'x')), Tomb(D("b/2", 1), {})});
  auto dots = DecodeDots(record);
  ASSERT_TRUE(dots.ok()) << dots.status().ToString();
  EXPECT_EQ(dots.value(), (std::vector<Dot>{D("a/1", 3), D("b/2", 1)}));
  EXPECT_TRUE(DecodeDots("").value().empty());
  for (size_t cut = 1; cut < record.size(); cut += 97)
    EXPECT_FALSE(DecodeDots(record.substr(0, cut)).ok()) << "truncated at " << cut;
  EXPECT_FALSE(DecodeDots(record + "x").ok());
}

// The digest names the key and its dots: values, pasts and the encoding do
// not change it; another dot, another key or a missing sibling does.
TEST(ClockDigestTest, SameDotsSameDigestOtherwiseDifferent) {
  const Version v1 = V(D("a/1", 1), {}, "one");
  const Version v2 = V(D("b/1", 1), {}, "two");
  const uint64_t both = ClockDigest("pk", "sk", Record({v1, v2}));
  EXPECT_EQ(both, ClockDigest("pk", "sk", Record({v2, v1})));
  EXPECT_NE(both, 0u);
  EXPECT_NE(both, ClockDigest("pk", "sk", Record({v1})));
  EXPECT_NE(both, ClockDigest("pk", "sk2", Record({v1, v2})));
  EXPECT_NE(both, ClockDigest("pks", "k", Record({v1, v2})));
  EXPECT_NE(ClockDigest("pk", "sk", Record({v1})), ClockDigest("pk", "sk", Record({V(D("a/1", 2), {}, "one")})));
  // A tombstone stored in the old encoding (no delete time) digests like the new one.
  Version t = Tomb(D("c/1", 4), Upto("a/1", 1));
  std::string modern = Record({t});
  std::string legacy = modern;
  const size_t flag = legacy.find(char(2), 1 + 1 + 1 + 3 + 1);  // format, count, actor length, "c/1", counter
  ASSERT_NE(flag, std::string::npos);
  legacy[flag] = char(1);
  legacy.erase(flag + 1, 1);  // the time varint (0)
  ASSERT_TRUE(DecodeSiblings(legacy).ok());
  ASSERT_NE(legacy, modern);
  EXPECT_EQ(ClockDigest("pk", "sk", legacy), ClockDigest("pk", "sk", modern));
  // Garbage digests its bytes: stable, and unlike any good record.
  EXPECT_EQ(ClockDigest("pk", "sk", "\x07garbage"), ClockDigest("pk", "sk", "\x07garbage"));
  EXPECT_NE(ClockDigest("pk", "sk", "\x07garbage"), ClockDigest("pk", "sk", "\x07garbagf"));
}

}  // namespace
}  // namespace monju
