// Coalesced calls falling back to one call each. A peer that does not know
// apply_many and read_many (an older monjud, during a rolling upgrade): it is
// not taken for down, and later calls skip the batch attempt. A peer whose
// read_many reply is full (past its size cap) defers the rest: those keys are
// read one by one. Items a peer refuses as planned under an older epoch
// complete after this node caught up. The peer is a real Thrift server on
// loopback, in this process; every case runs with the calls on peer links
// (peer_link.h, the poller's thread finishing them) and on blocking
// fan-out threads. Query scans too: on an idle scan link when there is one,
// the same items as the blocking call, a refusal for an older epoch learnt
// off the poller, and declined (for the blocking call) when every scan link
// has a call out.
#include <gtest/gtest.h>
#include <thrift/TApplicationException.h>
#include <thrift/processor/TMultiplexedProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "MonjuReplica.h"
#include "old_build_thrift.h"
#include "clock/codec.h"
#include "common/clock.h"
#include "executor.h"
#include "replica_endpoints.h"

namespace monju {
namespace {

using namespace apache::thrift;

// Serves apply and read from memory, like a replica of an older version.
class OldPeerHandler final : public rpc::MonjuReplicaNull {
 public:
  void apply(int64_t, const std::string& pk, const std::string& sk, const std::string& version,
             const rpc::EpochStamp&) override {
    std::lock_guard<std::mutex> lock(mu);
    ++applies;
    stored[pk + "/" + sk] = version;
  }
  void read(std::string& out, int64_t, const std::string& pk, const std::string& sk,
            const rpc::EpochStamp&) override {
    std::lock_guard<std::mutex> lock(mu);
    ++reads;
    SiblingSet s;
    auto it = stored.find(pk + "/" + sk);
    if (it != stored.end()) s.Add(DecodeVersion(it->second).value());
    out = EncodeSiblings(s);
  }
  // As a current replica at epoch 7 that has moved on: keys whose sk
  // starts with "stale" are refused, the others applied.
  void apply_many(std::vector<rpc::ApplyOutcome>& out, int64_t fp, const std::vector<rpc::KeyedVersion>& items,
                  const rpc::EpochStamp& stamp) override {
    for (const rpc::KeyedVersion& kv : items) {
      rpc::ApplyOutcome o;
      if (kv.sk.starts_with("stale")) {
        o.code = static_cast<int32_t>(Status::Code::kStaleEpoch);
        o.why = "planned under epoch 3, this replica is at 7";
        o.epoch = 7;
      } else {
        apply(fp, "pk", kv.sk, kv.version, stamp);
      }
      out.push_back(std::move(o));
    }
  }
  // As a current replica whose reply filled up: keys whose sk starts with
  // "d" come back deferred, the others answered.
  void read_many(std::vector<rpc::ReadOutcome>& out, int64_t fp, const std::vector<rpc::KeyRef>& keys,
                 const rpc::EpochStamp& stamp) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++read_many_calls;
      batch_keys += static_cast<int>(keys.size());
    }
    for (const rpc::KeyRef& k : keys) {
      rpc::ReadOutcome o;
      if (k.sk.starts_with("d")) {
        o.deferred = true;
      } else {
        read(o.siblings, fp, k.pk, k.sk, stamp);
        std::lock_guard<std::mutex> lock(mu);
        --reads;  // answered in the batch: not a single read
      }
      out.push_back(std::move(o));
    }
  }
  // pk's stored items whose sk starts with the prefix, in order. A prefix
  // "stale" is refused as planned under an older epoch; a prefix "slow"
  // waits until release_scans.
  void scan(rpc::ScanReply& out, int64_t, const std::string& pk, const std::string& sk_prefix, const std::string&,
            bool, int32_t limit, bool, const rpc::EpochStamp&) override {
    if (sk_prefix == "stale") {
      rpc::StaleEpoch e;
      e.epoch = 7;
      e.why = "planned under epoch 3, this replica is at 7";
      throw e;
    }
    if (sk_prefix == "slow") {
      std::unique_lock<std::mutex> lock(mu);
      scans_cv.wait_for(lock, std::chrono::seconds(10), [&] { return release_scans; });
    }
    std::lock_guard<std::mutex> lock(mu);
    ++scans;
    for (const auto& [key, version] : stored) {
      const std::string sk = key.substr(key.find('/') + 1);
      if (key.compare(0, pk.size() + 1, pk + "/") != 0 || !sk.starts_with(sk_prefix)) continue;
      if (static_cast<int32_t>(out.items.size()) == limit) {
        out.more = true;
        break;
      }
      SiblingSet s;
      s.Add(DecodeVersion(version).value());
      rpc::StoredItem item;
      item.sk = sk;
      item.siblings = EncodeSiblings(s);
      out.items.push_back(std::move(item));
    }
  }
  void ReleaseScans() {
    {
      std::lock_guard<std::mutex> lock(mu);
      release_scans = true;
    }
    scans_cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable scans_cv;
  bool release_scans = false;
  std::map<std::string, std::string> stored;
  int applies = 0, reads = 0, read_many_calls = 0, batch_keys = 0, scans = 0;
};

// The processor of a build from before the batch calls: they are unknown
// methods, answered as Thrift answers any unknown method.
class OldPeerProcessor final : public rpc::MonjuReplicaProcessor {
 public:
  using rpc::MonjuReplicaProcessor::MonjuReplicaProcessor;
  std::atomic<bool> old{true};  // false: a current build, batches served
  int unknown_calls = 0;

 protected:
  bool dispatchCall(protocol::TProtocol* in, protocol::TProtocol* out, const std::string& fname, int32_t seqid,
                    void* context) override {
    if (!old || (fname != "apply_many" && fname != "read_many"))
      return rpc::MonjuReplicaProcessor::dispatchCall(in, out, fname, seqid, context);
    ++unknown_calls;
    test_support::AnswerUnknownMethod(in, out, fname, seqid);
    return true;
  }
};

using test_support::Listening;

// Records the epochs it is told of.
class RecordingFence final : public DataPathFence {
 public:
  uint64_t epoch() const override { return 3; }
  void Observe(uint64_t epoch, const std::string& sender, std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(mu);
    observed.push_back(epoch);
    senders.push_back(sender);
  }
  size_t observations() {
    std::lock_guard<std::mutex> lock(mu);
    return observed.size();
  }
  Status Admit(uint64_t, uint32_t, EpochGate::Ticket*) override { return Status::OK(); }
  Status Admit(const ClusterView&, uint32_t, EpochGate::Ticket*) override { return Status::OK(); }
  std::mutex mu;
  std::vector<uint64_t> observed;
  std::vector<std::string> senders;
};

// The parameter: calls on peer links (true) or on blocking fan-out threads.
class OldPeerTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    handler_ = std::make_shared<OldPeerHandler>();
    processor_ = std::make_shared<OldPeerProcessor>(handler_);
    auto mux = std::make_shared<TMultiplexedProcessor>();
    mux->registerProcessor("replica", processor_);
    socket_ = std::make_shared<transport::TServerSocket>("127.0.0.1", 0);  // any free port
    server_ = std::make_shared<server::TThreadedServer>(mux, socket_,
                                                        std::make_shared<transport::TFramedTransportFactory>(),
                                                        std::make_shared<protocol::TBinaryProtocolFactory>());
    auto listening = std::make_shared<Listening>();
    auto ready = listening->ready.get_future();
    server_->setServerEventHandler(listening);
    thread_ = std::thread([this] { server_->serve(); });
    ASSERT_EQ(ready.wait_for(std::chrono::seconds(10)), std::future_status::ready);

    ConnectionOptions options;
    options.host = "127.0.0.1";
    options.port = static_cast<uint16_t>(socket_->getPort());
    options.service = "replica";
    options.peer_id = "old";
    auto pool = std::make_shared<RemoteReplicaEndpoint::Pool>(options);
    detector_ = std::make_shared<PeerDetector>(&clock_, DetectorOptions{});
    std::shared_ptr<PeerLinks> links;
    if (GetParam()) {
      auto poller = LinkPoller::Start(&clock_, "test-links");
      ASSERT_TRUE(poller.ok()) << poller.status().ToString();
      poller_ = std::move(poller.value());
      PeerLinkOptions o;
      o.host = options.host;
      o.port = options.port;
      links = std::make_shared<PeerLinks>();
      links->writes = {poller_->NewLink(o), poller_->NewLink(o)};
      links->reads = poller_->NewLink(o);
      links->scans = {poller_->NewLink(o)};
      links_ = links;
    }
    endpoint_ = std::make_unique<RemoteReplicaEndpoint>("old", pool, /*fingerprint=*/1, /*epoch=*/0, "n1", detector_,
                                                        &fence_, &executor_, links);
  }
  void TearDown() override {
    handler_->ReleaseScans();
    if (poller_) poller_->Stop();
    executor_.Stop();  // before the endpoint goes
    endpoint_.reset();
    server_->stop();
    thread_.join();
  }

  // ApplyAsync, waited for.
  Status Write(const std::string& sk, const std::string& value) {
    Version v;
    v.dot = {"n1", ++counter_};
    v.value = value;
    std::promise<Status> done;
    auto got = done.get_future();
    if (!endpoint_->ApplyAsync(std::make_shared<const ItemKey>(ItemKey{0, "pk", sk}),
                               std::make_shared<const Version>(v), [&](Status s) { done.set_value(s); }))
      return endpoint_->Apply(ItemKey{0, "pk", sk}, v);  // as the coordinator does
    return got.get();
  }
  // ReadAsync (when offered), waited for.
  Status Read(const std::string& sk, std::vector<std::string>* values) {
    SiblingSet s;
    Status status;
    const auto key = std::make_shared<const ItemKey>(ItemKey{0, "pk", sk});
    std::promise<void> done;
    if (endpoint_->ReadsAsync() && endpoint_->ReadAsync(key, [&](Status st, SiblingSet* out) {
          status = st;
          if (out) s = std::move(*out);
          done.set_value();
        })) {
      done.get_future().wait();
    } else {
      status = endpoint_->Read(*key, &s);
    }
    *values = s.LiveValues();
    return status;
  }

  SteadyClock clock_;
  std::shared_ptr<OldPeerHandler> handler_;
  std::shared_ptr<OldPeerProcessor> processor_;
  std::shared_ptr<transport::TServerSocket> socket_;
  std::shared_ptr<server::TThreadedServer> server_;
  std::thread thread_;
  std::shared_ptr<PeerDetector> detector_;
  std::atomic<DataPathFence*> fence_{nullptr};
  FanoutExecutor executor_{4, 64};
  std::unique_ptr<LinkPoller> poller_;
  std::shared_ptr<const PeerLinks> links_;
  std::unique_ptr<RemoteReplicaEndpoint> endpoint_;
  uint64_t counter_ = 0;

  // Calls that went on links (0 without them).
  uint64_t LinkCalls() const {
    if (!links_) return 0;
    uint64_t calls = links_->reads->stats().calls;
    for (const auto& link : links_->writes) calls += link->stats().calls;
    for (const auto& link : links_->scans) calls += link->stats().calls;
    return calls;
  }
  struct Scanned {
    Status status;
    std::vector<std::pair<std::string, std::vector<std::string>>> items;  // sk, live values
    bool more = false;
    bool async = false;      // ScanAsync took it
    bool on_caller = false;  // its completion ran on the calling thread
    std::string thread;      // the name of the thread its completion ran on
  };
  // ScanAsync (the coordinator's way), else Scan, waited for.
  Scanned ScanPk(const std::string& prefix, size_t limit = 100) {
    auto request = std::make_shared<DataStore::ScanRequest>();
    request->pk = "pk";
    request->sk_prefix = prefix;
    request->limit = limit;
    Scanned out;
    std::vector<ScannedItem> items;
    auto keep = [&] {
      for (auto& item : items) out.items.push_back({item.sk, item.siblings.LiveValues()});
    };
    std::promise<void> done;
    const auto caller = std::this_thread::get_id();
    out.async = endpoint_->ScanAsync(request, [&](Status s, std::vector<ScannedItem>* got, bool more) {
      out.status = s;
      out.more = more;
      out.on_caller = std::this_thread::get_id() == caller;
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      out.thread = name;
      items = std::move(*got);
      done.set_value();
    });
    if (out.async) {
      EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
    } else {
      out.status = endpoint_->Scan(*request, &items, &out.more);
    }
    keep();
    return out;
  }
  // Batches were tried on links exactly when the test runs with them.
  void ExpectLinkCalls(uint64_t with_links) const {
    EXPECT_EQ(LinkCalls(), GetParam() ? with_links : 0u) << "calls on peer links";
  }
};

INSTANTIATE_TEST_SUITE_P(Transport, OldPeerTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "OnPeerLinks" : "OnFanoutThreads";
                         });

TEST_P(OldPeerTest, CoalescedWritesFallBackToOneCallEach) {
  Status w = Write("a", "one");
  ASSERT_TRUE(w.ok()) << w.ToString();
  EXPECT_EQ(processor_->unknown_calls, 1);
  ExpectLinkCalls(1);
  EXPECT_EQ(handler_->applies, 1) << "the write went as a single apply";
  EXPECT_TRUE(endpoint_->LikelyAlive()) << "the peer answered: it is not down";
  EXPECT_FALSE(endpoint_->ReadsAsync()) << "reads are not tried as batches either";

  // From then on no batch is tried...
  std::vector<std::string> values;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Write("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(Read("k3", &values).ok());
  EXPECT_EQ(values, std::vector<std::string>{"v"});
  EXPECT_EQ(processor_->unknown_calls, 1);
  EXPECT_EQ(handler_->applies, 21);

  // ...until kBatchRetryAfter single calls later (the peer may have been
  // upgraded meanwhile): then one is tried again.
  for (uint64_t i = 22; i < RemoteReplicaEndpoint::kBatchRetryAfter; ++i) ASSERT_TRUE(Read("a", &values).ok());
  EXPECT_FALSE(endpoint_->ReadsAsync());
  ASSERT_TRUE(Read("a", &values).ok());
  EXPECT_TRUE(endpoint_->ReadsAsync());
  ASSERT_TRUE(Write("b", "two").ok());
  EXPECT_EQ(processor_->unknown_calls, 2);
  EXPECT_EQ(handler_->applies, 22);
  EXPECT_FALSE(endpoint_->ReadsAsync());
  ExpectLinkCalls(2);
}

TEST_P(OldPeerTest, CoalescedReadsFallBackToOneCallEach) {
  handler_->stored["pk/a"] = [] {
    Version v;
    v.dot = {"n9", 1};
    v.value = "one";
    return EncodeVersion(v);
  }();
  ASSERT_TRUE(endpoint_->ReadsAsync());
  std::vector<std::string> values;
  Status r = Read("a", &values);
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(values, std::vector<std::string>{"one"});
  EXPECT_EQ(processor_->unknown_calls, 1);
  EXPECT_EQ(handler_->reads, 1) << "the read went as a single read";
  EXPECT_FALSE(endpoint_->ReadsAsync());
  EXPECT_TRUE(endpoint_->LikelyAlive());
  ExpectLinkCalls(1);
}

// Reads the peer deferred (its reply was full) are each read alone, and get
// the same answer; the ones it answered cost no second call. The peer is not
// taken for an older build: batches go on.
TEST_P(OldPeerTest, DeferredReadsAreReadOneByOne) {
  processor_->old = false;
  auto version = [](const std::string& value) {
    Version v;
    v.dot = {"n9", 1};
    v.value = value;
    return EncodeVersion(v);
  };
  const std::vector<std::string> sks = {"a", "d1", "b", "d2", "d3", "c"};
  for (const auto& sk : sks) handler_->stored["pk/" + sk] = version("value of " + sk);
  ASSERT_TRUE(endpoint_->ReadsAsync());

  // All at once, so that some share a read_many.
  // Shared with the callbacks, which may outlive a failed assertion.
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, std::pair<Status, std::vector<std::string>>> got;
  };
  auto result = std::make_shared<Result>();
  for (const auto& sk : sks) {
    ASSERT_TRUE(endpoint_->ReadAsync(std::make_shared<const ItemKey>(ItemKey{0, "pk", sk}),
                                     [result, sk](Status st, SiblingSet* out) {
                                       std::vector<std::string> values;
                                       if (out) values = out->LiveValues();
                                       std::lock_guard<std::mutex> lock(result->mu);
                                       result->got[sk] = {st, values};
                                       result->cv.notify_all();
                                     }));
  }
  std::unique_lock<std::mutex> lock(result->mu);
  ASSERT_TRUE(
      result->cv.wait_for(lock, std::chrono::seconds(20), [&] { return result->got.size() == sks.size(); }));
  for (const auto& sk : sks) {
    const auto& [status, values] = result->got[sk];
    ASSERT_TRUE(status.ok()) << sk << ": " << status.ToString();
    EXPECT_EQ(values, std::vector<std::string>{"value of " + sk}) << sk;
  }
  std::lock_guard<std::mutex> peer(handler_->mu);
  EXPECT_EQ(handler_->reads, 3) << "only the three deferred keys were read alone";
  EXPECT_EQ(handler_->batch_keys, 6) << "every key was asked in a batch first";
  EXPECT_EQ(processor_->unknown_calls, 0);
  EXPECT_TRUE(endpoint_->ReadsAsync()) << "a full reply is not an older peer";
  EXPECT_TRUE(endpoint_->LikelyAlive());
  if (GetParam()) {
    EXPECT_GT(LinkCalls(), 0u);
  }
}

// Writes a peer refuses as planned under an older epoch complete with
// StaleEpoch only after this node was told of the newer epoch (so their
// requests re-plan on it); the others in the same call complete at once.
TEST_P(OldPeerTest, RefusedWritesCompleteAfterTheNewerEpochIsLearnt) {
  processor_->old = false;
  RecordingFence fence;
  fence_.store(&fence);
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, Status> got;
    std::map<std::string, size_t> observations_then;  // the fence's, when the write completed
  };
  auto result = std::make_shared<Result>();
  const std::vector<std::string> sks = {"ok-1", "stale-1", "ok-2", "stale-2", "ok-3"};
  for (const auto& sk : sks) {
    Version v;
    v.dot = {"n1", ++counter_};
    v.value = sk;
    ASSERT_TRUE(endpoint_->ApplyAsync(std::make_shared<const ItemKey>(ItemKey{0, "pk", sk}),
                                      std::make_shared<const Version>(v), [result, sk, &fence](Status s) {
                                        const size_t seen = fence.observations();
                                        std::lock_guard<std::mutex> lock(result->mu);
                                        result->got[sk] = s;
                                        result->observations_then[sk] = seen;
                                        result->cv.notify_all();
                                      }));
  }
  {
    std::unique_lock<std::mutex> lock(result->mu);
    ASSERT_TRUE(
        result->cv.wait_for(lock, std::chrono::seconds(20), [&] { return result->got.size() == sks.size(); }));
  }
  fence_.store(nullptr);
  for (const auto& sk : sks) {
    const Status& s = result->got[sk];
    if (sk.starts_with("stale")) {
      EXPECT_TRUE(s.Is(Status::Code::kStaleEpoch)) << sk << ": " << s.ToString();
      EXPECT_GE(result->observations_then[sk], 1u) << sk << " completed before the newer epoch was learnt";
    } else {
      EXPECT_TRUE(s.ok()) << sk << ": " << s.ToString();
    }
  }
  std::lock_guard<std::mutex> lock(fence.mu);
  ASSERT_FALSE(fence.observed.empty());
  for (uint64_t e : fence.observed) EXPECT_EQ(e, 7u);
  EXPECT_EQ(fence.senders.front(), "old");
  EXPECT_EQ(handler_->applies, 3);
  EXPECT_TRUE(endpoint_->LikelyAlive());
  if (GetParam()) {
    EXPECT_GT(LinkCalls(), 0u);
  }
}

}  // namespace
}  // namespace monju

namespace monju {
namespace {

void StoreAt(OldPeerHandler& h, const std::string& sk, const std::string& value) {
  Version v;
  v.dot = {"n9", 1};
  v.value = value;
  std::lock_guard<std::mutex> lock(h.mu);
  h.stored["pk/" + sk] = EncodeVersion(v);
}

TEST_P(OldPeerTest, AScanOnAScanLinkGivesWhatTheBlockingScanGives) {
  StoreAt(*handler_, "item1", "one");
  StoreAt(*handler_, "item2", "two");
  StoreAt(*handler_, "other", "three");
  Scanned linked = ScanPk("item", /*limit=*/1);
  ASSERT_TRUE(linked.status.ok()) << linked.status.ToString();
  EXPECT_EQ(linked.async, GetParam()) << "ScanAsync takes a scan exactly when there are links";
  EXPECT_FALSE(linked.on_caller) << "completed by the links' poller, never inside ScanAsync";
  ExpectLinkCalls(1);
  std::vector<std::pair<std::string, std::vector<std::string>>> first = {{"item1", {"one"}}};
  EXPECT_EQ(linked.items, first);
  EXPECT_TRUE(linked.more);

  std::vector<ScannedItem> items;
  bool more = true;
  DataStore::ScanRequest request;
  request.pk = "pk";
  request.sk_prefix = "item";
  request.limit = 10;
  ASSERT_TRUE(endpoint_->Scan(request, &items, &more).ok());
  Scanned all = ScanPk("item", 10);
  ASSERT_EQ(all.items.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(all.items[i].first, items[i].sk);
    EXPECT_EQ(all.items[i].second, items[i].siblings.LiveValues());
  }
  EXPECT_EQ(all.items.size(), 2u);
  EXPECT_FALSE(all.more);
  EXPECT_EQ(handler_->scans, 3);
  EXPECT_TRUE(endpoint_->LikelyAlive());
}

// On links, a page over kScanDecodeInlineBytes is decoded on the executor,
// so that it does not hold up the poller's other replies; a small one on the
// poller. Without links both come whole from the blocking Scan().
TEST_P(OldPeerTest, ABigScanPageIsDecodedOffThePoller) {
  const std::string big_value(4096, 'v');
  constexpr int kItems = 40;  // 160 KiB of values
  static_assert(kItems * 4096 > RemoteReplicaEndpoint::kScanDecodeInlineBytes);
  for (int i = 0; i < kItems; ++i) StoreAt(*handler_, "big" + std::to_string(100 + i), big_value);
  StoreAt(*handler_, "small1", "one");

  Scanned big = ScanPk("big", 100);
  ASSERT_TRUE(big.status.ok()) << big.status.ToString();
  EXPECT_EQ(big.async, GetParam());
  ASSERT_EQ(big.items.size(), size_t(kItems));
  for (int i = 0; i < kItems; ++i) {
    EXPECT_EQ(big.items[i].first, "big" + std::to_string(100 + i));
    EXPECT_EQ(big.items[i].second, std::vector<std::string>{big_value});
  }
  Scanned small = ScanPk("small", 100);
  ASSERT_TRUE(small.status.ok()) << small.status.ToString();
  ASSERT_EQ(small.items.size(), 1u);
  if (GetParam()) {
    EXPECT_EQ(big.thread.rfind("fan-out", 0), 0u) << "decoded on " << big.thread;
    EXPECT_EQ(small.thread, "test-links") << "a small page is decoded on the poller";
  }
}

TEST_P(OldPeerTest, AScanRefusedForAnOlderEpochCompletesAfterTheNewerEpochIsLearnt) {
  RecordingFence fence;
  fence_.store(&fence);
  Scanned refused = ScanPk("stale");
  fence_.store(nullptr);
  EXPECT_TRUE(refused.status.Is(Status::Code::kStaleEpoch)) << refused.status.ToString();
  EXPECT_TRUE(refused.items.empty());
  // Learnt before the scan completed (the coordinator then re-plans under it).
  EXPECT_EQ(fence.observations(), 1u);
  EXPECT_EQ(fence.observed.front(), 7u);
  EXPECT_TRUE(endpoint_->LikelyAlive()) << "a refusal is an answer";
}

TEST_P(OldPeerTest, AScanIsDeclinedWhileEveryScanLinkHasACallOut) {
  StoreAt(*handler_, "slow1", "s");
  auto request = std::make_shared<DataStore::ScanRequest>();
  request->pk = "pk";
  request->sk_prefix = "slow";
  request->limit = 10;
  if (!GetParam()) {
    // Without links every scan is declined, for the blocking call.
    EXPECT_FALSE(endpoint_->ScanAsync(request, [](Status, std::vector<ScannedItem>*, bool) { FAIL(); }));
    return;
  }
  std::promise<Status> first;
  ASSERT_TRUE(endpoint_->ScanAsync(request, [&](Status s, std::vector<ScannedItem>*, bool) { first.set_value(s); }));
  // The one scan link waits for that reply: a second scan is not queued behind it.
  bool called = false;
  EXPECT_FALSE(endpoint_->ScanAsync(request, [&](Status, std::vector<ScannedItem>*, bool) { called = true; }));
  handler_->ReleaseScans();
  auto got = first.get_future();
  ASSERT_EQ(got.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(got.get().ok());
  EXPECT_FALSE(called) << "a declined scan's completion is never called";
  // Idle again: the next one goes on the link.
  Scanned again = ScanPk("slow");
  EXPECT_TRUE(again.async);
  EXPECT_EQ(again.items.size(), 1u);
}

}  // namespace
}  // namespace monju
