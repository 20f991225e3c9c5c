// monju-bench's workload logic: key distributions, the operation mix, record
// naming and the latency histogram, against known inputs and seeded draws.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "common/latency_histogram.h"
#include "test_support.h"
#include "workload.h"

namespace monju::bench {
namespace {

using test_support::TestSeed;

// ---------------------------------------------------------------- histogram

TEST(LatencyHistogramTest, EmptyReportsZeros) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < 256; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 256u);
  EXPECT_EQ(h.Percentile(0.5), 127u);   // the 128th smallest of 0..255
  EXPECT_EQ(h.Percentile(0.99), 253u);  // ceil(0.99 * 256) = 254th
  EXPECT_EQ(h.Percentile(1.0), 255u);
  EXPECT_EQ(h.Percentile(0.0), 0u);
  EXPECT_DOUBLE_EQ(h.mean(), 127.5);
}

TEST(LatencyHistogramTest, PercentilesOfOneToTenThousandWithinBucketError) {
  const uint64_t seed = TestSeed(20240601);
  std::vector<uint64_t> values(10000);
  std::iota(values.begin(), values.end(), 1);
  Rng rng(seed);
  std::shuffle(values.begin(), values.end(), rng);  // order must not matter
  LatencyHistogram h;
  for (uint64_t v : values) h.Record(v);
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 10000u);
  EXPECT_DOUBLE_EQ(h.mean(), 5000.5);
  // True value t; the histogram reports the top of t's bucket: t <= p <= t * (1 + 1/128).
  for (auto [q, t] : std::vector<std::pair<double, uint64_t>>{{0.5, 5000}, {0.95, 9500}, {0.99, 9900},
                                                               {0.999, 9990}, {1.0, 10000}}) {
    const uint64_t p = h.Percentile(q);
    EXPECT_GE(p, t) << "q=" << q;
    EXPECT_LE(double(p), double(t) * (1.0 + 1.0 / 128)) << "q=" << q;
  }
}

TEST(LatencyHistogramTest, OutlierShowsOnlyInTheTail) {
  LatencyHistogram h;
  for (int i = 0; i < 999; ++i) h.Record(100);
  h.Record(2'000'000);
  EXPECT_EQ(h.Percentile(0.5), 100u);
  EXPECT_EQ(h.Percentile(0.99), 100u);
  EXPECT_EQ(h.Percentile(0.999), 100u);  // rank 999 of 1000
  EXPECT_EQ(h.Percentile(1.0), 2'000'000u);
  EXPECT_EQ(h.max(), 2'000'000u);
}

TEST(LatencyHistogramTest, HugeValuesStayWithinRelativeError) {
  LatencyHistogram h;
  const uint64_t v = (uint64_t(1) << 62) + 12345;
  h.Record(v);
  h.Record(UINT64_MAX);
  EXPECT_GE(h.Percentile(0.5), v);
  EXPECT_LE(double(h.Percentile(0.5)), double(v) * (1.0 + 1.0 / 128));
  EXPECT_EQ(h.Percentile(1.0), UINT64_MAX);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverything) {
  const uint64_t seed = TestSeed(77);
  Rng rng(seed);
  LatencyHistogram a, b, all;
  for (int i = 0; i < 5000; ++i) {
    const uint64_t v = rng() % 1'000'000;
    (i % 2 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.Percentile(q), all.Percentile(q)) << q;
}

// ---------------------------------------------------------------- distributions

double ZetaSum(uint64_t n, double theta) {
  double s = 0;
  for (uint64_t i = 1; i <= n; ++i) s += 1.0 / std::pow(double(i), theta);
  return s;
}

TEST(ZipfianTest, RanksFollowTheZipfLaw) {
  const uint64_t seed = TestSeed(4242);
  Rng rng(seed);
  const uint64_t n = 1000;
  const double theta = 0.99;
  ZipfianRanks ranks(n, theta);
  const int draws = 400000;
  std::vector<uint64_t> counts(n, 0);
  for (int i = 0; i < draws; ++i) {
    const uint64_t r = ranks.Next(rng);
    ASSERT_LT(r, n);
    ++counts[r];
  }
  const double zeta = ZetaSum(n, theta);
  // Ranks 0 and 1 get their exact share 1/((k+1)^theta * zeta), within 5%
  // (the generator is exact for these two and approximates the rest).
  for (uint64_t k = 0; k < 2; ++k) {
    const double expected = draws / (std::pow(double(k + 1), theta) * zeta);
    EXPECT_NEAR(double(counts[k]), expected, expected * 0.05) << "rank " << k;
  }
  // Popularity falls with rank: compare decades of ranks.
  auto sum = [&](uint64_t from, uint64_t to) {
    return std::accumulate(counts.begin() + from, counts.begin() + to, uint64_t(0));
  };
  EXPECT_GT(sum(0, 10), sum(10, 100) / 2);
  EXPECT_GT(sum(10, 100) / 90.0, 5 * sum(100, 1000) / 900.0);
  EXPECT_GT(counts[n - 1] + counts[n - 2] + counts[n - 3], 0u) << "the tail is never drawn";
  // Heavy skew: the top 1% of ranks take over a third of the draws...
  const uint64_t top = std::accumulate(counts.begin(), counts.begin() + 10, uint64_t(0));
  EXPECT_GT(double(top) / draws, 0.35);
  // ...and the share of the top 10 matches the law (the generator's tail is
  // approximate, its head exact).
  EXPECT_NEAR(double(top) / draws, ZetaSum(10, theta) / zeta, 0.02);
}

TEST(ZipfianTest, ScrambledChooserKeepsSkewButSpreadsHotRecords) {
  const uint64_t seed = TestSeed(99);
  Rng rng(seed);
  const uint64_t n = 10000;
  ZipfianChooser chooser(n, 0.99);
  std::map<uint64_t, uint64_t> counts;
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const uint64_t r = chooser.Next(rng);
    ASSERT_LT(r, n);
    ++counts[r];
  }
  // The hottest record is rank 0's, with about 1/zeta(n) of all draws.
  auto hottest = std::max_element(counts.begin(), counts.end(),
                                  [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_EQ(hottest->first, chooser.RecordOfRank(0));
  const double expected = draws / ZetaSum(n, 0.99);
  EXPECT_NEAR(double(hottest->second), expected, expected * 0.1);
  // The ten hottest ranks are not neighbours: they spread over the key space.
  std::set<uint64_t> hot;
  for (uint64_t k = 0; k < 10; ++k) hot.insert(chooser.RecordOfRank(k) / (n / 10));
  EXPECT_GE(hot.size(), 5u) << "hot records cluster in few tenths of the key space";
}

TEST(UniformTest, CoversEveryRecordEvenly) {
  const uint64_t seed = TestSeed(31337);
  Rng rng(seed);
  const uint64_t n = 1000;
  UniformChooser chooser(n);
  std::vector<uint64_t> counts(n, 0);
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const uint64_t r = chooser.Next(rng);
    ASSERT_LT(r, n);
    ++counts[r];
  }
  EXPECT_EQ(std::count(counts.begin(), counts.end(), 0u), 0) << "some record was never chosen";
  // Chi-square with 999 degrees of freedom: mean 999, sd ~44.7; 6 sd of slack.
  const double expected = double(draws) / n;
  double chi2 = 0;
  for (uint64_t c : counts) chi2 += (double(c) - expected) * (double(c) - expected) / expected;
  EXPECT_LT(chi2, 999 + 6 * 44.7);
  EXPECT_GT(chi2, 999 - 6 * 44.7);
  const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  EXPECT_GT(*lo, expected * 0.7);
  EXPECT_LT(*hi, expected * 1.3);
}

TEST(KeyChooserTest, FactoryValidates) {
  EXPECT_TRUE(MakeKeyChooser("zipfian", 10, 0.99).ok());
  EXPECT_TRUE(MakeKeyChooser("uniform", 10, 0.99).ok());
  EXPECT_FALSE(MakeKeyChooser("gaussian", 10, 0.99).ok());
  EXPECT_FALSE(MakeKeyChooser("zipfian", 0, 0.99).ok());
  EXPECT_FALSE(MakeKeyChooser("zipfian", 10, 1.0).ok());
  EXPECT_FALSE(MakeKeyChooser("zipfian", 10, 0.0).ok());
}

TEST(KeyChooserTest, SameSeedSameChoices) {
  ZipfianChooser chooser(5000);
  Rng a(ThreadSeed(5, 3)), b(ThreadSeed(5, 3)), c(ThreadSeed(5, 4));
  int same_as_other_thread = 0;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = chooser.Next(a);
    EXPECT_EQ(x, chooser.Next(b));
    same_as_other_thread += x == chooser.Next(c) ? 1 : 0;
  }
  EXPECT_LT(same_as_other_thread, 60) << "threads should draw different streams";
}

// ---------------------------------------------------------------- op mix and layout

std::map<OpType, int> Draw(const OpMix& mix, uint64_t seed, int draws) {
  Rng rng(seed);
  OpChooser chooser(mix);
  std::map<OpType, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[chooser.Next(rng)];
  return counts;
}

TEST(OpMixTest, CoreWorkloadsHaveTheirProportions) {
  const uint64_t seed = TestSeed(8);
  const int draws = 100000;
  auto a = Draw(WorkloadMix("a").value(), seed, draws);
  EXPECT_NEAR(a[OpType::kRead], draws * 0.5, draws * 0.01);
  EXPECT_NEAR(a[OpType::kUpdate], draws * 0.5, draws * 0.01);
  EXPECT_EQ(a[OpType::kQuery], 0);
  auto b = Draw(WorkloadMix("b").value(), seed, draws);
  EXPECT_NEAR(b[OpType::kRead], draws * 0.95, draws * 0.01);
  EXPECT_NEAR(b[OpType::kUpdate], draws * 0.05, draws * 0.01);
  EXPECT_EQ(Draw(WorkloadMix("c").value(), seed, draws)[OpType::kRead], draws);
  EXPECT_EQ(Draw(WorkloadMix("write").value(), seed, draws)[OpType::kUpdate], draws);
  EXPECT_EQ(Draw(WorkloadMix("query").value(), seed, draws)[OpType::kQuery], draws);
  EXPECT_FALSE(WorkloadMix("e").ok());
}

TEST(OpMixTest, CustomMixParsesWeights) {
  auto mix = ParseMix("90:10:0");
  ASSERT_TRUE(mix.ok());
  EXPECT_EQ(mix->ToString(), "read 90% update 10%");
  auto counts = Draw(ParseMix("1:1:2").value(), TestSeed(9), 40000);
  EXPECT_NEAR(counts[OpType::kQuery], 20000, 600);
  for (const char* bad : {"", "90:10", "a:b:c", "0:0:0", "-1:1:1", "1:1:1:1", "1,1,1"})
    EXPECT_FALSE(ParseMix(bad).ok()) << bad;
}

TEST(KeyLayoutTest, GroupsRecordsUnderPartitionKeys) {
  KeyLayout layout(100, 10);
  EXPECT_EQ(layout.Name(23).pk, "user000000000002");
  EXPECT_EQ(layout.Name(23).sk, "row00003");
  EXPECT_EQ(layout.Pk(20), layout.Pk(29));
  EXPECT_NE(layout.Pk(29), layout.Pk(30));
  std::set<std::pair<std::string, std::string>> names;
  for (uint64_t r = 0; r < 100; ++r) names.insert({layout.Name(r).pk, layout.Name(r).sk});
  EXPECT_EQ(names.size(), 100u);
}

TEST(ValueMakerTest, FixedSizeVaryingContent) {
  ValueMaker values(100, 1);
  Rng rng(TestSeed(3));
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto v = values.Next(rng);
    EXPECT_EQ(v.size(), 100u);
    seen.insert(std::string(v));
  }
  EXPECT_GT(seen.size(), 45u);
}

}  // namespace
}  // namespace monju::bench
