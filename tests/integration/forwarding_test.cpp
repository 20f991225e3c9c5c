// With more nodes than N, a node that is not a replica of a key forwards the
// write to one that is; reads are coordinated anywhere.
#include <gtest/gtest.h>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

TEST(ForwardingTest, EveryNodeServesEveryKeyInAFiveNodeCluster) {
  ClusterOptions options;
  options.nodes = 5;
  options.n = 3;
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  // 100 keys spread over the partitions: with N=3 of 5, each node coordinates
  // some writes itself and forwards the others.
  for (int k = 0; k < 100; ++k) {
    std::string pk = "fwd-" + std::to_string(k);
    api::WriteResult written;
    CallResult r = TryPut(cluster, k % 5, pk, "s", "v" + std::to_string(k), "", 0, &written);
    ASSERT_TRUE(r.ok()) << pk << " through " << cluster.id(k % 5) << ": " << r.message;
    EXPECT_FALSE(written.context.empty());
  }
  for (int k = 0; k < 100; ++k) {
    std::string pk = "fwd-" + std::to_string(k);
    api::GetResult got;
    CallResult r = TryGet(cluster, (k + 2) % 5, pk, "s", 2, &got);
    ASSERT_TRUE(r.ok()) << pk << ": " << r.message;
    ASSERT_EQ(got.values.size(), 1u) << pk;
    EXPECT_EQ(got.values[0], "v" + std::to_string(k));
  }
  // A write through a non-owner that carries the read's context replaces the
  // value (no false sibling from the forwarding hop).
  for (int k = 0; k < 20; ++k) {
    std::string pk = "fwd-" + std::to_string(k);
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, k % 5, pk, "s", 2, &got).ok());
    ASSERT_TRUE(TryPut(cluster, (k + 1) % 5, pk, "s", "second", got.context).ok());
    ASSERT_TRUE(TryGet(cluster, (k + 3) % 5, pk, "s", 2, &got).ok());
    ASSERT_EQ(got.values.size(), 1u) << pk;
    EXPECT_EQ(got.values[0], "second");
  }
  // An overwrite needs no context: through any node, owner or not (then
  // forwarded), it replaces the siblings that blind puts left.
  // (w = 3: every replica, the overwrite's coordinator too, holds both.)
  for (int k = 0; k < 20; ++k) {
    std::string pk = "fwd-over-" + std::to_string(k);
    ASSERT_TRUE(TryPut(cluster, k % 5, pk, "s", "first", "", 3).ok());
    ASSERT_TRUE(TryPut(cluster, (k + 1) % 5, pk, "s", "blind", "", 3).ok());
    api::GetResult got;
    ASSERT_TRUE(TryGet(cluster, k % 5, pk, "s", 3, &got).ok());
    ASSERT_EQ(got.values.size(), 2u) << pk << ": a blind put makes a sibling";
    api::WriteResult written;
    CallResult over = Call([&] { cluster.Client((k + 2) % 5)->overwrite(written, pk, "s", "over", 3); });
    ASSERT_TRUE(over.ok()) << pk << " through " << cluster.id((k + 2) % 5) << ": " << over.message;
    EXPECT_FALSE(written.context.empty());
    for (int node = 0; node < 5; ++node) {
      ASSERT_TRUE(TryGet(cluster, node, pk, "s", 3, &got).ok());
      EXPECT_EQ(got.values, std::vector<std::string>{"over"}) << pk << " read through " << cluster.id(node);
    }
  }
  // Bad input is refused as for a put.
  CallResult bad = Call([&] {
    api::WriteResult ignored;
    cluster.Client(0)->overwrite(ignored, "", "s", "v", 0);
  });
  EXPECT_EQ(bad.outcome, Outcome::kInvalidRequest) << bad.message;
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

}  // namespace
}  // namespace monju::itest
