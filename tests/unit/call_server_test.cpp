// CallServer (src/net/call_server.h): real generated Thrift clients and raw
// sockets against a server on 127.0.0.1 in this process. Calls in sequence
// and from several threads, a frame that trickles in, pipelined frames past
// one turn's worth, bad frames, a stalled large frame and a slow reader of a
// large reply (one thread: neither may hold it), the connection limit,
// Stop() during a call, and deferred calls (answered later from another
// thread, in order per connection, dropped or late). Waits poll with a 5 s
// deadline; nothing sleeps.
#include <gtest/gtest.h>
#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <fstream>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "MonjuKV.h"
#include "call_server.h"
#include "deferred_call.h"

// The tests name only the options they set ({.threads = 2}); GCC 12 warns
// about every member left to its default.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace monju {
namespace {

using namespace apache::thrift;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TMemoryBuffer;

using namespace std::chrono_literals;
constexpr auto kDeadline = std::chrono::seconds(5);
constexpr const char* kServerName = "callsrv";  // its threads are callsrv-0, callsrv-1, ...

// Polls `done` until it holds or the deadline passes.
template <typename Condition>
bool Eventually(Condition done) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A value of `size` bytes that a shifted or truncated copy would not match.
std::string BigValue(size_t size) {
  std::string v(size, '\0');
  for (size_t i = 0; i < size; ++i) v[i] = static_cast<char>((i * 131) ^ (i >> 9));
  return v;
}

// Answers get(pk, sk) with the single value "pk/sk". pk "big": a value of r
// bytes. pk "block": waits for Release() first.
class FakeKV final : public api::MonjuKVNull {
 public:
  void get(api::GetResult& out, const std::string& pk, const std::string& sk, const int32_t r) override {
    if (pk == "block") {
      entered.count_down();
      release_.wait();
    }
    out.found = true;
    out.values = {pk == "big" ? BigValue(static_cast<size_t>(r)) : pk + "/" + sk};
    if (pk == "big") ++big_replies_built;
    if (pk == "block") finished = true;
  }
  void Release() {
    if (!released_.exchange(true)) release_.count_down();
  }

  std::latch entered{1};
  std::atomic<bool> finished{false};
  std::atomic<int> big_replies_built{0};

 private:
  std::latch release_{1};
  std::atomic<bool> released_{false};
};

// A generated client over TSocket + TFramedTransport + TBinaryProtocol, as
// monju's own clients connect.
class KVClient {
 public:
  explicit KVClient(uint16_t port) {
    socket_ = std::make_shared<transport::TSocket>("127.0.0.1", port);
    socket_->setConnTimeout(5000);
    socket_->setRecvTimeout(5000);
    socket_->setSendTimeout(5000);
    transport_ = std::make_shared<TFramedTransport>(socket_);
    client_ = std::make_unique<api::MonjuKVClient>(std::make_shared<TBinaryProtocol>(transport_));
    transport_->open();
  }
  // The first value get answers; throws what the client throws.
  std::string Get(const std::string& pk, const std::string& sk) {
    api::GetResult r;
    client_->get(r, pk, sk, 0);
    return r.values.empty() ? "(no value)" : r.values[0];
  }
  void Close() { transport_->close(); }

 private:
  std::shared_ptr<transport::TSocket> socket_;
  std::shared_ptr<TFramedTransport> transport_;
  std::unique_ptr<api::MonjuKVClient> client_;
};

// One get on a fresh connection; false if it failed in any way.
bool FreshClientIsServed(uint16_t port) {
  try {
    KVClient c(port);
    return c.Get("fresh", "s") == "fresh/s";
  } catch (const TException&) {
    return false;
  }
}

std::string FrameHeader(uint32_t length) {
  const uint32_t big_endian = htonl(length);
  return std::string(reinterpret_cast<const char*>(&big_endian), 4);
}

// A get call as the generated client frames it.
std::string GetCallFrame(const std::string& pk, const std::string& sk, int32_t r = 0) {
  auto memory = std::make_shared<TMemoryBuffer>();
  api::MonjuKVClient client(std::make_shared<TBinaryProtocol>(std::make_shared<TFramedTransport>(memory)));
  client.send_get(pk, sk, r);
  return memory->getBufferAsString();
}

// A framed message of `type` for `method`, with an empty argument struct.
std::string MessageFrame(const std::string& method, protocol::TMessageType type) {
  auto memory = std::make_shared<TMemoryBuffer>();
  auto framed = std::make_shared<TFramedTransport>(memory);
  TBinaryProtocol p(framed);
  p.writeMessageBegin(method, type, 7);
  p.writeStructBegin("args");
  p.writeFieldStop();
  p.writeStructEnd();
  p.writeMessageEnd();
  framed->flush();
  return memory->getBufferAsString();
}

std::shared_ptr<TBinaryProtocol> ProtocolOver(const std::string& body) {
  auto memory = std::make_shared<TMemoryBuffer>(reinterpret_cast<uint8_t*>(const_cast<char*>(body.data())),
                                                static_cast<uint32_t>(body.size()), TMemoryBuffer::COPY);
  return std::make_shared<TBinaryProtocol>(memory);
}

// The first value of a get reply (the frame's body); throws as the client would.
std::string GetReplyValue(const std::string& body) {
  api::MonjuKVClient client(ProtocolOver(body));
  api::GetResult r;
  client.recv_get(r);
  return r.values.empty() ? "(no value)" : r.values[0];
}

// A plain blocking socket to the server whose reads and writes give up after
// the deadline. receive_buffer > 0 shrinks its receive window.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port, int receive_buffer = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    timeval timeout{std::chrono::seconds(kDeadline).count(), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // each Send its own segment
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { Close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += size_t(n);
    }
    return true;
  }
  // Exactly n bytes into *out, read at most `chunk` at a time; false on
  // close, error or timeout. `after_each_read` runs between reads.
  template <typename Callback>
  bool Read(size_t n, std::string* out, size_t chunk, Callback after_each_read) {
    out->resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = recv(fd_, out->data() + got, std::min(chunk, n - got), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      got += size_t(r);
      after_each_read(got);
    }
    return true;
  }
  bool Read(size_t n, std::string* out) {
    return Read(n, out, n, [](size_t) {});
  }
  // One reply frame's body, or nothing if the connection ended first.
  std::optional<std::string> ReadFrame() {
    std::string header, body;
    if (!Read(4, &header)) return std::nullopt;
    const uint32_t length = ntohl(*reinterpret_cast<const uint32_t*>(header.data()));
    if (!Read(length, &body)) return std::nullopt;
    return body;
  }
  // True when the server ended the connection (end of stream or reset), not
  // when the deadline passed or bytes came.
  bool ClosedByServer() {
    char byte;
    ssize_t n;
    do n = recv(fd_, &byte, 1, 0);
    while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Threads of this process named `prefix` and a number (a server's workers,
// not its "<name>-stalls" watcher).
int ThreadsNamed(const std::string& prefix) {
  int count = 0;
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    if (std::getline(comm, name) && name.starts_with(prefix) && name.size() > prefix.size() &&
        std::isdigit(static_cast<unsigned char>(name[prefix.size()])))
      ++count;
  }
  closedir(dir);
  return count;
}

// Bytes malloc has handed out and not had back (glibc: every arena plus
// mmapped chunks).
size_t MallocInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

class CallServerTest : public ::testing::Test {
 protected:
  void StartServer(CallServer::Options options) {
    options.name = kServerName;
    auto started = CallServer::Start(options, std::make_shared<api::MonjuKVProcessor>(handler_));
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server_ = std::move(started).value();
  }
  void TearDown() override {
    handler_->Release();  // a failed test must not leave Stop() waiting on a blocked call
    server_.reset();
  }
  uint16_t port() const { return server_->port(); }

  std::shared_ptr<FakeKV> handler_ = std::make_shared<FakeKV>();
  std::unique_ptr<CallServer> server_;
};

TEST_F(CallServerTest, AGeneratedClientGetsEachAnswerOnOneConnection) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2}));
  KVClient client(port());
  for (int i = 0; i < 200; ++i) {
    const std::string pk = "k" + std::to_string(i);
    ASSERT_EQ(client.Get(pk, "s"), pk + "/s") << "call " << i;
  }
  const CallServer::Stats stats = server_->stats();
  EXPECT_EQ(stats.calls, 200u);
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.bad_frames, 0u);
}

TEST_F(CallServerTest, ClientsOnSeveralThreadsGetTheirOwnAnswers) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2}));
  constexpr int kClients = 6, kCallsEach = 100;
  std::atomic<int> right{0}, wrong{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      try {
        KVClient client(port());
        for (int i = 0; i < kCallsEach; ++i) {
          const std::string pk = "c" + std::to_string(t);
          const std::string sk = std::to_string(i);
          ++(client.Get(pk, sk) == pk + "/" + sk ? right : wrong);
        }
      } catch (const TException&) {
        ++failed;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0) << "a client got another's answer";
  EXPECT_EQ(right.load(), kClients * kCallsEach);
  EXPECT_EQ(server_->stats().calls, uint64_t(kClients * kCallsEach));
  EXPECT_EQ(server_->stats().accepted, uint64_t(kClients));
}

TEST_F(CallServerTest, ACallArrivingByteByByteIsAnswered) {
  // One thread: a probe call answered after each byte means the server has
  // taken that byte on its own before the next comes.
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1}));
  KVClient probe(port());
  RawConnection slow(port());
  ASSERT_TRUE(slow.connected());
  const std::string frame = GetCallFrame("slow", "drip");
  for (size_t i = 0; i < frame.size(); ++i) {
    ASSERT_TRUE(slow.Send(frame.substr(i, 1)));
    ASSERT_EQ(probe.Get("probe", std::to_string(i)), "probe/" + std::to_string(i));
  }
  std::optional<std::string> reply = slow.ReadFrame();
  ASSERT_TRUE(reply.has_value()) << "no reply to the trickled call";
  EXPECT_EQ(GetReplyValue(*reply), "slow/drip");
  EXPECT_EQ(server_->stats().calls, frame.size() + 1) << "every probe and the trickled call, nothing else";
}

TEST_F(CallServerTest, PipelinedFramesPastOneTurnAreAllAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2}));
  constexpr int kFrames = 40;
  static_assert(kFrames > 2 * CallServer::kCallsPerTurn, "frames must be left over after two turns");
  std::string frames;
  for (int i = 0; i < kFrames; ++i) frames += GetCallFrame("p" + std::to_string(i), "s");
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(frames));  // one write: all of them reach the server's buffer at once
  for (int i = 0; i < kFrames; ++i) {
    std::optional<std::string> reply = c.ReadFrame();
    ASSERT_TRUE(reply.has_value()) << "reply " << i << " never came";
    EXPECT_EQ(GetReplyValue(*reply), "p" + std::to_string(i) + "/s") << "reply " << i;
  }
  EXPECT_EQ(server_->stats().calls, uint64_t(kFrames));
}

TEST_F(CallServerTest, BadFramesCloseTheirConnectionAndOthersAreStillServed) {
  constexpr int32_t kLimit = 4096;
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1, .max_frame_bytes = kLimit}));
  KVClient good(port());
  ASSERT_EQ(good.Get("good", "0"), "good/0");

  const std::string call = GetCallFrame("pk", "sk");
  const std::string cut_body = call.substr(4, call.size() - 4 - 5);
  struct Case {
    const char* what;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"a length of 0", FrameHeader(0) + "more"},
      {"a length above max_frame_bytes", FrameHeader(kLimit + 1) + std::string(100, 'x')},
      // An unframed binary message: its first word 0x80010001 reads as the length.
      {"a length with the high bit set", call.substr(4)},
      {"garbage in a valid length", FrameHeader(16) + std::string(16, '\xff')},
      {"a call whose arguments end early", FrameHeader(uint32_t(cut_body.size())) + cut_body},
      // The processor refuses (returns false for) a message that is not a call.
      {"a reply sent as a call", MessageFrame("get", protocol::T_REPLY)},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    RawConnection bad(port());
    ASSERT_TRUE(bad.connected()) << cases[i].what;
    ASSERT_TRUE(bad.Send(cases[i].bytes)) << cases[i].what;
    EXPECT_TRUE(bad.ClosedByServer()) << cases[i].what << ": the connection stays open";
    EXPECT_TRUE(Eventually([&] { return server_->stats().bad_frames == i + 1; }))
        << cases[i].what << ": bad_frames is " << server_->stats().bad_frames;
    EXPECT_EQ(good.Get("good", std::to_string(i + 1)), "good/" + std::to_string(i + 1)) << "after " << cases[i].what;
  }

  // The limit itself is a valid length.
  const size_t overhead = GetCallFrame("", "s").size() - 4;
  const std::string long_pk(kLimit - overhead, 'x');
  const std::string at_limit = GetCallFrame(long_pk, "s");
  ASSERT_EQ(at_limit.size(), size_t(kLimit) + 4);
  RawConnection c(port());
  ASSERT_TRUE(c.Send(at_limit));
  std::optional<std::string> reply = c.ReadFrame();
  ASSERT_TRUE(reply.has_value()) << "a frame of exactly max_frame_bytes was refused";
  EXPECT_EQ(GetReplyValue(*reply), long_pk + "/s");
  EXPECT_EQ(server_->stats().bad_frames, cases.size());
}

TEST_F(CallServerTest, AnUnknownMethodIsAnsweredWithAnExceptionAndTheConnectionStays) {
  // Thrift's generated processor skips the arguments and replies with a
  // TApplicationException(UNKNOWN_METHOD): a well-formed call, not a bad
  // frame, so the connection stays (as an older peer must, see old_peer_test).
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1}));
  RawConnection c(port());
  ASSERT_TRUE(c.Send(MessageFrame("no_such_method", protocol::T_CALL)));
  std::optional<std::string> reply = c.ReadFrame();
  ASSERT_TRUE(reply.has_value()) << "no answer to an unknown method";
  auto in = ProtocolOver(*reply);
  std::string name;
  protocol::TMessageType type;
  int32_t seqid = 0;
  in->readMessageBegin(name, type, seqid);
  EXPECT_EQ(type, protocol::T_EXCEPTION);
  EXPECT_EQ(name, "no_such_method");
  EXPECT_EQ(seqid, 7);
  TApplicationException x;
  x.read(in.get());
  EXPECT_EQ(x.getType(), TApplicationException::UNKNOWN_METHOD) << x.what();

  ASSERT_TRUE(c.Send(GetCallFrame("after", "unknown")));
  reply = c.ReadFrame();
  ASSERT_TRUE(reply.has_value()) << "the connection was closed after an unknown method";
  EXPECT_EQ(GetReplyValue(*reply), "after/unknown");
  EXPECT_EQ(server_->stats().bad_frames, 0u);
  EXPECT_EQ(server_->stats().calls, 2u);
}

TEST_F(CallServerTest, AStalledLargeFrameNeitherBlocksOthersNorTakesItsDeclaredSize) {
  constexpr int32_t kLimit = 32 << 20;
  constexpr uint32_t kDeclared = 30 << 20;
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1, .max_frame_bytes = kLimit}));
  KVClient probe(port());
  ASSERT_EQ(probe.Get("probe", "start"), "probe/start");
  const size_t in_use_before = MallocInUse();

  RawConnection stalled(port());
  ASSERT_TRUE(stalled.Send(FrameHeader(kDeclared) + std::string(100, 'x')));
  ASSERT_EQ(probe.Get("probe", "header"), "probe/header") << "a partial frame held the only thread";
  // Then a byte at a time, each taken by the server on its own (one thread:
  // the probe's answer comes after it): the frame's buffer may grow with
  // what arrives, not towards what was declared.
  constexpr int kTrickled = 24;
  for (int i = 0; i < kTrickled; ++i) {
    ASSERT_TRUE(stalled.Send("y"));
    ASSERT_EQ(probe.Get("probe", std::to_string(i)), "probe/" + std::to_string(i));
  }
  const size_t in_use_after = MallocInUse();
  const size_t grown = in_use_after > in_use_before ? in_use_after - in_use_before : 0;
  EXPECT_LT(grown, size_t(4) << 20) << "the server allocated " << grown << " bytes for a frame declaring " << kDeclared
                                    << " of which " << 104 + kTrickled << " arrived";
  EXPECT_TRUE(FreshClientIsServed(port())) << "a new client waits behind the stalled frame";
  EXPECT_EQ(server_->stats().bad_frames, 0u) << "a valid length must not be refused";
}

TEST_F(CallServerTest, ALargeReplyReachesASlowReaderWholeWhileOthersAreServed) {
  constexpr size_t kBig = 16 << 20;  // more than both sockets' buffers can hold
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1}));
  KVClient probe(port());
  RawConnection slow(port(), /*receive_buffer=*/64 << 10);
  ASSERT_TRUE(slow.Send(GetCallFrame("big", "s", int32_t(kBig))));
  ASSERT_TRUE(Eventually([&] { return handler_->big_replies_built.load() == 1; }));
  // The reply is being sent, and the slow reader has read none of it: the
  // only thread must not be waiting for it.
  EXPECT_EQ(probe.Get("probe", "during"), "probe/during");
  int available = 0;
  ioctl(slow.fd(), FIONREAD, &available);
  ASSERT_LT(size_t(available), kBig / 2) << "the reply fit in the socket buffers: this test proves nothing";

  std::string header, body;
  ASSERT_TRUE(slow.Read(4, &header));
  const uint32_t length = ntohl(*reinterpret_cast<const uint32_t*>(header.data()));
  ASSERT_GT(length, kBig);
  int probes = 0;
  bool probes_right = true;
  // 256 KiB at a time, with a probe call every 4 MiB.
  ASSERT_TRUE(slow.Read(length, &body, 256 << 10, [&](size_t got) {
    if (got / (4 << 20) > size_t(probes)) {
      ++probes;
      probes_right = probes_right && probe.Get("probe", std::to_string(probes)) == "probe/" + std::to_string(probes);
    }
  })) << "the reply ended early";
  EXPECT_TRUE(probes_right);
  EXPECT_GE(probes, 3);
  EXPECT_TRUE(GetReplyValue(body) == BigValue(kBig)) << "the large reply came back altered";
  EXPECT_EQ(probe.Get("probe", "after"), "probe/after");
}

TEST_F(CallServerTest, ConnectionsPastTheLimitAreClosedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1, .max_connections = 2}));
  KVClient first(port()), second(port());
  ASSERT_EQ(first.Get("first", "s"), "first/s");  // answered: accepted, so counted
  ASSERT_EQ(second.Get("second", "s"), "second/s");

  RawConnection third(port());
  ASSERT_TRUE(third.connected()) << "the kernel completes the handshake; the server closes it";
  EXPECT_TRUE(third.ClosedByServer()) << "a third connection stayed open";
  EXPECT_EQ(server_->stats().refused, 1u);
  EXPECT_EQ(server_->stats().accepted, 2u);
  EXPECT_EQ(first.Get("first", "again"), "first/again") << "the open connections still serve";

  // Once the server has seen the close, there is room again (each attempt it
  // refuses before that counts in refused).
  first.Close();
  EXPECT_TRUE(Eventually([&] { return FreshClientIsServed(port()); })) << "no room after closing a connection";
  EXPECT_EQ(server_->stats().accepted, 3u);
  EXPECT_EQ(second.Get("second", "again"), "second/again");
}

// Past the limit, reserved connections take only the reserved methods (here
// "get", standing in for "admin:"): another call closes its connection, and
// a reserved one that sends nothing in time is closed, so idle connections
// cannot keep the reserve. Past the reserve, connections close at once.
TEST_F(CallServerTest, ConnectionsPastTheLimitServeOnlyReservedCalls) {
  using std::chrono::milliseconds;
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1,
                                       .max_connections = 1,
                                       .reserved_connections = 2,
                                       .reserved_prefixes = {"get"},
                                       .reserved_first_call = milliseconds(300)}));
  KVClient ordinary(port());
  ASSERT_EQ(ordinary.Get("ordinary", "s"), "ordinary/s");

  KVClient operator_call(port());  // past the limit: reserved
  ASSERT_EQ(operator_call.Get("op", "1"), "op/1");
  RawConnection other_call(port());  // the second reserved slot
  ASSERT_TRUE(other_call.connected());
  ASSERT_TRUE(Eventually([&] { return server_->stats().reserved_open == 2; }))
      << "reserved_open is " << server_->stats().reserved_open;
  RawConnection past_reserve(port());
  EXPECT_TRUE(past_reserve.ClosedByServer()) << "a connection past the reserve stayed open";
  EXPECT_EQ(server_->stats().refused, 1u);

  ASSERT_TRUE(other_call.Send(MessageFrame("put", protocol::T_CALL)));
  EXPECT_TRUE(other_call.ClosedByServer()) << "a reserved connection ran a call it is not for";
  EXPECT_EQ(server_->stats().refused, 2u);
  EXPECT_TRUE(Eventually([&] { return server_->stats().reserved_open == 1; }));
  EXPECT_EQ(server_->stats().bad_frames, 0u);

  // A reserved connection with no call: closed after reserved_first_call.
  RawConnection silent(port());
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.ClosedByServer()) << "a silent reserved connection kept its slot";
  EXPECT_EQ(server_->stats().stalled, 1u);
  // A reserved connection that has called idles up to stall_timeout (30 s
  // here), unlike the silent one; and the ordinary one is untouched.
  EXPECT_EQ(operator_call.Get("op", "2"), "op/2");
  EXPECT_EQ(ordinary.Get("ordinary", "again"), "ordinary/again");
  EXPECT_EQ(server_->stats().reserved_open, 1u);
}

// A reserved call that runs longer than reserved_first_call is answered (its
// clock stops while it runs), and a garbled frame on a reserved connection
// is refused like any other call it is not for.
TEST_F(CallServerTest, ALongReservedCallIsAnsweredAndAGarbledOneRefused) {
  using std::chrono::milliseconds;
  constexpr auto kFirstCall = milliseconds(200);
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2,
                                       .max_connections = 1,
                                       .reserved_connections = 2,
                                       .reserved_prefixes = {"get"},
                                       .reserved_first_call = kFirstCall}));
  KVClient ordinary(port());
  ASSERT_EQ(ordinary.Get("ordinary", "s"), "ordinary/s");
  RawConnection slow(port());
  ASSERT_TRUE(slow.Send(GetCallFrame("block", "1")));
  handler_->entered.wait();
  // The call holds its thread for three first-call timeouts (the server's
  // watcher runs on real time, so real time must pass).
  const auto until = std::chrono::steady_clock::now() + 3 * kFirstCall;
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  handler_->Release();
  std::optional<std::string> reply = slow.ReadFrame();
  ASSERT_TRUE(reply.has_value()) << "a reserved call running past reserved_first_call lost its answer";
  EXPECT_EQ(GetReplyValue(*reply), "block/1");
  EXPECT_EQ(server_->stats().stalled, 0u);

  RawConnection garbled(port());
  ASSERT_TRUE(garbled.Send(FrameHeader(3) + "abc"));
  EXPECT_TRUE(garbled.ClosedByServer()) << "a garbled frame ran on a reserved connection";
  EXPECT_EQ(server_->stats().refused, 1u);
  EXPECT_EQ(server_->stats().bad_frames, 0u) << "refused before the processor saw it";
}

TEST_F(CallServerTest, AReserveWithoutAFirstCallTimeoutIsRefused) {
  auto started = CallServer::Start({.threads = 1,
                                    .reserved_connections = 1,
                                    .reserved_prefixes = {"get"},
                                    .reserved_first_call = std::chrono::milliseconds(0)},
                                   std::make_shared<api::MonjuKVProcessor>(handler_));
  EXPECT_FALSE(started.ok());
}

// A reserved connection that has made its call may idle for stall_timeout,
// then is closed too.
TEST_F(CallServerTest, AReservedConnectionIdleForTheStallTimeoutIsClosed) {
  using std::chrono::milliseconds;
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1,
                                       .max_connections = 1,
                                       .stall_timeout = milliseconds(300),
                                       .reserved_connections = 1,
                                       .reserved_prefixes = {"get"},
                                       .reserved_first_call = milliseconds(5000)}));
  KVClient ordinary(port());
  ASSERT_EQ(ordinary.Get("ordinary", "s"), "ordinary/s");
  RawConnection reserved(port());
  ASSERT_TRUE(reserved.Send(GetCallFrame("op", "1")));
  std::optional<std::string> reply = reserved.ReadFrame();
  ASSERT_TRUE(reply.has_value()) << "no answer on the reserved connection";
  EXPECT_EQ(GetReplyValue(*reply), "op/1");
  EXPECT_TRUE(reserved.ClosedByServer()) << "an idle reserved connection kept its slot";
  EXPECT_EQ(server_->stats().stalled, 1u);
  EXPECT_TRUE(Eventually([&] { return server_->stats().reserved_open == 0; }));
  EXPECT_EQ(ordinary.Get("ordinary", "again"), "ordinary/again") << "an idle ordinary connection is kept";
}

// A slowloris: part of a frame, then nothing, or bytes trickling in too
// slowly to finish it. Closed after stall_timeout; a connection idle between
// calls is not.
TEST_F(CallServerTest, AConnectionStalledMidFrameIsClosedButAnIdleOneIsNot) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1, .stall_timeout = std::chrono::milliseconds(200)}));
  KVClient idle(port());
  ASSERT_EQ(idle.Get("idle", "s"), "idle/s");
  RawConnection stalled(port());
  ASSERT_TRUE(stalled.connected());
  const std::string frame = GetCallFrame("pk", "sk");
  ASSERT_TRUE(stalled.Send(frame.substr(0, 3)));
  EXPECT_TRUE(stalled.ClosedByServer()) << "a stalled partial frame kept its connection";
  EXPECT_EQ(server_->stats().stalled, 1u);
  EXPECT_EQ(server_->stats().bad_frames, 0u);
  // The idle client waited at least as long as the stalled one, and stays.
  EXPECT_EQ(idle.Get("idle", "again"), "idle/again");
  EXPECT_EQ(server_->stats().stalled, 1u);
}

// Out of file descriptors, accept() fails and the waiting connection keeps
// the listener readable: the server gives back a spare descriptor to accept
// it and close it at once, rather than leaving it queued (or spinning).
TEST_F(CallServerTest, RunningOutOfDescriptorsRefusesConnectionsAndRecovers) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 1}));
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = std::min<rlim_t>(saved.rlim_cur, 256);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  ASSERT_FALSE(fillers.empty()) << "already at the descriptor limit";
  close(fillers.back());  // room for the client's socket only
  fillers.pop_back();
  {
    RawConnection refused(port());
    EXPECT_TRUE(refused.connected()) << "the kernel completes the handshake";
    EXPECT_TRUE(refused.ClosedByServer()) << "the connection was left waiting";
  }
  const uint64_t refused_count = server_->stats().refused;
  for (int fd : fillers) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_GE(refused_count, 1u);
  EXPECT_EQ(server_->stats().accepted, 0u);
  EXPECT_TRUE(Eventually([&] { return FreshClientIsServed(port()); })) << "no recovery once descriptors are free";
}

TEST_F(CallServerTest, StopWaitsForTheRunningCallAndIsIdempotent) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2}));
  const std::string threads_prefix = std::string(kServerName) + "-";
  // A thread of the previous test's server can linger in /proc/self/task for
  // a moment after its join returned (the kernel clears the tid join waits
  // on before it removes the task): wait for exactly this server's two.
  ASSERT_TRUE(Eventually([&] { return ThreadsNamed(threads_prefix) == 2; }))
      << ThreadsNamed(threads_prefix) << " threads named " << threads_prefix;

  std::string answer;
  std::thread caller([&] {
    try {
      KVClient client(port());
      answer = client.Get("block", "s");
    } catch (const TException& e) {
      answer = std::string("failed: ") + e.what();
    }
  });
  ASSERT_TRUE(Eventually([&] { return handler_->entered.try_wait(); })) << "the call never reached the handler";

  std::atomic<bool> stop_returned{false};
  bool call_finished_when_stop_returned = false;
  std::thread stopper([&] {
    server_->Stop();
    call_finished_when_stop_returned = handler_->finished.load();
    stop_returned = true;
  });
  // The idle thread leaves once Stop() has begun; the other is in the call.
  EXPECT_TRUE(Eventually([&] { return ThreadsNamed(threads_prefix) == 1; }))
      << ThreadsNamed(threads_prefix) << " server threads";
  EXPECT_FALSE(stop_returned.load()) << "Stop() returned while a call was running";
  handler_->Release();
  stopper.join();
  caller.join();

  EXPECT_TRUE(call_finished_when_stop_returned) << "Stop() returned before the running call finished";
  EXPECT_EQ(answer, "block/s") << "the running call's reply was not sent";
  EXPECT_EQ(ThreadsNamed(threads_prefix), 0);
  server_->Stop();  // again: returns at once
  EXPECT_FALSE(RawConnection(port()).connected()) << "still listening after Stop()";
}

// ---------------------------------------------------------------------------
// Deferred calls (deferred_call.h)

// Takes every get: pk "now..." is answered inside Start(), pk "drop..." is
// never answered (its reply is destroyed), any other waits for Answer().
class DeferredGets final : public DeferredCalls {
 public:
  bool Handles(std::string_view name) const override { return name == "get"; }
  void Start(const uint8_t* message, uint32_t size, std::shared_ptr<DeferredReply> reply) override {
    Call call;
    api::MonjuKV_get_args args;
    if (!ReadCall(message, size, &call.name, &call.seqid, &args)) throw std::runtime_error("bad get");
    call.pk = args.pk;
    call.reply = std::move(reply);
    ++started;
    if (call.pk.starts_with("now")) return Send(call);
    if (call.pk.starts_with("drop")) return;  // the reply goes unanswered
    std::lock_guard<std::mutex> lock(mu_);
    waiting_.push_back(std::move(call));
  }
  size_t Waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_.size();
  }
  // Answers every waiting call, on the calling thread.
  void AnswerAll() {
    std::vector<Call> calls;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls.swap(waiting_);
    }
    for (Call& c : calls) Send(c);
  }
  std::atomic<int> started{0};

 private:
  struct Call {
    std::string name, pk;
    int32_t seqid = 0;
    std::shared_ptr<DeferredReply> reply;
  };
  static void Send(Call& call) {
    api::MonjuKV_get_result result;
    result.success.found = true;
    result.success.values = {"deferred:" + call.pk};
    result.__isset.success = true;
    call.reply->Send(ReplyMessage(call.name, call.seqid, result));
  }
  std::mutex mu_;
  std::vector<Call> waiting_;
};

class DeferredCallTest : public CallServerTest {
 protected:
  void StartDeferred(uint32_t threads) {
    ASSERT_NO_FATAL_FAILURE(StartServer({.threads = threads, .deferred = deferred_}));
  }
  std::shared_ptr<DeferredGets> deferred_ = std::make_shared<DeferredGets>();
};

// One server thread: a call waiting for its answer holds no thread, so
// another connection is served meanwhile; the answer, sent from the test's
// thread, reaches the first client.
TEST_F(DeferredCallTest, AWaitingCallHoldsNoServerThread) {
  ASSERT_NO_FATAL_FAILURE(StartDeferred(1));
  std::string first;
  std::thread waiter([&] {
    try {
      first = KVClient(port()).Get("later", "s");
    } catch (const TException& e) {
      first = std::string("failed: ") + e.what();
    }
  });
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  EXPECT_EQ(KVClient(port()).Get("now", "s"), "deferred:now") << "the only server thread was held";
  deferred_->AnswerAll();
  waiter.join();
  EXPECT_EQ(first, "deferred:later");
}

// Three calls sent back to back on one connection: the second is not read
// before the first is answered, and the replies come in order.
TEST_F(DeferredCallTest, PipelinedCallsOnOneConnectionAreAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartDeferred(2));
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(GetCallFrame("later1", "s") + GetCallFrame("now2", "s") + GetCallFrame("later3", "s")));
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  EXPECT_EQ(deferred_->started.load(), 1) << "a call ran before the one before it was answered";
  deferred_->AnswerAll();
  auto one = c.ReadFrame();
  auto two = c.ReadFrame();
  ASSERT_TRUE(one && two);
  EXPECT_EQ(GetReplyValue(*one), "deferred:later1");
  EXPECT_EQ(GetReplyValue(*two), "deferred:now2");
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  deferred_->AnswerAll();
  auto three = c.ReadFrame();
  ASSERT_TRUE(three);
  EXPECT_EQ(GetReplyValue(*three), "deferred:later3");
  EXPECT_EQ(server_->stats().calls, 3u);
}

// A call whose reply is destroyed unsent closes its connection (its client
// would wait for ever otherwise); a reply to a client that left is dropped.
// Neither troubles the other connections.
TEST_F(DeferredCallTest, UnansweredCallsCloseTheirConnectionAndLateRepliesAreDropped) {
  ASSERT_NO_FATAL_FAILURE(StartDeferred(1));
  RawConnection dropped(port());
  ASSERT_TRUE(dropped.Send(GetCallFrame("drop", "s")));
  EXPECT_TRUE(dropped.ClosedByServer());

  {
    RawConnection left(port());
    ASSERT_TRUE(left.Send(GetCallFrame("later", "s")));
    ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  }  // the client is gone before its answer
  ASSERT_TRUE(Eventually([&] { return server_->stats().accepted == 2; }));
  deferred_->AnswerAll();
  EXPECT_EQ(KVClient(port()).Get("now", "s"), "deferred:now");
}

// Stop() waits up to drain_timeout for the replies of calls waiting for
// them: one answered meanwhile reaches its client; past the timeout the
// connection is closed and a later answer is dropped.
TEST_F(DeferredCallTest, StopSendsRepliesThatComeWithinTheDrainTimeout) {
  // A drain timeout far past the wait below: Stop() returns in time only if
  // the last answer wakes it.
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2, .deferred = deferred_, .drain_timeout = 60000ms}));
  RawConnection c(port());
  ASSERT_TRUE(c.Send(GetCallFrame("later", "s")));
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  ASSERT_TRUE(Eventually([&] { return !RawConnection(port()).connected(); })) << "Stop() has not begun";
  deferred_->AnswerAll();
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "Stop() still waits after the last deferred call was answered";
  auto reply = c.ReadFrame();
  ASSERT_TRUE(reply) << "the reply of a call answered during Stop() was lost";
  EXPECT_EQ(GetReplyValue(*reply), "deferred:later");
}

TEST_F(DeferredCallTest, AnswersAfterTheDrainTimeoutAreDropped) {
  ASSERT_NO_FATAL_FAILURE(StartServer({.threads = 2, .deferred = deferred_, .drain_timeout = 50ms}));
  RawConnection c(port());
  ASSERT_TRUE(c.Send(GetCallFrame("later", "s")));
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  server_->Stop();
  EXPECT_TRUE(c.ClosedByServer());
  deferred_->AnswerAll();
  server_.reset();
}

// A client that sends its calls and half-closes still gets every reply.
TEST_F(DeferredCallTest, AHalfClosedClientStillGetsItsReplies) {
  ASSERT_NO_FATAL_FAILURE(StartDeferred(2));
  RawConnection c(port());
  ASSERT_TRUE(c.Send(GetCallFrame("later1", "s") + GetCallFrame("later2", "s")));
  ASSERT_EQ(shutdown(c.fd(), SHUT_WR), 0);
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  deferred_->AnswerAll();
  ASSERT_TRUE(Eventually([&] { return deferred_->Waiting() == 1; }));
  deferred_->AnswerAll();
  auto one = c.ReadFrame();
  auto two = c.ReadFrame();
  ASSERT_TRUE(one && two);
  EXPECT_EQ(GetReplyValue(*one), "deferred:later1");
  EXPECT_EQ(GetReplyValue(*two), "deferred:later2");
  EXPECT_TRUE(c.ClosedByServer());
}

// Many clients on a few threads, every call deferred and answered from
// other threads while more arrive: each client gets its own answer.
TEST_F(DeferredCallTest, ManyDeferredCallsAnsweredFromOtherThreads) {
  ASSERT_NO_FATAL_FAILURE(StartDeferred(2));
  std::atomic<bool> done{false};
  std::thread answerer([&] {
    while (!done.load()) deferred_->AnswerAll();
  });
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      try {
        KVClient client(port());
        for (int i = 0; i < 100; ++i) {
          const std::string pk = "k" + std::to_string(t) + "-" + std::to_string(i);
          if (client.Get(pk, "s") != "deferred:" + pk) ++wrong;
        }
      } catch (const TException&) {
        ++wrong;
      }
    });
  for (auto& c : clients) c.join();
  done = true;
  answerer.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(deferred_->started.load(), 800);
}

TEST_F(CallServerTest, StartRefusesBadOptionsAndABusyPort) {
  ASSERT_NO_FATAL_FAILURE(StartServer({}));
  auto processor = std::make_shared<api::MonjuKVProcessor>(handler_);
  auto busy = CallServer::Start({.port = port()}, processor);
  ASSERT_FALSE(busy.ok()) << "two servers on port " << port();
  EXPECT_EQ(busy.status().code(), Status::Code::kIOError) << busy.status().ToString();

  EXPECT_EQ(CallServer::Start({.threads = 0}, processor).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(CallServer::Start({.max_frame_bytes = 15}, processor).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(CallServer::Start({}, nullptr).status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(FreshClientIsServed(port())) << "the first server suffered from the failed starts";
}

}  // namespace
}  // namespace monju
