// TimerQueue (src/common/timer_queue.h) on a fake clock: timers fire only
// once the clock reaches them, in time order; cancelled ones never; a
// callback may add timers; destruction drops what is pending. Waits poll
// with a 5 s deadline; nothing sleeps.
#include "common/timer_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.h"

namespace monju {
namespace {

using namespace std::chrono_literals;
using test_support::FakeClock;

template <typename Condition>
bool Eventually(Condition done) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

class Fired {
 public:
  void Add(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    ids_.push_back(id);
  }
  std::vector<int> ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }
  size_t size() { return ids().size(); }

 private:
  std::mutex mu_;
  std::vector<int> ids_;
};

TEST(TimerQueueTest, TimersFireOnlyOnceTheClockReachesThemAndInTimeOrder) {
  FakeClock clock;
  TimerQueue timers(&clock);
  Fired fired;
  const auto start = clock.Now();
  timers.Add(start + 300ms, [&] { fired.Add(3); });
  timers.Add(start + 100ms, [&] { fired.Add(1); });
  timers.Add(start + 200ms, [&] { fired.Add(2); });
  EXPECT_EQ(timers.pending(), 3u);
  // The queue's thread waits on the fake clock: let it do so a few times.
  const uint64_t waits = clock.waits();
  ASSERT_TRUE(clock.AwaitWaits(waits + 3));
  EXPECT_EQ(fired.size(), 0u) << "a timer fired before its time";
  clock.Advance(150ms);
  ASSERT_TRUE(Eventually([&] { return fired.size() == 1; }));
  ASSERT_TRUE(clock.AwaitWaits(clock.waits() + 3));
  EXPECT_EQ(fired.ids(), std::vector<int>{1}) << "the 200 ms timer fired at 150 ms";
  clock.Advance(200ms);
  ASSERT_TRUE(Eventually([&] { return fired.size() == 3; }));
  EXPECT_EQ(fired.ids(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(TimerQueueTest, ACancelledTimerNeverFires) {
  FakeClock clock;
  TimerQueue timers(&clock);
  Fired fired;
  const auto start = clock.Now();
  const TimerQueue::Id cancelled = timers.Add(start + 100ms, [&] { fired.Add(1); });
  timers.Add(start + 200ms, [&] { fired.Add(2); });
  EXPECT_TRUE(timers.Cancel(cancelled));
  EXPECT_FALSE(timers.Cancel(cancelled)) << "cancelled twice";
  clock.Advance(300ms);
  // Due first, a cancelled timer that still fired would come before the other.
  ASSERT_TRUE(Eventually([&] { return fired.size() == 1; }));
  EXPECT_EQ(fired.ids(), std::vector<int>{2});
  EXPECT_EQ(timers.pending(), 0u);
  EXPECT_FALSE(timers.Cancel(999)) << "an id never given out";
}

TEST(TimerQueueTest, ATimerAlreadyDueFiresAtOnceAndACallbackMayAddTimers) {
  FakeClock clock;
  TimerQueue timers(&clock);
  Fired fired;
  const auto start = clock.Now();
  timers.Add(start, [&] {
    // Adds first, so that the test, seeing 1 fired, sees the new timer too.
    timers.Add(clock.Now() + 50ms, [&] { fired.Add(2); });
    fired.Add(1);
  });
  ASSERT_TRUE(Eventually([&] { return fired.size() == 1; }));
  EXPECT_EQ(timers.pending(), 1u);
  clock.Advance(50ms);
  ASSERT_TRUE(Eventually([&] { return fired.size() == 2; }));
  EXPECT_EQ(fired.ids(), (std::vector<int>{1, 2}));
}

TEST(TimerQueueTest, AnEarlierTimerAddedWhileTheThreadWaitsForALaterOneFiresFirst) {
  FakeClock clock;
  TimerQueue timers(&clock);
  Fired fired;
  const auto start = clock.Now();
  timers.Add(start + 1h, [&] { fired.Add(2); });
  ASSERT_TRUE(clock.AwaitWaits(clock.waits() + 2));  // waiting for the hour
  timers.Add(start + 10ms, [&] { fired.Add(1); });
  clock.Advance(10ms);
  ASSERT_TRUE(Eventually([&] { return fired.size() == 1; }));
  EXPECT_EQ(fired.ids(), std::vector<int>{1});
}

TEST(TimerQueueTest, DestructionDropsPendingTimers) {
  FakeClock clock;
  std::atomic<int> fired{0};
  {
    TimerQueue timers(&clock);
    for (int i = 1; i <= 100; ++i) timers.Add(clock.Now() + std::chrono::seconds(i), [&] { ++fired; });
  }
  clock.Advance(1000s);
  EXPECT_EQ(fired.load(), 0);
}

}  // namespace
}  // namespace monju
