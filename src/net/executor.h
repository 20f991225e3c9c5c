// FanoutExecutor: the coordinator's fan-out calls run on Thrift's
// ThreadManager. The queue is bounded by our own counter: a full queue
// refuses the task (Submit returns false), it never grows without limit.
#pragma once

#include <thrift/concurrency/ThreadManager.h>

#include <atomic>
#include <memory>

#include "coordinator.h"

namespace monju {

class FanoutExecutor final : public Executor {
 public:
  FanoutExecutor(size_t threads, size_t max_queued);
  // Waits for running tasks; queued ones are dropped (their requests have
  // already been answered or abandoned by a stopping server).
  ~FanoutExecutor() override;
  bool Submit(std::function<void()> task) override;
  void Stop();

 private:
  const size_t max_queued_;
  // Tasks submitted and not yet finished; shared with the tasks themselves.
  std::shared_ptr<std::atomic<size_t>> outstanding_;
  std::shared_ptr<apache::thrift::concurrency::ThreadManager> pool_;
};

}  // namespace monju
