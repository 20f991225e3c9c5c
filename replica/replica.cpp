#include "replica.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "clock/codec.h"

namespace monju {
namespace {
constexpr char kIncarnationKey[] = "incarnation";
constexpr char kCleanKey[] = "clean_shutdown";
constexpr char kReapFloorKey[] = "reap_floor";

// Merges `version` into the stored record. A record that does not decode is
// left untouched and reported through *decode_error.
DataStore::Mutator MergeInto(const Version& version, Status* decode_error) {
  return [&version, decode_error](const std::optional<std::string>& current) -> std::optional<std::string> {
    auto siblings = DecodeSiblings(current ? *current : std::string());
    if (!siblings.ok()) {
      *decode_error = siblings.status();
      return std::nullopt;
    }
    if (!siblings->Add(version)) return std::nullopt;  // already held or superseded
    return EncodeSiblings(siblings.value());
  };
}

StatusOr<uint64_t> ParseNumber(const std::string& what, const std::string& value) {
  try {
    size_t used = 0;
    uint64_t n = std::stoull(value, &used);
    if (used == value.size()) return n;
  } catch (const std::exception&) {
  }
  return Status::Corruption("stored " + what + " '" + value + "' is not a number");
}
}  // namespace

Replica::Replica(std::string node_id, std::unique_ptr<DataStore> store)
    : node_id_(std::move(node_id)), store_(std::move(store)) {}

Replica::~Replica() = default;

std::string Replica::ActorName(const std::string& node_id, uint64_t incarnation) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string digits;
  do {
    digits.insert(digits.begin(), kDigits[incarnation % 36]);
    incarnation /= 36;
  } while (incarnation);
  return node_id + "/" + digits;
}

StatusOr<std::unique_ptr<Replica>> Replica::Open(std::string node_id, std::unique_ptr<DataStore> store,
                                                 uint64_t seed) {
  std::unique_ptr<Replica> r(new Replica(std::move(node_id), std::move(store)));
  std::string value;
  Status s = r->store_->GetMeta(kIncarnationKey, &value);
  const bool fresh = s.Is(Status::Code::kNotFound);
  if (!s.ok() && !fresh) return s;
  uint64_t incarnation = 0;
  if (fresh) {
    incarnation = seed & ((uint64_t(1) << 40) - 1);  // 8 base-36 digits at most
  } else {
    try {
      incarnation = std::stoull(value);
    } catch (const std::exception&) {
      return Status::Corruption("stored incarnation '" + value + "' is not a number");
    }
    std::string clean;
    s = r->store_->GetMeta(kCleanKey, &clean);
    if (!s.ok() && !s.Is(Status::Code::kNotFound)) return s;
    if (clean != "1") ++incarnation;
  }
  if ((s = r->store_->PutMeta(kIncarnationKey, std::to_string(incarnation))).ok())
    s = r->store_->PutMeta(kCleanKey, "0");
  if (!s.ok()) return s;
  s = r->store_->GetMeta(kReapFloorKey, &value);
  if (s.ok()) {
    auto floor = ParseNumber("reap floor", value);
    if (!floor.ok()) return floor.status();
    r->reap_floor_ = floor.value();
  } else if (!s.Is(Status::Code::kNotFound)) {
    return s;
  }
  r->incarnation_ = incarnation;
  r->actor_ = ActorName(r->node_id_, incarnation);
  return r;
}

Status Replica::Apply(const ItemKey& key, const Version& version) {
  Status decode_error;
  Status s = store_->Apply(key, MergeInto(version, &decode_error));
  return s.ok() ? decode_error : s;
}

std::vector<Status> Replica::ApplyBatch(const std::vector<std::pair<ItemKey, Version>>& items) {
  std::vector<Status> decode_errors(items.size());
  std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
  ops.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i)
    ops.emplace_back(items[i].first, MergeInto(items[i].second, &decode_errors[i]));
  std::vector<Status> results = store_->ApplyBatch(std::move(ops));
  for (size_t i = 0; i < results.size(); ++i)
    if (results[i].ok()) results[i] = decode_errors[i];
  return results;
}

void Replica::ApplyAsync(const ItemKey& key, const Version& version, std::function<void(Status)> done) {
  QueueMerges({{key, version}}, [done = std::move(done)](std::vector<Status> results) { done(results.front()); },
              /*wait_for_room=*/true);
}

bool Replica::TryApplyAsync(const ItemKey& key, const Version& version, std::function<void(Status)> done) {
  return QueueMerges({{key, version}}, [done = std::move(done)](std::vector<Status> results) { done(results.front()); },
                     /*wait_for_room=*/false);
}

void Replica::ApplyBatchAsync(std::vector<std::pair<ItemKey, Version>> items,
                              std::function<void(std::vector<Status>)> done) {
  QueueMerges(std::move(items), std::move(done), /*wait_for_room=*/true);
}

bool Replica::QueueMerges(std::vector<std::pair<ItemKey, Version>> items,
                          std::function<void(std::vector<Status>)> done, bool wait_for_room) {
  // The versions and their decode errors live until the batch is done.
  struct Batch {
    std::vector<std::pair<ItemKey, Version>> items;
    std::vector<Status> decode_errors;
  };
  auto batch = std::make_shared<Batch>();
  batch->items = std::move(items);
  batch->decode_errors.resize(batch->items.size());
  std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
  ops.reserve(batch->items.size());
  for (size_t i = 0; i < batch->items.size(); ++i)
    ops.emplace_back(batch->items[i].first, MergeInto(batch->items[i].second, &batch->decode_errors[i]));
  auto finish = [batch, done = std::move(done)](std::vector<Status> results) {
    for (size_t i = 0; i < results.size(); ++i)
      if (results[i].ok()) results[i] = batch->decode_errors[i];
    done(std::move(results));
  };
  if (!wait_for_room) return store_->TryApplyBatchAsync(std::move(ops), std::move(finish));
  store_->ApplyBatchAsync(std::move(ops), std::move(finish));
  return true;
}

Status Replica::RaiseReapFloor(uint64_t counter) {
  if (counter <= reap_floor_.load()) return Status::OK();
  std::lock_guard<std::mutex> lock(reap_floor_mu_);
  if (counter <= reap_floor_.load()) return Status::OK();
  Status s = store_->PutMeta(kReapFloorKey, std::to_string(counter));
  if (s.ok()) reap_floor_.store(counter);
  return s;
}

StatusOr<bool> Replica::ReapIfUnchanged(const ItemKey& key, const std::string& expected_record) {
  auto expected = DecodeSiblings(expected_record);
  if (!expected.ok()) return expected.status();
  if (expected->empty()) return false;  // nothing to erase
  const uint64_t held = expected->MaxCounter(actor_);
  if (Status s = RaiseReapFloor(held); !s.ok()) return s;
  bool erased = false;
  Status s = store_->Apply(key, [&](const std::optional<std::string>& current) -> std::optional<std::string> {
    if (!current || *current != expected_record) return std::nullopt;
    erased = true;
    return std::string();
  });
  if (!s.ok()) return s;
  return erased;
}

StatusOr<size_t> Replica::EraseIfUnchanged(const std::vector<std::pair<ItemKey, std::string>>& items) {
  uint64_t held = 0;
  std::vector<std::pair<ItemKey, DataStore::Mutator>> ops;
  auto erased = std::make_shared<std::atomic<size_t>>(0);
  for (const auto& [key, record] : items) {
    auto set = DecodeSiblings(record);
    if (!set.ok()) continue;
    held = std::max(held, set->MaxCounter(actor_));
    ops.emplace_back(key, [record, erased](const std::optional<std::string>& current) -> std::optional<std::string> {
      if (!current || *current != record) return std::nullopt;
      ++*erased;
      return std::string();
    });
  }
  if (Status s = RaiseReapFloor(held); !s.ok()) return s;
  for (const Status& s : store_->ApplyBatch(std::move(ops)))
    if (!s.ok()) return s;
  return erased->load();
}

Status Replica::Read(const ItemKey& key, SiblingSet* out) const {
  std::string record;
  Status s = store_->Get(key, &record);
  if (s.Is(Status::Code::kNotFound)) {
    *out = SiblingSet();
    return Status::OK();
  }
  if (!s.ok()) return s;
  auto siblings = DecodeSiblings(record);
  if (!siblings.ok()) return siblings.status();
  *out = std::move(siblings.value());
  return Status::OK();
}

Status Replica::Scan(const DataStore::ScanRequest& request, std::vector<ScannedItem>* out, bool* more) const {
  std::vector<DataStore::ScanItem> raw;
  Status s = store_->Scan(request, &raw, more);
  if (!s.ok()) return s;
  out->clear();
  out->reserve(raw.size());
  for (auto& item : raw) {
    auto siblings = DecodeSiblings(item.record);
    if (!siblings.ok()) return siblings.status();
    out->push_back({std::move(item.sk), std::move(siblings.value())});
  }
  return Status::OK();
}

Status Replica::ReadEncoded(const ItemKey& key, std::string* record) const {
  Status s = store_->Get(key, record);
  if (s.Is(Status::Code::kNotFound)) {
    record->clear();
    return Status::OK();
  }
  return s;
}

Status Replica::ScanEncoded(const DataStore::ScanRequest& request, std::vector<DataStore::ScanItem>* out,
                            bool* more) const {
  return store_->Scan(request, out, more);
}

Status Replica::ScanAll(const std::string& cursor, size_t limit, std::vector<RawItem>* out,
                        std::string* next) const {
  return store_->ScanAll(cursor, limit, out, next);
}

std::string Replica::InflightKey(const ItemKey& key) {
  std::string k = std::to_string(key.pk.size()) + ":";
  k += key.pk;
  k += key.sk;
  return k;
}

Replica::Stripe& Replica::StripeFor(const std::string& inflight_key) {
  return stripes_[std::hash<std::string>{}(inflight_key) % kStripes];
}

StatusOr<Version> Replica::PrepareWrite(const ItemKey& key, const CausalContext& context, bool tombstone,
                                        std::string value, bool replace_local) {
  const std::string ik = InflightKey(key);
  Stripe& stripe = StripeFor(ik);
  std::lock_guard<std::mutex> lock(stripe.mu);
  SiblingSet local;
  Status s = Read(key, &local);
  if (!s.ok()) return s;
  Version v;
  v.past = context;
  if (replace_local) v.past.Merge(local.Context());
  v.tombstone = tombstone;
  v.value = tombstone ? std::string() : std::move(value);
  v.dot.actor = actor_;
  uint64_t& issued = stripe.inflight[ik];
  // The floor is read after the local copy: a reap raises it before erasing,
  // so a copy already reaped is never missed by both.
  const uint64_t highest =
      std::max({issued, local.MaxCounter(actor_), context.MaxCounter(actor_), reap_floor_.load()});
  if (highest == std::numeric_limits<uint64_t>::max()) {
    // The next counter would wrap to 0, which no replica can decode.
    if (issued == 0) stripe.inflight.erase(ik);
    return Status::InvalidArgument("context: counter of " + actor_ + " is at its maximum");
  }
  issued = highest + 1;
  v.dot.counter = issued;
  return v;
}

void Replica::FinishWrite(const ItemKey& key, const Dot& dot, bool applied_locally) {
  // Once applied, the local copy remembers the counter (in the version or in a
  // successor's past), so the entry can go. A failed local apply keeps it:
  // the dot may still exist on other replicas.
  if (!applied_locally) return;
  const std::string ik = InflightKey(key);
  Stripe& stripe = StripeFor(ik);
  std::lock_guard<std::mutex> lock(stripe.mu);
  auto it = stripe.inflight.find(ik);
  if (it != stripe.inflight.end() && it->second == dot.counter) stripe.inflight.erase(it);
}

Status Replica::MarkCleanShutdown() {
  // A dot whose local apply failed is reserved only in memory and may exist
  // on other replicas: a restart under the same actor could reissue it with
  // other content. With such a dot outstanding the stop stays unclean.
  for (auto& stripe : stripes_) {
    std::lock_guard<std::mutex> lock(stripe.mu);
    if (!stripe.inflight.empty()) return Status::OK();
  }
  return store_->PutMeta(kCleanKey, "1");
}

}  // namespace monju
