#include "scheduler.h"
#include "common/thread_name.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

namespace monju {
namespace {

int64_t Millis(Clock::TimePoint::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

SchedulerOptions Sanitized(SchedulerOptions o) {
  o.max_concurrent = std::max<uint32_t>(o.max_concurrent, 1);
  o.retry_after = std::max(o.retry_after, std::chrono::milliseconds(1));
  if (o.interval.count() > 0) o.retry_after = std::min(o.retry_after, o.interval);
  return o;
}

constexpr auto kMaxIdle = std::chrono::seconds(1);

}  // namespace

// Cancellation and the shared byte budget, for one exchange.
class AntiEntropyScheduler::Control final : public ExchangeControl {
 public:
  Control(AntiEntropyScheduler* s, bool manual) : s_(s), manual_(manual) {}
  bool Cancelled() override { return s_->stop_flag_.load() || (!manual_ && s_->paused_.load()); }
  void Spend(size_t bytes) override {
    const auto wait = s_->throttle_.Take(bytes);
    if (wait > Clock::TimePoint::duration::zero()) s_->Sleep(wait);
  }

 private:
  AntiEntropyScheduler* const s_;
  const bool manual_;
};

AntiEntropyScheduler::AntiEntropyScheduler(ExchangePeer* local, uint32_t format, PartitionTrees* trees,
                                           ExchangeDirectory* directory, const Clock* clock, SchedulerOptions options)
    : local_(local),
      format_(format),
      trees_(trees),
      directory_(directory),
      clock_(clock),
      options_(Sanitized(options)),
      throttle_(clock, options_.bytes_per_second),
      started_(clock->Now()) {}

AntiEntropyScheduler::~AntiEntropyScheduler() { Stop(); }

void AntiEntropyScheduler::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_workers_ || stopping_) return;
  started_workers_ = true;
  if (options_.interval.count() <= 0) return;
  for (uint32_t i = 0; i < options_.max_concurrent; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
    NameThread(workers_.back(), "anti-entropy-" + std::to_string(i));
  }
}

void AntiEntropyScheduler::Stop() {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    stop_flag_.store(true);
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (auto& t : workers)
    if (t.joinable()) t.join();
}

bool AntiEntropyScheduler::SetPaused(bool paused) {
  const bool was = paused_.exchange(paused);
  if (was != paused) spdlog::info("anti-entropy: background exchanges {}", paused ? "paused" : "resumed");
  cv_.notify_all();
  return was;
}

void AntiEntropyScheduler::Sleep(Clock::TimePoint::duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, d, [this] { return stopping_; });
}

bool AntiEntropyScheduler::AcquireSlot() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stopping_ || running_ < options_.max_concurrent; });
  if (stopping_) return false;
  ++running_;
  return true;
}

void AntiEntropyScheduler::ReleaseSlot() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
  }
  cv_.notify_all();
}

void AntiEntropyScheduler::RefreshLayout() {
  const uint64_t id = directory_->LayoutId();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (layout_id_ == id) return;
  }
  // Listed without the lock (the directory may take its own). Should the
  // layout change meanwhile, the next pick sees a new id and lists again.
  Plan plan;
  for (uint32_t p : directory_->OwnedPartitions()) plan.emplace_back(p, directory_->CoOwners(p));
  std::lock_guard<std::mutex> lock(mu_);
  if (layout_id_ == id) return;  // another worker listed it
  // A listing older than one another worker installed meanwhile is dropped.
  if (directory_->LayoutId() != id) return;
  layout_id_ = id;
  waiting_.clear();
  due_.clear();
  for (auto& [key, st] : pairs_) {
    st.queue = Queue::kNone;
    st.planned = false;
  }
  for (const auto& [partition, peers] : plan) {
    for (uint32_t rank = 0; rank < peers.size(); ++rank) {
      PairState& st = pairs_[{partition, peers[rank]}];
      st.planned = true;
      st.rank = rank;
    }
  }
  // Pairs no longer in the layout keep their history (a pair that comes
  // back is not new), out of the queues.
  for (auto& [key, st] : pairs_) Requeue(key, st);
}

void AntiEntropyScheduler::Dequeue(const PairKey& key, PairState& st) {
  if (st.queue == Queue::kWaiting) {
    waiting_.erase({st.queued_at, key});
  } else if (st.queue == Queue::kDue) {
    auto it = due_.find(key.second);
    if (it != due_.end()) {
      it->second.erase(DueEntry{st.queued_at, key.first, st.rank});
      if (it->second.empty()) due_.erase(it);
    }
  }
  st.queue = Queue::kNone;
}

void AntiEntropyScheduler::Requeue(const PairKey& key, PairState& st) {
  Dequeue(key, st);
  if (st.running || !st.planned) return;
  if (st.attempted) {
    // Due or not, PickDue() moves it on when its time has come.
    st.queue = Queue::kWaiting;
    st.queued_at = st.DueAt(options_);
    waiting_.emplace(st.queued_at, key);
  } else {
    st.queue = Queue::kDue;
    st.queued_at = st.SuccessKey();
    due_[key.second].emplace(st.queued_at, key.first, st.rank);
  }
}

bool AntiEntropyScheduler::PickDue(PairKey* pick, Clock::TimePoint::duration* wait) {
  *wait = kMaxIdle;
  if (paused_.load() || options_.interval.count() <= 0) return false;
  RefreshLayout();
  const auto now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  // Pairs whose time has come join their peer's due queue.
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    const PairKey key = waiting_.begin()->second;
    PairState& st = pairs_.at(key);
    waiting_.erase(waiting_.begin());
    st.queue = Queue::kDue;
    st.queued_at = st.SuccessKey();
    due_[key.second].emplace(st.queued_at, key.first, st.rank);
  }
  if (!waiting_.empty()) *wait = std::min<Clock::TimePoint::duration>(*wait, waiting_.begin()->first - now);
  // The head of each live peer's queue; of those, the one exchanged least
  // recently (then the lowest partition, then the first co-owner).
  const std::string* best_peer = nullptr;
  DueEntry best;
  for (const auto& [peer, queue] : due_) {
    const DueEntry& head = *queue.begin();
    if (best_peer && !(head < best)) continue;
    if (!directory_->PeerAlive(peer)) continue;
    best = head;
    best_peer = &peer;
  }
  if (!best_peer) return false;
  *pick = {std::get<1>(best), *best_peer};
  PairState& st = pairs_.at(*pick);
  Dequeue(*pick, st);
  st.running = true;
  return true;
}

bool AntiEntropyScheduler::RunNextDue() {
  PairKey pick;
  Clock::TimePoint::duration wait;
  if (!PickDue(&pick, &wait)) return false;
  RunPair(pick.first, pick.second, false);
  return true;
}

void AntiEntropyScheduler::WorkerLoop() {
  while (!stop_flag_.load()) {
    PairKey pick;
    Clock::TimePoint::duration wait;
    if (PickDue(&pick, &wait)) {
      RunPair(pick.first, pick.second, false);
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::max<Clock::TimePoint::duration>(wait, std::chrono::milliseconds(1)),
                 [this] { return stopping_; });
  }
}

void AntiEntropyScheduler::CheckTree(uint32_t partition, bool force, uint64_t* rebuilt) {
  const auto now = clock_->Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = verified_at_.find(partition);
    const Clock::TimePoint last = it == verified_at_.end() ? started_ : it->second;
    if (!force && trees_->Ready(partition) && now - last < options_.verify_interval) return;
  }
  auto differed = trees_->Rebuild(partition);
  if (!differed.ok()) {
    spdlog::warn("anti-entropy: could not check the tree of partition {}: {}", partition,
                 differed.status().ToString());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  verified_at_[partition] = now;
  if (differed.value()) {
    ++counters_.trees_rebuilt;
    if (rebuilt) ++*rebuilt;
  }
}

ExchangeReport AntiEntropyScheduler::RunPair(uint32_t partition, const std::string& peer, bool manual) {
  ExchangeReport report;
  report.partition = partition;
  report.peer = peer;
  auto finish = [&](bool ran) {
    std::lock_guard<std::mutex> lock(mu_);
    const PairKey key{partition, peer};
    PairState& st = pairs_[key];
    if (!manual) st.running = false;
    if (ran) {
      st.attempted = true;
      st.last_attempt = clock_->Now();
      st.failed_last = !report.stats.status.ok();
      if (report.stats.status.ok()) {
        st.succeeded = true;
        st.last_success = st.last_attempt;
      }
    }
    // A manual run moves the pair's next background exchange too.
    Requeue(key, st);
  };
  if (!AcquireSlot()) {
    report.stats.status = Status::ShuttingDown("anti-entropy is stopping");
    finish(false);
    return report;
  }
  if (!manual) CheckTree(partition, false, nullptr);
  ExchangePeer* remote = directory_->Peer(peer);
  const auto t0 = clock_->Now();
  if (!remote) {
    report.stats.status = Status::InvalidArgument(peer + " is not a member");
  } else {
    Control control(this, manual);
    report.stats = RunExchange(partition, format_, *local_, *remote, &control, options_.limits);
  }
  report.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - t0);
  ReleaseSlot();
  const bool cancelled = report.stats.status.Is(Status::Code::kUnavailable) && stop_flag_.load();
  finish(!cancelled);
  Record(report, manual);
  return report;
}

void AntiEntropyScheduler::Record(const ExchangeReport& r, bool manual) {
  const ExchangeStats& s = r.stats;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SchedulerStats& c = counters_;
    ++c.exchanges;
    if (!s.status.ok()) ++c.exchanges_failed;
    if (s.different) ++c.partitions_different;
    c.leaves_different += s.leaves_different;
    c.keys_different += s.keys_different;
    c.keys_sent += s.keys_sent;
    c.keys_received += s.keys_received;
    c.versions_sent += s.versions_sent;
    c.versions_received += s.versions_received;
    c.bytes_sent += s.bytes_sent;
    c.bytes_received += s.bytes_received;
    c.withheld += s.withheld;
    const uint64_t ms = static_cast<uint64_t>(r.elapsed.count());
    c.exchange_ms_total += ms;
    c.exchange_ms_max = std::max(c.exchange_ms_max, ms);
    c.exchange_ms_last = ms;
  }
  const char* how = manual ? "repair" : "anti-entropy";
  if (!s.status.ok()) {
    spdlog::warn("{}: partition {} with {} failed after {} ms: {}", how, r.partition, r.peer, r.elapsed.count(),
                 s.status.ToString());
  } else if (s.different) {
    spdlog::info("{}: partition {} with {}: {} leaves and {} keys differed; sent {} keys ({} versions), received {} "
                 "keys ({} versions), {} withheld; {} bytes out, {} in, {} ms",
                 how, r.partition, r.peer, s.leaves_different, s.keys_different, s.keys_sent, s.versions_sent,
                 s.keys_received, s.versions_received, s.withheld, s.bytes_sent, s.bytes_received, r.elapsed.count());
  } else {
    spdlog::debug("{}: partition {} with {}: in sync ({} ms)", how, r.partition, r.peer, r.elapsed.count());
  }
}

StatusOr<RepairReport> AntiEntropyScheduler::RunNow(std::optional<uint32_t> partition, const std::string& peer) {
  if (stop_flag_.load()) return Status::ShuttingDown("anti-entropy is stopping");
  const std::vector<uint32_t> owned = directory_->OwnedPartitions();
  std::vector<uint32_t> partitions;
  if (partition) {
    if (!std::binary_search(owned.begin(), owned.end(), *partition))
      return Status::InvalidArgument("partition " + std::to_string(*partition) + " is not replicated by this node");
    partitions.push_back(*partition);
  } else {
    partitions = owned;
  }
  std::vector<std::pair<uint32_t, std::string>> plan;
  for (uint32_t p : partitions) {
    for (const std::string& q : directory_->CoOwners(p))
      if (peer.empty() || q == peer) plan.emplace_back(p, q);
  }
  if (!peer.empty() && plan.empty())
    return Status::InvalidArgument(peer + " is not a co-owner of " +
                                   (partition ? "partition " + std::to_string(*partition)
                                              : std::string("any partition replicated by this node")));
  RepairReport report;
  const auto t0 = clock_->Now();
  uint32_t checked = std::numeric_limits<uint32_t>::max();
  for (const auto& [p, q] : plan) {
    if (stop_flag_.load()) return Status::ShuttingDown("anti-entropy is stopping");
    if (p != checked) {
      CheckTree(p, true, &report.trees_rebuilt);
      checked = p;
    }
    report.exchanges.push_back(RunPair(p, q, true));
  }
  report.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - t0);
  return report;
}

SchedulerStats AntiEntropyScheduler::stats() const {
  const std::vector<uint32_t> owned = directory_->OwnedPartitions();
  std::vector<std::vector<std::string>> co_owners;
  co_owners.reserve(owned.size());
  for (uint32_t p : owned) co_owners.push_back(directory_->CoOwners(p));
  const auto now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  SchedulerStats s = counters_;
  s.running = running_;
  s.paused = paused_.load();
  Clock::TimePoint oldest = now;
  for (size_t i = 0; i < owned.size(); ++i) {
    if (co_owners[i].empty()) continue;
    Clock::TimePoint full = now;  // when every co-owner last exchanged successfully
    bool never = false;
    for (const std::string& q : co_owners[i]) {
      auto it = pairs_.find({owned[i], q});
      if (it == pairs_.end() || !it->second.succeeded) {
        never = true;
        full = std::min(full, started_);
      } else {
        full = std::min(full, it->second.last_success);
      }
    }
    if (never) ++s.partitions_never_exchanged;
    oldest = std::min(oldest, full);
  }
  s.oldest_partition_age_ms = Millis(now - oldest);
  return s;
}

}  // namespace monju
