// What a node does once a membership change completed: it erases the
// partitions it no longer owns (replica/partition_cleanup.h). Real LMDB
// files in a temp dir.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "partition_cleanup.h"
#include "replica.h"
#include "test_support.h"

namespace monju {
namespace {

class CleanupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StorageOptions so;
    so.path = dir_.path() + "/data";
    so.map_size_bytes = 64ull << 20;
    auto store = DataStore::Open(so);
    ASSERT_TRUE(store.ok());
    auto r = Replica::Open("me", std::move(store.value()), 5);
    ASSERT_TRUE(r.ok());
    replica_ = std::move(r.value());
  }
  Dot Write(uint32_t partition, const std::string& pk) {
    ItemKey key{partition, pk, "s"};
    auto v = replica_->PrepareWrite(key, {}, false, "v");
    EXPECT_TRUE(v.ok());
    EXPECT_TRUE(replica_->Apply(key, v.value()).ok());
    replica_->FinishWrite(key, v.value().dot, true);
    return v.value().dot;
  }
  bool Holds(uint32_t partition, const std::string& pk) {
    SiblingSet s;
    EXPECT_TRUE(replica_->Read(ItemKey{partition, pk, "s"}, &s).ok());
    return !s.empty();
  }
  test_support::TempDir dir_;
  std::unique_ptr<Replica> replica_;
};

TEST_F(CleanupTest, ErasesExactlyThePartitionsNoLongerOwned) {
  for (uint32_t p = 0; p < 6; ++p)
    for (int k = 0; k < 50; ++k) Write(p, "pk" + std::to_string(p) + "-" + std::to_string(k));
  std::atomic<bool> stop{false};
  PartitionCleanup cleanup(replica_.get());
  auto stats = cleanup.Run([](uint32_t p) { return p % 2 == 0; }, stop, /*page_items=*/16);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats.value().scanned, 300u);
  EXPECT_EQ(stats.value().erased, 150u);
  for (uint32_t p = 0; p < 6; ++p)
    for (int k = 0; k < 50; ++k)
      ASSERT_EQ(Holds(p, "pk" + std::to_string(p) + "-" + std::to_string(k)), p % 2 == 0) << p << "/" << k;
  // A second pass finds nothing more.
  EXPECT_EQ(cleanup.Run([](uint32_t p) { return p % 2 == 0; }, stop).value().erased, 0u);
}

TEST_F(CleanupTest, ErasedCountersAreNeverIssuedAgain) {
  const Dot first = Write(3, "again");
  std::atomic<bool> stop{false};
  ASSERT_TRUE(PartitionCleanup(replica_.get()).Run([](uint32_t) { return false; }, stop).ok());
  EXPECT_FALSE(Holds(3, "again"));
  // Owning the partition again later, this node writes the key anew: its dot
  // must not repeat one an owner elsewhere may still hold.
  const Dot second = Write(3, "again");
  EXPECT_EQ(second.actor, first.actor);
  EXPECT_GT(second.counter, first.counter);
}

}  // namespace
}  // namespace monju
