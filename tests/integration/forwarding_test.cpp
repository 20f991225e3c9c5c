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
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

}  // namespace
}  // namespace monju::itest
