#include "hint_delivery.h"
#include "common/thread_name.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace monju {
namespace {

DeliveryOptions Sanitized(DeliveryOptions o) {
  o.max_batch = std::max<size_t>(o.max_batch, 1);
  o.idle_interval = std::max(o.idle_interval, std::chrono::milliseconds(1));  // never a busy loop
  o.backoff_max = std::max(o.backoff_max, std::chrono::milliseconds(0));
  o.backoff_initial = std::clamp(o.backoff_initial, std::chrono::milliseconds(0), o.backoff_max);
  return o;
}

int64_t Millis(Clock::TimePoint::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

HintDelivery::HintDelivery(HintStore* store, HintTarget* target, const Clock* clock, const WallClock* wall,
                           DeliveryOptions options)
    : store_(store),
      target_(target),
      clock_(clock),
      wall_(wall),
      options_(Sanitized(options)),
      // One second's worth, but at least one hint, or a rate below 1/s could never send.
      bucket_capacity_(std::max(options_.max_hints_per_second, 1.0)),
      tokens_(bucket_capacity_),
      tokens_at_(clock->Now()) {}

HintDelivery::~HintDelivery() { Stop(); }

void HintDelivery::RunOnce() {
  std::lock_guard<std::mutex> lock(run_mu_);
  const std::map<std::string, uint64_t> pending = store_->PendingByOwner();
  // Forget the backoff of owners with nothing left: the map stays bounded.
  for (auto it = backoff_.begin(); it != backoff_.end();)
    it = pending.count(it->first) ? std::next(it) : backoff_.erase(it);

  // Owners take turns: start where the last pass ran out of budget.
  std::vector<std::string> order;
  order.reserve(pending.size());
  const auto first = pending.lower_bound(resume_at_);
  for (auto it = first; it != pending.end(); ++it) order.push_back(it->first);
  for (auto it = pending.begin(); it != first; ++it) order.push_back(it->first);

  bool budget_left = true;
  for (const std::string& owner : order) {
    if (stopping_.load()) return;
    if (!ExpireOwner(owner) || !budget_left) continue;
    auto b = backoff_.find(owner);
    if (b != backoff_.end() && clock_->Now() < b->second.retry_at) continue;
    if (!target_->OwnerAlive(owner)) continue;
    size_t sent = 0;
    if (!DeliverToOwner(owner, &sent)) {
      budget_left = false;
      // Resume with this owner if it got nothing, else with the next one.
      resume_at_ = sent ? owner + '\0' : owner;
    }
  }
}

bool HintDelivery::ExpireOwner(const std::string& owner) {
  // Older than the ttl: age > ttl.
  const int64_t cutoff = wall_->UnixMillis() - options_.ttl.count();
  std::vector<StoredHint> stored;
  uint64_t dropped = 0;
  bool ok = true;
  while (ok && !stopping_.load()) {
    Status s = store_->Oldest(owner, options_.max_batch, &stored);
    if (!s.ok()) {
      RecordFailure(owner, s, "reading its hints");
      ok = false;
      break;
    }
    size_t i = 0;
    for (; i < stored.size() && stored[i].hint.created_unix_ms < cutoff; ++i) {
      s = store_->Remove(owner, stored[i].sequence);
      if (!s.ok()) {
        spdlog::error("hints for {}: cannot remove expired hint {}: {}", owner, stored[i].sequence, s.ToString());
        ok = false;
        break;
      }
      ++dropped;
      ++expired_;
    }
    // Stop at the first young hint, or when the owner has no more.
    if (i < stored.size() || stored.size() < options_.max_batch) break;
  }
  if (dropped)
    spdlog::warn("hints for {}: dropped {} older than the {} s ttl; anti-entropy repairs what they carried", owner,
                 dropped, options_.ttl.count() / 1000);
  return ok;
}

bool HintDelivery::DeliverToOwner(const std::string& owner, size_t* sent) {
  *sent = 0;
  std::vector<StoredHint> stored;
  std::vector<Hint> batch;
  for (;;) {
    if (stopping_.load()) return true;
    RefillTokens(clock_->Now());
    const size_t n = std::min(options_.max_batch, static_cast<size_t>(tokens_));
    if (n == 0) return false;
    Status s = store_->Oldest(owner, n, &stored);
    if (!s.ok()) {
      RecordFailure(owner, s, "reading its hints");
      return true;
    }
    if (stored.empty()) break;
    // Age is checked again for every batch: a long backlog must not deliver
    // a hint past its ttl (it could outlive the grace of a tombstone that
    // superseded it), nor trust that creation times follow sequence order.
    const int64_t cutoff = wall_->UnixMillis() - options_.ttl.count();
    std::vector<StoredHint> young;
    for (StoredHint& h : stored) {
      if (h.hint.created_unix_ms >= cutoff) {
        young.push_back(std::move(h));
        continue;
      }
      s = store_->Remove(owner, h.sequence);
      if (!s.ok()) {
        spdlog::error("hints for {}: cannot remove expired hint {}: {}", owner, h.sequence, s.ToString());
        return true;
      }
      ++expired_;
    }
    stored = std::move(young);
    if (stored.empty()) continue;
    batch.clear();
    for (const StoredHint& h : stored) batch.push_back(h.hint);
    tokens_ -= static_cast<double>(batch.size());  // spent even on failure: the owner got the load
    s = target_->Deliver(owner, batch);
    if (!s.ok()) {
      ++failed_batches_;
      RecordFailure(owner, s, "delivering a batch");
      return true;
    }
    RecordSuccess(owner);
    for (const StoredHint& h : stored) {
      s = store_->Remove(owner, h.sequence);
      if (!s.ok()) {
        // The owner has it; a later pass sends it again, which is harmless.
        spdlog::error("hints for {}: cannot remove delivered hint {}: {}", owner, h.sequence, s.ToString());
        return true;
      }
      ++delivered_;
      ++*sent;
    }
    if (stored.size() < n) break;
  }
  if (*sent && store_->PendingFor(owner) == 0)
    spdlog::info("hints for {}: backlog delivered ({} this pass)", owner, *sent);
  return true;
}

void HintDelivery::RecordFailure(const std::string& owner, const Status& why, const char* what) {
  OwnerBackoff& b = backoff_[owner];
  const Duration initial = options_.backoff_initial, max = options_.backoff_max;
  b.delay = b.failures == 0 ? initial : std::min<Duration>(2 * b.delay, max);
  b.retry_at = clock_->Now() + b.delay;
  ++b.failures;
  // Warn when a streak starts; the rest of it is noise.
  if (b.failures == 1)
    spdlog::warn("hints for {}: {} failed: {}; retrying in {} ms", owner, what, why.ToString(), Millis(b.delay));
  else
    spdlog::debug("hints for {}: {} failed ({} in a row): {}; retrying in {} ms", owner, what, b.failures,
                  why.ToString(), Millis(b.delay));
}

void HintDelivery::RecordSuccess(const std::string& owner) {
  auto it = backoff_.find(owner);
  if (it == backoff_.end()) return;
  spdlog::info("hints for {}: delivering again after {} failed attempts", owner, it->second.failures);
  backoff_.erase(it);
}

void HintDelivery::RefillTokens(Clock::TimePoint now) {
  if (now <= tokens_at_) return;
  const double seconds = std::chrono::duration<double>(now - tokens_at_).count();
  tokens_ = std::min(bucket_capacity_, tokens_ + seconds * options_.max_hints_per_second);
  tokens_at_ = now;
}

void HintDelivery::Start() {
  std::lock_guard<std::mutex> lock(thread_mu_);
  if (thread_.joinable() || stopping_.load()) return;
  thread_ = std::thread([this] { Loop(); });
  NameThread(thread_, "hint-delivery");
}

void HintDelivery::Stop() {
  std::lock_guard<std::mutex> lock(thread_mu_);
  {
    std::lock_guard<std::mutex> wake(wake_mu_);
    stopping_.store(true);
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HintDelivery::Notify() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    notified_ = true;
  }
  wake_cv_.notify_one();
}

DeliveryStats HintDelivery::stats() const {
  DeliveryStats s;
  s.delivered = delivered_.load();
  s.expired = expired_.load();
  s.failed_batches = failed_batches_.load();
  return s;
}

void HintDelivery::Loop() {
  while (!stopping_.load()) {
    RunOnce();
    std::unique_lock<std::mutex> lock(wake_mu_);
    wake_cv_.wait_for(lock, options_.idle_interval, [this] { return notified_ || stopping_.load(); });
    notified_ = false;
  }
}

}  // namespace monju
