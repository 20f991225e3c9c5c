// FanoutExecutor (src/net/executor.h): its bound on queued tasks, what a
// refusal says, that Stop() runs what was queued, and that a throwing task
// does not take a thread with it.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

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

TEST(FanoutExecutorTest, StopRunsEveryQueuedTaskThenRefuses) {
  FanoutExecutor executor(/*threads=*/1, /*max_queued=*/1000000);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> ran{0};
  ASSERT_TRUE(executor.Submit([released, &ran] {
    released.wait();
    ++ran;
  }));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(executor.Submit([&ran] { ++ran; }));
  std::thread stopper([&executor] { executor.Stop(); });
  // Stop() has begun once refusals say so, and has closed the queue once a
  // submit is refused (the bound is far off). The first task still holds the
  // only thread, so nothing queued has run yet.
  while (executor.RefusalReason() != "node stopping") std::this_thread::yield();
  int accepted = 51;
  while (accepted < 900000 && executor.Submit([&ran] { ++ran; })) ++accepted;
  EXPECT_LT(accepted, 900000) << "Stop() never closed the queue";
  EXPECT_EQ(ran.load(), 0);
  release.set_value();
  stopper.join();
  EXPECT_EQ(ran.load(), accepted) << "every task accepted before Stop() ran";
  executor.Stop();  // idempotent
  EXPECT_EQ(ran.load(), accepted);
}

TEST(FanoutExecutorTest, AThrowingTaskLeavesItsThreadAndSlotFree) {
  FanoutExecutor executor(/*threads=*/1, /*max_queued=*/1);
  std::promise<void> thrown;
  ASSERT_TRUE(executor.Submit([&thrown] {
    thrown.set_value();
    throw std::runtime_error("boom");
  }));
  thrown.get_future().wait();
  // The bound is 1: a new task is accepted once the thrower's slot is back.
  std::promise<void> ran;
  for (int attempt = 0; attempt < 100000; ++attempt) {
    if (executor.Submit([&ran] { ran.set_value(); })) break;
    std::this_thread::yield();
  }
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

TEST(FanoutExecutorTest, ManySubmittersEveryTaskRunsOnce) {
  FanoutExecutor executor(/*threads=*/4, /*max_queued=*/100000);
  constexpr int kSubmitters = 8, kEach = 2000;
  std::atomic<int> ran{0}, accepted{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t)
    submitters.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        if (executor.Submit([&ran] { ++ran; })) ++accepted;
    });
  for (auto& t : submitters) t.join();
  executor.Stop();
  EXPECT_EQ(accepted.load(), kSubmitters * kEach);
  EXPECT_EQ(ran.load(), kSubmitters * kEach);
}

}  // namespace
}  // namespace monju
