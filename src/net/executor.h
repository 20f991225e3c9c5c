// FanoutExecutor: the coordinator's fan-out calls run on Thrift's
// ThreadManager. The queue is bounded by our own counter: a full queue
// refuses the task (Submit returns false), it never grows without limit.
// Replies nobody waits for any more are watched by one ReadinessPoller
// thread (WhenReadable), not by a blocked task each.
#pragma once

#include <thrift/concurrency/ThreadManager.h>

#include <atomic>
#include <memory>

#include "coordinator.h"
#include "readiness_poller.h"

namespace monju {

class FanoutExecutor final : public Executor {
 public:
  FanoutExecutor(size_t threads, size_t max_queued);
  // Stops taking tasks and waits for the queued and running ones to finish
  // (each ends within its call timeout).
  ~FanoutExecutor() override;
  bool Submit(std::function<void()> task) override;
  bool WhenReadable(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready) override;
  // "node stopping" once Stop() has begun, so that a refused call during
  // shutdown does not read as overload.
  std::string RefusalReason() const override;
  void Stop();

 private:
  const size_t max_queued_;
  std::atomic<bool> stopping_{false};
  // Tasks submitted and not yet finished; shared with the tasks themselves.
  std::shared_ptr<std::atomic<size_t>> outstanding_;
  std::shared_ptr<apache::thrift::concurrency::ThreadManager> pool_;
  ReadinessPoller poller_;
};

}  // namespace monju
