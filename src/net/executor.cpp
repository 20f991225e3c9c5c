#include "executor.h"
#include "common/thread_name.h"

#include <pthread.h>

#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

namespace monju {

FanoutExecutor::FanoutExecutor(size_t threads, size_t max_queued, std::string name)
    : max_queued_(max_queued), name_(std::move(name)) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Work(); });
    NameThread(threads_.back(), name_ + "-" + std::to_string(i));
  }
}

FanoutExecutor::~FanoutExecutor() { Stop(); }

void FanoutExecutor::Stop() {
  stopping_ = true;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

std::string FanoutExecutor::RefusalReason() const {
  return stopping_ ? "node stopping" : "node overloaded: " + name_ + " queue full";
}

bool FanoutExecutor::Submit(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (closing_ || outstanding_ >= max_queued_) return false;
  ++outstanding_;
  queue_.push_back(std::move(task));
  return true;  // the unlock wakes one idle thread, whose condition now holds
}

void FanoutExecutor::Work() {
  auto ready = [this] { return closing_ || !queue_.empty(); };
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_, absl::Condition(&ready));
      if (queue_.empty()) return;  // closing, and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("{} task failed: {}", name_, e.what());
    } catch (...) {
      spdlog::error("{} task failed with a non-standard exception", name_);
    }
    task = nullptr;  // its captures go before the slot is given back
    absl::MutexLock lock(&mu_);
    --outstanding_;
  }
}

}  // namespace monju
