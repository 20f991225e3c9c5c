// A node's threads, read from the running processes thread by thread: all
// run under the policy --cpu-scheduling names (the kernel's normal one by
// default, SCHED_BATCH when asked), and each says what it is (top -H, perf).
#include <dirent.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cluster_harness.h"

namespace monju::itest {
namespace {

// The thread ids of `pid`, from /proc.
std::vector<pid_t> ThreadIds(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (!d) return out;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.push_back(static_cast<pid_t>(std::stol(e->d_name)));
  closedir(d);
  return out;
}

// sched_getscheduler(2) of every thread of `pid`, by thread id.
std::vector<std::pair<pid_t, int>> ThreadPolicies(pid_t pid) {
  std::vector<std::pair<pid_t, int>> out;
  for (pid_t tid : ThreadIds(pid)) {
    const int policy = sched_getscheduler(tid);
    if (policy >= 0) out.emplace_back(tid, policy);  // -1: the thread ended meanwhile
  }
  return out;
}

// The names of the threads of `pid`, by thread id.
std::map<pid_t, std::string> ThreadNames(pid_t pid) {
  std::map<pid_t, std::string> out;
  for (pid_t tid : ThreadIds(pid)) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm");
    std::string name;
    if (std::getline(comm, name)) out[tid] = name;  // none: the thread ended meanwhile
  }
  return out;
}

// Starts `cluster` and writes through every node, so that threads started
// on demand (links, pools) exist.
void StartWithTraffic(LocalCluster& cluster) {
  auto started = cluster.Start();
  ASSERT_TRUE(started) << started.message();
  for (int i = 0; i < 20; ++i) {
    CallResult put = TryPut(cluster, i % 3, "pk" + std::to_string(i), "sk", "v");
    ASSERT_TRUE(put.ok()) << put.message;
  }
}

TEST(CpuSchedulingTest, EveryThreadRunsUnderTheConfiguredPolicy) {
  ClusterOptions options;
  options.node_flags[2] = {"--cpu-scheduling", "batch"};
  LocalCluster cluster(options);
  ASSERT_NO_FATAL_FAILURE(StartWithTraffic(cluster));

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

// Only the main thread keeps the program's name: a profile or top -H names
// every other.
TEST(CpuSchedulingTest, EveryThreadButTheMainOneIsNamed) {
  LocalCluster cluster(ClusterOptions{});
  ASSERT_NO_FATAL_FAILURE(StartWithTraffic(cluster));
  for (int node = 0; node < 3; ++node) {
    const pid_t pid = cluster.pid(node);
    const auto names = ThreadNames(pid);
    EXPECT_GT(names.size(), 10u) << "node " << node;
    for (const auto& [tid, name] : names) {
      if (tid == pid) {
        EXPECT_EQ(name, "monjud");
      } else {
        EXPECT_NE(name, "monjud") << "node " << node << ": thread " << tid << " has no name of its own";
      }
    }
    std::map<std::string, int> kinds;
    for (const auto& [tid, name] : names) ++kinds[name];
    for (const char* expected : {"store-writer", "peer-links", "coord-timers", "hint-delivery", "client-0", "peer-0"})
      EXPECT_EQ(kinds.count(expected), 1u) << "node " << node << " has no thread " << expected;
  }
  MONJU_DUMP_LOGS_ON_FAILURE(&cluster);
}

}  // namespace
}  // namespace monju::itest
