// RecentHistogram (src/common/recent_histogram.h) and SharedHistogram on a
// stepped time: which samples the window holds as slots pass, with and
// without samples arriving meanwhile.
#include <gtest/gtest.h>

#include <chrono>

#include "common/recent_histogram.h"
#include "common/shared_histogram.h"

namespace monju {
namespace {

using namespace std::chrono_literals;
using TimePoint = RecentHistogram::TimePoint;

constexpr auto kSlot = RecentHistogram::kSlot;
const TimePoint kStart = TimePoint() + 1000h;  // any steady time

TEST(RecentHistogramTest, EmptyWindowIsEmpty) {
  RecentHistogram h;
  EXPECT_EQ(h.Window(kStart).count(), 0u);
  EXPECT_EQ(h.Window(kStart + 10 * kSlot).count(), 0u);
}

TEST(RecentHistogramTest, TheWindowKeepsTheCurrentAndThePreviousSlot) {
  RecentHistogram h;
  h.Record(100, kStart);
  h.Record(200, kStart + kSlot / 2);
  LatencyHistogram w = h.Window(kStart + kSlot - 1ms);
  EXPECT_EQ(w.count(), 2u);
  EXPECT_EQ(w.max(), 200u);

  // Into the second slot: the first one is the previous, still shown.
  h.Record(300, kStart + kSlot + 1s);
  w = h.Window(kStart + kSlot + 2s);
  EXPECT_EQ(w.count(), 3u);
  EXPECT_EQ(w.min(), 100u);
  EXPECT_EQ(w.max(), 300u);

  // Into the third slot: the first is dropped, the second is the previous.
  h.Record(50, kStart + 2 * kSlot + 1s);
  w = h.Window(kStart + 2 * kSlot + 1s);
  EXPECT_EQ(w.count(), 2u);
  EXPECT_EQ(w.min(), 50u);
  EXPECT_EQ(w.max(), 300u);
}

// A slot ends exactly kSlot after it began: a sample at that instant opens
// the next one.
TEST(RecentHistogramTest, ASampleAtTheSlotBoundaryStartsTheNextSlot) {
  RecentHistogram h;
  h.Record(1, kStart);
  h.Record(2, kStart + kSlot);
  EXPECT_EQ(h.Window(kStart + kSlot).count(), 2u);
  const LatencyHistogram w = h.Window(kStart + 2 * kSlot);  // the first slot is gone now
  EXPECT_EQ(w.count(), 1u);
  EXPECT_EQ(w.max(), 2u);
}

TEST(RecentHistogramTest, SlotsPassWithoutSamplesToo) {
  RecentHistogram h;
  h.Record(100, kStart);
  h.Record(900, kStart + kSlot + 1s);  // second slot
  // Asked in the third slot with nothing new: only the second slot's sample.
  LatencyHistogram w = h.Window(kStart + 2 * kSlot + 5s);
  EXPECT_EQ(w.count(), 1u);
  EXPECT_EQ(w.max(), 900u);
  // Two slots later, nothing at all.
  EXPECT_EQ(h.Window(kStart + 3 * kSlot).count(), 0u);
  // A sample long after: the old ones are gone, not carried over.
  h.Record(7, kStart + 10 * kSlot + 3s);
  w = h.Window(kStart + 10 * kSlot + 4s);
  EXPECT_EQ(w.count(), 1u);
  EXPECT_EQ(w.max(), 7u);
  // And its slot still counts as current a moment before the next one.
  EXPECT_EQ(h.Window(kStart + 11 * kSlot - 1ms).count(), 1u);
  EXPECT_EQ(h.Window(kStart + 12 * kSlot).count(), 0u);
}

TEST(SharedHistogramTest, KeepsEverySampleAndTheRecentOnes) {
  SharedHistogram h;
  h.Record(10, kStart);
  h.Record(20, kStart + kSlot / 2);
  h.Record(30, kStart + 5 * kSlot);
  EXPECT_EQ(h.Snapshot().count(), 3u);
  EXPECT_EQ(h.Snapshot().min(), 10u);
  const LatencyHistogram recent = h.Recent(kStart + 5 * kSlot);
  EXPECT_EQ(recent.count(), 1u);
  EXPECT_EQ(recent.max(), 30u);
}

}  // namespace
}  // namespace monju
