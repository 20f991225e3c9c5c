// WriteForwarder: a write this node does not replicate goes to an owner as
// forward_write; an owner that refuses it (NotOwner: its view differs) hands
// it to the next owner; an owner from before forward_write gets the public
// call. The owners are real Thrift servers on loopback, in this process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "MonjuKV.h"
#include "old_build_thrift.h"
#include "write_forwarder.h"

namespace monju {
namespace {

using namespace apache::thrift;
using ::testing::HasSubstr;

// An owner: records what reaches it; refuses forwarded writes when told to.
class OwnerHandler final : public api::MonjuKVNull {
 public:
  explicit OwnerHandler(std::string id) : id_(std::move(id)) {}
  void forward_write(api::WriteResult& out, const api::ForwardedWrite& write) override {
    std::lock_guard<std::mutex> lock(mu);
    if (breaks) throw std::runtime_error("the owner broke during the call");  // an internal error on the wire
    if (refuses) {
      api::NotOwner refusal;
      refusal.why = id_ + " refuses";
      throw refusal;
    }
    forwarded.push_back(write);
    out.acked_by = {id_};
  }
  void put(api::WriteResult& out, const std::string& pk, const std::string& sk, const std::string& value,
           const std::string& context, int32_t w) override {
    Public("put", pk, sk, value, context, w, out);
  }
  void overwrite(api::WriteResult& out, const std::string& pk, const std::string& sk, const std::string& value,
                 int32_t w) override {
    Public("overwrite", pk, sk, value, "", w, out);
  }
  void remove(api::WriteResult& out, const std::string& pk, const std::string& sk, const std::string& context,
              int32_t w) override {
    Public("remove", pk, sk, "", context, w, out);
  }

  std::mutex mu;
  bool refuses = false;
  bool breaks = false;
  std::vector<api::ForwardedWrite> forwarded;
  std::vector<std::string> public_calls;  // "put pk/sk value context w"

 private:
  void Public(const std::string& call, const std::string& pk, const std::string& sk, const std::string& value,
              const std::string& context, int32_t w, api::WriteResult& out) {
    std::lock_guard<std::mutex> lock(mu);
    public_calls.push_back(call + " " + pk + "/" + sk + " " + value + " " + context + " " + std::to_string(w));
    out.acked_by = {id_};
  }
  const std::string id_;
};

// A build from before forward_write: it is an unknown method, answered as
// Thrift answers any unknown method.
class OldOwnerProcessor final : public api::MonjuKVProcessor {
 public:
  using api::MonjuKVProcessor::MonjuKVProcessor;
  std::atomic<bool> old{false};
  std::atomic<int> unknown_calls{0};

 protected:
  bool dispatchCall(protocol::TProtocol* in, protocol::TProtocol* out, const std::string& fname, int32_t seqid,
                    void* context) override {
    if (!old || fname != "forward_write") return api::MonjuKVProcessor::dispatchCall(in, out, fname, seqid, context);
    ++unknown_calls;
    test_support::AnswerUnknownMethod(in, out, fname, seqid);
    return true;
  }
};

using test_support::Listening;

struct Owner {
  std::shared_ptr<OwnerHandler> handler;
  std::shared_ptr<OldOwnerProcessor> processor;
  std::shared_ptr<transport::TServerSocket> socket;
  std::shared_ptr<server::TThreadedServer> server;
  std::thread thread;
};

class WriteForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"a", "b"}) {
      auto owner = std::make_unique<Owner>();
      owner->handler = std::make_shared<OwnerHandler>(id);
      owner->processor = std::make_shared<OldOwnerProcessor>(owner->handler);
      owner->socket = std::make_shared<transport::TServerSocket>("127.0.0.1", 0);  // any free port
      owner->server = std::make_shared<server::TThreadedServer>(
          owner->processor, owner->socket, std::make_shared<transport::TFramedTransportFactory>(),
          std::make_shared<protocol::TBinaryProtocolFactory>());
      auto listening = std::make_shared<Listening>();
      auto ready = listening->ready.get_future();
      owner->server->setServerEventHandler(listening);
      Owner* raw = owner.get();
      owner->thread = std::thread([raw] { raw->server->serve(); });
      ASSERT_EQ(ready.wait_for(std::chrono::seconds(10)), std::future_status::ready);
      owners_[id] = std::move(owner);
    }
    // This node (n1, never called) and the two owners; N = 2.
    std::vector<PeerAddress> members = {{"n1", "127.0.0.1", 1, 2}, Address("a"), Address("b")};
    auto view = ClusterView::Create(members, 16, 64, 2);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    membership_ = std::make_unique<Membership>(view.value());
    // A key n1 does not replicate; its owners in preference order.
    for (int k = 0; pk_.empty(); ++k) {
      const std::string pk = "key-" + std::to_string(k);
      const auto& owners = view.value()->WriteOwners(view.value()->ring().PartitionOf(pk));
      std::vector<std::string> ids;
      for (uint32_t m : owners) ids.push_back(view.value()->members()[m].id);
      if (std::find(ids.begin(), ids.end(), "n1") != ids.end()) continue;
      pk_ = pk;
      first_ = ids.at(0);
      second_ = ids.at(1);
    }
    ConnectionOptions options;
    options.connect_timeout_ms = 2000;
    options.io_timeout_ms = 5000;
    forwarder_ = std::make_unique<WriteForwarder>(membership_.get(), "n1", options,
                                                  [](const std::string&) { return true; });
  }
  void TearDown() override {
    forwarder_.reset();
    for (auto& [id, owner] : owners_) {
      owner->server->stop();
      owner->thread.join();
    }
  }

  PeerAddress Address(const std::string& id) {
    const uint16_t port = static_cast<uint16_t>(owners_.at(id)->socket->getPort());
    return PeerAddress{id, "127.0.0.1", port, static_cast<uint16_t>(port + 1)};
  }
  OwnerHandler& Handler(const std::string& id) { return *owners_.at(id)->handler; }
  api::ForwardedWrite Write(api::WriteKind::type kind) {
    api::ForwardedWrite w;
    w.kind = kind;
    w.pk = pk_;
    w.sk = "sk";
    w.value = kind == api::WriteKind::REMOVE ? "" : "value";
    w.context = kind == api::WriteKind::OVERWRITE ? "" : "ctx";
    w.w = 2;
    return w;
  }

  std::map<std::string, std::unique_ptr<Owner>> owners_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<WriteForwarder> forwarder_;
  std::string pk_, first_, second_;
};

TEST_F(WriteForwarderTest, TheFirstOwnerGetsTheWriteAsForwardWrite) {
  api::WriteResult out;
  forwarder_->Forward(out, Write(api::WriteKind::PUT));
  EXPECT_EQ(out.acked_by, std::vector<std::string>{first_});
  ASSERT_EQ(Handler(first_).forwarded.size(), 1u);
  const api::ForwardedWrite& got = Handler(first_).forwarded[0];
  EXPECT_EQ(got.kind, api::WriteKind::PUT);
  EXPECT_EQ(got.pk, pk_);
  EXPECT_EQ(got.sk, "sk");
  EXPECT_EQ(got.value, "value");
  EXPECT_EQ(got.context, "ctx");
  EXPECT_EQ(got.w, 2);
  EXPECT_EQ(got.forwarded_by, "n1");
  EXPECT_TRUE(Handler(second_).forwarded.empty());
  EXPECT_TRUE(Handler(first_).public_calls.empty());
}

TEST_F(WriteForwarderTest, AnOwnerThatRefusesHandsTheWriteToTheNext) {
  Handler(first_).refuses = true;
  api::WriteResult out;
  forwarder_->Forward(out, Write(api::WriteKind::OVERWRITE));
  EXPECT_EQ(out.acked_by, std::vector<std::string>{second_});
  EXPECT_TRUE(Handler(first_).forwarded.empty());
  ASSERT_EQ(Handler(second_).forwarded.size(), 1u);
  EXPECT_EQ(Handler(second_).forwarded[0].kind, api::WriteKind::OVERWRITE);
}

TEST_F(WriteForwarderTest, EveryOwnerRefusingIsUnavailableNamingWhy) {
  Handler(first_).refuses = true;
  Handler(second_).refuses = true;
  api::WriteResult out;
  try {
    forwarder_->Forward(out, Write(api::WriteKind::REMOVE));
    FAIL() << "every owner refused, yet the write was taken";
  } catch (const api::Unavailable& e) {
    EXPECT_THAT(e.why, HasSubstr("cannot forward the write to any replica of the key"));
    EXPECT_THAT(e.why, HasSubstr(second_ + " refuses"));
  }
  EXPECT_TRUE(Handler(first_).forwarded.empty());
  EXPECT_TRUE(Handler(second_).forwarded.empty());
  EXPECT_TRUE(Handler(first_).public_calls.empty());
  EXPECT_TRUE(Handler(second_).public_calls.empty());
}

TEST_F(WriteForwarderTest, AnOwnerFromBeforeForwardWriteGetsThePublicCall) {
  owners_.at(first_)->processor->old = true;
  api::WriteResult out;
  forwarder_->Forward(out, Write(api::WriteKind::PUT));
  EXPECT_EQ(out.acked_by, std::vector<std::string>{first_});
  forwarder_->Forward(out, Write(api::WriteKind::OVERWRITE));
  forwarder_->Forward(out, Write(api::WriteKind::REMOVE));
  EXPECT_EQ(owners_.at(first_)->processor->unknown_calls.load(), 1) << "asked once; then the public calls at once";
  EXPECT_THAT(Handler(first_).public_calls,
              ::testing::ElementsAre("put " + pk_ + "/sk value ctx 2", "overwrite " + pk_ + "/sk value  2",
                                     "remove " + pk_ + "/sk  ctx 2"));
  EXPECT_TRUE(Handler(second_).forwarded.empty());
  EXPECT_TRUE(Handler(second_).public_calls.empty());

  // Upgraded: forward_write is tried again after kRetryForwardWriteAfter
  // public calls in all, and used from then on.
  owners_.at(first_)->processor->old = false;
  const uint64_t retry = WriteForwarder::kRetryForwardWriteAfter;
  for (uint64_t i = 0; i < retry; ++i) forwarder_->Forward(out, Write(api::WriteKind::PUT));
  EXPECT_EQ(Handler(first_).public_calls.size(), retry);
  EXPECT_EQ(Handler(first_).forwarded.size(), 3u);
  EXPECT_EQ(owners_.at(first_)->processor->unknown_calls.load(), 1);
}

// An owner whose call fails once sent may have written: the outcome is
// unknown (TimedOut), and no other owner is tried, which could write twice.
TEST_F(WriteForwarderTest, AFailureAfterTheSendIsAnUnknownOutcomeNotARetry) {
  Handler(first_).breaks = true;
  api::WriteResult out;
  try {
    forwarder_->Forward(out, Write(api::WriteKind::PUT));
    FAIL() << "the owner broke, yet the write was reported written";
  } catch (const api::TimedOut& e) {
    EXPECT_THAT(e.why, HasSubstr("forwarded write to " + first_ + " failed, outcome unknown"));
  }
  EXPECT_TRUE(Handler(second_).forwarded.empty());
  EXPECT_TRUE(Handler(second_).public_calls.empty());
}

TEST_F(WriteForwarderTest, AnUnreachableOwnerIsSkipped) {
  owners_.at(first_)->server->stop();
  owners_.at(first_)->thread.join();
  owners_.at(first_)->thread = std::thread([] {});  // joined again in TearDown
  api::WriteResult out;
  forwarder_->Forward(out, Write(api::WriteKind::PUT));
  EXPECT_EQ(out.acked_by, std::vector<std::string>{second_});
}

}  // namespace
}  // namespace monju
