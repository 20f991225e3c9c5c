#include "partition_streamer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/fixed_codec.h"
#include "common/thread_name.h"

namespace monju {

PartitionStreamer::PartitionStreamer(StreamSource* source, StreamSink* sink, const Clock* clock,
                                     StreamerOptions options)
    : source_(source), sink_(sink), clock_(clock), options_(options) {
  tokens_ = std::max(options_.bytes_per_second, 1.0);
  tokens_at_ = clock_->Now();
}

PartitionStreamer::~PartitionStreamer() { Stop(); }

std::string PartitionStreamer::ProgressKey(uint64_t epoch, uint32_t partition) {
  return "stream/" + std::to_string(epoch) + "/" + std::to_string(partition);
}

std::string PartitionStreamer::EncodeProgress(const TaskState& t) {
  std::string out;
  fixed::PutU32(out, static_cast<uint32_t>(t.sources.size()));
  for (const auto& s : t.sources) {
    fixed::PutBytes(out, s.id);
    fixed::PutBytes(out, s.cursor);
    out.push_back(s.done ? 1 : 0);
  }
  return out;
}

void PartitionStreamer::DecodeProgress(const std::string& bytes, TaskState* t) {
  size_t pos = 0;
  uint32_t n = 0;
  if (!fixed::GetU32(bytes, pos, n) || n > 64) return;
  for (uint32_t i = 0; i < n; ++i) {
    std::string id, cursor;
    if (!fixed::GetBytes(bytes, pos, id) || !fixed::GetBytes(bytes, pos, cursor) || pos >= bytes.size()) return;
    const bool done = bytes[pos++] != 0;
    for (auto& s : t->sources)
      if (s.id == id) {
        s.cursor = cursor;
        s.done = done;
      }
  }
}

uint32_t PartitionStreamer::CompletedSources(const TaskState& t) const {
  return static_cast<uint32_t>(std::count_if(t.sources.begin(), t.sources.end(), [](const auto& s) { return s.done; }));
}

void PartitionStreamer::Assign(uint64_t change_epoch, std::vector<StreamTask> tasks) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (change_epoch == 0) {
      // No change streams now: stop, but keep the last one's report.
      if (active_) ++generation_;
      active_ = false;
      return;
    }
    if (active_ && change_epoch == epoch_ && tasks.size() == tasks_.size()) return;  // the same change
    active_ = true;
    ++generation_;
    epoch_ = change_epoch;
    tasks_.clear();
    for (auto& task : tasks) {
      TaskState t;
      for (const auto& id : task.sources) t.sources.push_back({id, "", false, {}});
      t.task = std::move(task);
      tasks_.push_back(std::move(t));
    }
    items_ = bytes_ = 0;
    waiting_for_.clear();
    started_ = clock_->Now();
    finished_.reset();
    if (!tasks_.empty())
      spdlog::info("streaming: {} partitions to copy for the change of epoch {}", tasks_.size(), change_epoch);
  }
  wake_.notify_all();
}

std::optional<Clock::TimePoint> PartitionStreamer::Step() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!active_) return std::nullopt;
  auto task = std::find_if(tasks_.begin(), tasks_.end(), [](const TaskState& t) { return !t.done; });
  if (task == tasks_.end()) {
    if (!tasks_.empty() && !finished_) {
      finished_ = clock_->Now();
      waiting_for_.clear();
      spdlog::info("streaming: all {} partitions of the change of epoch {} copied ({} items, {} bytes)",
                   tasks_.size(), epoch_, items_, bytes_);
    }
    return std::nullopt;
  }
  const uint64_t generation = generation_;
  const uint64_t epoch = epoch_;
  const uint32_t partition = task->task.partition;
  const auto now = clock_->Now();

  if (!task->loaded) {
    std::string saved;
    lock.unlock();
    Status s = sink_->LoadProgress(ProgressKey(epoch, partition), &saved);
    lock.lock();
    if (generation != generation_) return clock_->Now();
    if (s.ok()) DecodeProgress(saved, &*task);
    task->loaded = true;
  }
  // Done once every source that is up was copied, and at least `required`.
  const uint32_t completed = CompletedSources(*task);
  bool finished = completed >= task->task.required;
  for (const auto& s : task->sources) finished = finished && (s.done || !source_->Alive(s.id));
  if (finished) {
    task->done = true;
    return now;
  }

  // Rate limit.
  const double rate = std::max(options_.bytes_per_second, 1.0);
  if (now > tokens_at_) {
    tokens_ = std::min(rate, tokens_ + std::chrono::duration<double>(now - tokens_at_).count() * rate);
    tokens_at_ = now;
  }
  if (tokens_ < 0) {
    return now + std::chrono::duration_cast<Clock::TimePoint::duration>(std::chrono::duration<double>(-tokens_ / rate));
  }

  // The first source not copied yet that may be asked now.
  SourceState* src = nullptr;
  std::optional<Clock::TimePoint> earliest;
  std::string unreachable;
  for (auto& s : task->sources) {
    if (s.done) continue;
    if (s.retry_at > now || !source_->Alive(s.id)) {
      const auto at = std::max(s.retry_at, now + options_.retry_after);
      earliest = earliest ? std::min(*earliest, at) : at;
      unreachable += (unreachable.empty() ? "" : ", ") + s.id;
      continue;
    }
    src = &s;
    break;
  }
  if (!src) {
    waiting_for_ = "partition " + std::to_string(partition) + ": sources unreachable (" + unreachable + ")";
    return earliest.value_or(now + options_.retry_after);
  }
  const std::string source_id = src->id;
  const std::string cursor = src->cursor;
  lock.unlock();

  StreamChunkData chunk;
  Status s = source_->Fetch(source_id, epoch, partition, cursor, options_.max_items_per_chunk,
                            options_.max_bytes_per_chunk, &chunk);
  uint64_t chunk_bytes = 0;
  for (const auto& item : chunk.items) chunk_bytes += item.pk.size() + item.sk.size() + item.siblings.size();
  if (s.ok() && !chunk.items.empty()) s = sink_->Apply(partition, chunk.items);
  std::string saved;
  lock.lock();
  if (generation != generation_) return clock_->Now();
  // `task` and `src` are still valid: tasks_ only changes with the generation.
  if (!s.ok()) {
    src->retry_at = clock_->Now() + options_.retry_after;
    waiting_for_ = "partition " + std::to_string(partition) + " from " + source_id + ": " + s.ToString();
    spdlog::warn("streaming: {}", waiting_for_);
    return clock_->Now();
  }
  src->cursor = chunk.next_cursor;
  src->done = chunk.done;
  items_ += chunk.items.size();
  bytes_ += chunk_bytes;
  tokens_ -= static_cast<double>(chunk_bytes);
  waiting_for_.clear();
  saved = EncodeProgress(*task);
  lock.unlock();
  Status saved_status = sink_->SaveProgress(ProgressKey(epoch, partition), saved);
  if (!saved_status.ok()) spdlog::warn("streaming: cannot save progress: {}", saved_status.ToString());
  return clock_->Now();
}

StreamReport PartitionStreamer::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  StreamReport r;
  r.change_epoch = epoch_;
  r.partitions_total = static_cast<uint32_t>(tasks_.size());
  for (const auto& t : tasks_) r.partitions_done += t.done ? 1 : 0;
  r.items = items_;
  r.bytes = bytes_;
  r.done = r.partitions_done == r.partitions_total;
  r.waiting_for = waiting_for_;
  const auto end = finished_ ? *finished_ : clock_->Now();
  if (epoch_ != 0)
    r.elapsed_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(end - started_).count());
  return r;
}

void PartitionStreamer::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    for (;;) {
      std::optional<Clock::TimePoint> next = Step();
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      const uint64_t generation = generation_;
      const auto until = next.value_or(clock_->Now() + std::chrono::seconds(1));
      while (!stopping_ && generation == generation_ && clock_->Now() < until) clock_->WaitUntil(wake_, lock, until);
      if (stopping_) return;
    }
  });
  NameThread(thread_, "part-streamer");
}

void PartitionStreamer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace monju
