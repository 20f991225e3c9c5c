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
                                             const std::atomic<DataPathFence*>* fence, Executor* executor,
                                             std::shared_ptr<const PeerLinks> links)
    : peer_id_(std::move(peer_id)),
      fingerprint_(static_cast<int64_t>(fingerprint)),
      pool_(std::move(pool)),
      detector_(std::move(detector)),
      fence_(fence),
      executor_(executor),
      links_(executor ? std::move(links) : nullptr) {
  stamp_.epoch = static_cast<int64_t>(epoch);
  stamp_.sender = std::move(self_id);
  if (!executor) return;
  Coalescer<PeerWrite>::StartFn start_writes;
  Coalescer<PeerRead>::StartFn start_reads;
  if (links_) {
    start_writes = [this](std::vector<PeerWrite>& batch, std::function<void()> finished) {
      return StartApplyMany(batch, std::move(finished));
    };
    start_reads = [this](std::vector<PeerRead>& batch, std::function<void()> finished) {
      return StartReadMany(batch, std::move(finished));
    };
  }
  writes_ = std::make_unique<Coalescer<PeerWrite>>(
      CoalescerOptions{}, executor, [this](std::vector<PeerWrite>& batch) { ApplyMany(batch); },
      std::move(start_writes));
  // Replies hold whole sibling sets: fewer keys per call than writes.
  CoalescerOptions read_options;
  read_options.max_batch_items = 64;
  // One read call out at a time: reads queue behind it and leave together.
  // With two, a free slot let most reads go alone, and a node settled into
  // calls of about 1.4 reads instead of 3 at half the throughput
  // (docs/design.md, "Coalesced peer calls").
  read_options.max_senders = 1;
  reads_ = std::make_unique<Coalescer<PeerRead>>(
      read_options, executor, [this](std::vector<PeerRead>& batch) { ReadMany(batch); }, std::move(start_reads));
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

std::optional<Status> RemoteReplicaEndpoint::DeclaredError(const char* what) {
  try {
    throw;
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
  } catch (...) {
    return std::nullopt;
  }
}

template <typename Fn>
Status RemoteReplicaEndpoint::Guard(const char* what, std::unique_ptr<rpc::MonjuReplicaClient>& client, Fn&& fn) {
  try {
    Status s = fn(*client);
    detector_->RecordSuccess();
    return s;
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
    // The peer answered with an error the IDL declares: the connection is in a known state.
    if (auto declared = DeclaredError(what)) return *declared;
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
  if (!AppliesAsync()) return false;
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

namespace {

std::vector<rpc::KeyRef> WireReads(const std::vector<PeerRead>& reads) {
  std::vector<rpc::KeyRef> wire;
  wire.reserve(reads.size());
  for (const auto& r : reads) {
    rpc::KeyRef k;
    k.pk = r.key->pk;
    k.sk = r.key->sk;
    wire.push_back(std::move(k));
  }
  return wire;
}

std::vector<rpc::KeyedVersion> WireWrites(const std::vector<PeerWrite>& writes) {
  std::vector<rpc::KeyedVersion> wire;
  wire.reserve(writes.size());
  for (const auto& w : writes) {
    rpc::KeyedVersion kv;
    kv.pk = w.key->pk;
    kv.sk = w.key->sk;
    kv.version = w.version;
    wire.push_back(std::move(kv));
  }
  return wire;
}

// The frame a MonjuReplicaClient would send for the call `send` makes
// (send_<method>), on the "replica" service. One encoder per thread.
constexpr size_t kKeepEncoderBytes = 1 << 20;

// Scans out to one peer at once without a fan-out thread: as many as a node
// runs queries at once with the default 4 client threads (a query waits
// on its thread); more go through the fan-out executor.
constexpr size_t kScanLinksPerPeer = 4;

template <typename Send>
std::string EncodeReplicaCall(Send&& send) {
  using namespace apache::thrift;
  struct Encoder {
    std::shared_ptr<transport::TMemoryBuffer> memory = std::make_shared<transport::TMemoryBuffer>();
    std::shared_ptr<transport::TFramedTransport> framed = std::make_shared<transport::TFramedTransport>(memory);
    rpc::MonjuReplicaClient client{std::make_shared<protocol::TMultiplexedProtocol>(
        std::make_shared<protocol::TBinaryProtocol>(framed), "replica")};
  };
  thread_local std::unique_ptr<Encoder> encoder;
  if (!encoder) encoder = std::make_unique<Encoder>();
  try {
    send(encoder->client);
  } catch (...) {
    encoder.reset();  // half a message may be buffered
    throw;
  }
  std::string frame = encoder->memory->getBufferAsString();
  encoder->memory->resetBuffer();
  // The buffers keep the largest frame's size: a rare big one is not kept.
  if (frame.size() > kKeepEncoderBytes) encoder.reset();
  return frame;
}

// The least busy of a peer's links.
PeerLink* LeastBusy(std::span<const std::shared_ptr<PeerLink>> links) {
  PeerLink* best = nullptr;
  size_t best_pending = 0;
  for (const auto& link : links) {
    const size_t pending = link->pending();
    if (!best || pending < best_pending) {
      best = link.get();
      best_pending = pending;
    }
  }
  return best;
}

// Queues a call on an idle one of a peer's links (so that the peer works on
// the calls together), else on the least busy. Applies and reads are
// idempotent: one resend covers a peer's restart.
bool CallOnLinks(std::span<const std::shared_ptr<PeerLink>> links, std::string& frame, PeerLink::Done& done) {
  constexpr auto kResend = PeerLink::Resend::kOnceIfConnectionCloses;
  // One link (reads): nothing to choose, one lock.
  if (links.size() == 1) return links.front()->Call(std::move(frame), std::move(done), kResend);
  for (const auto& link : links)
    if (link->CallIfIdle(frame, done, kResend)) return true;
  return LeastBusy(links)->Call(std::move(frame), std::move(done), kResend);
}

}  // namespace

template <typename Recv>
Status RemoteReplicaEndpoint::ReadReply(const char* what, Status link_status, std::string& reply, bool* unknown,
                                        Recv&& recv) {
  if (!link_status.ok()) {
    // The link was closed for it (no reply, the connection failed), or the
    // reply was refused: the peer is not answering, or not sanely.
    if (!link_status.Is(Status::Code::kIOError)) detector_->RecordFailure();
    return Status::FromCode(static_cast<int>(link_status.code()),
                            peer_id_ + " " + what + " failed: " + link_status.message());
  }
  using namespace apache::thrift;
  try {
    auto memory = std::make_shared<transport::TMemoryBuffer>(reinterpret_cast<uint8_t*>(reply.data()),
                                                             static_cast<uint32_t>(reply.size()),
                                                             transport::TMemoryBuffer::OBSERVE);
    rpc::MonjuReplicaClient client(LimitedProtocol(memory, static_cast<int32_t>(reply.size())));
    if (!CallUnlessUnknown([&] { recv(client); })) *unknown = true;
    detector_->RecordSuccess();
    return Status::OK();
  } catch (const TException& e) {
    if (auto declared = DeclaredError(what)) return *declared;
    return Status::IOError(peer_id_ + " " + what + " reply undecodable: " + e.what());
  }
}

bool RemoteReplicaEndpoint::OffThePoller(std::function<void()> complete) {
  return executor_ && executor_->Submit(std::move(complete));
}

template <typename Item, typename Outcome, typename Send>
bool RemoteReplicaEndpoint::StartMany(const char* what, std::span<const std::shared_ptr<PeerLink>> links,
                                      std::vector<Item>& items, std::function<void()> finished, Send&& send,
                                      void (rpc::MonjuReplicaClient::*recv)(std::vector<Outcome>&),
                                      void (RemoteReplicaEndpoint::*complete)(std::shared_ptr<std::vector<Item>>,
                                                                              const Status&, std::vector<Outcome>&,
                                                                              bool, bool)) {
  std::string frame;
  try {
    frame = EncodeReplicaCall(std::forward<Send>(send));
  } catch (const std::exception& e) {
    spdlog::warn("encoding {} to {} failed: {}", what, peer_id_, e.what());
    return false;  // the executor's blocking call reports it
  }
  auto batch = std::make_shared<std::vector<Item>>(std::move(items));
  PeerLink::Done done = [this, what, batch, recv, complete, finished = std::move(finished)](Status s,
                                                                                           std::string reply) {
    try {
      std::vector<Outcome> outcomes;
      bool unknown = false;
      Status call = ReadReply(what, std::move(s), reply, &unknown,
                              [&](rpc::MonjuReplicaClient& c) { (c.*recv)(outcomes); });
      if (call.ok() && !unknown && outcomes.size() != batch->size())
        call = Status::IOError(peer_id_ + " answered " + std::to_string(outcomes.size()) + " outcomes for " +
                               std::to_string(batch->size()) + " items of " + what);
      (this->*complete)(batch, call, outcomes, unknown, /*may_block=*/false);
    } catch (const std::exception& e) {
      spdlog::error("finishing {} to {} failed: {}", what, peer_id_, e.what());
    }
    finished();  // the call's place in the coalescer, whatever happened
  };
  bool taken = false;
  try {
    taken = CallOnLinks(links, frame, done);
  } catch (const std::exception& e) {
    spdlog::warn("queueing {} to {} failed: {}", what, peer_id_, e.what());
  }
  if (!taken) items = std::move(*batch);
  return taken;
}

template <typename Item>
void RemoteReplicaEndpoint::FinishRefused(std::shared_ptr<std::vector<Item>> items, std::vector<size_t> refused,
                                          std::vector<Status> statuses, int64_t newer_epoch, bool may_block) {
  if (refused.empty()) return;
  auto finish = [this, items, refused = std::move(refused), statuses = std::move(statuses),
                 newer_epoch](bool observe) {
    if (observe) ObserveEpoch(newer_epoch);  // before the refused items' requests re-plan
    for (size_t k = 0; k < refused.size(); ++k)
      CompleteItem("refused item", [&] { (*items)[refused[k]].Fail(statuses[k]); });
  };
  if (may_block) return finish(true);
  if (OffThePoller([finish] { finish(true); })) return;
  finish(false);  // no thread to catch up on: the requests see StaleEpoch without the newer view
}

template <typename Item, typename Outcome, typename Send>
void RemoteReplicaEndpoint::SendMany(const char* what, std::vector<Item>& items, Send&& send,
                                     void (RemoteReplicaEndpoint::*complete)(std::shared_ptr<std::vector<Item>>,
                                                                             const Status&, std::vector<Outcome>&,
                                                                             bool, bool)) {
  std::vector<Outcome> outcomes;
  bool unknown = false;
  Status call;
  try {
    call = CallMany(what, items.size(), &outcomes, &unknown,
                    [&](rpc::MonjuReplicaClient& c) { send(c, outcomes); });
  } catch (const std::exception& e) {
    call = Status::IOError(peer_id_ + " " + what + " failed: " + e.what());
  }
  (this->*complete)(std::make_shared<std::vector<Item>>(std::move(items)), call, outcomes, unknown,
                    /*may_block=*/true);
}

void RemoteReplicaEndpoint::ReadMany(std::vector<PeerRead>& reads) {
  SendMany(
      "read_many", reads,
      [&](rpc::MonjuReplicaClient& c, std::vector<rpc::ReadOutcome>& outcomes) {
        c.read_many(outcomes, fingerprint_, WireReads(reads), stamp_);
      },
      &RemoteReplicaEndpoint::CompleteReadMany);
}

bool RemoteReplicaEndpoint::StartReadMany(std::vector<PeerRead>& reads, std::function<void()> finished) {
  if (!links_ || LinkFaulty() || batches_unknown_.load()) return false;
  const std::vector<rpc::KeyRef> wire = WireReads(reads);
  return StartMany(
      "read_many", {&links_->reads, 1}, reads, std::move(finished),
      [&](rpc::MonjuReplicaClient& c) { c.send_read_many(fingerprint_, wire, stamp_); },
      &rpc::MonjuReplicaClient::recv_read_many, &RemoteReplicaEndpoint::CompleteReadMany);
}

void RemoteReplicaEndpoint::ReadAlone(std::shared_ptr<std::vector<PeerRead>> reads, std::vector<size_t> which,
                                      bool may_block) {
  if (which.empty()) return;
  auto read_each = [this, reads, which] {
    for (size_t i : which) {
      SiblingSet siblings;
      Status s;
      try {
        s = Read(*(*reads)[i].key, &siblings);
      } catch (const std::exception& e) {
        s = Status::IOError(peer_id_ + " read failed: " + e.what());
      }
      CompleteItem("read", [&] { (*reads)[i].done(s, s.ok() ? &siblings : nullptr); });
    }
  };
  if (may_block) return read_each();
  if (OffThePoller(read_each)) return;
  for (size_t i : which)
    CompleteItem("read", [&] {
      (*reads)[i].Fail(Status::Unavailable("node overloaded or stopping: no thread to read " + peer_id_ +
                                           "'s deferred keys on"));
    });
}

void RemoteReplicaEndpoint::CompleteReadMany(std::shared_ptr<std::vector<PeerRead>> batch, const Status& call,
                                             std::vector<rpc::ReadOutcome>& outcomes, bool unknown, bool may_block) {
  std::vector<PeerRead>& reads = *batch;
  std::vector<size_t> alone;  // deferred by the peer's full reply, or all when it reads only one by one
  if (unknown) {
    BatchesUnknown("read_many");
    for (size_t i = 0; i < reads.size(); ++i) alone.push_back(i);
    return ReadAlone(batch, std::move(alone), may_block);
  }
  std::vector<size_t> refused;
  std::vector<Status> refusals;
  int64_t newer_epoch = 0;
  for (size_t i = 0; i < reads.size(); ++i) {
    Status status = call;
    SiblingSet siblings;
    if (call.ok()) {
      rpc::ReadOutcome& o = outcomes[i];
      if (o.deferred) {
        alone.push_back(i);
        continue;
      }
      status = OutcomeStatus(o.code, o.why, o.epoch, "read", &newer_epoch);
      if (status.Is(Status::Code::kStaleEpoch)) {
        refused.push_back(i);
        refusals.push_back(std::move(status));
        continue;
      }
      if (status.ok()) {
        auto decoded = DecodeSiblings(o.siblings);
        if (decoded.ok()) {
          siblings = std::move(decoded.value());
        } else {
          status = decoded.status();
        }
      }
    }
    // Answered reads first: neither a refused nor a deferred one holds them up.
    CompleteItem("read", [&] { reads[i].done(status, status.ok() ? &siblings : nullptr); });
  }
  FinishRefused(batch, std::move(refused), std::move(refusals), newer_epoch, may_block);
  ReadAlone(batch, std::move(alone), may_block);
}

void RemoteReplicaEndpoint::ApplyMany(std::vector<PeerWrite>& writes) {
  SendMany(
      "apply_many", writes,
      [&](rpc::MonjuReplicaClient& c, std::vector<rpc::ApplyOutcome>& outcomes) {
        c.apply_many(outcomes, fingerprint_, WireWrites(writes), stamp_);
      },
      &RemoteReplicaEndpoint::CompleteApplyMany);
}

bool RemoteReplicaEndpoint::StartApplyMany(std::vector<PeerWrite>& writes, std::function<void()> finished) {
  if (!links_ || LinkFaulty() || batches_unknown_.load()) return false;
  const std::vector<rpc::KeyedVersion> wire = WireWrites(writes);
  return StartMany(
      "apply_many", links_->writes, writes, std::move(finished),
      [&](rpc::MonjuReplicaClient& c) { c.send_apply_many(fingerprint_, wire, stamp_); },
      &rpc::MonjuReplicaClient::recv_apply_many, &RemoteReplicaEndpoint::CompleteApplyMany);
}

void RemoteReplicaEndpoint::CompleteApplyMany(std::shared_ptr<std::vector<PeerWrite>> batch, const Status& call,
                                              std::vector<rpc::ApplyOutcome>& outcomes, bool unknown,
                                              bool may_block) {
  std::vector<PeerWrite>& writes = *batch;
  if (unknown) {
    BatchesUnknown("apply_many");
    auto apply_each = [this, batch] {
      for (PeerWrite& w : *batch) {
        Status s = Call("apply", [&](rpc::MonjuReplicaClient& c) {
          c.apply(fingerprint_, w.key->pk, w.key->sk, w.version, stamp_);
          return Status::OK();
        });
        CompleteItem("write", [&] { w.done(s); });
      }
    };
    if (may_block) return apply_each();
    if (OffThePoller(apply_each)) return;
    // The peer applied none of them (it did not know the call).
    for (PeerWrite& w : writes)
      CompleteItem("write", [&] {
        w.Fail(Status::Unavailable("node overloaded or stopping: no thread to send " + peer_id_ +
                                   " the writes one by one"));
      });
    return;
  }
  std::vector<size_t> refused;
  std::vector<Status> refusals;
  int64_t newer_epoch = 0;
  for (size_t i = 0; i < writes.size(); ++i) {
    Status status = call;
    if (call.ok()) {
      const rpc::ApplyOutcome& o = outcomes[i];
      status = OutcomeStatus(o.code, o.why, o.epoch, "apply", &newer_epoch);
      if (status.Is(Status::Code::kStaleEpoch)) {
        refused.push_back(i);
        refusals.push_back(std::move(status));
        continue;
      }
    }
    CompleteItem("write", [&] { writes[i].done(status); });
  }
  FinishRefused(batch, std::move(refused), std::move(refusals), newer_epoch, may_block);
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

bool RemoteReplicaEndpoint::ScanAsync(std::shared_ptr<const DataStore::ScanRequest> r,
                                      std::function<void(Status, std::vector<ScannedItem>*, bool more)> done) {
  if (!links_ || links_->scans.empty() || LinkFaulty()) return false;
  std::string frame;
  try {
    frame = EncodeReplicaCall([&](rpc::MonjuReplicaClient& c) {
      c.send_scan(fingerprint_, r->pk, r->sk_prefix, r->start_sk, r->start_exclusive, static_cast<int32_t>(r->limit),
                  r->ascending, stamp_);
    });
  } catch (const std::exception& e) {
    spdlog::warn("encoding scan to {} failed: {}", peer_id_, e.what());
    return false;  // Scan() reports it
  }
  // Decodes, never waits (a newer epoch is caught up with on the executor),
  // and calls `done` once whatever happens.
  auto decode = [this, done = std::move(done)](Status s, std::string reply) {
    std::vector<ScannedItem> items;
    bool more = false;
    int64_t newer_epoch = 0;
    Status outcome;
    try {
      outcome = ReadScanReply(std::move(s), reply, &items, &more, &newer_epoch);
    } catch (const std::exception& e) {
      outcome = Status::IOError(peer_id_ + " scan reply: " + e.what());
    }
    if (!outcome.ok()) {
      items.clear();
      more = false;
    }
    auto finish = [this](const auto& done, Status outcome, std::vector<ScannedItem>* items, bool more) {
      try {
        done(std::move(outcome), items, more);
      } catch (const std::exception& e) {
        spdlog::error("finishing a scan of {} failed: {}", peer_id_, e.what());
      }
    };
    if (newer_epoch > 0) {
      bool queued = false;
      try {
        queued = OffThePoller([this, newer_epoch, outcome, done, finish] {
          try {
            ObserveEpoch(newer_epoch);  // may wait: not on the poller
          } catch (const std::exception& e) {
            spdlog::warn("learning epoch {} from {} failed: {}", newer_epoch, peer_id_, e.what());
          }
          std::vector<ScannedItem> none;
          finish(done, outcome, &none, false);
        });
      } catch (const std::exception&) {
        queued = false;
      }
      if (queued) return;
    }
    finish(done, std::move(outcome), &items, more);
  };
  // On the poller's thread. A page over kScanDecodeInlineBytes is decoded on
  // the executor: its sibling sets would hold up every other link's replies
  // (on the poller when the executor is full).
  PeerLink::Done link_done = [this, decode = std::make_shared<decltype(decode)>(std::move(decode))](Status s,
                                                                                                    std::string reply) {
    if (s.ok() && reply.size() > kScanDecodeInlineBytes) {
      auto page = std::make_shared<std::string>(std::move(reply));
      bool queued = false;
      try {
        queued = OffThePoller([decode, page] { (*decode)(Status::OK(), std::move(*page)); });
      } catch (const std::exception&) {
        queued = false;
      }
      if (queued) return;
      reply = std::move(*page);
    }
    (*decode)(std::move(s), std::move(reply));
  };
  constexpr auto kResend = PeerLink::Resend::kOnceIfConnectionCloses;  // a scan only reads
  try {
    for (const auto& link : links_->scans)
      if (link->CallIfIdle(frame, link_done, kResend)) return true;
  } catch (const std::exception& e) {
    spdlog::warn("queueing a scan to {} failed: {}", peer_id_, e.what());
  }
  return false;
}

Status RemoteReplicaEndpoint::ReadScanReply(Status link_status, std::string& reply, std::vector<ScannedItem>* items,
                                            bool* more, int64_t* newer_epoch) {
  if (!link_status.ok()) {
    if (!link_status.Is(Status::Code::kIOError)) detector_->RecordFailure();
    return Status::FromCode(static_cast<int>(link_status.code()), peer_id_ + " scan failed: " + link_status.message());
  }
  using namespace apache::thrift;
  rpc::ScanReply wire;
  try {
    auto memory = std::make_shared<transport::TMemoryBuffer>(reinterpret_cast<uint8_t*>(reply.data()),
                                                             static_cast<uint32_t>(reply.size()),
                                                             transport::TMemoryBuffer::OBSERVE);
    rpc::MonjuReplicaClient client(LimitedProtocol(memory, static_cast<int32_t>(reply.size())));
    client.recv_scan(wire);
  } catch (const rpc::StaleEpoch& e) {
    // Learnt by the caller, off the poller (DeclaredError would learn it here).
    detector_->RecordSuccess();
    *newer_epoch = e.epoch;
    return Status::StaleEpoch(peer_id_ + " refused scan: " + e.why);
  } catch (const TException& e) {
    if (auto declared = DeclaredError("scan")) return *declared;
    return Status::IOError(peer_id_ + " scan reply undecodable: " + e.what());
  }
  detector_->RecordSuccess();
  items->reserve(wire.items.size());
  for (auto& item : wire.items) {
    auto siblings = DecodeSiblings(item.siblings);
    if (!siblings.ok()) return siblings.status();
    items->push_back({std::move(item.sk), std::move(siblings.value())});
  }
  *more = wire.more;
  return Status::OK();
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
    LinkPoller* poller = poller_.load();
    Executor* executor = executor_.load();
    std::shared_ptr<const PeerLinks> links;
    if (auto known = links_.find(pool_key); known != links_.end()) links = known->second;
    if (!links && poller && executor) {
      const ConnectionOptions& o = pool->options();
      PeerLinkOptions link_options;
      link_options.host = o.host;
      link_options.port = o.port;
      link_options.bind_host = o.bind_host;
      link_options.connect_timeout_ms = o.connect_timeout_ms;
      link_options.io_timeout_ms = o.connect_timeout_ms + o.io_timeout_ms;
      link_options.max_reply_bytes = static_cast<uint32_t>(o.max_message_bytes);
      // One refused connect pauses all of the peer's links.
      link_options.connect_pause = std::make_shared<ConnectPause>(link_options.reconnect_pause_min_ms,
                                                                  link_options.reconnect_pause_max_ms);
      auto made = std::make_shared<PeerLinks>();
      // As many write links as coalesced write calls may be out at once, so
      // that the peer works on them together (it reads a connection's next
      // call only once the last is answered); one for reads.
      for (size_t i = 0; i < CoalescerOptions{}.max_senders; ++i)
        made->writes.push_back(poller->NewLink(link_options));
      made->reads = poller->NewLink(link_options);
      for (size_t i = 0; i < kScanLinksPerPeer; ++i) made->scans.push_back(poller->NewLink(link_options));
      links = links_[pool_key] = std::move(made);
    }
    slot = std::make_unique<RemoteReplicaEndpoint>(peer.id, pool, view.fingerprint(), view.epoch(), self_id_,
                                                   std::move(detector), &fence_, executor, links);
  }
  return slot.get();
}

PeerLinkStats NodeEndpoints::link_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  PeerLinkStats sum;
  auto add = [&sum](const PeerLink& link) {
    const PeerLinkStats s = link.stats();
    sum.calls += s.calls;
    sum.connects += s.connects;
    sum.failures += s.failures;
    sum.connect_failures += s.connect_failures;
    sum.resends += s.resends;
    sum.idle_closes += s.idle_closes;
    sum.paused_failures += s.paused_failures;
  };
  for (const auto& [key, links] : links_) {
    for (const auto& link : links->writes) add(*link);
    add(*links->reads);
    for (const auto& link : links->scans) add(*link);
  }
  return sum;
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
