#include "common/timer_queue.h"
#include "common/thread_name.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <vector>

namespace monju {

TimerQueue::TimerQueue(const Clock* clock, const char* thread_name) : clock_(clock) {
  thread_ = std::thread([this] { Run(); });
  NameThread(thread_, thread_name);
}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  thread_.join();
}

TimerQueue::Id TimerQueue::Add(Clock::TimePoint at, std::function<void()> fn) {
  bool earliest;
  Id id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    earliest = timers_.empty() || at < timers_.begin()->first.first;
    timers_.emplace(std::make_pair(at, id), std::move(fn));
    by_id_.emplace(id, at);
  }
  // Only an earlier first deadline changes how long the thread must sleep.
  if (earliest) cv_.Signal();
  return id;
}

bool TimerQueue::Cancel(Id id) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  timers_.erase({it->second, id});
  by_id_.erase(it);
  return true;
}

size_t TimerQueue::pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

void TimerQueue::Run() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (stopping_) return;
    if (timers_.empty()) {
      // Nothing to time: only Add() or the destructor wakes it (not the
      // clock, so that a fake clock sees waits only while timers are due).
      cv_.Wait(&mu_);
      continue;
    }
    const Clock::TimePoint now = clock_->Now();
    if (timers_.begin()->first.first > now) {
      clock_->WaitUntil(cv_, mu_, timers_.begin()->first.first);
      continue;
    }
    std::vector<std::function<void()>> due;
    while (!timers_.empty() && timers_.begin()->first.first <= now) {
      by_id_.erase(timers_.begin()->first.second);
      due.push_back(std::move(timers_.begin()->second));
      timers_.erase(timers_.begin());
    }
    mu_.Unlock();
    for (auto& fn : due) {
      try {
        fn();
      } catch (const std::exception& e) {
        spdlog::error("a timer's callback failed: {}", e.what());
      }
    }
    due.clear();  // the callbacks' captures go before the lock is taken again
    mu_.Lock();
  }
}

}  // namespace monju
