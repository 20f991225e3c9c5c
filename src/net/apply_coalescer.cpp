#include "apply_coalescer.h"

#include <algorithm>
#include <utility>

namespace monju {

ApplyCoalescer::ApplyCoalescer(Options options, Executor* executor, SendFn send)
    : options_(options), executor_(executor), send_(std::move(send)) {}

bool ApplyCoalescer::Submit(Write write) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= options_.max_queued) return false;
    id = next_id_++;
    queue_.push_back(Queued{id, std::move(write)});
    if (senders_ >= options_.max_senders) return true;  // a running sender takes it
    ++senders_;
  }
  if (executor_->Submit([this] { SendLoop(); })) return true;

  // No sender started: take this write back, and fail the writes no other
  // sender will carry.
  std::vector<Write> orphans;
  bool taken_back = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    --senders_;
    auto mine = std::find_if(queue_.begin(), queue_.end(), [id](const Queued& q) { return q.id == id; });
    if (mine != queue_.end()) {
      queue_.erase(mine);
      taken_back = true;
    }
    if (senders_ == 0) {
      for (auto& q : queue_) orphans.push_back(std::move(q.write));
      queue_.clear();
    }
  }
  for (auto& w : orphans) w.done(Status::Unavailable("node overloaded: fan-out queue full"));
  // Another sender may already carry it; then its `done` will be called.
  return !taken_back;
}

std::vector<ApplyCoalescer::Write> ApplyCoalescer::TakeBatchLocked() {
  std::vector<Write> batch;
  size_t bytes = 0;
  while (!queue_.empty() && batch.size() < options_.max_batch_items) {
    const Write& next = queue_.front().write;
    const size_t size = next.version.size() + next.key->pk.size() + next.key->sk.size();
    if (!batch.empty() && bytes + size > options_.max_batch_bytes) break;
    bytes += size;
    batch.push_back(std::move(queue_.front().write));
    queue_.pop_front();
  }
  return batch;
}

void ApplyCoalescer::SendLoop() {
  for (;;) {
    std::vector<Write> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) {
        --senders_;
        return;
      }
      batch = TakeBatchLocked();
      ++stats_.calls;
      stats_.writes += batch.size();
    }
    std::vector<Status> statuses = send_(batch);
    for (size_t i = 0; i < batch.size(); ++i)
      batch[i].done(i < statuses.size() ? statuses[i]
                                        : Status::IOError("the peer's answer covered fewer writes than were sent"));
  }
}

ApplyCoalescer::Stats ApplyCoalescer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t ApplyCoalescer::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace monju
