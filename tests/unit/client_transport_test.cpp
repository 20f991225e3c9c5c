// The client transport stack (src/net/client_transport.h): a reply's frame
// size and body come in one read from the socket; a large body goes straight
// into the frame; the frame size limit still holds; and stray bytes show.
// The socket is replaced by an in-memory transport that counts reads.
#include <gtest/gtest.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TTransportException.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "client_transport.h"
#include "connect_from.h"

namespace monju {
namespace {

using namespace apache::thrift;
using namespace apache::thrift::transport;

// Serves its bytes at most `chunk` per read, as a socket hands over what has
// arrived; counts the reads.
class CountingSource final : public TVirtualTransport<CountingSource> {
 public:
  CountingSource(std::string bytes, uint32_t chunk) : bytes_(std::move(bytes)), chunk_(chunk) {}
  bool isOpen() const override { return true; }
  uint32_t read(uint8_t* buf, uint32_t len) {
    ++reads;
    const uint32_t n = std::min<uint32_t>({len, chunk_, static_cast<uint32_t>(bytes_.size() - pos_)});
    std::memcpy(buf, bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  int reads = 0;

 private:
  std::string bytes_;
  uint32_t chunk_;
  size_t pos_ = 0;
};

std::string Frame(const std::string& body) {
  const uint32_t size = htonl(static_cast<uint32_t>(body.size()));
  return std::string(reinterpret_cast<const char*>(&size), 4) + body;
}

struct Stack {
  std::shared_ptr<CountingSource> source;
  std::shared_ptr<ClientReadBuffer> buffer;
  std::shared_ptr<TFramedTransport> framed;
};

Stack Make(std::string bytes, uint32_t chunk, int max_frame = 64 << 20) {
  auto config = std::make_shared<TConfiguration>(max_frame, max_frame);
  Stack s;
  s.source = std::make_shared<CountingSource>(std::move(bytes), chunk);
  s.buffer = std::make_shared<ClientReadBuffer>(s.source, 64 << 10, 1, config);
  s.framed = std::make_shared<TFramedTransport>(s.buffer, config);
  return s;
}

std::string ReadBody(TFramedTransport& t, size_t size) {
  std::string out(size, '\0');
  t.readAll(reinterpret_cast<uint8_t*>(out.data()), static_cast<uint32_t>(size));
  t.readEnd();
  return out;
}

TEST(ClientTransportTest, ASmallReplyComesInOneRead) {
  const std::string body(300, 'r');
  Stack s = Make(Frame(body), /*chunk=*/1 << 20);
  EXPECT_EQ(ReadBody(*s.framed, body.size()), body);
  EXPECT_EQ(s.source->reads, 1) << "the frame size and body in one read";
  EXPECT_FALSE(s.buffer->HasBuffered());
}

TEST(ClientTransportTest, ALargeBodyIsReadStraightIntoTheFrame) {
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 31);
  // A socket handing over 256 KiB at a time: through the 64 KiB buffer the
  // body alone would take 16 reads.
  Stack s = Make(Frame(body), /*chunk=*/256 << 10);
  EXPECT_EQ(ReadBody(*s.framed, body.size()), body);
  EXPECT_LE(s.source->reads, 6);
  EXPECT_FALSE(s.buffer->HasBuffered());
}

TEST(ClientTransportTest, TheFrameSizeLimitStillHolds) {
  Stack s = Make(Frame(std::string(2000, 'x')), 1 << 20, /*max_frame=*/1000);
  uint8_t byte;
  EXPECT_THROW(s.framed->read(&byte, 1), TTransportException);
}

TEST(ClientTransportTest, BytesPastTheReplyShowAsBuffered) {
  const std::string body = "reply";
  Stack s = Make(Frame(body) + "stray", 1 << 20);
  EXPECT_EQ(ReadBody(*s.framed, body.size()), body);
  EXPECT_TRUE(s.buffer->HasBuffered()) << "the pool must not reuse this connection";
}

TEST(ClientTransportTest, SocketUnderFindsOnlyItsOwnStack) {
  Stack s = Make("", 1);
  EXPECT_EQ(ReadBufferUnder(s.framed), s.buffer);
  EXPECT_EQ(SocketUnder(s.framed), nullptr) << "a memory source is not a socket";
  auto plain = std::make_shared<TFramedTransport>(std::make_shared<TMemoryBuffer>());
  EXPECT_EQ(ReadBufferUnder(plain), nullptr);
}

// ConnectFromAny: every resolved address is tried in order. Ports on
// loopback: one bound but not listening (refuses), one listening.
class Loopback {
 public:
  explicit Loopback(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (listening) {
      EXPECT_EQ(::listen(fd_, 4), 0);
    }
    socklen_t len = sizeof addr_;
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len), 0);
  }
  ~Loopback() { ::close(fd_); }
  addrinfo Info(addrinfo* next = nullptr) {
    addrinfo ai{};
    ai.ai_family = AF_INET;
    ai.ai_socktype = SOCK_STREAM;
    ai.ai_addr = reinterpret_cast<sockaddr*>(&addr_);
    ai.ai_addrlen = sizeof addr_;
    ai.ai_next = next;
    return ai;
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
};

addrinfo LocalAny(sockaddr_in* storage) {
  *storage = {};
  storage->sin_family = AF_INET;
  storage->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addrinfo ai{};
  ai.ai_family = AF_INET;
  ai.ai_socktype = SOCK_STREAM;
  ai.ai_addr = reinterpret_cast<sockaddr*>(storage);
  ai.ai_addrlen = sizeof *storage;
  return ai;
}

TEST(ConnectFromTest, AnAddressThatRefusesIsPassedOverForTheNext) {
  Loopback refusing(false), listening(true);
  addrinfo second = listening.Info();
  addrinfo first = refusing.Info(&second);
  sockaddr_in storage;
  addrinfo local = LocalAny(&storage);
  int fd = ConnectFromAny(&local, &first, 2000, "test");
  ASSERT_GE(fd, 0);
  ::close(fd);
}

TEST(ConnectFromTest, WhenEveryAddressFailsTheErrorNamesThemAll) {
  Loopback a(false), b(false);
  addrinfo second = b.Info();
  addrinfo first = a.Info(&second);
  sockaddr_in storage;
  addrinfo local = LocalAny(&storage);
  try {
    ConnectFromAny(&local, &first, 2000, "test");
    FAIL() << "connected to a port that does not listen";
  } catch (const TTransportException& e) {
    EXPECT_EQ(e.getType(), TTransportException::NOT_OPEN);
    const std::string what = e.what();
    EXPECT_NE(what.find("Connection refused; Connection refused"), std::string::npos) << what;
    EXPECT_NE(what.find("2 addresses tried"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace monju
