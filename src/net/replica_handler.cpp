#include "replica_handler.h"

#include <spdlog/spdlog.h>

#include "clock/codec.h"
#include "config/node_config.h"

namespace monju {
namespace {

[[noreturn]] void ThrowError(const Status& s) {
  rpc::ReplicaError e;
  e.why = s.message();  // the code travels on its own
  e.code = static_cast<int32_t>(s.code());
  throw e;
}

constexpr int32_t kMaxScanLimit = 10000;
constexpr size_t kMaxBatchItems = 4096;
// Well under the 64 MiB a caller accepts, even with one huge item past it.
constexpr size_t kMaxScanReplyBytes = 8 << 20;

}  // namespace

std::shared_ptr<const ClusterView> ReplicaHandler::CheckCaller(int64_t cluster_fingerprint,
                                                               const rpc::EpochStamp& stamp) const {
  // A newer epoch than ours: fetch it before acting (bounded; never Raft).
  if (fence_ && stamp.epoch > 0 && static_cast<uint64_t>(stamp.epoch) > fence_->epoch())
    fence_->Observe(static_cast<uint64_t>(stamp.epoch), stamp.sender, std::chrono::milliseconds(500));
  auto view = membership_->Current();
  if (static_cast<uint64_t>(cluster_fingerprint) != view->fingerprint()) {
    spdlog::error("refusing a peer request: cluster parameters differ (caller fingerprint {:016x}, ours {:016x}: {}); "
                  "check --peers, --partitions, --replicas and --vnodes on every node",
                  static_cast<uint64_t>(cluster_fingerprint), view->fingerprint(), view->description());
    rpc::ClusterMismatch e;
    e.why = "this node runs " + view->description();
    throw e;
  }
  return view;
}

void ReplicaHandler::Admit(const rpc::EpochStamp& stamp, uint32_t partition, EpochGate::Ticket* ticket) const {
  if (!fence_) return;
  Status s = fence_->Admit(static_cast<uint64_t>(std::max<int64_t>(stamp.epoch, 0)), partition, ticket);
  if (s.ok()) return;
  rpc::StaleEpoch e;
  e.why = s.message();
  e.epoch = static_cast<int64_t>(fence_->epoch());
  throw e;
}

void ReplicaHandler::ping(int64_t cluster_fingerprint, const rpc::EpochStamp& stamp) {
  CheckCaller(cluster_fingerprint, stamp);
}

void ReplicaHandler::apply(int64_t cluster_fingerprint, const std::string& pk, const std::string& sk,
                           const std::string& version, const rpc::EpochStamp& stamp) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  if (pk.empty() || pk.size() > kMaxPkBytes || sk.size() > kMaxSkBytes)
    ThrowError(Status::InvalidArgument("key outside limits"));
  auto decoded = DecodeVersion(version);
  if (!decoded.ok()) ThrowError(decoded.status());
  const uint32_t partition = view->ring().PartitionOf(pk);
  EpochGate::Ticket ticket;
  Admit(stamp, partition, &ticket);
  Status s = replica_->Apply(ItemKey{partition, pk, sk}, decoded.value());
  if (!s.ok()) ThrowError(s);
}

void ReplicaHandler::apply_hinted(int64_t cluster_fingerprint, const std::string& owner, const std::string& pk,
                                  const std::string& sk, const std::string& version, const rpc::EpochStamp& stamp) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  if (pk.empty() || pk.size() > kMaxPkBytes || sk.size() > kMaxSkBytes)
    ThrowError(Status::InvalidArgument("key outside limits"));
  EpochGate::Ticket ticket;
  Admit(stamp, view->ring().PartitionOf(pk), &ticket);
  if (view->IndexOf(owner) < 0) ThrowError(Status::InvalidArgument("hint owner '" + owner + "' is not a member"));
  auto decoded = DecodeVersion(version);
  if (!decoded.ok()) ThrowError(Status::Corruption("hinted version does not decode"));
  const ItemKey key{view->ring().PartitionOf(pk), pk, sk};
  // A hint for this very node (views differ for a moment): it is simply a write.
  Status s = owner == self_id_ ? replica_->Apply(key, decoded.value()) : hints_->Store(owner, key, version);
  if (!s.ok()) ThrowError(s);
}

void ReplicaHandler::apply_batch(int64_t cluster_fingerprint, const std::vector<rpc::KeyedVersion>& items,
                                 const rpc::EpochStamp& stamp) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  if (items.size() > kMaxBatchItems)
    ThrowError(Status::InvalidArgument("batch of " + std::to_string(items.size()) + " items; the limit is " +
                                       std::to_string(kMaxBatchItems)));
  // An item that can never apply (bad key, undecodable version, or a stored
  // record that does not decode) is logged and skipped: refusing the batch
  // would make the sender retry it forever and hold back every later hint.
  // Anything else (disk full, shutting down) refuses the batch for a retry.
  // Raft-managed: hint delivery planned under an older view must not put
  // data on a node that no longer owns it (the sender re-targets it once it
  // catches up with the newer epoch).
  if (fence_ && view->epoch() > 0) {
    for (const auto& item : items) {
      if (item.pk.empty() || item.pk.size() > kMaxPkBytes) continue;
      const uint32_t p = view->ring().PartitionOf(item.pk);
      if (!view->IsWriteOwner(self_id_, p))
        ThrowError(Status::StaleEpoch("this node does not own partition " + std::to_string(p) + " at epoch " +
                                      std::to_string(view->epoch())));
    }
  }
  std::vector<std::pair<ItemKey, Version>> decoded;
  decoded.reserve(items.size());
  for (const auto& item : items) {
    auto v = DecodeVersion(item.version);
    if (item.pk.empty() || item.pk.size() > kMaxPkBytes || item.sk.size() > kMaxSkBytes || !v.ok()) {
      spdlog::error("apply_batch: skipping an item that cannot apply (pk of {} bytes): {}", item.pk.size(),
                    v.ok() ? "key outside limits" : v.status().ToString());
      continue;
    }
    decoded.emplace_back(ItemKey{view->ring().PartitionOf(item.pk), item.pk, item.sk}, std::move(v.value()));
  }
  auto statuses = replica_->ApplyBatch(decoded);
  for (size_t i = 0; i < statuses.size(); ++i) {
    const Status& s = statuses[i];
    if (s.ok()) continue;
    if (s.Is(Status::Code::kCorruption) || s.Is(Status::Code::kInvalidArgument)) {
      spdlog::error("apply_batch: skipping a version for a key of partition {}: {}", decoded[i].first.partition,
                    s.ToString());
      continue;
    }
    ThrowError(s);
  }
}

void ReplicaHandler::read(std::string& _return, int64_t cluster_fingerprint, const std::string& pk,
                          const std::string& sk, const rpc::EpochStamp& stamp) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  const uint32_t partition = view->ring().PartitionOf(pk);
  EpochGate::Ticket ticket;
  Admit(stamp, partition, &ticket);
  Status s = replica_->ReadEncoded(ItemKey{partition, pk, sk}, &_return);
  if (!s.ok()) ThrowError(s);
}

void ReplicaHandler::scan(rpc::ScanReply& _return, int64_t cluster_fingerprint, const std::string& pk,
                          const std::string& sk_prefix, const std::string& start_sk, bool start_exclusive,
                          int32_t limit, bool ascending, const rpc::EpochStamp& stamp) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  if (limit < 0 || limit > kMaxScanLimit) ThrowError(Status::InvalidArgument("scan limit outside 0..10000"));
  DataStore::ScanRequest r;
  r.partition = view->ring().PartitionOf(pk);
  EpochGate::Ticket ticket;
  Admit(stamp, r.partition, &ticket);
  r.pk = pk;
  r.sk_prefix = sk_prefix;
  r.start_sk = start_sk;
  r.start_exclusive = start_exclusive;
  r.limit = static_cast<size_t>(limit);
  r.ascending = ascending;
  std::vector<DataStore::ScanItem> items;
  bool more = false;
  Status s = replica_->ScanEncoded(r, &items, &more);
  if (!s.ok()) ThrowError(s);
  _return.items.reserve(items.size());
  size_t bytes = 0;
  for (auto& item : items) {
    // Stop early rather than build a reply the caller refuses; the caller
    // treats the last item sent as where this replica's answer ends.
    if (!_return.items.empty() && bytes >= kMaxScanReplyBytes) {
      more = true;
      break;
    }
    rpc::StoredItem out;
    out.sk = std::move(item.sk);
    out.siblings = std::move(item.record);
    bytes += out.sk.size() + out.siblings.size();
    _return.items.push_back(std::move(out));
  }
  _return.more = more;
}

}  // namespace monju
