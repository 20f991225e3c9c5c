// FanoutExecutor (src/net/executor.h): its own bound on queued tasks, and
// what a refusal says, overloaded or stopping.
#include <gtest/gtest.h>

#include <future>

#include "executor.h"

namespace monju {
namespace {

TEST(FanoutExecutorTest, RefusesPastItsBoundAndSaysWhy) {
  FanoutExecutor executor(/*threads=*/1, /*max_queued=*/1);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> ran;
  ASSERT_TRUE(executor.Submit([released, &ran] {
    ran.set_value();
    released.wait();
  }));
  ran.get_future().wait();
  EXPECT_FALSE(executor.Submit([] {})) << "one task outstanding is the bound";
  EXPECT_EQ(executor.RefusalReason(), "node overloaded: fan-out queue full");
  release.set_value();
  executor.Stop();
  EXPECT_FALSE(executor.Submit([] {}));
  EXPECT_EQ(executor.RefusalReason(), "node stopping");
}

}  // namespace
}  // namespace monju
