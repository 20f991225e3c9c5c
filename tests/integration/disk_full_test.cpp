// A full store (LMDB map full) is a clear error to the client; the node keeps
// serving reads and loses nothing it acknowledged.
#include <gtest/gtest.h>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

TEST(DiskFullTest, MapFullIsAClearErrorAndReadsKeepWorking) {
  ClusterOptions options;
  options.map_size_mb = 1;  // every node: a 1 MiB store
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start());

  const std::string value(4096, 'v');
  std::vector<std::string> acknowledged;
  CallResult failure;
  for (int i = 0; i < 2000; ++i) {  // 8 MB of attempts: far beyond 1 MiB
    std::string pk = "fill-" + std::to_string(i);
    CallResult r = TryPut(cluster, i % 3, pk, "s", value + pk);
    if (!r.ok()) {
      failure = r;
      break;
    }
    acknowledged.push_back(pk);
  }
  ASSERT_FALSE(failure.ok()) << "the 1 MiB store never filled up";
  EXPECT_GT(acknowledged.size(), 20u);
  EXPECT_EQ(failure.outcome, Outcome::kQuorumFailed) << failure.message;
  EXPECT_NE(failure.message.find("MDB_MAP_FULL"), std::string::npos)
      << "the error should say the store is full: " << failure.message;

  for (int i = 0; i < 3; ++i) EXPECT_TRUE(cluster.IsRunning(i)) << cluster.ExitDescription(i);
  // Every acknowledged write still reads back, through every node.
  for (size_t k = 0; k < acknowledged.size(); ++k) {
    api::GetResult got;
    CallResult r = TryGet(cluster, static_cast<int>(k % 3), acknowledged[k], "s", 2, &got);
    ASSERT_TRUE(r.ok()) << acknowledged[k] << ": " << r.message;
    ASSERT_TRUE(got.found) << acknowledged[k];
    ASSERT_EQ(got.values.size(), 1u);
    EXPECT_EQ(got.values[0], value + acknowledged[k]);
  }
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

}  // namespace
}  // namespace monju::itest
