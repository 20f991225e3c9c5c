#include "executor.h"

#include <thrift/concurrency/FunctionRunner.h>
#include <thrift/concurrency/ThreadFactory.h>

namespace monju {

using namespace apache::thrift::concurrency;

FanoutExecutor::FanoutExecutor(size_t threads, size_t max_pending)
    : pool_(ThreadManager::newSimpleThreadManager(threads, max_pending)) {
  pool_->threadFactory(std::make_shared<ThreadFactory>());
  pool_->start();
}

FanoutExecutor::~FanoutExecutor() { Stop(); }

void FanoutExecutor::Stop() {
  if (pool_->state() == ThreadManager::STARTED) pool_->stop();
}

bool FanoutExecutor::Submit(std::function<void()> task) {
  try {
    // timeout -1: throw at once instead of blocking when the queue is full.
    pool_->add(FunctionRunner::create(std::move(task)), -1);
    return true;
  } catch (const TooManyPendingTasksException&) {
    return false;
  } catch (const IllegalStateException&) {
    return false;
  }
}

}  // namespace monju
