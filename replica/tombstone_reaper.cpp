#include "tombstone_reaper.h"

#include <spdlog/spdlog.h>

#include <string_view>
#include <utility>

#include "clock/codec.h"
#include "common/thread_name.h"

namespace monju {
namespace {

// Keys are arbitrary bytes: escape them for the log, and keep them short.
std::string Printable(std::string_view bytes) {
  constexpr size_t kMax = 64;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += char(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (bytes.size() > kMax) out += "...";
  return out;
}

}  // namespace

TombstoneReaper::TombstoneReaper(Replica* replica, OwnerReader* owners, const WallClock* wall,
                                 ReaperOptions options)
    : replica_(replica), owners_(owners), wall_(wall), options_(options) {}

TombstoneReaper::~TombstoneReaper() { Stop(); }

bool TombstoneReaper::SafeToReap(const SiblingSet& local, const std::vector<SiblingSet>& owners, int64_t now_ms,
                                 std::chrono::milliseconds grace) {
  if (!local.AllTombstones() || owners.empty()) return false;
  const int64_t deleted = local.LatestDeleteMs();
  if (deleted != 0 && now_ms - deleted < grace.count()) return false;
  const CausalContext context = local.Context();
  for (const SiblingSet& owner : owners)
    if (!owner.empty() && !owner.Context().Covers(context)) return false;
  return true;
}

bool TombstoneReaper::OldEnough(const SiblingSet& siblings, int64_t now_ms) const {
  const int64_t deleted = siblings.LatestDeleteMs();
  return deleted == 0 || now_ms - deleted >= options_.grace.count();
}

void TombstoneReaper::ScanPage() {
  std::vector<RawItem> items;
  std::string next;
  Status s = replica_->ScanAll(cursor_, options_.items_per_pass, &items, &next);
  // On Corruption `next` steps past the bad bucket; on other errors it stays
  // put and the next pass retries.
  if (!s.ok()) spdlog::warn("tombstone reaper: scan failed: {}", s.ToString());
  cursor_ = std::move(next);
  const int64_t now_ms = wall_->UnixMillis();
  for (RawItem& item : items) {
    auto siblings = DecodeSiblings(item.record);
    if (!siblings.ok()) {
      spdlog::warn("tombstone reaper: skipping partition {} pk '{}' sk '{}': {}", item.partition,
                   Printable(item.pk), Printable(item.sk), siblings.status().ToString());
      continue;
    }
    if (!siblings->AllTombstones() || !OldEnough(siblings.value(), now_ms)) continue;
    backlog_.push_back(Candidate{ItemKey{item.partition, std::move(item.pk), std::move(item.sk)},
                                 std::move(item.record), std::move(siblings.value())});
  }
}

bool TombstoneReaper::Examine(const Candidate& c, uint64_t* reaped) {
  if (!owners_->IsOwner(c.key)) return false;  // its owners reap it
  checked_.fetch_add(1);
  std::vector<SiblingSet> sets;
  Status s = owners_->ReadAllOwners(c.key, &sets);
  if (!s.ok() || !SafeToReap(c.siblings, sets, wall_->UnixMillis(), options_.grace)) {
    blocked_.fetch_add(1);
    return true;
  }
  auto erased = replica_->ReapIfUnchanged(c.key, c.record);
  if (!erased.ok()) {
    spdlog::warn("tombstone reaper: could not reap partition {} pk '{}' sk '{}': {}", c.key.partition,
                 Printable(c.key.pk), Printable(c.key.sk), erased.status().ToString());
  } else if (erased.value()) {
    reaped_.fetch_add(1);
    ++*reaped;
    spdlog::debug("tombstone reaper: reaped partition {} pk '{}' sk '{}'", c.key.partition, Printable(c.key.pk),
                  Printable(c.key.sk));
  }
  // Not erased: the record changed since the scan; the next lap sees the new one.
  return true;
}

void TombstoneReaper::RunOnce() {
  std::lock_guard<std::mutex> lock(pass_mu_);
  if (backlog_.empty()) ScanPage();
  size_t checks = 0;
  uint64_t reaped = 0;
  while (!backlog_.empty() && checks < options_.max_checks_per_pass && !Stopping()) {
    Candidate c = std::move(backlog_.front());
    backlog_.pop_front();
    if (Examine(c, &reaped)) ++checks;
  }
  if (reaped > 0)
    spdlog::info("tombstone reaper: reaped {} of {} tombstones checked this pass ({} waiting for the next)", reaped,
                 checks, backlog_.size());
}

bool TombstoneReaper::Stopping() {
  std::lock_guard<std::mutex> lock(thread_mu_);
  return stopping_;
}

void TombstoneReaper::Start() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  std::lock_guard<std::mutex> lock(thread_mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(thread_mu_);
    while (!stopping_) {
      lock.unlock();
      RunOnce();
      lock.lock();
      wake_.wait_for(lock, options_.interval, [this] { return stopping_; });
    }
  });
  NameThread(thread_, "tombstone-reap");
}

void TombstoneReaper::Stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(thread_mu_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  wake_.notify_all();
  if (thread.joinable()) thread.join();
}

ReaperStats TombstoneReaper::stats() const { return {reaped_.load(), checked_.load(), blocked_.load()}; }

}  // namespace monju
