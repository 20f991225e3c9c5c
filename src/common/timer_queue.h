// TimerQueue: runs callbacks at points in time of an injected Clock, on one
// thread of its own. Requests that wait for replicas without holding a
// thread use it for their deadlines (coordinator.h).
//
// Adding a timer later than every pending one does not wake the thread, so
// a steady stream of deadlines costs no wake-ups; only firing does. A
// callback must be quick (it runs on the queue's only thread) and may add or
// cancel timers.
//
// Thread safety: every method may be called from any thread. The clock must
// outlive the queue. Destroying the queue stops its thread; timers not fired
// by then never are.
#pragma once

#include <absl/synchronization/mutex.h>

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "common/clock.h"

namespace monju {

class TimerQueue {
 public:
  using Id = uint64_t;  // 0 is never a timer's

  TimerQueue(const Clock* clock, const char* thread_name = "timers");
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `fn` once Now() reaches `at` (at once, on the queue's thread, if it
  // already has). Returns the id that cancels it.
  Id Add(Clock::TimePoint at, std::function<void()> fn);
  // True when the timer had not fired yet (it then never will).
  bool Cancel(Id id);
  // Timers pending now.
  size_t pending() const;

 private:
  void Run();

  const Clock* clock_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::map<std::pair<Clock::TimePoint, Id>, std::function<void()>> timers_;
  std::map<Id, Clock::TimePoint> by_id_;
  Id next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace monju
