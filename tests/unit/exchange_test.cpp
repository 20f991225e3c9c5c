// The anti-entropy exchange (antientropy/exchange.h) between two real
// replicas (real LMDB stores in temp dirs, their trees and local sides),
// through a fake transport that counts and can fail or cut answers short.
//
// Randomized tests use a fixed default seed and print it; set
// MONJU_TEST_SEED=<n> to run them with another one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "ae_support.h"
#include "exchange.h"

namespace monju {
namespace {

using ae_test::AeReplica;
using ae_test::FakeTransport;
using ae_test::KeyName;
using ae_test::Live;
using ae_test::Saw;
using ae_test::Tomb;
using test_support::FakeWallClock;
using test_support::TestSeed;
using std::chrono::hours;

constexpr uint32_t kPartitions = 8;
constexpr auto kGrace = hours(6);

class ExchangeTest : public ::testing::Test {
 protected:
  ExchangeTest() : a_("a", kPartitions, &wall_, Options()), b_("b", kPartitions, &wall_, Options()), to_b_(&b_.peer()) {}

  virtual LocalPeerOptions Options() {
    LocalPeerOptions o;
    o.grace = kGrace;
    return o;
  }

  ExchangeStats Exchange(uint32_t partition, ExchangeLimits limits = {}) {
    return RunExchange(partition, a_.format(), a_.peer(), to_b_, nullptr, limits);
  }
  // Every partition; returns the summed stats.
  ExchangeStats ExchangeAll(ExchangeLimits limits = {}) {
    ExchangeStats sum;
    for (uint32_t p = 0; p < kPartitions; ++p) {
      ExchangeStats s = Exchange(p, limits);
      EXPECT_TRUE(s.status.ok()) << "partition " << p << ": " << s.status.ToString();
      sum.keys_different += s.keys_different;
      sum.keys_sent += s.keys_sent;
      sum.keys_received += s.keys_received;
      sum.versions_sent += s.versions_sent;
      sum.versions_received += s.versions_received;
      sum.withheld += s.withheld;
      sum.bytes_sent += s.bytes_sent;
      sum.bytes_received += s.bytes_received;
      sum.round_trips += s.round_trips;
      sum.different |= s.different;
    }
    return sum;
  }
  void ExpectSameTrees() {
    for (uint32_t p = 0; p < kPartitions; ++p)
      EXPECT_EQ(a_.trees().Copy(p).Root(), b_.trees().Copy(p).Root()) << "partition " << p;
  }

  FakeWallClock wall_;
  AeReplica a_, b_;
  FakeTransport to_b_;
};

TEST_F(ExchangeTest, InSyncCostsOneCallAndMovesNothing) {
  std::vector<std::pair<ItemKey, Version>> items;
  for (int i = 0; i < 50; ++i)
    items.push_back({{uint32_t(i % kPartitions), "pk" + std::to_string(i), "s"}, Live("w/1", i + 1, {}, "v")});
  a_.Load(items);
  b_.Load(items);
  ExchangeStats s = Exchange(1);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_FALSE(s.different);
  EXPECT_EQ(to_b_.calls(), 1);
  EXPECT_EQ(s.round_trips, 1u);
  EXPECT_EQ(s.keys_different, 0u);
  EXPECT_EQ(s.keys_sent + s.keys_received, 0u);
  EXPECT_LT(s.bytes_sent + s.bytes_received, 64u);
}

// Each side lacks what the other has; same keys with different clocks (a
// concurrent sibling on one side, a newer version on the other) are found and
// merged; keys equal on both are never asked about.
TEST_F(ExchangeTest, DiffFindsExactlyTheDifferingKeysIncludingOtherClocks) {
  const uint32_t p = 2;
  std::set<KeyName> expected;
  std::vector<std::pair<ItemKey, Version>> common;  // the same on both
  for (int i = 0; i < 200; ++i) common.push_back({{p, "common", "k" + std::to_string(i)}, Live("w/1", i + 1, {}, "same")});
  a_.Load(common);
  b_.Load(common);
  a_.Apply(p, "only", "on-a", Live("w/1", 1000, {}, "a"));
  expected.insert({p, "only", "on-a"});
  b_.Apply(p, "only", "on-b", Live("w/1", 1001, {}, "b"));
  expected.insert({p, "only", "on-b"});
  // Same key, concurrent versions: each side holds one.
  a_.Apply(p, "conc", "k", Live("x/1", 1, {}, "from-a"));
  b_.Apply(p, "conc", "k", Live("y/1", 1, {}, "from-b"));
  expected.insert({p, "conc", "k"});
  // Same key; b has a newer version that superseded a's.
  const Version old = Live("w/1", 2000, {}, "old");
  const Version newer = Live("w/1", 2001, Saw(old), "new");
  a_.Apply(p, "newer", "k", old);
  b_.Apply(p, "newer", "k", old);
  b_.Apply(p, "newer", "k", newer);
  expected.insert({p, "newer", "k"});
  // Same two siblings, applied in the opposite order: not a difference.
  const Version s1 = Live("x/1", 5, {}, "s1"), s2 = Live("y/1", 5, {}, "s2");
  a_.Apply(p, "order", "k", s1);
  a_.Apply(p, "order", "k", s2);
  b_.Apply(p, "order", "k", s2);
  b_.Apply(p, "order", "k", s1);

  ExchangeStats s = Exchange(p);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_TRUE(s.different);
  EXPECT_EQ(s.keys_different, expected.size());
  EXPECT_EQ(to_b_.fetched, expected) << "the exchange asked about keys that do not differ, or missed some";
  EXPECT_EQ(s.keys_received, 3u);  // on-b, b's concurrent sibling, the newer version
  EXPECT_EQ(s.keys_sent, 2u);      // on-a, a's concurrent sibling
  EXPECT_THAT(a_.Read(p, "conc", "k").LiveValues(), ::testing::ElementsAre("from-a", "from-b"));
  EXPECT_THAT(b_.Read(p, "conc", "k").LiveValues(), ::testing::ElementsAre("from-a", "from-b"));
  EXPECT_THAT(a_.Read(p, "newer", "k").LiveValues(), ::testing::ElementsAre("new"));
  EXPECT_EQ(a_.All(), b_.All());
  ExpectSameTrees();
  // Done: the next exchange finds nothing.
  to_b_.fetched.clear();
  ExchangeStats again = Exchange(p);
  EXPECT_FALSE(again.different);
  EXPECT_TRUE(to_b_.fetched.empty());
}

// Random divergence over every partition: after one exchange per partition
// both replicas hold exactly the clock merge of what each held, and the
// versions moved are exactly those a side lacked.
TEST_F(ExchangeTest, RandomDivergenceConvergesToTheMerge) {
  std::mt19937_64 rng(TestSeed(31337));
  std::map<KeyName, SiblingSet> merged;
  uint64_t counter = 0;
  std::vector<std::pair<ItemKey, Version>> on_a, on_b;
  auto write = [&](std::vector<std::pair<ItemKey, Version>>& to, const KeyName& key, const Version& v) {
    to.push_back({{std::get<0>(key), std::get<1>(key), std::get<2>(key)}, v});
    merged[key].Add(v);
  };
  for (int i = 0; i < 2000; ++i) {
    const KeyName key{uint32_t(rng() % kPartitions), "pk" + std::to_string(rng() % 50), "sk" + std::to_string(rng() % 10)};
    const int where = static_cast<int>(rng() % 4);  // both, a only, b only, both then a newer
    const SiblingSet seen = merged[key];
    const int kind = static_cast<int>(rng() % 6);
    const CausalContext past = kind == 0 ? CausalContext() : seen.Context();
    const std::string actor = "w" + std::to_string(rng() % 3) + "/1";
    const Version v = kind == 5 ? Tomb(actor, ++counter, past, wall_.UnixMillis())
                                : Live(actor, ++counter, past, "v" + std::to_string(i));
    if (where == 0 || where == 1 || where == 3) write(on_a, key, v);
    if (where == 0 || where == 2 || where == 3) write(on_b, key, v);
  }
  a_.Load(on_a);
  b_.Load(on_b);
  // Expected: what each side lacks.
  const auto before_a = a_.All(), before_b = b_.All();
  uint64_t lacking_keys = 0;
  for (const auto& [key, set] : merged) {
    auto ia = before_a.find(key), ib = before_b.find(key);
    const SiblingSet ea = ia == before_a.end() ? SiblingSet() : ia->second;
    const SiblingSet eb = ib == before_b.end() ? SiblingSet() : ib->second;
    if (!(ea == eb)) ++lacking_keys;
  }
  ExchangeStats s = ExchangeAll();
  EXPECT_EQ(s.keys_different, lacking_keys);
  EXPECT_EQ(s.withheld, 0u);  // every tombstone is younger than the grace
  std::map<KeyName, SiblingSet> after_a = a_.All(), after_b = b_.All();
  EXPECT_EQ(after_a, after_b);
  std::erase_if(merged, [](const auto& kv) { return kv.second.empty(); });
  EXPECT_EQ(after_a, merged);
  ExpectSameTrees();
  std::cout << "[ measured ] " << merged.size() << " keys, " << lacking_keys << " differing; " << s.versions_sent
            << " versions sent, " << s.versions_received << " received, " << s.bytes_sent + s.bytes_received
            << " bytes, " << s.round_trips << " round trips\n";
}

// A delete that b missed: the tombstone goes to b and supersedes its old
// value; the old value never reaches a again, in either order of exchange.
TEST_F(ExchangeTest, TombstoneTravelsAndTheOldValueNeverComesBack) {
  const Version v = Live("w/1", 1, {}, "alive");
  const Version t = Tomb("w/1", 2, Saw(v), wall_.UnixMillis());
  a_.Apply(1, "pk", "k", v);
  b_.Apply(1, "pk", "k", v);
  a_.Apply(1, "pk", "k", t);
  ExchangeStats s = Exchange(1);
  ASSERT_TRUE(s.status.ok());
  EXPECT_EQ(s.keys_sent, 1u);
  EXPECT_EQ(s.keys_received, 0u) << "b's superseded value was offered to a";
  for (AeReplica* r : {&a_, &b_}) {
    SiblingSet got = r->Read(1, "pk", "k");
    EXPECT_TRUE(got.AllTombstones()) << "holds a live value";
    EXPECT_EQ(got.size(), 1u);
  }
  // The other way round: b initiates.
  const Version v2 = Live("w/1", 10, {}, "alive2");
  const Version t2 = Tomb("w/1", 11, Saw(v2), wall_.UnixMillis());
  a_.Apply(1, "pk", "k2", v2);
  b_.Apply(1, "pk", "k2", v2);
  a_.Apply(1, "pk", "k2", t2);
  FakeTransport to_a(&a_.peer());
  s = RunExchange(1, b_.format(), b_.peer(), to_a, nullptr);
  ASSERT_TRUE(s.status.ok());
  EXPECT_EQ(s.keys_received, 1u);
  EXPECT_EQ(s.keys_sent, 0u);
  EXPECT_TRUE(a_.Read(1, "pk", "k2").AllTombstones());
  EXPECT_TRUE(b_.Read(1, "pk", "k2").AllTombstones());
}

// A tombstone past the grace period is not sent to a replica that holds
// nothing of the key (it reaped it or never had it): the reaper's work is
// not undone. A younger one is, and an old one still goes to a replica that
// holds the deleted value.
TEST_F(ExchangeTest, ReapableTombstoneIsWithheldFromAnEmptyReplica) {
  const int64_t long_ago = wall_.UnixMillis() - std::chrono::duration_cast<std::chrono::milliseconds>(kGrace).count() - 1;
  const Version v = Live("w/1", 1, {}, "gone");
  a_.Apply(0, "pk", "old", Tomb("w/1", 2, Saw(v), long_ago));
  a_.Apply(0, "pk", "young", Tomb("w/1", 3, {}, wall_.UnixMillis()));
  a_.Apply(0, "pk", "unknown-time", Tomb("w/1", 4, {}, 0));
  a_.Apply(0, "pk", "stale", Tomb("w/1", 6, Saw(Live("w/1", 5, {}, "")), long_ago));
  b_.Apply(0, "pk", "stale", Live("w/1", 5, {}, "still here"));
  ExchangeStats s = Exchange(0);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.withheld, 2u);
  EXPECT_TRUE(b_.Read(0, "pk", "old").empty());
  EXPECT_TRUE(b_.Read(0, "pk", "unknown-time").empty());
  EXPECT_TRUE(b_.Read(0, "pk", "young").AllTombstones());
  EXPECT_TRUE(b_.Read(0, "pk", "stale").AllTombstones()) << "the stale value survived an old tombstone";
  // Pulling works the same way: b initiates, a's old tombstones stay on a only.
  FakeTransport to_a(&a_.peer());
  s = RunExchange(0, b_.format(), b_.peer(), to_a, nullptr);
  ASSERT_TRUE(s.status.ok());
  EXPECT_EQ(s.withheld, 2u);
  EXPECT_EQ(s.keys_received, 0u);
  EXPECT_TRUE(b_.Read(0, "pk", "old").empty());
}

// Tiny pages and one key per fetch answer: still exact.
TEST_F(ExchangeTest, PagedListingsAndPartialFetchAnswersStillConverge) {
  std::vector<std::pair<ItemKey, Version>> on_a, on_b;
  for (int i = 0; i < 300; ++i) on_a.push_back({{5, "pk" + std::to_string(i % 7), "k" + std::to_string(i)}, Live("w/1", i + 1, {}, "x")});
  for (int i = 0; i < 100; ++i) on_b.push_back({{5, "pk" + std::to_string(i % 7), "b" + std::to_string(i)}, Live("v/1", i + 1, {}, "y")});
  a_.Load(on_a);
  b_.Load(on_b);
  to_b_.one_key_per_fetch = true;
  ExchangeLimits tiny;
  tiny.list_page = 1;
  tiny.nodes_per_group = 3;
  tiny.keys_per_listed_node = 1;
  tiny.fetch_keys = 5;
  tiny.push_versions = 7;
  tiny.parents_per_call = 2;
  ExchangeStats s = Exchange(5, tiny);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.keys_different, 400u);
  EXPECT_EQ(s.keys_sent, 300u);
  EXPECT_EQ(s.keys_received, 100u);
  EXPECT_EQ(a_.All(), b_.All());
  ExpectSameTrees();
}

// A peer whose listing repeats itself (here: every page after the first is
// the one before) ends the exchange with Corruption instead of keeping it
// going forever.
TEST_F(ExchangeTest, AListingThatRepeatsItselfEndsTheExchange) {
  std::vector<std::pair<ItemKey, Version>> on_b;
  for (int i = 0; i < 50; ++i) on_b.push_back({{5, "wide", "k" + std::to_string(100 + i)}, Live("v/1", i + 1, {}, "y")});
  b_.Load(on_b);
  to_b_.repeat_list_pages = true;
  ExchangeLimits pages;
  pages.list_page = 10;
  ExchangeStats s = Exchange(5, pages);
  EXPECT_EQ(s.status.code(), Status::Code::kCorruption) << s.status.ToString();
  EXPECT_LE(to_b_.list_calls, 3);
}

// A transport failure ends the exchange with its error; what was merged
// stays merged (nothing is lost or corrupted) and the next exchange finishes.
TEST_F(ExchangeTest, TransportFailureMidwayLosesNothing) {
  std::vector<std::pair<ItemKey, Version>> on_a, on_b;
  for (int i = 0; i < 200; ++i) on_a.push_back({{3, "pk", "a" + std::to_string(i)}, Live("w/1", i + 1, {}, "x")});
  for (int i = 0; i < 200; ++i) on_b.push_back({{3, "pk", "b" + std::to_string(i)}, Live("v/1", i + 1, {}, "y")});
  a_.Load(on_a);
  b_.Load(on_b);
  ExchangeLimits small;
  small.fetch_keys = 10;
  small.push_versions = 10;
  for (int fail_at : {1, 2, 5, 9, 14, 30}) {
    to_b_.fail_at_call = to_b_.calls() + fail_at;
    ExchangeStats s = Exchange(3, small);
    if (s.status.ok()) continue;  // finished before the failure
    EXPECT_EQ(s.status.code(), Status::Code::kUnavailable) << s.status.ToString();
    for (uint32_t p = 0; p < kPartitions; ++p) {
      EXPECT_TRUE(a_.trees().Copy(p) == a_.TreesFromRecords()[p]);
      EXPECT_TRUE(b_.trees().Copy(p) == b_.TreesFromRecords()[p]);
    }
  }
  to_b_.fail_at_call = -1;
  ExchangeStats s = Exchange(3);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(a_.All(), b_.All());
  EXPECT_EQ(a_.All().size(), 400u);
}

TEST_F(ExchangeTest, DifferentTreeFormatsAreRefused) {
  a_.Apply(0, "pk", "k", Live("w/1", 1, {}, "x"));
  ExchangeStats s = RunExchange(0, TreeFormat(a_.trees().depth() + 1), a_.peer(), to_b_, nullptr);
  EXPECT_EQ(s.status.code(), Status::Code::kMismatch) << s.status.ToString();
  EXPECT_TRUE(b_.Read(0, "pk", "k").empty());
}

// Cancellation between calls stops the exchange.
TEST_F(ExchangeTest, CancelledExchangeStops) {
  class CancelAfter final : public ExchangeControl {
   public:
    explicit CancelAfter(int n) : n_(n) {}
    bool Cancelled() override { return --n_ < 0; }
    void Spend(size_t bytes) override { spent += bytes; }
    size_t spent = 0;
   private:
    int n_;
  };
  for (int i = 0; i < 50; ++i) a_.Apply(4, "pk", "a" + std::to_string(i), Live("w/1", i + 1, {}, "x"));
  CancelAfter control(3);
  ExchangeStats s = RunExchange(4, a_.format(), a_.peer(), to_b_, &control);
  EXPECT_EQ(s.status.code(), Status::Code::kUnavailable);
  EXPECT_LE(to_b_.calls(), 3);
  EXPECT_EQ(control.spent, s.bytes_sent + s.bytes_received);
}

// Where the tree is shallow for its partition (Q = 65536 gives depth 1),
// the exchange descends below the leaves on digest sums over key-hash ranges
// and lists only a few keys around each difference, not the whole leaf.
TEST(DeepExchangeTest, DescendsBelowTheLeavesOfAShallowTree) {
  FakeWallClock wall;
  AeReplica a("a", 65536, &wall), b("b", 65536, &wall);
  ASSERT_EQ(a.trees().depth(), 1u);
  std::vector<std::pair<ItemKey, Version>> common;
  for (int i = 0; i < 3000; ++i) common.push_back({{7, "pk" + std::to_string(i), "s"}, Live("w/1", i + 1, {}, "x")});
  a.Load(common);
  b.Load(common);
  a.Apply(7, "pk17", "s", Live("x/1", 1, {}, "a's sibling"));
  b.Apply(7, "only-b", "s", Live("x/1", 2, {}, "b"));
  b.Apply(7, "pk2999", "s", Live("w/1", 5000, Saw(Live("w/1", 3000, {}, "x")), "newer"));
  FakeTransport to_b(&b.peer());
  ExchangeStats s = RunExchange(7, a.format(), a.peer(), to_b, nullptr);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.keys_different, 3u);
  EXPECT_EQ(to_b.fetched, (std::set<KeyName>{{7, "pk17", "s"}, {7, "only-b", "s"}, {7, "pk2999", "s"}}));
  EXPECT_EQ(to_b.list_levels, std::set<uint32_t>{3}) << "3,000 keys: listed where about 4 per node are expected";
  EXPECT_LE(to_b.listed, 20) << "listed far more than the keys around the differences";
  EXPECT_EQ(a.All(), b.All());
  EXPECT_EQ(a.trees().Copy(7).Root(), b.trees().Copy(7).Root());
}

// The rows of one pk share a key hash, so a wide pk is one tree position
// and is listed whole when it differs: page by page on both sides (small
// pages here), merged as they come, so neither side holds the whole pk,
// and reconciled while the listing goes on.
// Every difference inside it is still found and only those keys move.
TEST(DeepExchangeTest, AWidePkIsListedPageByPage) {
  FakeWallClock wall;
  AeReplica a("a", 16, &wall), b("b", 16, &wall);
  std::vector<std::pair<ItemKey, Version>> common;
  for (int i = 0; i < 3000; ++i)
    common.push_back({{3, "wide", "row" + std::to_string(10000 + i)}, Live("w/1", i + 1, {}, "x")});
  a.Load(common);
  b.Load(common);
  a.Apply(3, "wide", "row10017", Live("x/1", 1, {}, "a's sibling"));
  b.Apply(3, "wide", "row10000-b", Live("x/1", 2, {}, "b"));
  b.Apply(3, "wide", "row12999", Live("w/1", 5000, Saw(Live("w/1", 3000, {}, "x")), "newer"));
  FakeTransport to_b(&b.peer());
  ExchangeLimits small_pages;
  small_pages.list_page = 100;
  small_pages.fetch_keys = 1;  // each difference reconciled as soon as the merge finds it, mid-listing
  ExchangeStats s = RunExchange(3, a.format(), a.peer(), to_b, nullptr, small_pages);
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.keys_different, 3u);
  EXPECT_EQ(to_b.fetched,
            (std::set<KeyName>{{3, "wide", "row10017"}, {3, "wide", "row10000-b"}, {3, "wide", "row12999"}}));
  EXPECT_EQ(to_b.listed, 3001) << "b's rows of the pk, each listed once";
  EXPECT_GE(to_b.list_calls, 30) << "pages of 100";
  EXPECT_EQ(a.All(), b.All());
  EXPECT_EQ(a.trees().Copy(3).Root(), b.trees().Copy(3).Root());
}

// With 2,000 keys and 1% different, the bytes moved are a small fraction of
// the data (a sanity check of O(difference); the benchmark measures it).
TEST_F(ExchangeTest, BytesAreProportionalToTheDifference) {
  const std::string value(200, 'v');
  std::vector<std::pair<ItemKey, Version>> on_a, on_b;
  for (int i = 0; i < 2000; ++i) {
    on_a.push_back({{uint32_t(i % kPartitions), "pk" + std::to_string(i), "s"}, Live("w/1", i + 1, {}, value)});
    if (i % 100 != 0) on_b.push_back(on_a.back());
  }
  a_.Load(on_a);
  b_.Load(on_b);
  ExchangeStats s = ExchangeAll();
  EXPECT_EQ(s.keys_different, 20u);
  EXPECT_EQ(s.keys_sent, 20u);
  const uint64_t data = a_.Bytes();
  std::cout << "[ measured ] data " << data << " bytes; exchange moved " << s.bytes_sent << " out, " << s.bytes_received
            << " in (" << 100.0 * double(s.bytes_sent + s.bytes_received) / double(data) << "%)\n";
  EXPECT_LT(s.bytes_sent + s.bytes_received, data / 20);
  EXPECT_EQ(a_.All(), b_.All());
}

}  // namespace
}  // namespace monju
