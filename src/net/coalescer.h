// Coalescer: the calls this node's coordinator makes to one peer (writes,
// reads), carried by as few network calls as the load allows.
//
// An item submitted while fewer than max_senders calls to the peer are out
// leaves at once, alone, so an idle link adds no wait. Items submitted while
// max_senders calls are out queue, and leave together (up to max_batch_items
// and max_batch_bytes) as soon as one of those calls returns. Under load a
// call then carries many items, which saves this node and the peer a send, a
// receive and a thread wake-up per item; the peer commits writes together.
//
// Every item is completed exactly once (by the send function, or with
// Fail() when no sender will carry it), on an executor thread or, for
// Fail(), the submitting one.
//
// With a start function (calls that do not block: peer_link.h), a batch
// leaves from the thread that submits its first item or that completed the
// call before it, and nothing waits for the reply; the send function, on
// the executor, then only carries what the start function declines.
//
// Item: movable, with `size_t bytes() const` (its size on the wire) and
// `void Fail(const Status&)` (completes it with an error; quick).
//
// Thread safety: Submit() may be called from any thread. The coalescer must
// outlive its executor's tasks: stop the executor first.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/status.h"
#include "coordinator.h"

namespace monju {

struct CoalescerOptions {
  size_t max_senders = 2;            // calls out to the peer at once (1, 2 and 4 measured: docs/design.md)
  size_t max_batch_items = 256;      // items per call
  size_t max_batch_bytes = 1 << 20;  // per call (one larger item still goes, alone)
  size_t max_queued = 4096;          // items waiting; more are refused
  // Batches one executor task sends before it hands its place back (queues
  // a new task), so that senders under steady load do not keep executor
  // threads from other work.
  size_t batches_per_task = 4;
};

struct CoalescerStats {
  uint64_t calls = 0;  // batches sent
  uint64_t items = 0;  // items they carried
};

template <typename Item>
class Coalescer {
 public:
  // Sends one call carrying `batch` and completes every item of it. Runs on
  // an executor thread.
  using SendFn = std::function<void(std::vector<Item>& batch)>;

  // Starts one call carrying `batch` without blocking, and calls `finished`
  // once the call is over (each item completed, or handed to a thread that
  // will complete it), on another thread and never inside the start
  // function. False when it cannot start the call now: `batch` is then
  // untouched and `finished` dropped.
  using StartFn = std::function<bool(std::vector<Item>& batch, std::function<void()> finished)>;

  // `executor` runs the senders; it must outlive the coalescer's use.
  Coalescer(CoalescerOptions options, Executor* executor, SendFn send, StartFn start = nullptr)
      : options_(options), executor_(executor), send_(std::move(send)), start_(std::move(start)) {}
  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  // Queues the item for sending. False when max_queued items already wait or
  // the executor refused to start a sender: the item is then not completed
  // (the caller decides), and items that only that sender would have carried
  // fail with Unavailable.
  bool Submit(Item item) {
    uint64_t id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.size() >= options_.max_queued) return false;
      id = next_id_++;
      queue_.push_back(Queued{id, std::move(item)});
      if (senders_ >= options_.max_senders) return true;  // a running sender takes it
      ++senders_;
    }
    if (start_ && StartNext()) return true;
    if (executor_->Submit([this] { SendLoop(); })) return true;

    // No sender started: take this item back, and fail the ones no other
    // sender will carry.
    std::vector<Item> orphans;
    bool taken_back = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto mine = std::find_if(queue_.begin(), queue_.end(), [id](const Queued& q) { return q.id == id; });
      if (mine != queue_.end()) {
        queue_.erase(mine);
        taken_back = true;
      }
      orphans = GiveUpPlaceLocked();
    }
    // Their completions run here, on the submitting thread (no lock held).
    FailOrphans(orphans);
    // Another sender may already carry it; then it will be completed.
    return !taken_back;
  }

  CoalescerStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  size_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  struct Queued {
    uint64_t id;
    Item item;
  };

  // Takes the next batch off the queue (the caller holds mu_).
  std::vector<Queued> TakeBatchLocked() {
    std::vector<Queued> batch;
    size_t bytes = 0;
    while (!queue_.empty() && batch.size() < options_.max_batch_items) {
      const size_t size = queue_.front().item.bytes();
      if (!batch.empty() && bytes + size > options_.max_batch_bytes) break;
      bytes += size;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    ++stats_.calls;
    stats_.items += batch.size();
    return batch;
  }

  // A sender's place is held: starts a call with the next batch. False when
  // the queue is empty (the place is then given up) or the start function
  // declined (the batch is back at the front of the queue, the place still
  // held).
  bool StartNext() {
    std::vector<Queued> taken;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) {
        --senders_;
        return true;
      }
      taken = TakeBatchLocked();
    }
    std::vector<Item> batch;
    batch.reserve(taken.size());
    for (auto& q : taken) batch.push_back(std::move(q.item));
    bool started = false;
    try {
      started = start_(batch, [this] { Finished(); });
    } catch (const std::exception& e) {
      spdlog::error("starting a coalesced peer call failed: {}", e.what());  // the executor sends it
    }
    if (started) return true;
    std::lock_guard<std::mutex> lock(mu_);
    --stats_.calls;
    stats_.items -= taken.size();
    for (size_t i = taken.size(); i-- > 0;) {
      taken[i].item = std::move(batch[i]);
      queue_.push_front(std::move(taken[i]));
    }
    return false;
  }

  // A started call ended: its place carries the next batch, on this thread
  // or, when the start function declines, on the executor.
  void Finished() {
    if (StartNext()) return;
    if (executor_->Submit([this] { SendLoop(); })) return;
    std::vector<Item> orphans;
    {
      std::lock_guard<std::mutex> lock(mu_);
      orphans = GiveUpPlaceLocked();
    }
    FailOrphans(orphans);
  }

  // A sender's place is given up; when it was the last, the queued items
  // are taken out, as no sender will carry them (the caller fails them
  // once mu_ is released).
  std::vector<Item> GiveUpPlaceLocked() {
    std::vector<Item> orphans;
    if (--senders_ > 0) return orphans;
    for (auto& q : queue_) orphans.push_back(std::move(q.item));
    queue_.clear();
    return orphans;
  }

  static void FailOrphans(std::vector<Item>& orphans) {
    for (auto& orphan : orphans) {
      try {
        orphan.Fail(Status::Unavailable("node overloaded or stopping: no thread to send on"));
      } catch (const std::exception& e) {
        spdlog::error("failing a coalesced peer call failed: {}", e.what());
      }
    }
  }

  // A sender: sends batches while items wait, then ends. After
  // batches_per_task it continues as a new task (or here, when the executor
  // refuses one).
  void SendLoop() {
    for (size_t sent = 0;; ++sent) {
      // The new task keeps this one's place among the senders.
      if (sent >= options_.batches_per_task && executor_->Submit([this] { SendLoop(); })) return;
      // A call that needs no thread, when the start function takes it now.
      if (start_ && StartNext()) return;
      std::vector<Item> batch;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) {
          --senders_;
          return;
        }
        for (auto& q : TakeBatchLocked()) batch.push_back(std::move(q.item));
      }
      try {
        send_(batch);
      } catch (const std::exception& e) {
        // The send function completes what it can before anything throws;
        // this only keeps the sender count right.
        spdlog::error("coalesced peer call failed unexpectedly: {}", e.what());
      }
    }
  }

  const CoalescerOptions options_;
  Executor* const executor_;
  const SendFn send_;
  const StartFn start_;  // may be null
  mutable std::mutex mu_;
  std::deque<Queued> queue_;
  size_t senders_ = 0;
  uint64_t next_id_ = 0;
  CoalescerStats stats_;
};

}  // namespace monju
