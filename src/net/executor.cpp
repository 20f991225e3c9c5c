#include "executor.h"

#include <thrift/concurrency/Exception.h>
#include <thrift/concurrency/FunctionRunner.h>
#include <thrift/concurrency/ThreadFactory.h>

namespace monju {

using namespace apache::thrift::concurrency;

FanoutExecutor::FanoutExecutor(size_t threads, size_t max_queued)
    : max_queued_(max_queued),
      outstanding_(std::make_shared<std::atomic<size_t>>(0)),
      pool_(ThreadManager::newSimpleThreadManager(threads)),
      poller_(max_queued) {
  pool_->threadFactory(std::make_shared<ThreadFactory>());
  pool_->start();
}

FanoutExecutor::~FanoutExecutor() { Stop(); }

void FanoutExecutor::Stop() {
  stopping_ = true;
  if (pool_->state() == ThreadManager::STARTED) pool_->stop();
  // After the pool: callbacks that now end with false may try to submit
  // (read repair), which a stopped pool refuses.
  poller_.Stop();
}

std::string FanoutExecutor::RefusalReason() const {
  return stopping_ ? "node stopping" : Executor::RefusalReason();
}

bool FanoutExecutor::WhenReadable(int fd, std::chrono::milliseconds wait, std::function<void(bool ready)> on_ready) {
  return poller_.Watch(fd, wait, std::move(on_ready));
}

bool FanoutExecutor::Submit(std::function<void()> task) {
  // The bound is ours: ThreadManager's own limit needs add() with a negative
  // timeout, which only try-locks its mutex and fails under mere contention.
  if (outstanding_->fetch_add(1) >= max_queued_) {
    outstanding_->fetch_sub(1);
    return false;
  }
  auto counter = outstanding_;
  try {
    pool_->add(FunctionRunner::create([counter, task = std::move(task)] {
      struct Release {
        std::atomic<size_t>& n;
        ~Release() { n.fetch_sub(1); }
      } release{*counter};
      task();
    }));
    return true;
  } catch (const apache::thrift::TException&) {  // stopping
    outstanding_->fetch_sub(1);
    return false;
  }
}

}  // namespace monju
