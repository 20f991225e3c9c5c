#include "replica_handler.h"

#include <absl/synchronization/notification.h>

#include <algorithm>
#include <stdexcept>

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

void CheckBatchSize(size_t items, const char* call) {
  if (items > kMaxBatchItems)
    ThrowError(Status::InvalidArgument(std::string(call) + " of " + std::to_string(items) + " items; the limit is " +
                                       std::to_string(kMaxBatchItems)));
}

// One item's refusal in a batch call's answer (ApplyOutcome, ReadOutcome).
template <typename Outcome>
void SetOutcome(Outcome* out, const Status& s, int64_t epoch = 0) {
  out->code = static_cast<int32_t>(s.code());
  out->why = s.message();
  out->epoch = epoch;
}

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
  CheckBatchSize(items.size(), "apply_batch");
  // An item that can never apply (bad key, undecodable version, or a stored
  // record that does not decode) is logged and skipped: refusing the batch
  // would make the sender retry it forever and hold back every later hint.
  // Anything else (disk full, shutting down) refuses the batch for a retry.
  // Raft-managed: hint delivery planned under an older view must not put
  // data on a node that no longer owns it (the sender re-targets it once it
  // catches up with the newer epoch).
  // Each partition is also admitted under the view checked, and held until
  // the batch is durable: a hand-over waiting for that epoch's writes to
  // drain (streaming, cleanup of a lost partition) then waits for this too.
  std::vector<EpochGate::Ticket> tickets;
  if (fence_ && view->epoch() > 0) {
    rpc::EpochStamp checked = stamp;
    checked.epoch = static_cast<int64_t>(view->epoch());
    std::vector<uint32_t> admitted;
    for (const auto& item : items) {
      if (item.pk.empty() || item.pk.size() > kMaxPkBytes) continue;
      const uint32_t p = view->ring().PartitionOf(item.pk);
      if (!view->IsWriteOwner(self_id_, p))
        ThrowError(Status::StaleEpoch("this node does not own partition " + std::to_string(p) + " at epoch " +
                                      std::to_string(view->epoch())));
      if (std::find(admitted.begin(), admitted.end(), p) != admitted.end()) continue;
      admitted.push_back(p);
      Admit(checked, p, &tickets.emplace_back());
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

Status ReplicaHandler::AdmitItem(uint64_t planned, uint32_t partition, EpochGate::Ticket* ticket,
                                 int64_t* epoch) const {
  if (!fence_) return Status::OK();
  Status s = fence_->Admit(planned, partition, ticket);
  if (s.ok()) return s;
  *epoch = static_cast<int64_t>(fence_->epoch());
  return Status::StaleEpoch(s.message());
}

void ReplicaHandler::apply_many(std::vector<rpc::ApplyOutcome>& _return, int64_t cluster_fingerprint,
                                const std::vector<rpc::KeyedVersion>& items, const rpc::EpochStamp& stamp) {
  absl::Notification done;
  ApplyMany(cluster_fingerprint, items, stamp, [&](std::vector<rpc::ApplyOutcome> outcomes) {
    _return = std::move(outcomes);
    done.Notify();
  });
  done.WaitForNotification();
}

void ReplicaHandler::ApplyMany(int64_t cluster_fingerprint, const std::vector<rpc::KeyedVersion>& items,
                               const rpc::EpochStamp& stamp, std::function<void(std::vector<rpc::ApplyOutcome>)> done) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  CheckBatchSize(items.size(), "apply_many");
  std::vector<rpc::ApplyOutcome> outcomes(items.size());
  // Every admitted item holds its ticket until the whole call is durable.
  auto tickets = std::make_shared<std::vector<EpochGate::Ticket>>();
  tickets->reserve(fence_ ? items.size() : 0);
  std::vector<std::pair<ItemKey, Version>> admitted;
  std::vector<size_t> positions;  // of admitted[j] in items
  admitted.reserve(items.size());
  positions.reserve(items.size());
  const uint64_t planned = static_cast<uint64_t>(std::max<int64_t>(stamp.epoch, 0));
  for (size_t i = 0; i < items.size(); ++i) {
    const rpc::KeyedVersion& item = items[i];
    if (item.pk.empty() || item.pk.size() > kMaxPkBytes || item.sk.size() > kMaxSkBytes) {
      SetOutcome(&outcomes[i], Status::InvalidArgument("key outside limits"));
      continue;
    }
    auto version = DecodeVersion(item.version);
    if (!version.ok()) {
      SetOutcome(&outcomes[i], version.status());
      continue;
    }
    const uint32_t partition = view->ring().PartitionOf(item.pk);
    int64_t epoch = 0;
    if (Status s = AdmitItem(planned, partition, fence_ ? &tickets->emplace_back() : nullptr, &epoch); !s.ok()) {
      SetOutcome(&outcomes[i], s, epoch);
      continue;
    }
    admitted.emplace_back(ItemKey{partition, item.pk, item.sk}, std::move(version.value()));
    positions.push_back(i);
  }
  if (admitted.empty()) return done(std::move(outcomes));
  replica_->ApplyBatchAsync(
      std::move(admitted), [outcomes = std::move(outcomes), positions = std::move(positions), tickets,
                            done = std::move(done)](std::vector<Status> statuses) mutable {
        tickets->clear();  // durable: the hand-overs waiting on these may go on
        for (size_t j = 0; j < statuses.size(); ++j)
          if (!statuses[j].ok()) SetOutcome(&outcomes[positions[j]], statuses[j]);
        done(std::move(outcomes));
      });
}

bool ReplicaAsyncCalls::Handles(std::string_view name) const { return name == "replica:apply_many"; }

void ReplicaAsyncCalls::Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) {
  std::string name;
  int32_t seqid = 0;
  rpc::MonjuReplica_apply_many_args args;
  if (!ReadCall(message, size, &name, &seqid, &args)) throw std::runtime_error("an apply_many call that does not decode");
  // Multiplexed calls are answered under the method's bare name.
  const std::string method = "apply_many";
  try {
    handler_->ApplyMany(args.cluster_fingerprint, args.items, args.stamp,
                        [method, seqid, reply](std::vector<rpc::ApplyOutcome> outcomes) {
                          rpc::MonjuReplica_apply_many_result result;
                          result.success = std::move(outcomes);
                          result.__isset.success = true;
                          reply->Send(ReplyMessage(method, seqid, result));
                        });
  } catch (const rpc::ClusterMismatch& e) {
    rpc::MonjuReplica_apply_many_result result;
    result.mismatch = e;
    result.__isset.mismatch = true;
    reply->Send(ReplyMessage(method, seqid, result));
  } catch (const rpc::ReplicaError& e) {
    rpc::MonjuReplica_apply_many_result result;
    result.error = e;
    result.__isset.error = true;
    reply->Send(ReplyMessage(method, seqid, result));
  } catch (const std::exception& e) {
    reply->Send(ExceptionMessage(method, seqid, e.what()));
  }
}

void ReplicaHandler::read_many(std::vector<rpc::ReadOutcome>& _return, int64_t cluster_fingerprint,
                               const std::vector<rpc::KeyRef>& keys, const rpc::EpochStamp& stamp) {
  auto view = CheckCaller(cluster_fingerprint, stamp);
  CheckBatchSize(keys.size(), "read_many");
  _return.assign(keys.size(), rpc::ReadOutcome{});
  const uint64_t planned = static_cast<uint64_t>(std::max<int64_t>(stamp.epoch, 0));
  size_t bytes = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const rpc::KeyRef& key = keys[i];
    rpc::ReadOutcome& out = _return[i];
    // Stop early rather than build a reply the caller refuses.
    if (i > 0 && bytes >= kMaxScanReplyBytes) {
      out.deferred = true;
      continue;
    }
    if (key.pk.empty() || key.pk.size() > kMaxPkBytes || key.sk.size() > kMaxSkBytes) {
      SetOutcome(&out, Status::InvalidArgument("key outside limits"));
      continue;
    }
    const uint32_t partition = view->ring().PartitionOf(key.pk);
    EpochGate::Ticket ticket;
    int64_t epoch = 0;
    if (Status s = AdmitItem(planned, partition, &ticket, &epoch); !s.ok()) {
      SetOutcome(&out, s, epoch);
      continue;
    }
    if (Status s = replica_->ReadEncoded(ItemKey{partition, key.pk, key.sk}, &out.siblings); !s.ok()) {
      out.siblings.clear();
      SetOutcome(&out, s);
    }
    bytes += out.siblings.size();
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

LocalExchangePeer& ReplicaHandler::CheckExchange(int64_t cluster_fingerprint, const rpc::EpochStamp& stamp,
                                                 int32_t partition, std::shared_ptr<const ClusterView>* view,
                                                 EpochGate::Ticket* ticket) const {
  *view = CheckCaller(cluster_fingerprint, stamp);
  if (!exchange_) ThrowError(Status::Unavailable("this node serves no anti-entropy"));
  if (partition < 0 || static_cast<uint32_t>(partition) >= (*view)->ring().partitions())
    ThrowError(Status::InvalidArgument("partition " + std::to_string(partition) + " out of range"));
  // An exchange planned under a placement that no longer holds must not
  // bring data to, or take it from, a node that is no owner any more.
  Admit(stamp, static_cast<uint32_t>(partition), ticket);
  return *exchange_;
}

namespace {
// Non-negative i32s as u32s; InvalidArgument naming `what` otherwise.
std::vector<uint32_t> Unsigned(const std::vector<int32_t>& values, const char* what) {
  std::vector<uint32_t> out;
  out.reserve(values.size());
  for (int32_t v : values) {
    if (v < 0) ThrowError(Status::InvalidArgument(std::string("negative ") + what));
    out.push_back(static_cast<uint32_t>(v));
  }
  return out;
}
}  // namespace

void ReplicaHandler::ae_hashes(rpc::AeHashes& _return, int64_t cluster_fingerprint, int32_t partition,
                               int32_t tree_format, int32_t level, const std::vector<int32_t>& parents,
                               const rpc::EpochStamp& stamp) {
  std::shared_ptr<const ClusterView> view;
  EpochGate::Ticket ticket;
  LocalExchangePeer& peer = CheckExchange(cluster_fingerprint, stamp, partition, &view, &ticket);
  if (level < 0) ThrowError(Status::InvalidArgument("negative tree level"));
  std::vector<uint64_t> hashes;
  int64_t items = 0;
  Status s = peer.ChildHashes(static_cast<uint32_t>(partition), static_cast<uint32_t>(tree_format),
                              static_cast<uint32_t>(level), Unsigned(parents, "tree node"), &hashes, &items);
  if (!s.ok()) ThrowError(s);
  _return.hashes.assign(hashes.begin(), hashes.end());
  _return.items = items;
}

void ReplicaHandler::ae_keys(rpc::AeKeyPage& _return, int64_t cluster_fingerprint, int32_t partition,
                             int32_t tree_format, int32_t level, const std::vector<int32_t>& nodes, bool has_after,
                             int64_t after_key_hash, int32_t limit, const rpc::EpochStamp& stamp,
                             const std::string& after_pk, const std::string& after_sk) {
  std::shared_ptr<const ClusterView> view;
  EpochGate::Ticket ticket;
  LocalExchangePeer& peer = CheckExchange(cluster_fingerprint, stamp, partition, &view, &ticket);
  if (level < 0) ThrowError(Status::InvalidArgument("negative tree level"));
  if (limit < 1 || limit > 10000) ThrowError(Status::InvalidArgument("key listing limit outside 1..10000"));
  std::optional<KeyDigest> after;
  if (has_after) after = KeyDigest{after_pk, after_sk, static_cast<uint64_t>(after_key_hash), 0};
  std::vector<KeyDigest> entries;
  bool more = false;
  Status s = peer.ListKeys(static_cast<uint32_t>(partition), static_cast<uint32_t>(tree_format),
                           static_cast<uint32_t>(level), Unsigned(nodes, "tree node"), after ? &*after : nullptr,
                           static_cast<size_t>(limit), &entries, &more);
  if (!s.ok()) ThrowError(s);
  _return.entries.reserve(entries.size());
  for (KeyDigest& e : entries) {
    rpc::AeKeyDigest d;
    d.pk = std::move(e.pk);
    d.sk = std::move(e.sk);
    d.key_hash = static_cast<int64_t>(e.key_hash);
    d.digest = static_cast<int64_t>(e.digest);
    _return.entries.push_back(std::move(d));
  }
  _return.more = more;
}

void ReplicaHandler::ae_fetch(std::vector<rpc::AeKeyAnswer>& _return, int64_t cluster_fingerprint, int32_t partition,
                              const std::vector<rpc::AeKeyQuery>& keys, const rpc::EpochStamp& stamp) {
  std::shared_ptr<const ClusterView> view;
  EpochGate::Ticket ticket;
  LocalExchangePeer& peer = CheckExchange(cluster_fingerprint, stamp, partition, &view, &ticket);
  std::vector<KeyQuery> ask;
  ask.reserve(keys.size());
  for (const auto& k : keys) ask.push_back({k.pk, k.sk, k.asker_context, k.want_versions});
  std::vector<KeyAnswer> answers;
  Status s = peer.Fetch(static_cast<uint32_t>(partition), ask, &answers);
  if (!s.ok()) ThrowError(s);
  _return.reserve(answers.size());
  for (KeyAnswer& a : answers) {
    rpc::AeKeyAnswer out;
    out.pk = std::move(a.pk);
    out.sk = std::move(a.sk);
    out.context = std::move(a.context);
    out.versions = std::move(a.versions);
    out.withheld = a.withheld;
    _return.push_back(std::move(out));
  }
}

void ReplicaHandler::ae_push(int64_t cluster_fingerprint, int32_t partition,
                             const std::vector<rpc::KeyedVersion>& versions, const rpc::EpochStamp& stamp) {
  std::shared_ptr<const ClusterView> view;
  EpochGate::Ticket ticket;
  LocalExchangePeer& peer = CheckExchange(cluster_fingerprint, stamp, partition, &view, &ticket);
  std::vector<KeyedVersionBytes> items;
  items.reserve(versions.size());
  for (const auto& v : versions) items.push_back({v.pk, v.sk, v.version});
  Status s = peer.Push(static_cast<uint32_t>(partition), items);
  if (!s.ok()) ThrowError(s);
}

}  // namespace monju
