// A node's threads all run under the policy --cpu-scheduling names: the
// kernel's normal one by default, SCHED_BATCH when asked. Read from the running
// processes, thread by thread.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <string>
#include <vector>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

// sched_getscheduler(2) of every thread of `pid`, by thread id.
std::vector<std::pair<pid_t, int>> ThreadPolicies(pid_t pid) {
  std::vector<std::pair<pid_t, int>> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const pid_t tid = static_cast<pid_t>(std::stol(e->d_name));
    const int policy = sched_getscheduler(tid);
    if (policy >= 0) out.emplace_back(tid, policy);  // -1: the thread ended meanwhile
  }
  closedir(d);
  return out;
}

TEST(CpuSchedulingTest, EveryThreadRunsUnderTheConfiguredPolicy) {
  ClusterOptions options;
  options.node_flags[2] = {"--cpu-scheduling", "batch"};
  LocalCluster cluster(options);
  auto started = cluster.Start();
  ASSERT_TRUE(started) << started.message();
  // Traffic first, so that threads started on demand (links, pools) exist.
  for (int i = 0; i < 20; ++i) {
    CallResult put = TryPut(cluster, i % 3, "pk" + std::to_string(i), "sk", "v");
    ASSERT_TRUE(put.ok()) << put.message;
  }

  for (int node = 0; node < 3; ++node) {
    const int expected = node == 2 ? SCHED_BATCH : SCHED_OTHER;
    const auto policies = ThreadPolicies(cluster.pid(node));
    EXPECT_GT(policies.size(), 10u) << "node " << node << ": a node runs its servers, store and pools on threads";
    for (const auto& [tid, policy] : policies)
      EXPECT_EQ(policy, expected) << "node " << node << " thread " << tid;
  }
  EXPECT_NE(cluster.ReadLog(0).find("cpu scheduling: normal (left as started: SCHED_OTHER)"), std::string::npos);
  EXPECT_NE(cluster.ReadLog(2).find("cpu scheduling: batch"), std::string::npos);
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

}  // namespace
}  // namespace monju::itest
