// ApplyCoalescer: the writes this node's coordinator sends one peer, carried
// by as few calls as the load allows.
//
// A write submitted while fewer than max_senders calls to the peer are out
// leaves at once, alone, so an idle link adds no wait. Writes submitted while
// max_senders calls are out queue, and leave together (up to max_batch_items
// and max_batch_bytes) as soon as one of those calls returns. Under load a
// call then carries many writes, which saves this node and the peer a send,
// a receive and a thread wake-up per write; the peer commits them together.
//
// Each write's `done` is called exactly once, with that write's outcome (or
// the error of the call that carried it), on an executor thread; it must be
// quick and must not block on another write. Nothing is sent from the
// submitting thread.
//
// Thread safety: Submit() may be called from any thread. The coalescer must
// outlive its executor's tasks: stop the executor first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator.h"

namespace monju {

class ApplyCoalescer {
 public:
  struct Options {
    size_t max_senders = 2;            // calls out to the peer at once (1, 2 and 4 measured: docs/design.md)
    size_t max_batch_items = 256;      // writes per call
    size_t max_batch_bytes = 1 << 20;  // keys and versions per call (one larger write still goes alone)
    size_t max_queued = 4096;          // writes waiting; more are refused
  };
  struct Write {
    std::shared_ptr<const ItemKey> key;
    std::string version;  // encoded
    std::function<void(Status)> done;
  };
  // Sends one call carrying `writes` and returns one status per write, in
  // order (every one the call's error when it failed as a whole). Runs on an
  // executor thread, one batch per call.
  using SendFn = std::function<std::vector<Status>(const std::vector<Write>& writes)>;

  struct Stats {
    uint64_t calls = 0;   // batches sent
    uint64_t writes = 0;  // writes they carried
  };

  // `executor` runs the senders; it must outlive the coalescer's use.
  ApplyCoalescer(Options options, Executor* executor, SendFn send);
  ApplyCoalescer(const ApplyCoalescer&) = delete;
  ApplyCoalescer& operator=(const ApplyCoalescer&) = delete;

  // Queues the write for sending. False when max_queued writes already wait
  // or the executor refused to start a sender: `done` is then never called
  // (and writes that only that sender would have carried fail with
  // Unavailable).
  bool Submit(Write write);

  Stats stats() const;
  size_t queued() const;

 private:
  struct Queued {
    uint64_t id;
    Write write;
  };
  // A sender: sends batches while writes wait, then ends.
  void SendLoop();
  // Takes the next batch off the queue; the caller holds mu_.
  std::vector<Write> TakeBatchLocked();

  const Options options_;
  Executor* const executor_;
  const SendFn send_;
  mutable std::mutex mu_;
  std::deque<Queued> queue_;
  size_t senders_ = 0;
  uint64_t next_id_ = 0;
  Stats stats_;
};

}  // namespace monju
