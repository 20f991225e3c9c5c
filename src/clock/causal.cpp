#include "clock/causal.h"

#include <algorithm>

namespace monju {

bool CausalContext::Contains(const Dot& dot) const {
  auto it = entries_.find(dot.actor);
  if (it == entries_.end()) return false;
  return dot.counter <= it->second.base || it->second.cloud.count(dot.counter) > 0;
}

bool CausalContext::Covers(const CausalContext& other) const {
  for (const auto& [actor, e] : other.entries_) {
    auto it = entries_.find(actor);
    if (it == entries_.end()) return false;
    const Entry& mine = it->second;
    if (e.base > mine.base) {
      for (uint64_t c = mine.base + 1; c <= e.base; ++c)
        if (!mine.cloud.count(c)) return false;
    }
    for (uint64_t c : e.cloud)
      if (c > mine.base && !mine.cloud.count(c)) return false;
  }
  return true;
}

void CausalContext::Compact(Entry& e) {
  while (!e.cloud.empty() && *e.cloud.begin() <= e.base + 1) {
    e.base = std::max(e.base, *e.cloud.begin());
    e.cloud.erase(e.cloud.begin());
  }
}

void CausalContext::Add(const Dot& dot) {
  if (dot.counter == 0) return;
  Entry& e = entries_[dot.actor];
  if (dot.counter <= e.base) return;
  e.cloud.insert(dot.counter);
  Compact(e);
}

void CausalContext::Merge(const CausalContext& other) {
  for (const auto& [actor, theirs] : other.entries_) {
    Entry& e = entries_[actor];
    e.base = std::max(e.base, theirs.base);
    e.cloud.insert(theirs.cloud.begin(), theirs.cloud.end());
    e.cloud.erase(e.cloud.begin(), e.cloud.upper_bound(e.base));
    Compact(e);
  }
}

uint64_t CausalContext::MaxCounter(const std::string& actor) const {
  auto it = entries_.find(actor);
  if (it == entries_.end()) return 0;
  return it->second.cloud.empty() ? it->second.base : *it->second.cloud.rbegin();
}

void CausalContext::SetEntry(std::string actor, Entry entry) {
  entry.cloud.erase(entry.cloud.begin(), entry.cloud.upper_bound(entry.base));
  Compact(entry);
  if (entry.base == 0 && entry.cloud.empty()) {
    entries_.erase(actor);
    return;
  }
  // Decoding installs actors in ascending order: try the end first.
  if (entries_.empty() || entries_.rbegin()->first < actor) {
    entries_.emplace_hint(entries_.end(), std::move(actor), std::move(entry));
  } else {
    entries_.insert_or_assign(std::move(actor), std::move(entry));
  }
}

CausalContext Version::FullContext() const {
  CausalContext c = past;
  c.Add(dot);
  return c;
}

Order Compare(const Version& a, const Version& b) {
  if (a.dot == b.dot) return Order::kEqual;
  if (b.past.Contains(a.dot)) return Order::kBefore;
  if (a.past.Contains(b.dot)) return Order::kAfter;
  return Order::kConcurrent;
}

SiblingSet::SiblingSet(std::vector<Version> versions) {
  for (const auto& v : versions) Add(v);
}

bool SiblingSet::Add(const Version& v) {
  for (const auto& mine : versions_) {
    if (mine.dot == v.dot || mine.past.Contains(v.dot)) return false;
  }
  std::erase_if(versions_, [&](const Version& mine) { return v.past.Contains(mine.dot); });
  auto pos = std::lower_bound(versions_.begin(), versions_.end(), v,
                              [](const Version& x, const Version& y) { return x.dot < y.dot; });
  versions_.insert(pos, v);
  return true;
}

bool SiblingSet::Merge(const SiblingSet& other) {
  bool changed = false;
  for (const auto& v : other.versions_) changed |= Add(v);
  return changed;
}

CausalContext SiblingSet::Context() const {
  CausalContext c;
  for (const auto& v : versions_) {
    c.Merge(v.past);
    c.Add(v.dot);
  }
  return c;
}

uint64_t SiblingSet::MaxCounter(const std::string& actor) const {
  uint64_t m = 0;
  for (const auto& v : versions_) {
    if (v.dot.actor == actor) m = std::max(m, v.dot.counter);
    m = std::max(m, v.past.MaxCounter(actor));
  }
  return m;
}

std::vector<std::string> SiblingSet::LiveValues() const {
  std::vector<std::string> out;
  for (const auto& v : versions_)
    if (!v.tombstone) out.push_back(v.value);
  return out;
}

bool SiblingSet::HasLive() const {
  return std::any_of(versions_.begin(), versions_.end(), [](const Version& v) { return !v.tombstone; });
}

bool SiblingSet::AllTombstones() const {
  return !versions_.empty() &&
         std::all_of(versions_.begin(), versions_.end(), [](const Version& v) { return v.tombstone; });
}

int64_t SiblingSet::LatestDeleteMs() const {
  int64_t latest = 0;
  for (const auto& v : versions_)
    if (v.tombstone) latest = std::max(latest, v.deleted_unix_ms);
  return latest;
}

}  // namespace monju
