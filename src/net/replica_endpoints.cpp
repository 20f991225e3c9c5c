#include "replica_endpoints.h"

#include <spdlog/spdlog.h>
#include <thrift/TApplicationException.h>
#include <thrift/transport/TTransportException.h>

#include "clock/codec.h"

namespace monju {

using apache::thrift::TException;
using apache::thrift::transport::TTransportException;

Status LocalReplicaEndpoint::ApplyHinted(const std::string& owner, const ItemKey& key, const Version& version) {
  if (!hints_) return Status::Unavailable("this node keeps no hints");
  return hints_->Store(owner, key, EncodeVersion(version));
}

RemoteReplicaEndpoint::RemoteReplicaEndpoint(std::string peer_id, std::shared_ptr<Pool> pool, uint64_t fingerprint,
                                             uint64_t epoch, std::string self_id,
                                             std::shared_ptr<PeerDetector> detector,
                                             const std::atomic<DataPathFence*>* fence, Executor* executor)
    : peer_id_(std::move(peer_id)),
      fingerprint_(static_cast<int64_t>(fingerprint)),
      pool_(std::move(pool)),
      detector_(std::move(detector)),
      fence_(fence) {
  stamp_.epoch = static_cast<int64_t>(epoch);
  stamp_.sender = std::move(self_id);
  if (!executor) return;
  writes_ = std::make_unique<Coalescer<PeerWrite>>(CoalescerOptions{}, executor,
                                                   [this](std::vector<PeerWrite>& batch) { ApplyMany(batch); });
  // Replies hold whole sibling sets: fewer keys per call than writes.
  CoalescerOptions read_options;
  read_options.max_batch_items = 64;
  // One read call out at a time: reads queue behind it and leave together.
  // With two, a free slot let most reads go alone, and a node settled into
  // calls of about 1.4 reads instead of 3 at half the throughput
  // (docs/design.md, "Coalesced peer calls").
  read_options.max_senders = 1;
  reads_ = std::make_unique<Coalescer<PeerRead>>(read_options, executor,
                                                 [this](std::vector<PeerRead>& batch) { ReadMany(batch); });
}

template <typename Fn>
Status RemoteReplicaEndpoint::Call(const char* what, Fn&& fn) {
  std::unique_ptr<rpc::MonjuReplicaClient> client;
  try {
    client = pool_->Borrow();
  } catch (const TException& e) {
    detector_->RecordFailure();
    return Status::Unavailable(peer_id_ + " unreachable: " + e.what());
  }
  Status s = Guard(what, client, std::forward<Fn>(fn));
  if (client) pool_->Return(std::move(client));
  return s;
}

template <typename Fn>
Status RemoteReplicaEndpoint::Guard(const char* what, std::unique_ptr<rpc::MonjuReplicaClient>& client, Fn&& fn) {
  try {
    Status s = fn(*client);
    detector_->RecordSuccess();
    return s;
  } catch (const rpc::ClusterMismatch& e) {
    detector_->RecordSuccess();  // it answered: alive, just configured differently
    spdlog::error("peer {} refused {}: cluster parameters differ: {}", peer_id_, what, e.why);
    return Status::Mismatch(peer_id_ + " has different cluster parameters: " + e.why);
  } catch (const rpc::ReplicaError& e) {
    detector_->RecordSuccess();
    return Status::FromCode(e.code, peer_id_ + ": " + e.why);
  } catch (const rpc::StaleEpoch& e) {
    detector_->RecordSuccess();
    ObserveEpoch(e.epoch);  // the peer is at a newer epoch: learn it before the caller re-plans
    return Status::StaleEpoch(peer_id_ + " refused " + what + ": " + e.why);
  } catch (const TTransportException& e) {
    // Covers timeouts too: the connection's state is unknown, so it is dropped.
    client.reset();
    if (e.getType() == TTransportException::TIMED_OUT) {
      detector_->RecordFailure();  // a peer that stopped answering is not called for a while
      return Status::TimedOut(peer_id_ + " " + what + " timed out");
    }
    if (e.getType() == TTransportException::CORRUPTED_DATA) {
      // The reply, not the peer, is the problem (e.g. larger than we accept).
      return Status::IOError(peer_id_ + " " + what + " reply refused: " + e.what());
    }
    detector_->RecordFailure();
    pool_->Clear();
    return Status::Unavailable(peer_id_ + " " + what + " failed: " + e.what());
  } catch (const TException& e) {
    client.reset();
    detector_->RecordFailure();
    pool_->Clear();
    return Status::Unavailable(peer_id_ + " " + what + " failed: " + e.what());
  }
}

Status RemoteReplicaEndpoint::Apply(const ItemKey& key, const Version& version) {
  CountSingleCall();
  const std::string encoded = EncodeVersion(version);
  return Call("apply", [&](rpc::MonjuReplicaClient& c) {
    c.apply(fingerprint_, key.pk, key.sk, encoded, stamp_);
    return Status::OK();
  });
}

bool RemoteReplicaEndpoint::ApplyAsync(std::shared_ptr<const ItemKey> key, std::shared_ptr<const Version> version,
                                       std::function<void(Status)> done) {
  if (!writes_ || batches_unknown_.load()) return false;
  return writes_->Submit({std::move(key), EncodeVersion(*version), std::move(done)});
}

void RemoteReplicaEndpoint::BatchesUnknown(const char* call) {
  single_calls_.store(0);
  batches_unknown_.store(true);
  if (!logged_unknown_.exchange(true))
    spdlog::warn("peer {} does not serve {} (an older monjud?): its reads and writes go one call each", peer_id_,
                 call);
}

void RemoteReplicaEndpoint::CountSingleCall() {
  if (!batches_unknown_.load(std::memory_order_relaxed)) return;
  // Try batches again now and then: the peer may have been upgraded.
  if (single_calls_.fetch_add(1) + 1 >= kBatchRetryAfter) batches_unknown_.store(false);
}

bool RemoteReplicaEndpoint::ReadAsync(std::shared_ptr<const ItemKey> key,
                                      std::function<void(Status, SiblingSet*)> done) {
  if (!ReadsAsync()) return false;
  reads_in_flight_.fetch_add(1, std::memory_order_relaxed);
  auto counted = [this, done = std::move(done)](Status s, SiblingSet* reply) {
    reads_in_flight_.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(s), reply);
  };
  if (reads_->Submit({std::move(key), std::move(counted)})) return true;
  reads_in_flight_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

namespace {

// Runs a batch call; false when the peer answered that it does not know the
// method (the connection is then in a known state).
template <typename Fn>
bool CallUnlessUnknown(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const apache::thrift::TApplicationException& e) {
    if (e.getType() != apache::thrift::TApplicationException::UNKNOWN_METHOD) throw;
    return false;
  }
}

// Completes one coalesced item; a callback that throws must not strand the
// rest of its batch.
template <typename Fn>
void CompleteItem(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::error("completing a coalesced {} failed: {}", what, e.what());
  }
}

}  // namespace

void RemoteReplicaEndpoint::ObserveEpoch(int64_t epoch) {
  if (epoch <= 0) return;
  if (DataPathFence* fence = fence_ ? fence_->load() : nullptr)
    fence->Observe(static_cast<uint64_t>(epoch), peer_id_, std::chrono::milliseconds(500));
}

Status RemoteReplicaEndpoint::OutcomeStatus(int32_t code, const std::string& why, int64_t epoch, const char* what,
                                            int64_t* newer_epoch) const {
  if (code == static_cast<int32_t>(Status::Code::kOk)) return Status::OK();
  if (code != static_cast<int32_t>(Status::Code::kStaleEpoch)) return Status::FromCode(code, peer_id_ + ": " + why);
  *newer_epoch = std::max(*newer_epoch, epoch);
  return Status::StaleEpoch(peer_id_ + " refused " + what + ": " + why);
}

template <typename Outcome, typename Send>
Status RemoteReplicaEndpoint::CallMany(const char* what, size_t items, std::vector<Outcome>* outcomes, bool* unknown,
                                       Send&& send) {
  return Call(what, [&](rpc::MonjuReplicaClient& c) {
    if (!CallUnlessUnknown([&] { send(c); })) {
      *unknown = true;
      return Status::OK();
    }
    if (outcomes->size() != items)
      return Status::IOError(peer_id_ + " answered " + std::to_string(outcomes->size()) + " outcomes for " +
                             std::to_string(items) + " items of " + what);
    return Status::OK();
  });
}

void RemoteReplicaEndpoint::ReadMany(std::vector<PeerRead>& reads) {
  std::vector<Status> statuses(reads.size());
  std::vector<SiblingSet> siblings(reads.size());
  std::vector<bool> deferred(reads.size(), false);
  int64_t newer_epoch = 0;
  try {
    std::vector<rpc::KeyRef> wire;
    wire.reserve(reads.size());
    for (const auto& r : reads) {
      rpc::KeyRef k;
      k.pk = r.key->pk;
      k.sk = r.key->sk;
      wire.push_back(std::move(k));
    }
    std::vector<rpc::ReadOutcome> outcomes;
    bool unknown = false;
    Status call = CallMany("read_many", wire.size(), &outcomes, &unknown,
                           [&](rpc::MonjuReplicaClient& c) { c.read_many(outcomes, fingerprint_, wire, stamp_); });
    if (unknown) {
      BatchesUnknown("read_many");
      deferred.assign(reads.size(), true);  // each read alone, below
    }
    for (size_t i = 0; i < reads.size() && !unknown; ++i) {
      if (!call.ok()) {
        statuses[i] = call;
        continue;
      }
      rpc::ReadOutcome& o = outcomes[i];
      if (o.deferred) {
        deferred[i] = true;
        continue;
      }
      statuses[i] = OutcomeStatus(o.code, o.why, o.epoch, "read", &newer_epoch);
      if (!statuses[i].ok()) continue;
      auto decoded = DecodeSiblings(o.siblings);
      if (decoded.ok()) {
        siblings[i] = std::move(decoded.value());
      } else {
        statuses[i] = decoded.status();
      }
    }
  } catch (const std::exception& e) {
    for (size_t i = 0; i < reads.size(); ++i) {
      statuses[i] = Status::IOError(peer_id_ + " read_many failed: " + e.what());
      deferred[i] = false;
    }
  }
  auto complete = [&](size_t i) {
    CompleteItem("read", [&] { reads[i].done(statuses[i], statuses[i].ok() ? &siblings[i] : nullptr); });
  };
  // Answered reads first: neither a refused nor a deferred one holds them up.
  for (size_t i = 0; i < reads.size(); ++i)
    if (!deferred[i] && !statuses[i].Is(Status::Code::kStaleEpoch)) complete(i);
  ObserveEpoch(newer_epoch);  // before the refused gets re-plan
  for (size_t i = 0; i < reads.size(); ++i)
    if (statuses[i].Is(Status::Code::kStaleEpoch)) complete(i);
  // The reply was full (or the peer reads only one by one): these alone.
  for (size_t i = 0; i < reads.size(); ++i) {
    if (!deferred[i]) continue;
    try {
      statuses[i] = Read(*reads[i].key, &siblings[i]);
    } catch (const std::exception& e) {
      statuses[i] = Status::IOError(peer_id_ + " read failed: " + e.what());
    }
    complete(i);
  }
}

void RemoteReplicaEndpoint::ApplyMany(std::vector<PeerWrite>& writes) {
  std::vector<Status> statuses(writes.size());
  int64_t newer_epoch = 0;
  try {
    std::vector<rpc::KeyedVersion> wire;
    wire.reserve(writes.size());
    for (const auto& w : writes) {
      rpc::KeyedVersion kv;
      kv.pk = w.key->pk;
      kv.sk = w.key->sk;
      kv.version = w.version;
      wire.push_back(std::move(kv));
    }
    std::vector<rpc::ApplyOutcome> outcomes;
    bool unknown = false;
    Status call = CallMany("apply_many", wire.size(), &outcomes, &unknown,
                           [&](rpc::MonjuReplicaClient& c) { c.apply_many(outcomes, fingerprint_, wire, stamp_); });
    if (unknown) {
      BatchesUnknown("apply_many");
      for (size_t i = 0; i < writes.size(); ++i) {
        statuses[i] = Call("apply", [&](rpc::MonjuReplicaClient& c) {
          c.apply(fingerprint_, writes[i].key->pk, writes[i].key->sk, writes[i].version, stamp_);
          return Status::OK();
        });
      }
    }
    for (size_t i = 0; i < writes.size() && !unknown; ++i) {
      if (!call.ok()) {
        statuses[i] = call;
        continue;
      }
      const rpc::ApplyOutcome& o = outcomes[i];
      statuses[i] = OutcomeStatus(o.code, o.why, o.epoch, "apply", &newer_epoch);
    }
  } catch (const std::exception& e) {
    for (auto& s : statuses) s = Status::IOError(peer_id_ + " apply_many failed: " + e.what());
  }
  auto complete = [&](size_t i) { CompleteItem("write", [&] { writes[i].done(statuses[i]); }); };
  for (size_t i = 0; i < writes.size(); ++i)
    if (!statuses[i].Is(Status::Code::kStaleEpoch)) complete(i);
  ObserveEpoch(newer_epoch);  // before the refused writes' coordinators re-plan
  for (size_t i = 0; i < writes.size(); ++i)
    if (statuses[i].Is(Status::Code::kStaleEpoch)) complete(i);
}

Status RemoteReplicaEndpoint::ApplyHinted(const std::string& owner, const ItemKey& key, const Version& version) {
  const std::string encoded = EncodeVersion(version);
  return Call("apply_hinted", [&](rpc::MonjuReplicaClient& c) {
    c.apply_hinted(fingerprint_, owner, key.pk, key.sk, encoded, stamp_);
    return Status::OK();
  });
}

namespace {

// Hints and anti-entropy pushes travel as the same wire type.
template <typename Item>
std::vector<rpc::KeyedVersion> ToKeyedVersions(const std::vector<Item>& items) {
  std::vector<rpc::KeyedVersion> wire;
  wire.reserve(items.size());
  for (const Item& item : items) {
    rpc::KeyedVersion kv;
    kv.pk = item.pk;
    kv.sk = item.sk;
    kv.version = item.version;
    wire.push_back(std::move(kv));
  }
  return wire;
}

}  // namespace

Status RemoteReplicaEndpoint::ApplyBatch(const std::vector<Hint>& hints) {
  const std::vector<rpc::KeyedVersion> items = ToKeyedVersions(hints);
  return Call("apply_batch", [&](rpc::MonjuReplicaClient& c) {
    c.apply_batch(fingerprint_, items, stamp_);
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::Read(const ItemKey& key, SiblingSet* out) {
  CountSingleCall();
  return Call("read", [&](rpc::MonjuReplicaClient& c) {
    std::string bytes;
    c.read(bytes, fingerprint_, key.pk, key.sk, stamp_);
    auto siblings = DecodeSiblings(bytes);
    if (!siblings.ok()) return siblings.status();
    *out = std::move(siblings.value());
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::Scan(const DataStore::ScanRequest& r, std::vector<ScannedItem>* out, bool* more) {
  return Call("scan", [&](rpc::MonjuReplicaClient& c) {
    rpc::ScanReply reply;
    c.scan(reply, fingerprint_, r.pk, r.sk_prefix, r.start_sk, r.start_exclusive, static_cast<int32_t>(r.limit),
           r.ascending, stamp_);
    out->clear();
    for (auto& item : reply.items) {
      auto siblings = DecodeSiblings(item.siblings);
      if (!siblings.ok()) return siblings.status();
      out->push_back({std::move(item.sk), std::move(siblings.value())});
    }
    *more = reply.more;
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::Ping() {
  return Call("ping", [&](rpc::MonjuReplicaClient& c) {
    c.ping(fingerprint_, stamp_);
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::AeHashes(uint32_t partition, uint32_t format, uint32_t level,
                                       const std::vector<uint32_t>& parents, std::vector<uint64_t>* out,
                                       int64_t* items) {
  std::vector<int32_t> wire(parents.begin(), parents.end());
  return Call("ae_hashes", [&](rpc::MonjuReplicaClient& c) {
    rpc::AeHashes reply;
    c.ae_hashes(reply, fingerprint_, static_cast<int32_t>(partition), static_cast<int32_t>(format),
                static_cast<int32_t>(level), wire, stamp_);
    out->assign(reply.hashes.begin(), reply.hashes.end());
    *items = reply.items;
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::AeKeys(uint32_t partition, uint32_t format, uint32_t level,
                                     const std::vector<uint32_t>& nodes, const KeyDigest* after, size_t limit,
                                     std::vector<KeyDigest>* out, bool* more) {
  std::vector<int32_t> wire(nodes.begin(), nodes.end());
  return Call("ae_keys", [&](rpc::MonjuReplicaClient& c) {
    rpc::AeKeyPage page;
    c.ae_keys(page, fingerprint_, static_cast<int32_t>(partition), static_cast<int32_t>(format),
              static_cast<int32_t>(level), wire, after != nullptr, static_cast<int64_t>(after ? after->key_hash : 0),
              static_cast<int32_t>(std::min<size_t>(limit, INT32_MAX)), stamp_, after ? after->pk : std::string(),
              after ? after->sk : std::string());
    out->clear();
    out->reserve(page.entries.size());
    for (auto& e : page.entries)
      out->push_back({std::move(e.pk), std::move(e.sk), static_cast<uint64_t>(e.key_hash),
                      static_cast<uint64_t>(e.digest)});
    *more = page.more;
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::AeFetch(uint32_t partition, const std::vector<KeyQuery>& keys,
                                      std::vector<KeyAnswer>* out) {
  std::vector<rpc::AeKeyQuery> wire;
  wire.reserve(keys.size());
  for (const KeyQuery& k : keys) {
    rpc::AeKeyQuery q;
    q.pk = k.pk;
    q.sk = k.sk;
    q.asker_context = k.asker_context;
    q.want_versions = k.want_versions;
    wire.push_back(std::move(q));
  }
  return Call("ae_fetch", [&](rpc::MonjuReplicaClient& c) {
    std::vector<rpc::AeKeyAnswer> answers;
    c.ae_fetch(answers, fingerprint_, static_cast<int32_t>(partition), wire, stamp_);
    out->clear();
    out->reserve(answers.size());
    for (auto& a : answers)
      out->push_back({std::move(a.pk), std::move(a.sk), std::move(a.context), std::move(a.versions), a.withheld});
    return Status::OK();
  });
}

Status RemoteReplicaEndpoint::AePush(uint32_t partition, const std::vector<KeyedVersionBytes>& versions) {
  const std::vector<rpc::KeyedVersion> wire = ToKeyedVersions(versions);
  return Call("ae_push", [&](rpc::MonjuReplicaClient& c) {
    c.ae_push(fingerprint_, static_cast<int32_t>(partition), wire, stamp_);
    return Status::OK();
  });
}

NodeEndpoints::NodeEndpoints(std::string self_id, Replica* local, HintIntake* hints, ConnectionOptions base,
                             const Clock* clock, DetectorOptions detector_options)
    : self_id_(std::move(self_id)),
      local_(local, hints),
      base_(std::move(base)),
      clock_(clock),
      detector_options_(detector_options) {}

std::shared_ptr<PeerDetector> NodeEndpoints::Detector(const std::string& peer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& d = detectors_[peer_id];
  if (!d) d = std::make_shared<PeerDetector>(clock_, detector_options_);
  return d;
}

ReplicaEndpoint& NodeEndpoints::Endpoint(const ClusterView& view, uint32_t member_index) {
  if (view.members()[member_index].id == self_id_) return local_;
  return *Remote(view, member_index);
}

RemoteReplicaEndpoint* NodeEndpoints::Remote(const ClusterView& view, uint32_t member_index) {
  const PeerAddress& peer = view.members()[member_index];
  if (peer.id == self_id_) return nullptr;
  const ViewTable* table = latest_.load(std::memory_order_acquire);
  if (table && table->fingerprint == view.fingerprint() && table->epoch == view.epoch() &&
      member_index < table->members.size() && table->members[member_index] == peer) {
    if (RemoteReplicaEndpoint* known = table->remotes[member_index].load(std::memory_order_acquire)) return known;
  }
  RemoteReplicaEndpoint* made = Make(view, member_index);
  std::lock_guard<std::mutex> lock(mu_);
  ViewTable* found = nullptr;
  for (auto it = tables_.rbegin(); it != tables_.rend() && !found; ++it) {
    ViewTable& t = **it;
    if (t.fingerprint == view.fingerprint() && t.epoch == view.epoch() && t.members == view.members()) found = &t;
  }
  if (!found) {
    auto t = std::make_unique<ViewTable>();
    t->fingerprint = view.fingerprint();
    t->epoch = view.epoch();
    t->members = view.members();
    t->remotes = std::make_unique<std::atomic<RemoteReplicaEndpoint*>[]>(t->members.size());
    for (size_t i = 0; i < t->members.size(); ++i) t->remotes[i].store(nullptr, std::memory_order_relaxed);
    found = t.get();
    tables_.push_back(std::move(t));
  }
  found->remotes[member_index].store(made, std::memory_order_release);
  latest_.store(found, std::memory_order_release);
  return made;
}

RemoteReplicaEndpoint* NodeEndpoints::Make(const ClusterView& view, uint32_t member_index) {
  const PeerAddress& peer = view.members()[member_index];
  auto detector = Detector(peer.id);
  const std::string pool_key = peer.ToString() + "@" + std::to_string(view.fingerprint());
  const std::string key = pool_key + "#" + std::to_string(view.epoch());
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = remotes_[key];
  if (!slot) {
    auto& pool = pools_[pool_key];
    if (!pool) {
      ConnectionOptions options = base_;
      options.host = peer.host;
      options.port = peer.peer_port;
      options.service = "replica";
      options.peer_id = peer.id;
      pool = std::make_shared<RemoteReplicaEndpoint::Pool>(options);
    }
    slot = std::make_unique<RemoteReplicaEndpoint>(peer.id, pool, view.fingerprint(), view.epoch(), self_id_,
                                                   std::move(detector), &fence_, executor_.load());
  }
  return slot.get();
}

CoalescerStats NodeEndpoints::SumOver(CoalescerStats (RemoteReplicaEndpoint::*which)() const) {
  std::lock_guard<std::mutex> lock(mu_);
  CoalescerStats sum;
  for (const auto& [key, endpoint] : remotes_) {
    const CoalescerStats s = ((*endpoint).*which)();
    sum.calls += s.calls;
    sum.items += s.items;
  }
  return sum;
}

}  // namespace monju
