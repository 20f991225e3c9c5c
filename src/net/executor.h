// FanoutExecutor: a fixed pool of threads running the coordinator's fan-out
// calls (coalesced peer sends, single calls, read repair). The queue is
// bounded: a full queue refuses the task (Submit returns false), it never
// grows without limit.
//
// The queue is guarded by an absl::Mutex rather than std::mutex with a
// condition variable (as Thrift's ThreadManager, used before, is): after a
// condition wait glibc takes the mutex back marked contended, so every unlock
// that follows costs a futex wake, and under load that was a third of a
// node's futex calls.
//
// Thread safety: every method may be called from any thread, including from
// a task. Stop() (or the destructor) must not be called from a task.
#pragma once

#include <absl/synchronization/mutex.h>

#include <atomic>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "coordinator.h"

namespace monju {

class FanoutExecutor final : public Executor {
 public:
  // `threads` (at least 1) run tasks; at most `max_queued` tasks are
  // submitted and not yet finished at once. `name` names the threads
  // ("<name>-0", ...) and the queue in RefusalReason().
  FanoutExecutor(size_t threads, size_t max_queued, std::string name = "fan-out");
  // Stop().
  ~FanoutExecutor() override;
  FanoutExecutor(const FanoutExecutor&) = delete;
  FanoutExecutor& operator=(const FanoutExecutor&) = delete;

  // False when max_queued tasks are outstanding or Stop() has begun; the task
  // then never runs. A task that throws is logged; the thread goes on.
  bool Submit(std::function<void()> task) override;
  // "node stopping" once Stop() has begun, so that a refused call during
  // shutdown does not read as overload; else "node overloaded: <name> queue
  // full".
  std::string RefusalReason() const override;
  bool Stopping() const override { return stopping_; }
  // Refuses new tasks, runs every task already queued, and joins the threads
  // (each task ends within its call timeout). Idempotent.
  void Stop();

 private:
  void Work();

  const size_t max_queued_;
  const std::string name_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  size_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // queued or running
  bool closing_ ABSL_GUARDED_BY(mu_) = false;    // threads leave once the queue is empty
  std::vector<std::thread> threads_;
};

}  // namespace monju
