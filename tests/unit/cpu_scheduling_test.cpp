// The node's scheduling policy: applied to the calling thread, inherited by
// the threads it starts, and reversible (each case runs on a thread of its
// own, so the test process keeps its policy).
#include "cpu_scheduling.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

namespace monju {
namespace {

// The policy a thread started by the calling thread runs under.
int PolicyOfAChild() {
  int policy = -2;
  std::thread([&] { policy = SchedulingPolicyOf(0); }).join();
  return policy;
}

TEST(CpuSchedulingTest, BatchIsInheritedByLaterThreads) {
  int own = -2, child = -2;
  Status s;
  std::thread([&] {
    s = ApplyCpuScheduling(CpuScheduling::kBatch);
    own = SchedulingPolicyOf(0);
    child = PolicyOfAChild();
  }).join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(own, SCHED_BATCH);
  EXPECT_EQ(child, SCHED_BATCH);
  EXPECT_EQ(SchedulingPolicyOf(0), SCHED_OTHER) << "only the thread that applied it and its children change";
}

TEST(CpuSchedulingTest, NormalRestoresTheDefaultPolicy) {
  int own = -2, child = -2;
  Status batch, normal;
  std::thread([&] {
    batch = ApplyCpuScheduling(CpuScheduling::kBatch);
    normal = ApplyCpuScheduling(CpuScheduling::kNormal);
    own = SchedulingPolicyOf(0);
    child = PolicyOfAChild();
  }).join();
  ASSERT_TRUE(batch.ok()) << batch.ToString();
  ASSERT_TRUE(normal.ok()) << normal.ToString();
  EXPECT_EQ(own, SCHED_OTHER);
  EXPECT_EQ(child, SCHED_OTHER);
}

TEST(CpuSchedulingTest, NamesAreTheFlagValues) {
  EXPECT_STREQ(CpuSchedulingName(CpuScheduling::kBatch), "batch");
  EXPECT_STREQ(CpuSchedulingName(CpuScheduling::kNormal), "normal");
}

TEST(CpuSchedulingTest, KernelPoliciesAreNamedAsSchedSevenNamesThem) {
  EXPECT_EQ(KernelPolicyName(SCHED_OTHER), "SCHED_OTHER");
  EXPECT_EQ(KernelPolicyName(SCHED_BATCH), "SCHED_BATCH");
  EXPECT_EQ(KernelPolicyName(SCHED_FIFO), "SCHED_FIFO");
  EXPECT_EQ(KernelPolicyName(-1), "policy -1");
}

TEST(CpuSchedulingTest, UnknownThreadHasNoPolicy) {
  // Thread ids above pid_max never exist.
  EXPECT_EQ(SchedulingPolicyOf(0x7ffffff0), -1);
}

}  // namespace
}  // namespace monju
