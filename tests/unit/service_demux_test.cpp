// ServiceDemux: a call routed from its frame reaches the processor
// TMultiplexedProcessor would pick, reading the same method, type, sequence
// id and arguments; frames it does not route are left untouched for the
// fallback, which behaves as TMultiplexedProcessor.
#include "service_demux.h"

#include <gtest/gtest.h>
#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <memory>
#include <string>
#include <vector>

namespace monju {
namespace {

using apache::thrift::TProcessor;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMessageType;
using apache::thrift::protocol::TProtocol;
using apache::thrift::transport::TMemoryBuffer;

// Records the call it reads: the message header and one string argument.
class RecordingProcessor final : public TProcessor {
 public:
  bool process(std::shared_ptr<TProtocol> in, std::shared_ptr<TProtocol>, void*) override {
    in->readMessageBegin(name, type, seqid);
    std::string struct_name;
    in->readStructBegin(struct_name);
    std::string field_name;
    apache::thrift::protocol::TType field_type;
    int16_t field_id;
    in->readFieldBegin(field_name, field_type, field_id);
    if (field_type == apache::thrift::protocol::T_STRING) in->readString(argument);
    ++calls;
    return true;
  }
  std::string name, argument;
  TMessageType type = apache::thrift::protocol::T_EXCEPTION;
  int32_t seqid = -1;
  int calls = 0;
};

// A binary-protocol call: header, a struct with one string field, stop.
std::vector<uint8_t> Call(const std::string& name, TMessageType type, int32_t seqid, const std::string& argument,
                          bool strict = true) {
  auto buffer = std::make_shared<TMemoryBuffer>();
  TBinaryProtocol protocol(buffer, 0, 0, /*strict_read=*/false, strict);
  protocol.writeMessageBegin(name, type, seqid);
  protocol.writeStructBegin("args");
  protocol.writeFieldBegin("key", apache::thrift::protocol::T_STRING, 1);
  protocol.writeString(argument);
  protocol.writeFieldEnd();
  protocol.writeFieldStop();
  protocol.writeStructEnd();
  protocol.writeMessageEnd();
  const std::string bytes = buffer->getBufferAsString();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

// Runs `processor` on frame[0, size) the way CallServer does.
bool Process(TProcessor& processor, uint8_t* frame, uint32_t size) {
  auto in = std::make_shared<TMemoryBuffer>(frame, size, TMemoryBuffer::OBSERVE);
  auto out = std::make_shared<TMemoryBuffer>();
  return processor.process(std::make_shared<TBinaryProtocol>(in), std::make_shared<TBinaryProtocol>(out), nullptr);
}

class ServiceDemuxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    demux_.Register("replica", replica_);
    demux_.Register("admin", admin_);
    demux_.RegisterDefault(kv_);
  }
  ServiceDemux demux_;
  std::shared_ptr<RecordingProcessor> replica_ = std::make_shared<RecordingProcessor>();
  std::shared_ptr<RecordingProcessor> admin_ = std::make_shared<RecordingProcessor>();
  std::shared_ptr<RecordingProcessor> kv_ = std::make_shared<RecordingProcessor>();
};

TEST_F(ServiceDemuxTest, ServiceCallReachesItsProcessorAsTheBareMethod) {
  for (TMessageType type : {apache::thrift::protocol::T_CALL, apache::thrift::protocol::T_ONEWAY}) {
    auto frame = Call("replica:read_many", type, 77, "the-key");
    uint8_t* start = frame.data();
    uint32_t size = uint32_t(frame.size());
    TProcessor& routed = demux_.Route(&start, &size);
    EXPECT_EQ(&routed, replica_.get());
    EXPECT_EQ(start, frame.data() + 8);  // "replica:" cut off
    EXPECT_EQ(size, frame.size() - 8);
    ASSERT_TRUE(Process(routed, start, size));
    EXPECT_EQ(replica_->name, "read_many");
    EXPECT_EQ(replica_->type, type);
    EXPECT_EQ(replica_->seqid, 77);
    EXPECT_EQ(replica_->argument, "the-key");
  }
  EXPECT_EQ(admin_->calls, 0);
  EXPECT_EQ(kv_->calls, 0);
}

TEST_F(ServiceDemuxTest, ServiceNamesShorterThanTheHeaderAreRewrittenToo) {
  // A one-letter service: the new header overlaps the old one.
  auto x = std::make_shared<RecordingProcessor>();
  demux_.Register("x", x);
  auto frame = Call("x:m", apache::thrift::protocol::T_CALL, 5, "v");
  uint8_t* start = frame.data();
  uint32_t size = uint32_t(frame.size());
  TProcessor& routed = demux_.Route(&start, &size);
  ASSERT_EQ(&routed, x.get());
  ASSERT_TRUE(Process(routed, start, size));
  EXPECT_EQ(x->name, "m");
  EXPECT_EQ(x->seqid, 5);
  EXPECT_EQ(x->argument, "v");
}

TEST_F(ServiceDemuxTest, UnprefixedCallGoesToTheDefaultUnchanged) {
  auto frame = Call("get", apache::thrift::protocol::T_CALL, 3, "k");
  const auto original = frame;
  uint8_t* start = frame.data();
  uint32_t size = uint32_t(frame.size());
  TProcessor& routed = demux_.Route(&start, &size);
  EXPECT_EQ(&routed, kv_.get());
  EXPECT_EQ(start, frame.data());
  EXPECT_EQ(frame, original);
  ASSERT_TRUE(Process(routed, start, size));
  EXPECT_EQ(kv_->name, "get");
  EXPECT_EQ(kv_->argument, "k");
}

TEST_F(ServiceDemuxTest, EverythingElseIsLeftForTheFallback) {
  struct Case {
    std::vector<uint8_t> frame;
    const char* why;
  };
  std::vector<Case> cases = {
      {Call("nosuch:get", apache::thrift::protocol::T_CALL, 1, "k"), "unknown service"},
      {Call("replica:a:b", apache::thrift::protocol::T_CALL, 1, "k"), "two separators"},
      {Call("replica::b", apache::thrift::protocol::T_CALL, 1, "k"), "an empty part between separators"},
      {Call(":get", apache::thrift::protocol::T_CALL, 1, "k"), "no service"},
      {Call("replica:", apache::thrift::protocol::T_CALL, 1, "k"), "no method"},
      {Call("", apache::thrift::protocol::T_CALL, 1, "k"), "no name"},
      {Call("replica:read", apache::thrift::protocol::T_REPLY, 1, "k"), "a reply, not a call"},
      {Call("replica:read", apache::thrift::protocol::T_CALL, 1, "k", /*strict=*/false), "old-style header"},
  };
  auto truncated = Call("replica:read_many", apache::thrift::protocol::T_CALL, 1, "k");
  truncated.resize(14);  // the name's length runs past the frame
  cases.push_back({truncated, "truncated name"});
  cases.push_back({std::vector<uint8_t>{0x80, 0x01, 0x00, 0x01}, "shorter than a header"});
  for (auto& c : cases) {
    const auto original = c.frame;
    uint8_t* start = c.frame.data();
    uint32_t size = uint32_t(c.frame.size());
    TProcessor& routed = demux_.Route(&start, &size);
    EXPECT_NE(&routed, replica_.get()) << c.why;
    EXPECT_NE(&routed, admin_.get()) << c.why;
    EXPECT_NE(&routed, kv_.get()) << c.why;
    EXPECT_EQ(start, c.frame.data()) << c.why;
    EXPECT_EQ(size, original.size()) << c.why;
    EXPECT_EQ(c.frame, original) << c.why;
  }
}

TEST_F(ServiceDemuxTest, TheFallbackAnswersAsTMultiplexedProcessor) {
  auto unknown = Call("nosuch:get", apache::thrift::protocol::T_CALL, 1, "k");
  uint8_t* start = unknown.data();
  uint32_t size = uint32_t(unknown.size());
  TProcessor& fallback = demux_.Route(&start, &size);
  EXPECT_THROW(Process(fallback, start, size), apache::thrift::TException);

  // boost::tokenizer drops the empty part: Thrift sends "replica::b" to
  // replica as "b", and so does the fallback.
  auto doubled = Call("replica::b", apache::thrift::protocol::T_CALL, 9, "v");
  start = doubled.data();
  size = uint32_t(doubled.size());
  TProcessor& routed = demux_.Route(&start, &size);
  ASSERT_TRUE(Process(routed, start, size));
  EXPECT_EQ(replica_->name, "b");
  EXPECT_EQ(replica_->seqid, 9);
  EXPECT_EQ(replica_->argument, "v");
}

TEST_F(ServiceDemuxTest, ProcessWithoutTheFrameIsMultiplexed) {
  auto frame = Call("admin:stats", apache::thrift::protocol::T_CALL, 4, "x");
  ASSERT_TRUE(Process(demux_, frame.data(), uint32_t(frame.size())));
  EXPECT_EQ(admin_->name, "stats");
  EXPECT_EQ(admin_->seqid, 4);
  auto plain = Call("put", apache::thrift::protocol::T_CALL, 6, "y");
  ASSERT_TRUE(Process(demux_, plain.data(), uint32_t(plain.size())));
  EXPECT_EQ(kv_->name, "put");
  EXPECT_EQ(kv_->argument, "y");
}

}  // namespace
}  // namespace monju
