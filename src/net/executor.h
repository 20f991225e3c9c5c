// FanoutExecutor: the coordinator's fan-out calls run on Thrift's
// ThreadManager, with a bounded queue (a full queue refuses, never grows).
#pragma once

#include <thrift/concurrency/ThreadManager.h>

#include <memory>

#include "coordinator.h"

namespace monju {

class FanoutExecutor final : public Executor {
 public:
  FanoutExecutor(size_t threads, size_t max_pending);
  ~FanoutExecutor() override;
  // Waits for running tasks; queued ones are dropped (their requests have
  // already been answered or abandoned by a stopping server).
  bool Submit(std::function<void()> task) override;
  void Stop();

 private:
  std::shared_ptr<apache::thrift::concurrency::ThreadManager> pool_;
};

}  // namespace monju
