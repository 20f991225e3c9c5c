// The coordinator's ways to reach replicas: in-process for this node, Thrift
// (MonjuReplica, multiplexed as "replica") for peers. Every remote call feeds
// the peer's failure detector, which decides LikelyAlive(). A remote endpoint
// belongs to one view: its calls carry that view's epoch (EpochStamp), and a
// StaleEpoch refusal makes this node catch up (set_fence) before the call
// returns Status::StaleEpoch.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "MonjuReplica.h"
#include "antientropy.h"
#include "coalescer.h"
#include "client_pool.h"
#include "coordinator.h"
#include "data_path_fence.h"
#include "health/failure_detector.h"
#include "hint_intake.h"
#include "peer_link.h"

namespace monju {

class LocalReplicaEndpoint final : public ReplicaEndpoint {
 public:
  LocalReplicaEndpoint(Replica* replica, HintIntake* hints) : replica_(replica), hints_(hints) {}
  Status Apply(const ItemKey& key, const Version& version) override { return replica_->Apply(key, version); }
  // Queued for the store's writer, whose thread runs `done` once the write
  // is durable. Never waits for room: false (nothing written, `done` never
  // called) when the store's queue is full or the store is closing.
  bool AppliesAsync() const override { return true; }
  bool ApplyAsync(std::shared_ptr<const ItemKey> key, std::shared_ptr<const Version> version,
                  std::function<void(Status)> done) override {
    return replica_->TryApplyAsync(*key, *version, std::move(done));
  }
  Status ApplyHinted(const std::string& owner, const ItemKey& key, const Version& version) override;
  Status Read(const ItemKey& key, SiblingSet* out) override { return replica_->Read(key, out); }
  Status Scan(const DataStore::ScanRequest& r, std::vector<ScannedItem>* out, bool* more) override {
    return replica_->Scan(r, out, more);
  }
  bool LikelyAlive() const override { return true; }

 private:
  Replica* replica_;
  HintIntake* hints_;
};

// A write waiting for the apply_many call that carries it.
struct PeerWrite {
  std::shared_ptr<const ItemKey> key;
  std::string version;  // encoded
  std::function<void(Status)> done;
  size_t bytes() const { return key->pk.size() + key->sk.size() + version.size(); }
  void Fail(const Status& s) { done(s); }
};

// A read waiting for the read_many call that carries it.
struct PeerRead {
  std::shared_ptr<const ItemKey> key;
  std::function<void(Status, SiblingSet*)> done;
  size_t bytes() const { return key->pk.size() + key->sk.size(); }
  void Fail(const Status& s) { done(s, nullptr); }
};

// A peer's links for coalesced calls (peer_link.h), shared by its endpoints
// of every epoch: writes on the least busy of `writes`, reads on `reads`,
// query scans on an idle one of `scans` (never queued behind another: a
// scan may take a while, and the peer answers a link's calls in order).
struct PeerLinks {
  std::vector<std::shared_ptr<PeerLink>> writes;
  std::shared_ptr<PeerLink> reads;
  std::vector<std::shared_ptr<PeerLink>> scans;
};

// Thread-safe: each call borrows its own pooled client.
class RemoteReplicaEndpoint final : public ReplicaEndpoint {
 public:
  using Pool = ClientPool<rpc::MonjuReplicaClient>;
  // `pool` is shared by the endpoints of one peer across epochs; `fence`
  // points at the directory's (null for a static cluster). With an
  // `executor`, ApplyAsync() and ReadAsync() coalesce (apply_many,
  // read_many); without, they decline and every call goes alone. A peer
  // that does not know those calls (an older monjud, during a rolling
  // upgrade) gets the items one call each, and they decline until
  // kBatchRetryAfter single reads and writes later, when batches are tried
  // again. With `links` too, a coalesced call is written to a link by the
  // thread that has it and its reply completed by the link's poller, so no
  // thread waits for it; the executor then runs only what may block (calls
  // while a link is busy or connecting refuses, retries one by one, catching
  // up with a newer epoch).
  RemoteReplicaEndpoint(std::string peer_id, std::shared_ptr<Pool> pool, uint64_t fingerprint, uint64_t epoch,
                        std::string self_id, std::shared_ptr<PeerDetector> detector,
                        const std::atomic<DataPathFence*>* fence, Executor* executor = nullptr,
                        std::shared_ptr<const PeerLinks> links = nullptr);
  Status Apply(const ItemKey& key, const Version& version) override;
  bool ApplyAsync(std::shared_ptr<const ItemKey> key, std::shared_ptr<const Version> version,
                  std::function<void(Status)> done) override;
  // Links with injected faults (testing only) read through Read() instead.
  bool ReadsAsync() const override { return reads_ && !LinkFaulty() && !batches_unknown_.load(); }
  bool AppliesAsync() const override { return writes_ && !batches_unknown_.load(); }
  bool ReadAsync(std::shared_ptr<const ItemKey> key, std::function<void(Status, SiblingSet*)> done) override;
  // One apply_many (read_many) call carrying the batch; completes each item.
  void ApplyMany(std::vector<PeerWrite>& writes);
  void ReadMany(std::vector<PeerRead>& reads);
  // The same on a link, without blocking (Coalescer::StartFn): false, with
  // the batch untouched, when there are no links, the link is faulty
  // (testing) or the link refuses the call.
  bool StartApplyMany(std::vector<PeerWrite>& writes, std::function<void()> finished);
  bool StartReadMany(std::vector<PeerRead>& reads, std::function<void()> finished);
  // Calls and items sent by ApplyAsync() and ReadAsync() (zero without an executor).
  CoalescerStats coalesced_writes() const { return writes_ ? writes_->stats() : CoalescerStats{}; }
  CoalescerStats coalesced_reads() const { return reads_ ? reads_->stats() : CoalescerStats{}; }
  Status ApplyHinted(const std::string& owner, const ItemKey& key, const Version& version) override;
  Status Read(const ItemKey& key, SiblingSet* out) override;
  // A link with an injected fault (testing only) delays or drops inside
  // Borrow(), which must not hold up a coalesced call's other items.
  bool LinkFaulty() const {
    const ConnectionOptions& o = pool_->options();
    if (!o.faults) return false;
    LinkFault fault = o.faults->To(o.peer_id);
    return fault.drop || fault.delay.count() > 0;
  }
  Status Scan(const DataStore::ScanRequest& r, std::vector<ScannedItem>* out, bool* more) override;
  // Scan() on an idle scan link, completed by the links' poller (a reply
  // over kScanDecodeInlineBytes by the executor, which decodes it); false
  // (the caller then uses Scan()) without links, with a faulty link
  // (testing), or when every scan link has a call out.
  static constexpr size_t kScanDecodeInlineBytes = 64 << 10;
  bool ScanAsync(std::shared_ptr<const DataStore::ScanRequest> r,
                 std::function<void(Status, std::vector<ScannedItem>*, bool more)> done) override;
  bool LikelyAlive() const override { return detector_->LikelyAlive(); }
  size_t ReadsInFlight() const override { return reads_in_flight_.load(std::memory_order_relaxed); }
  // Hint delivery: every hint's version merged at the peer, durable together.
  Status ApplyBatch(const std::vector<Hint>& hints);
  // A bare liveness and parameter check (the prober's, with its own timeout).
  Status Ping();

  // Anti-entropy calls (antientropy/exchange.h), as ExchangePeer's.
  Status AeHashes(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& parents,
                  std::vector<uint64_t>* out, int64_t* items);
  Status AeKeys(uint32_t partition, uint32_t format, uint32_t level, const std::vector<uint32_t>& nodes,
                const KeyDigest* after, size_t limit, std::vector<KeyDigest>* out, bool* more);
  Status AeFetch(uint32_t partition, const std::vector<KeyQuery>& keys, std::vector<KeyAnswer>* out);
  Status AePush(uint32_t partition, const std::vector<KeyedVersionBytes>& versions);

 private:
  template <typename Fn>
  Status Call(const char* what, Fn&& fn);
  // Runs `fn` on `client` and maps what it throws to a Status. A client in
  // an unknown state (transport errors) is reset; otherwise the caller
  // returns it to the pool.
  template <typename Fn>
  Status Guard(const char* what, std::unique_ptr<rpc::MonjuReplicaClient>& client, Fn&& fn);
  // Inside a catch block: the Status of an exception the IDL declares for
  // replica calls (the peer answered), or nullopt for any other.
  std::optional<Status> DeclaredError(const char* what);
  // A link call's reply, read by `recv`; *unknown (and OK) when the peer does not know the method.
  template <typename Recv>
  Status ReadReply(const char* what, Status link_status, std::string& reply, bool* unknown, Recv&& recv);
  // What a batch call's outcomes mean for each item, completing each. With
  // may_block false (the poller's thread) what may block moves to the
  // executor: retrying items one by one when `unknown`, reading deferred
  // keys alone, catching up with a newer epoch before completing the items
  // it refused; when the executor refuses, those items fail Unavailable
  // (the refused ones complete without the catch-up).
  void CompleteApplyMany(std::shared_ptr<std::vector<PeerWrite>> writes, const Status& call,
                         std::vector<rpc::ApplyOutcome>& outcomes, bool unknown, bool may_block);
  void CompleteReadMany(std::shared_ptr<std::vector<PeerRead>> reads, const Status& call,
                        std::vector<rpc::ReadOutcome>& outcomes, bool unknown, bool may_block);
  // The StaleEpoch refusals among `items` (their indices and statuses): the
  // newer epoch is learnt first, then they complete.
  template <typename Item>
  void FinishRefused(std::shared_ptr<std::vector<Item>> items, std::vector<size_t> refused,
                     std::vector<Status> statuses, int64_t newer_epoch, bool may_block);
  // Reads the keys at `which` one call each, and completes them.
  void ReadAlone(std::shared_ptr<std::vector<PeerRead>> reads, std::vector<size_t> which, bool may_block);
  // One batch call on a pooled client, waited for: `send` makes it
  // (<method>, filling the outcomes), and `complete` finishes the items
  // (may_block true).
  template <typename Item, typename Outcome, typename Send>
  void SendMany(const char* what, std::vector<Item>& items, Send&& send,
                void (RemoteReplicaEndpoint::*complete)(std::shared_ptr<std::vector<Item>>, const Status&,
                                                        std::vector<Outcome>&, bool, bool));
  // Starts a batch call on one of `links` (an idle one if any): `send`
  // writes the call (send_<method>), `recv` reads its reply, and `complete`
  // finishes the items (may_block false). False, with `items` untouched,
  // when the call cannot be encoded or the links refuse it.
  template <typename Item, typename Outcome, typename Send>
  bool StartMany(const char* what, std::span<const std::shared_ptr<PeerLink>> links, std::vector<Item>& items,
                 std::function<void()> finished,
                 Send&& send, void (rpc::MonjuReplicaClient::*recv)(std::vector<Outcome>&),
                 void (RemoteReplicaEndpoint::*complete)(std::shared_ptr<std::vector<Item>>, const Status&,
                                                         std::vector<Outcome>&, bool, bool));
  // Runs `complete` on the executor, where it may block: false without an
  // executor or when it refuses (the caller then completes the items).
  bool OffThePoller(std::function<void()> complete);
  // A scan's reply read from a link: its items, or why there are none;
  // *newer_epoch > 0 when the peer refused it as planned under an older
  // epoch (for the caller to learn off the poller).
  Status ReadScanReply(Status link_status, std::string& reply, std::vector<ScannedItem>* items, bool* more,
                       int64_t* newer_epoch);
  // One batch call (`send` fills *outcomes): OK with one outcome per item,
  // or the call's error; *unknown (and OK) when the peer does not know it.
  template <typename Outcome, typename Send>
  Status CallMany(const char* what, size_t items, std::vector<Outcome>* outcomes, bool* unknown, Send&& send);
  // One item's outcome of a batch call; a StaleEpoch raises *newer_epoch.
  Status OutcomeStatus(int32_t code, const std::string& why, int64_t epoch, const char* what,
                       int64_t* newer_epoch) const;
  // Catches this node up with a peer's newer epoch (no-op without a fence or for epoch <= 0).
  void ObserveEpoch(int64_t epoch);

  const std::string peer_id_;
  const int64_t fingerprint_;
  rpc::EpochStamp stamp_;
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<PeerDetector> detector_;
  const std::atomic<DataPathFence*>* fence_;
  // Reads given to ReadAsync() not yet completed.
  std::atomic<size_t> reads_in_flight_{0};
  Executor* const executor_;
  const std::shared_ptr<const PeerLinks> links_;  // null: coalesced calls block an executor thread
  std::unique_ptr<Coalescer<PeerWrite>> writes_;  // null without an executor
  std::unique_ptr<Coalescer<PeerRead>> reads_;

 public:
  static constexpr uint64_t kBatchRetryAfter = 1000;

 private:
  // Marks the peer as not knowing the batch calls (logged once per endpoint).
  void BatchesUnknown(const char* call);
  // Counts a single read or write while batches are not tried.
  void CountSingleCall();
  std::atomic<bool> batches_unknown_{false};  // the peer did not know apply_many or read_many
  std::atomic<uint64_t> single_calls_{0};     // since batches_unknown_ was set
  std::atomic<bool> logged_unknown_{false};
};

// Endpoints for the members of the current view, created on first use, and
// one failure detector per peer, kept across view changes.
class NodeEndpoints final : public EndpointDirectory {
 public:
  NodeEndpoints(std::string self_id, Replica* local, HintIntake* hints, ConnectionOptions base,
                const Clock* clock, DetectorOptions detector_options);
  ReplicaEndpoint& Endpoint(const ClusterView& view, uint32_t member_index) override;
  // The remote endpoint of a member (nullptr for this node).
  RemoteReplicaEndpoint* Remote(const ClusterView& view, uint32_t member_index);
  // The detector of a peer id (created on first use).
  std::shared_ptr<PeerDetector> Detector(const std::string& peer_id);
  const std::string& self_id() const { return self_id_; }
  // Raft-managed membership: remote calls stamp their view's epoch and
  // report refusals here.
  void set_fence(DataPathFence* fence) { fence_.store(fence); }
  // Runs the senders of coalesced writes (ApplyAsync); set before first use.
  // It must be stopped before the endpoints are destroyed.
  void set_executor(Executor* executor) { executor_.store(executor); }
  // Coalesced calls go on links driven by `poller` (with the executor set
  // too); set before first use. It must be stopped before the endpoints are
  // destroyed.
  void set_poller(LinkPoller* poller) { poller_.store(poller); }
  // Coalesced writes and reads, summed over every remote endpoint.
  CoalescerStats coalesced_writes() { return SumOver(&RemoteReplicaEndpoint::coalesced_writes); }
  CoalescerStats coalesced_reads() { return SumOver(&RemoteReplicaEndpoint::coalesced_reads); }
  // The peer links' counters, summed (zero without a poller).
  PeerLinkStats link_stats();

 private:
  const std::string self_id_;
  LocalReplicaEndpoint local_;
  const ConnectionOptions base_;
  const Clock* clock_;
  const DetectorOptions detector_options_;
  std::mutex mu_;
  // Keyed by "id=host:port@fingerprint#epoch" so a changed view gets fresh
  // endpoints (a few small objects per membership epoch), sharing one
  // connection pool per "id=host:port@fingerprint".
  std::unordered_map<std::string, std::unique_ptr<RemoteReplicaEndpoint>> remotes_;
  std::unordered_map<std::string, std::shared_ptr<RemoteReplicaEndpoint::Pool>> pools_;
  std::unordered_map<std::string, std::shared_ptr<const PeerLinks>> links_;  // by the pools' key
  std::unordered_map<std::string, std::shared_ptr<PeerDetector>> detectors_;
  // The remote endpoints of one view by member index, filled in as they are
  // first asked for, so that Remote() on the current view takes no lock and
  // builds no key (it ran on every replica of every request).
  struct ViewTable {
    uint64_t fingerprint = 0;
    uint64_t epoch = 0;
    std::vector<PeerAddress> members;  // the view's, so that views are told apart exactly
    std::unique_ptr<std::atomic<RemoteReplicaEndpoint*>[]> remotes;
  };
  std::vector<std::unique_ptr<ViewTable>> tables_;  // under mu_; freed with the endpoints, as remotes_
  std::atomic<const ViewTable*> latest_{nullptr};   // the table filled in last
  std::atomic<DataPathFence*> fence_{nullptr};
  std::atomic<Executor*> executor_{nullptr};
  std::atomic<LinkPoller*> poller_{nullptr};

  CoalescerStats SumOver(CoalescerStats (RemoteReplicaEndpoint::*which)() const);
  // Remote() without the table: finds or makes the endpoint by its key.
  RemoteReplicaEndpoint* Make(const ClusterView& view, uint32_t member_index);
};

}  // namespace monju
