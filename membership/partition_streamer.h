// PartitionStreamer: copies the partitions this node gains in a membership
// change from their old owners (placement.h StreamTasksFor), while writes
// already come to it directly (the pending placement).
//
// Contract
// - A partition is done once every source that is up, and at least
//   `required` of them, were copied in full (a range scan, chunk by chunk, in
//   storage order): a write acknowledged by W old owners is on at least one
//   of `required`, and copying the others too covers writes whose copy on an
//   owner was a hint at the time. Items are merged into the local replica by
//   clock (StreamSink), so copying from several sources, repeating a chunk or
//   racing new writes never loses a version.
// - Resumable: after every applied chunk the source's cursor is saved
//   durably (StreamSink::SaveProgress, keyed by change epoch and partition);
//   a restarted node continues where it was, and cursors are storage keys,
//   equal on every node, so a chunk from one source resumes on another. A
//   source that fails is left for another and retried after `retry_after`.
// - Rate-limited: a token bucket of `bytes_per_second` (one second's worth
//   at most) is spent by every chunk received.
// - Assign() switches to a new change at once; the work of an older one is
//   dropped (its saved progress stays, harmlessly). Assign(0, {}) stops
//   streaming (the change moved on or was aborted); Report() then still
//   describes the last change.
//
// Step() does at most one chunk and returns when to call it again, so that
// tests drive it on a fake clock; Start() runs it on a thread of its own.
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "change_driver.h"
#include "common/clock.h"
#include "membership_peers.h"
#include "placement.h"

namespace monju {

class StreamSource {
 public:
  virtual ~StreamSource() = default;
  virtual Status Fetch(const std::string& source_id, uint64_t epoch, uint32_t partition, const std::string& cursor,
                       uint32_t max_items, uint32_t max_bytes, StreamChunkData* out) = 0;
  // This node's failure-detector view of a source.
  virtual bool Alive(const std::string& source_id) = 0;
};

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Merges the items into the local replica; durable when OK.
  virtual Status Apply(uint32_t partition, const std::vector<StreamedItem>& items) = 0;
  // Small durable records; NotFound when absent.
  virtual Status LoadProgress(const std::string& key, std::string* value) = 0;
  virtual Status SaveProgress(const std::string& key, const std::string& value) = 0;
};

struct StreamerOptions {
  double bytes_per_second = 32.0 * (1 << 20);
  uint32_t max_items_per_chunk = 1000;
  uint32_t max_bytes_per_chunk = 1 << 20;
  std::chrono::milliseconds retry_after{500};
};

class PartitionStreamer {
 public:
  // Does not own its arguments.
  PartitionStreamer(StreamSource* source, StreamSink* sink, const Clock* clock, StreamerOptions options);
  ~PartitionStreamer();

  void Assign(uint64_t change_epoch, std::vector<StreamTask> tasks);
  // nullopt: nothing to do until the next Assign().
  std::optional<Clock::TimePoint> Step();
  StreamReport Report() const;

  void Start();
  void Stop();

 private:
  struct SourceState {
    std::string id;
    std::string cursor;
    bool done = false;
    Clock::TimePoint retry_at{};
  };
  struct TaskState {
    StreamTask task;
    std::vector<SourceState> sources;
    bool loaded = false;
    bool done = false;
  };
  static std::string ProgressKey(uint64_t epoch, uint32_t partition);
  static std::string EncodeProgress(const TaskState& t);
  static void DecodeProgress(const std::string& bytes, TaskState* t);
  uint32_t CompletedSources(const TaskState& t) const;

  StreamSource* const source_;
  StreamSink* const sink_;
  const Clock* const clock_;
  const StreamerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  uint64_t generation_ = 0;  // bumped by Assign
  bool active_ = false;      // a change is streaming
  uint64_t epoch_ = 0;
  std::vector<TaskState> tasks_;
  uint64_t items_ = 0, bytes_ = 0;
  std::string waiting_for_;
  Clock::TimePoint started_{};
  std::optional<Clock::TimePoint> finished_;
  double tokens_ = 0;
  Clock::TimePoint tokens_at_{};

  std::thread thread_;
  bool stopping_ = false;
};

}  // namespace monju
